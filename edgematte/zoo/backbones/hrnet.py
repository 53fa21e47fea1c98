"""HRNet_W18 backbone as PaddleSeg's Matting ``HRNet_W18`` (MODNet, PP-Matting), with its parameter names.

Input: float32 ``[N, 3, H, W]`` (H, W multiples of 32). Output: 5 features: the first stem conv's output at
stride 2 (64 channels), then the four branches of the last stage at strides 4, 8, 16, 32 with [18, 36, 72, 144]
channels (width 1). Every conv pads with Paddle's SAME algorithm (a stride-2 3x3 conv on an even input pads 0 before
and 1 after), as PaddleSeg builds it (``padding_same=True``).

Structure: two stride-2 3x3 convs; ``la1``: 4 bottlenecks (64 -> 256 channels); then three stages of
high-resolution modules (1, 4 and 3 modules of 2, 3 and 4 parallel branches), each stage entered through a
transition that adapts the existing branches and opens a new one at half the resolution. A module runs 4 basic
blocks per branch, then fuses: every output branch is the ReLU of the sum of all branches brought to its resolution
(1x1 conv + bilinear upsampling from lower resolutions, chains of stride-2 3x3 convs from higher ones).
"""

from typing import Callable, List, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import ConvBN

STEM_CHANNELS = 64
LAYER1_BLOCKS = 4
BOTTLENECK_EXPANSION = 4
# (stage name, modules, branch channels); each branch runs BRANCH_BLOCKS basic blocks per module
STAGES = (("st2", 1, (18, 36)), ("st3", 4, (18, 36, 72)), ("st4", 3, (18, 36, 72, 144)))
BRANCH_BLOCKS = 4
SAME = "same"


class Bottleneck(nn.Layer):
    """1x1, 3x3, 1x1 ConvBN (to 4 x ``channels``), residual add (``conv_down`` projects when asked), ReLU."""

    def __init__(self, in_channels: int, channels: int, project: bool):
        super().__init__()
        out_channels = channels * BOTTLENECK_EXPANSION
        self.conv1 = ConvBN(in_channels, channels, 1, padding=SAME)
        self.conv2 = ConvBN(channels, channels, 3, padding=SAME)
        self.conv3 = ConvBN(channels, out_channels, 1, padding=SAME, act=None)
        self.conv_down = ConvBN(in_channels, out_channels, 1, padding=SAME, act=None) if project else None

    def forward(self, x):
        shortcut = x if self.conv_down is None else self.conv_down(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class BasicBlock(nn.Layer):
    """Two 3x3 ConvBN (ReLU after the first), identity residual add, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvBN(channels, channels, 3, padding=SAME)
        self.conv2 = ConvBN(channels, channels, 3, padding=SAME, act=None)

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + x)


class Layer1(nn.Layer):
    """The bottlenecks after the stem (``bb_layer2_1``.. ``bb_layer2_4``; the first projects)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.blocks = []
        for index in range(LAYER1_BLOCKS):
            block = Bottleneck(in_channels if index == 0 else channels * BOTTLENECK_EXPANSION, channels, index == 0)
            self.blocks.append(self.add_sublayer(f"bb_layer2_{index + 1}", block))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class Transition(nn.Layer):
    """Into a stage: a 3x3 ConvBN+ReLU where a branch changes channels (identity where not), and a stride-2 3x3
    ConvBN+ReLU from the lowest-resolution input for each new branch."""

    def __init__(self, name: str, in_channels: Sequence[int], out_channels: Sequence[int]):
        super().__init__()
        self.convs: List[Optional[ConvBN]] = []
        for index, out in enumerate(out_channels):
            conv = None
            if index >= len(in_channels):
                conv = ConvBN(in_channels[-1], out, 3, stride=2, padding=SAME)
            elif in_channels[index] != out:
                conv = ConvBN(in_channels[index], out, 3, padding=SAME)
            if conv is not None:
                self.add_sublayer(f"transition_{name}_layer_{index + 1}", conv)
            self.convs.append(conv)

    def forward(self, branches: List[paddle.Tensor]) -> List[paddle.Tensor]:
        outs = []
        for index, conv in enumerate(self.convs):
            source = branches[min(index, len(branches) - 1)]
            outs.append(source if conv is None else conv(source))
        return outs


class Branches(nn.Layer):
    """BRANCH_BLOCKS basic blocks on each branch (``bb_{module}_branch_layer_{branch}_{block}``)."""

    def __init__(self, name: str, channels: Sequence[int]):
        super().__init__()
        self.chains = [
            [self.add_sublayer(f"bb_{name}_branch_layer_{i + 1}_{j + 1}", BasicBlock(c)) for j in range(BRANCH_BLOCKS)]
            for i, c in enumerate(channels)
        ]

    def forward(self, branches: List[paddle.Tensor]) -> List[paddle.Tensor]:
        outs = []
        for x, chain in zip(branches, self.chains):
            for block in chain:
                x = block(x)
            outs.append(x)
        return outs


class Fuse(nn.Layer):
    """Output branch i = ReLU(sum over input branches j brought to branch i): j == i as is; j lower resolution
    (j > i): 1x1 ConvBN to i's channels, bilinear resize to i's size; j higher resolution (j < i): i - j stride-2
    3x3 convs (ConvBN+ReLU keeping j's channels, the last ConvBN to i's channels, no ReLU)."""

    def __init__(self, name: str, channels: Sequence[int]):
        super().__init__()
        self.paths = []  # paths[i][j]: the layers bringing branch j to branch i ([] for j == i)
        for i, out in enumerate(channels):
            row = []
            for j, source in enumerate(channels):
                path = []
                if j > i:
                    path.append(self.add_sublayer(f"residual_{name}_layer_{i + 1}_{j + 1}",
                                                  ConvBN(source, out, 1, padding=SAME, act=None)))
                for k in range(i - j):
                    last = k == i - j - 1
                    conv = ConvBN(source, out if last else source, 3, stride=2, padding=SAME,
                                  act=None if last else "relu")
                    path.append(self.add_sublayer(f"residual_{name}_layer_{i + 1}_{j + 1}_{k + 1}", conv))
                row.append(path)
            self.paths.append(row)

    def forward(self, branches: List[paddle.Tensor]) -> List[paddle.Tensor]:
        outs = []
        for i, row in enumerate(self.paths):
            total = branches[i]
            size = paddle.shape(total)[-2:]
            for j, path in enumerate(row):
                if j == i:
                    continue
                y = branches[j]
                for layer in path:
                    y = layer(y)
                if j > i:
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
                total = total + y
            outs.append(F.relu(total))
        return outs


class HighResolutionModule(nn.Layer):
    """Branches then fusion."""

    def __init__(self, name: str, channels: Sequence[int]):
        super().__init__()
        self.branches_func = Branches(name, channels)
        self.fuse_func = Fuse(name, channels)

    def forward(self, branches):
        return self.fuse_func(self.branches_func(branches))


class Stage(nn.Layer):
    """``modules`` high-resolution modules (``stage_{name}_{k}``) in sequence."""

    def __init__(self, name: str, modules: int, channels: Sequence[int]):
        super().__init__()
        self.modules_in_order = [
            self.add_sublayer(f"stage_{name}_{k + 1}", HighResolutionModule(f"{name}_{k + 1}", channels))
            for k in range(modules)
        ]

    def forward(self, branches):
        for module in self.modules_in_order:
            branches = module(branches)
        return branches


class HRNetW18(nn.Layer):
    """HRNet_W18; ``channel`` maps a width-1 channel count to the built one (identity: the official net)."""

    def __init__(self, channel: Callable[[int], int] = int):
        super().__init__()
        stem = channel(STEM_CHANNELS)
        self.conv_layer1_1 = ConvBN(3, stem, 3, stride=2, padding=SAME)
        self.conv_layer1_2 = ConvBN(stem, stem, 3, stride=2, padding=SAME)
        self.la1 = Layer1(stem, stem)
        branches = [stem * BOTTLENECK_EXPANSION]
        for index, (name, modules, width_one_channels) in enumerate(STAGES):
            channels = [channel(c) for c in width_one_channels]
            setattr(self, f"tr{index + 1}", Transition(f"tr{index + 1}", branches, channels))
            setattr(self, name, Stage(name, modules, channels))
            branches = channels
        self.feature_channels = [stem] + branches

    def forward(self, x) -> List[paddle.Tensor]:
        """``x`` float32 [N, 3, H, W] -> features at strides 2, 4, 8, 16, 32 (``feature_channels`` channels)."""
        stem = self.conv_layer1_1(x)
        branches = [self.la1(self.conv_layer1_2(stem))]
        for index, (name, _, _) in enumerate(STAGES):
            branches = getattr(self, name)(getattr(self, f"tr{index + 1}")(branches))
        return [stem] + branches
