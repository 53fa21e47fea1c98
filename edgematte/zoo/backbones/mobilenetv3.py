"""MobileNetV3-Large at output stride 16 as PaddleSeg's Matting ``MobileNetV3_large_x1_0_os16`` (the RVM
encoder), with its parameter names.

Input: float32 ``[N, 3, H, W]``, RGB in [0, 1]. The ImageNet normalization ``(x - mean) / std`` is the first
step of :meth:`MobileNetV3Large.forward` (``mean``/``std`` are ``[1, 3, 1, 1]`` buffers: constants of the
exported program, not entries of the checkpoint, as in PaddleSeg's, whose export names them ``backbone.mean`` /
``backbone.std``).

Output: 4 features ``[blocks[0], blocks[2], blocks[5], last_second_conv]`` at strides 2, 4, 8, 16 with
[16, 24, 40, 960] channels at width 1 (``feature_channels``). Output stride 16: the last three blocks keep
stride 1 and dilate their depthwise convs by 2 instead of downsampling.

Each block (``ResidualUnit``): a 1x1 expansion (absent when it would not change the channels: block 0), a
depthwise kxk conv (the stride), an optional squeeze-and-excitation (``mid_se``), a linear 1x1 projection, and
the input added when stride and channels are kept. Activations ReLU (blocks 0-5) or hard swish (stem, blocks 6-14,
last conv); BatchNorm epsilon 1e-3 throughout.
"""

from typing import Callable, List

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import ConvBNAct

STEM_CHANNELS = 16
# (kernel, expanded channels, output channels, squeeze-and-excitation, activation, stride, dilation):
# PaddleSeg's NET_CONFIG["large_os16"].
BLOCKS = (
    (3, 16, 16, False, "relu", 1, 1),
    (3, 64, 24, False, "relu", 2, 1),
    (3, 72, 24, False, "relu", 1, 1),  # stride 4
    (5, 72, 40, True, "relu", 2, 1),
    (5, 120, 40, True, "relu", 1, 1),
    (5, 120, 40, True, "relu", 1, 1),  # stride 8
    (3, 240, 80, False, "hardswish", 2, 1),
    (3, 200, 80, False, "hardswish", 1, 1),
    (3, 184, 80, False, "hardswish", 1, 1),
    (3, 184, 80, False, "hardswish", 1, 1),
    (3, 480, 112, True, "hardswish", 1, 1),
    (3, 672, 112, True, "hardswish", 1, 1),  # stride 16
    (5, 672, 160, True, "hardswish", 1, 2),  # os16: dilation instead of the stride-32 step
    (5, 960, 160, True, "hardswish", 1, 2),
    (5, 960, 160, True, "hardswish", 1, 2),
)
FEATURE_BLOCKS = (0, 2, 5)  # RVM's out_index; the fourth feature is the last conv
LAST_CHANNELS = 960
SE_REDUCTION = 4
BN_EPSILON = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_divisible(value: float, divisor: int = 8) -> int:
    """PaddleSeg's ``_make_divisible``: the nearest multiple of ``divisor`` (at least ``divisor``), one more step
    up when rounding lost over 10 %. It sizes the squeeze-and-excitation (120 // 4 = 30 -> 32)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SEModule(nn.Layer):
    """Squeeze-and-excitation: global average, 1x1 conv (bias) to ``squeezed`` channels, ReLU, 1x1 conv (bias)
    back, hard sigmoid (Paddle's default slope 0.1666667, offset 0.5, as the official program has it); the input
    scaled by it per channel."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, squeezed, 1)
        self.conv2 = nn.Conv2D(squeezed, channels, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.conv2(F.relu(self.conv1(self.avg_pool(x)))))


class ResidualUnit(nn.Layer):
    """One MobileNetV3 block (see the module docstring); sublayers in PaddleSeg's order: ``expand_conv``,
    ``bottleneck_conv``, ``mid_se``, ``linear_conv``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride: int,
                 use_se: bool, act: str, dilation: int, se_channels: int):
        super().__init__()
        self.shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = (ConvBNAct(in_channels, mid_channels, 1, act=act, epsilon=BN_EPSILON)
                            if in_channels != mid_channels else None)
        self.bottleneck_conv = ConvBNAct(mid_channels, mid_channels, kernel_size, stride=stride, dilation=dilation,
                                         groups=mid_channels, act=act, epsilon=BN_EPSILON)
        self.mid_se = SEModule(mid_channels, se_channels) if use_se else None
        self.linear_conv = ConvBNAct(mid_channels, out_channels, 1, act=None, epsilon=BN_EPSILON)

    def forward(self, x):
        y = x if self.expand_conv is None else self.expand_conv(x)
        y = self.bottleneck_conv(y)
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.shortcut else y


class MobileNetV3Large(nn.Layer):
    """MobileNetV3-Large, output stride 16; ``channel`` maps a width-1 channel count to the built one (identity:
    the official net)."""

    def __init__(self, channel: Callable[[int], int] = int):
        super().__init__()
        # Not parameters: buffers that stay out of the state_dict (the official checkpoint has no such entries)
        # but follow the model's dtype and become persistable constants of an exported program.
        self.register_buffer("mean", paddle.to_tensor(IMAGENET_MEAN, "float32").reshape([1, 3, 1, 1]),
                             persistable=False)
        self.register_buffer("std", paddle.to_tensor(IMAGENET_STD, "float32").reshape([1, 3, 1, 1]),
                             persistable=False)
        self.conv = ConvBNAct(3, channel(STEM_CHANNELS), 3, stride=2, act="hardswish", epsilon=BN_EPSILON)
        blocks = []
        in_channels = channel(STEM_CHANNELS)
        for kernel, mid, out, use_se, act, stride, dilation in BLOCKS:
            mid_channels, out_channels = channel(mid), channel(out)
            se_channels = channel(make_divisible(mid // SE_REDUCTION))
            blocks.append(ResidualUnit(in_channels, mid_channels, out_channels, kernel, stride, use_se, act,
                                       dilation, se_channels))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.last_second_conv = ConvBNAct(in_channels, channel(LAST_CHANNELS), 1, act="hardswish",
                                          epsilon=BN_EPSILON)
        self.feature_channels = [channel(BLOCKS[i][2]) for i in FEATURE_BLOCKS] + [channel(LAST_CHANNELS)]

    def forward(self, x) -> List[paddle.Tensor]:
        """``x`` float32 [N, 3, H, W] in [0, 1] -> features at strides 2, 4, 8, 16 (``feature_channels``)."""
        x = self.conv((x - self.mean) / self.std)
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in FEATURE_BLOCKS:
                features.append(x)
        features.append(self.last_second_conv(x))
        return features
