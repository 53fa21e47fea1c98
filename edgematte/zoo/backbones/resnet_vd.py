"""ResNet_vd backbones (depth 34 and 50) as PaddleSeg's Matting ``ResNet34_vd`` / ``ResNet50_vd``, with its
parameter names (``conv1_1``.. ``conv1_3``, ``pool2d_max``, ``bb_{stage}_{block}`` with ``conv0``.., ``short``).

Input: float32 ``[N, 3, H, W]`` (H, W multiples of 32). Output: 5 features at strides 2, 4, 8, 16, 32: the stem
output (before max pooling) and the four stages. Channels at width 1: [64, 64, 128, 256, 512] for depth 34,
[64, 256, 512, 1024, 2048] for depth 50. "vd": a stem of three 3x3 convs, and the shortcuts that downsample
average-pool 2x2 (ceil mode) before their 1x1 conv instead of striding it.
"""

from typing import Callable, List

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import ConvBN

STEM_CHANNELS = (32, 32, 64)
STAGE_CHANNELS = (64, 128, 256, 512)  # the 3x3 convs' channels; bottleneck blocks output 4 times as many
STAGE_BLOCKS = {34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
BOTTLENECK_EXPANSION = 4


class BasicBlock(nn.Layer):
    """Two 3x3 ConvBN (the first strides), residual add, ReLU; ``short`` projects when shapes change."""

    def __init__(self, in_channels: int, channels: int, stride: int, project: bool, vd_shortcut: bool):
        super().__init__()
        self.conv0 = ConvBN(in_channels, channels, 3, stride=stride)
        self.conv1 = ConvBN(channels, channels, 3, act=None)
        # "vd": the projection average-pools first (instead of a strided 1x1 conv) when it downsamples
        self.short = ConvBN(in_channels, channels, 1, act=None, avg_pool_first=vd_shortcut) if project else None
        self.out_channels = channels

    def forward(self, x):
        shortcut = x if self.short is None else self.short(x)
        return F.relu(shortcut + self.conv1(self.conv0(x)))


class BottleneckBlock(nn.Layer):
    """1x1 ConvBN, 3x3 ConvBN (strides), 1x1 ConvBN to 4 x ``channels``, residual add, ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int, project: bool, vd_shortcut: bool):
        super().__init__()
        out_channels = channels * BOTTLENECK_EXPANSION
        self.conv0 = ConvBN(in_channels, channels, 1)
        self.conv1 = ConvBN(channels, channels, 3, stride=stride)
        self.conv2 = ConvBN(channels, out_channels, 1, act=None)
        self.short = ConvBN(in_channels, out_channels, 1, act=None, avg_pool_first=vd_shortcut) if project else None
        self.out_channels = out_channels

    def forward(self, x):
        shortcut = x if self.short is None else self.short(x)
        return F.relu(shortcut + self.conv2(self.conv1(self.conv0(x))))


class ResNetVd(nn.Layer):
    """ResNet_vd of ``depth`` 34 (basic blocks) or 50 (bottlenecks), output stride 32.

    ``channel`` maps a width-1 channel count to the built one (identity: the official net).
    """

    def __init__(self, depth: int, channel: Callable[[int], int] = int):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"ResNet_vd depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        block_class = BasicBlock if depth < 50 else BottleneckBlock
        stem = [channel(c) for c in STEM_CHANNELS]
        self.conv1_1 = ConvBN(3, stem[0], 3, stride=2)
        self.conv1_2 = ConvBN(stem[0], stem[1], 3)
        self.conv1_3 = ConvBN(stem[1], stem[2], 3)
        self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages: List[List[nn.Layer]] = []
        in_channels = stem[2]
        self.feature_channels = [stem[2]]
        for stage, (width_one_channels, blocks) in enumerate(zip(STAGE_CHANNELS, STAGE_BLOCKS[depth])):
            stage_blocks = []
            for index in range(blocks):
                first = index == 0
                block = block_class(
                    in_channels,
                    channel(width_one_channels),
                    stride=2 if first and stage > 0 else 1,
                    # PaddleSeg projects at every stage's first block, even where the shapes agree (depth 34,
                    # stage 0: 64 -> 64, stride 1): the checkpoint holds that projection
                    project=first,
                    vd_shortcut=first and stage > 0,
                )
                stage_blocks.append(self.add_sublayer(f"bb_{stage}_{index}", block))
                in_channels = block.out_channels
            self.stages.append(stage_blocks)
            self.feature_channels.append(in_channels)

    def forward(self, x) -> List[paddle.Tensor]:
        """``x`` float32 [N, 3, H, W] -> features at strides 2, 4, 8, 16, 32 (``feature_channels`` channels)."""
        x = self.conv1_3(self.conv1_2(self.conv1_1(x)))
        features = [x]
        x = self.pool2d_max(x)
        for stage_blocks in self.stages:
            for block in stage_blocks:
                x = block(x)
            features.append(x)
        return features
