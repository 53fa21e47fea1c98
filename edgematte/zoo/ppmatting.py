"""PP-Matting (PaddleSeg ``ppmatting.models.PPMatting``) on HRNet_W18 as a Paddle dygraph layer.

Input ``img``: float32 NCHW, RGB normalised as ``(rgb / 255 - 0.5) / 0.5`` (range [-1, 1]), H and W multiples
of 32. Output: alpha float32 ``[N, 1, H, W]`` in [0, 1].

Data flow (the backbone gives features at strides 2, 4, 8, 16, 32; 64, 18, 36, 72, 144 channels):
- semantic context branch (``scb``), on the stride-32 feature: a pyramid pooling module (adaptive average pools to
  1x1, 3x3 and 5x5, each a 1x1 ConvBNReLU resized back bilinearly; joined as [input, 5x5, 3x3, 1x1] and fused by a
  3x3 ConvBNReLU to 512 channels); four ConvBNReLU + bilinear x2, x4, x8, x16 side paths of that; then six stages:
  stages 0-4 three 3x3 ConvBNReLU (dilation 2 in stage 0) and a bilinear x2, each entered with the pyramid output
  (stage 0) or a side path (stages 1-4) joined before the previous stage's output; stage 5 two ConvBNReLU and a
  3x3 conv to 3 classes at full size. Softmax over the classes gives the semantic map.
- high-resolution detail branch (``hrdb``): the stride-2 and stride-4 features resized bilinearly to full size and
  joined (82 channels); three steps of a residual basic block (64, 32, 16 channels), a 1x1 conv halving the
  channels, and a gate: a 1x1 conv of semantic stage 0, 2 or 4 (the guidance flow), resized to the detail size,
  joined to the detail features, BatchNorm, 1x1 conv, ReLU, 1x1 conv to one channel, BatchNorm, sigmoid; the
  features are scaled by (1 + gate) and go through a 1x1 conv. A last 1x1 conv and a sigmoid give the detail map.
- fusion: ``index = argmax(semantic, axis=1)`` (0 foreground, 1 transition, 2 background);
  ``alpha = detail * (index == 1) + (index == 0)``. A hard decision: float rounding may flip boundary pixels.
Every interpolation is bilinear with align_corners False. Every BatchNorm has epsilon 1e-5.
The state_dict keys, order and shapes equal PaddleSeg's checkpoint (``ppmatting_hrnet_w18.state_dict.tsv``).
"""

from typing import Callable, List, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .backbones.hrnet import HRNetW18
from .backbones.layers import ConvBN
from .modnet import channel_scaler
from .registry import state_dict_layout

PSP_CHANNELS = 512
PSP_BINS = (1, 3, 5)
PSP_UPSAMPLES = (2, 4, 8, 16)
# semantic stages: (mid channels, out channels); stage 0's input is the pyramid output joined with the feature
SCB_MID = (512, 256, 128, 128, 64, 64)
SCB_OUT = (256, 128, 64, 64, 64)
CLASSES = 3
GUIDANCE_STAGES = (0, 2, 4)
DETAIL_CHANNELS = (64, 32, 16, 8)
FOREGROUND, TRANSITION = 0, 1


def _resize_to(x, reference):
    """Bilinear resize of ``x`` to ``reference``'s height and width (align_corners False)."""
    return F.interpolate(x, size=paddle.shape(reference)[2:], mode="bilinear", align_corners=False)


def _upsample(scale: int) -> nn.Layer:
    return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)


class PyramidPooling(nn.Layer):
    """Adaptive average pools to each bin size, 1x1 ConvBNReLU (channels kept), resized back; joined as
    [input, largest bin .. smallest bin], then a 3x3 ConvBNReLU to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.stages = nn.LayerList([
            nn.Sequential(nn.AdaptiveAvgPool2D(size), ConvBN(in_channels, in_channels, 1, padding="same",
                                                             conv_bias=True))
            for size in PSP_BINS
        ])
        self.conv_bn_relu2 = ConvBN(in_channels * (len(PSP_BINS) + 1), out_channels, 3, conv_bias=True)

    def forward(self, x):
        pooled = [_resize_to(stage(x), x) for stage in self.stages]
        return self.conv_bn_relu2(paddle.concat([x] + pooled[::-1], axis=1))


class SemanticContextBranch(nn.Layer):
    """SCB: stride-32 feature -> the six stage outputs (the last: class logits [N, 3, H, W])."""

    def __init__(self, in_channels: int, channel: Callable[[int], int]):
        super().__init__()
        psp = channel(PSP_CHANNELS)
        mid = [channel(c) for c in SCB_MID]
        out = [channel(c) for c in SCB_OUT]
        self.psp_module = PyramidPooling(in_channels, psp)
        self.psps = nn.LayerList([
            nn.Sequential(ConvBN(psp, out[i], 3, conv_bias=True), _upsample(scale))
            for i, scale in enumerate(PSP_UPSAMPLES)
        ])
        ins = [psp + in_channels] + [out[i] + out[i] for i in range(len(PSP_UPSAMPLES))]
        stages = []
        for i in range(len(out)):
            dilation = 2 if i == 0 else 1
            stages.append(nn.Sequential(
                ConvBN(ins[i], mid[i], 3, conv_bias=True),
                ConvBN(mid[i], mid[i], 3, dilation=dilation, conv_bias=True),
                ConvBN(mid[i], out[i], 3, dilation=dilation, conv_bias=True),
                _upsample(2),
            ))
        stages.append(nn.Sequential(
            ConvBN(out[-1], mid[-1], 3, conv_bias=True),
            ConvBN(mid[-1], mid[-1], 3, conv_bias=True),
            nn.Conv2D(mid[-1], CLASSES, 3, padding=1),
        ))
        self.scb_stages = nn.LayerList(stages)
        self.out_channels = out + [CLASSES]

    def forward(self, x) -> List[paddle.Tensor]:
        psp_x = self.psp_module(x)
        sides = [psp(psp_x) for psp in self.psps]
        logits = []
        for i, stage in enumerate(self.scb_stages):
            if i == 0:
                x = stage(paddle.concat([psp_x, x], axis=1))
            elif i <= len(sides):
                x = stage(paddle.concat([sides[i - 1], x], axis=1))
            else:
                x = stage(x)
            logits.append(x)
        return logits


class ResidualBlock(nn.Layer):
    """Two 3x3 ConvBN (ReLU after the first), added to the input (through a 1x1 ConvBN ``short`` when
    ``project``), ReLU: PaddleSeg's ResNet_vd ``BasicBlock`` at stride 1."""

    def __init__(self, in_channels: int, channels: int, project: bool):
        super().__init__()
        self.conv0 = ConvBN(in_channels, channels, 3)
        self.conv1 = ConvBN(channels, channels, 3, act=None)
        self.short = ConvBN(in_channels, channels, 1, act=None) if project else None

    def forward(self, x):
        shortcut = x if self.short is None else self.short(x)
        return F.relu(shortcut + self.conv1(self.conv0(x)))


class GatedConv(nn.Layer):
    """Features [N, C] and a one-channel guidance -> gate = sigmoid(BN(conv(ReLU(conv(BN(features | guidance))))));
    output = 1x1 conv (no bias) of features * (1 + gate)."""

    def __init__(self, channels: int):
        super().__init__()
        self._gate_conv = nn.Sequential(
            nn.BatchNorm2D(channels + 1),
            nn.Conv2D(channels + 1, channels + 1, 1),
            nn.ReLU(),
            nn.Conv2D(channels + 1, 1, 1),
            nn.BatchNorm2D(1),
            nn.Sigmoid(),
        )
        self.conv = nn.Conv2D(channels, channels, 1, bias_attr=False)

    def forward(self, features, guidance):
        gate = self._gate_conv(paddle.concat([features, guidance], axis=1))
        return self.conv(features * (gate + 1))


class HighResolutionDetailBranch(nn.Layer):
    """HRDB: full-size joined features and the semantic stage outputs -> detail logits [N, 1, H, W]."""

    def __init__(self, in_channels: int, scb_channels: Sequence[int], channel: Callable[[int], int]):
        super().__init__()
        ch = [channel(c) for c in DETAIL_CHANNELS]
        self.gf_list = nn.LayerList([nn.Conv2D(scb_channels[i], 1, 1) for i in GUIDANCE_STAGES])
        self.res_list = nn.LayerList(
            [ResidualBlock(in_channels, ch[0], project=True)]
            + [ResidualBlock(ch[i], ch[i], project=False) for i in range(1, len(ch) - 1)]
        )
        self.convs = nn.LayerList([nn.Conv2D(ch[i], ch[i + 1], 1) for i in range(len(ch) - 1)])
        self.gates = nn.LayerList([GatedConv(ch[i + 1]) for i in range(len(ch) - 1)])
        self.detail_conv = nn.Conv2D(ch[-1], 1, 1, bias_attr=False)

    def forward(self, x, scb_logits: List[paddle.Tensor]):
        for i, stage in enumerate(GUIDANCE_STAGES):
            x = self.convs[i](self.res_list[i](x))
            guidance = _resize_to(self.gf_list[i](scb_logits[stage]), x)
            x = self.gates[i](x, guidance)
        return self.detail_conv(x)


class PPMatting(nn.Layer):
    """PP-Matting on ``backbone`` (5 features at strides 2..32 with ``feature_channels``).

    Sublayers are registered in PaddleSeg's order (backbone, scb, hrdb) so ``state_dict()`` matches its checkpoint.
    """

    def __init__(self, backbone: nn.Layer, channel: Callable[[int], int] = int):
        super().__init__()
        self.backbone = backbone
        feature_channels = backbone.feature_channels
        self.scb = SemanticContextBranch(feature_channels[-1], channel)
        self.hrdb = HighResolutionDetailBranch(feature_channels[0] + feature_channels[1], self.scb.out_channels,
                                               channel)

    def forward(self, img):
        """``img`` float32 [N, 3, H, W] in [-1, 1] (H, W multiples of 32) -> alpha float32 [N, 1, H, W] in [0, 1]."""
        return self.fusion(*self.branches(img))

    def branches(self, img) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """The two maps the fusion decides from: semantic class probabilities [N, 3, H, W] (softmax) and the
        detail map [N, 1, H, W] (sigmoid)."""
        features = self.backbone(img)
        scb_logits = self.scb(features[-1])
        semantic = F.softmax(scb_logits[-1], axis=1)
        joined = paddle.concat([_resize_to(features[0], img), _resize_to(features[1], img)], axis=1)
        return semantic, F.sigmoid(self.hrdb(joined, scb_logits))

    @staticmethod
    def fusion(semantic, detail):
        """Foreground pixels 1, transition pixels the detail map, background 0 (by the semantic argmax)."""
        index = paddle.argmax(semantic, axis=1, keepdim=True)
        transition = (index == TRANSITION).astype(detail.dtype)
        foreground = (index == FOREGROUND).astype(detail.dtype)
        return detail * transition + foreground


def build(width: float = 1.0) -> PPMatting:
    """A fresh PP-Matting on HRNet_W18 (random init, train mode); ``width`` 1.0 is the official model."""
    channel = channel_scaler(width)
    return PPMatting(HRNetW18(channel), channel)


def layout(width: float = 1.0) -> List[Tuple[str, Tuple[int, ...], str]]:
    """``[(key, shape, dtype)]`` of ``build(width)``'s state_dict, in checkpoint order."""
    return state_dict_layout(build(width))
