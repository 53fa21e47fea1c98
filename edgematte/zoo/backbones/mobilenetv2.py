"""MobileNetV2 backbone as PaddleSeg's Matting ``MobileNetV2`` (the MODNet backbone), with its parameter names.

Input: float32 ``[N, 3, H, W]`` (H, W multiples of 32). Output: 5 features at strides 2, 4, 8, 16, 32 with
[16, 24, 32, 96, 1280] channels at width 1: the outputs of inverted-residual stages 1, 2, 3 and 5 and of the
final 1x1 conv (ReLU6 activations throughout; the projection convs of the blocks are linear).
"""

from typing import Callable, List

import paddle
import paddle.nn as nn

from .layers import ConvBN

STEM_CHANNELS = 32
# Inverted-residual stages: (expansion t, output channels c, blocks n, stride of the first block s).
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_STAGES = (0, 1, 2, 4)  # stages whose output is a feature (strides 2, 4, 8, 16)
LAST_CHANNELS = 1280


class InvertedResidual(nn.Layer):
    """1x1 expansion (ReLU6), depthwise 3x3 (ReLU6), linear 1x1 projection; ``residual`` adds the input."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int, residual: bool):
        super().__init__()
        expanded = int(round(in_channels * expansion))
        self._expand_conv = ConvBN(in_channels, expanded, 1, act="relu6")
        self._bottleneck_conv = ConvBN(expanded, expanded, 3, stride=stride, groups=expanded, act="relu6")
        self._linear_conv = ConvBN(expanded, out_channels, 1, act=None)
        self.residual = residual

    def forward(self, x):
        y = self._linear_conv(self._bottleneck_conv(self._expand_conv(x)))
        return x + y if self.residual else y


class InvertedResidualStage(nn.Layer):
    """``blocks`` inverted residuals: the first (``_first_block``) changes channels and stride, the others
    (named ``{stage_name}_2``, ``{stage_name}_3``... as in PaddleSeg) keep them and add their input."""

    def __init__(self, stage_name: str, in_channels: int, out_channels: int, expansion: int, blocks: int,
                 stride: int):
        super().__init__()
        self._first_block = InvertedResidual(in_channels, out_channels, expansion, stride, residual=False)
        self.repeated: List[InvertedResidual] = [
            self.add_sublayer(f"{stage_name}_{index}",
                              InvertedResidual(out_channels, out_channels, expansion, 1, residual=True))
            for index in range(2, blocks + 1)
        ]

    def forward(self, x):
        x = self._first_block(x)
        for block in self.repeated:
            x = block(x)
        return x


class MobileNetV2(nn.Layer):
    """MobileNetV2; ``channel`` maps a width-1 channel count to the built one (identity: the official net)."""

    def __init__(self, channel: Callable[[int], int] = int):
        super().__init__()
        self.conv1 = ConvBN(3, channel(STEM_CHANNELS), 3, stride=2, act="relu6")
        self.stages: List[InvertedResidualStage] = []
        in_channels = channel(STEM_CHANNELS)
        for index, (expansion, width_one_channels, blocks, stride) in enumerate(STAGES):
            name = f"conv{index + 2}"
            out_channels = channel(width_one_channels)
            stage = InvertedResidualStage(name, in_channels, out_channels, expansion, blocks, stride)
            self.stages.append(self.add_sublayer(name, stage))
            in_channels = out_channels
        self.conv9 = ConvBN(in_channels, channel(LAST_CHANNELS), 1, act="relu6")
        self.feature_channels = [channel(STAGES[i][1]) for i in FEATURE_STAGES] + [channel(LAST_CHANNELS)]

    def forward(self, x) -> List[paddle.Tensor]:
        """``x`` float32 [N, 3, H, W] -> features at strides 2, 4, 8, 16, 32 (``feature_channels`` channels)."""
        features = []
        x = self.conv1(x)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in FEATURE_STAGES:
                features.append(x)
        features.append(self.conv9(x))
        return features
