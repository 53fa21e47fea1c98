"""MODNet (PaddleSeg ``ppmatting.models.MODNet``) as a Paddle dygraph layer, for any of its backbones.

Input ``img``: float32 NCHW, RGB normalised as ``(rgb / 255 - 0.5) / 0.5`` (range [-1, 1]), H and W multiples
of 32. Output: alpha float32 ``[N, 1, H, W]`` in [0, 1] (the eval-mode fused matte, through a sigmoid).

Data flow (the backbone gives features ``enc2x, enc4x, enc8x, enc16x, enc32x`` at strides 2 to 32):
- low-resolution (semantic) branch: an SE block on ``enc32x``, bilinear x2 and a 5x5 conv to stride 16,
  bilinear x2 and a 5x5 conv to stride 8 (``lr8x``);
- high-resolution (detail) branch: the image bilinearly downsampled x1/2 and x1/4, joined with 1x1 projections of
  ``enc2x`` and ``enc4x`` and with ``lr8x`` upsampled, convs at stride 4 then at stride 2 (``hr2x``);
- fusion branch: ``lr8x`` upsampled to stride 4 (a 5x5 conv) and to stride 2, joined with ``hr2x``, upsampled
  to full size, joined with the image, two convs and a sigmoid.
Most convs are followed by IBNorm: BatchNorm on the first half of the channels, InstanceNorm on the rest.

The semantic and detail predictions (``conv_lr``, ``conv_hr``) and the Gaussian ``blurer`` serve training
only: they are built, so an official checkpoint loads key for key, but never run.
The state_dict keys, order and shapes equal PaddleSeg's checkpoints (``modnet_*.state_dict.tsv``).
"""

from typing import Callable, Dict, List, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .registry import state_dict_layout

HR_CHANNELS = 32
SE_REDUCTION = 4


def _upsample(x, scale: float):
    """Bilinear resize by ``scale`` (align_corners False), as PaddleSeg writes it (a scale, not a size)."""
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class IBNorm(nn.Layer):
    """BatchNorm2D on the first ``channels // 2`` channels, affine InstanceNorm2D (epsilon 1e-5) on the rest."""

    def __init__(self, channels: int):
        super().__init__()
        self.bnorm_channels = channels // 2
        self.bnorm = nn.BatchNorm2D(self.bnorm_channels)
        self.inorm = nn.InstanceNorm2D(channels - self.bnorm_channels)

    def forward(self, x):
        batch_part = self.bnorm(x[:, : self.bnorm_channels])
        instance_part = self.inorm(x[:, self.bnorm_channels:])
        return paddle.concat([batch_part, instance_part], axis=1)


class ConvIBNormReLU(nn.Layer):
    """Conv2D (with bias) + optional IBNorm + optional ReLU, held in ``layers`` as PaddleSeg names them."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 ibnorm: bool = True, relu: bool = True):
        super().__init__()
        parts = [nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2)]
        if ibnorm:
            parts.append(IBNorm(out_channels))
        if relu:
            parts.append(nn.ReLU())
        self.layers = nn.Sequential(*parts)

    def forward(self, x):
        return self.layers(x)


class SEBlock(nn.Layer):
    """Squeeze-and-excitation: global average, 1x1 conv to channels / reduction, ReLU, 1x1 conv back, sigmoid;
    the input scaled by the result per channel."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2D(1)
        squeezed = channels // reduction
        self.conv = nn.Sequential(
            nn.Conv2D(channels, squeezed, 1, bias_attr=False),
            nn.ReLU(),
            nn.Conv2D(squeezed, channels, 1, bias_attr=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.conv(self.pool(x))


class LRBranch(nn.Layer):
    """Semantic branch: ``enc32x`` -> ``lr8x`` [N, enc_channels[2], H/8, W/8]."""

    def __init__(self, enc_channels: Sequence[int]):
        super().__init__()
        self.se_block = SEBlock(enc_channels[4], SE_REDUCTION)
        self.conv_lr16x = ConvIBNormReLU(enc_channels[4], enc_channels[3], 5)
        self.conv_lr8x = ConvIBNormReLU(enc_channels[3], enc_channels[2], 5)
        self.conv_lr = ConvIBNormReLU(enc_channels[2], 1, 3, stride=2, ibnorm=False, relu=False)  # training only

    def forward(self, enc32x):
        lr16x = self.conv_lr16x(_upsample(self.se_block(enc32x), 2))
        return self.conv_lr8x(_upsample(lr16x, 2))


class HRBranch(nn.Layer):
    """Detail branch: image, ``enc2x``, ``enc4x`` and ``lr8x`` -> ``hr2x`` [N, hr_channels, H/2, W/2]."""

    def __init__(self, hr: int, enc_channels: Sequence[int]):
        super().__init__()
        self.tohr_enc2x = ConvIBNormReLU(enc_channels[0], hr, 1)
        self.conv_enc2x = ConvIBNormReLU(hr + 3, hr, 3, stride=2)
        self.tohr_enc4x = ConvIBNormReLU(enc_channels[1], hr, 1)
        self.conv_enc4x = ConvIBNormReLU(2 * hr, 2 * hr, 3)
        self.conv_hr4x = nn.Sequential(
            ConvIBNormReLU(2 * hr + enc_channels[2] + 3, 2 * hr, 3),
            ConvIBNormReLU(2 * hr, 2 * hr, 3),
            ConvIBNormReLU(2 * hr, hr, 3),
        )
        self.conv_hr2x = nn.Sequential(
            ConvIBNormReLU(2 * hr, 2 * hr, 3),
            ConvIBNormReLU(2 * hr, hr, 3),
            ConvIBNormReLU(hr, hr, 3),
            ConvIBNormReLU(hr, hr, 3),
        )
        self.conv_hr = nn.Sequential(  # training only: the detail prediction
            ConvIBNormReLU(hr + 3, hr, 3),
            ConvIBNormReLU(hr, 1, 1, ibnorm=False, relu=False),
        )

    def forward(self, img, enc2x, enc4x, lr8x):
        img2x = _upsample(img, 1 / 2)
        img4x = _upsample(img, 1 / 4)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(paddle.concat([img2x, enc2x], axis=1))
        hr4x = self.conv_enc4x(paddle.concat([hr4x, self.tohr_enc4x(enc4x)], axis=1))
        hr4x = self.conv_hr4x(paddle.concat([hr4x, _upsample(lr8x, 2), img4x], axis=1))
        return self.conv_hr2x(paddle.concat([_upsample(hr4x, 2), enc2x], axis=1))


class FusionBranch(nn.Layer):
    """Fusion: image, ``lr8x`` and ``hr2x`` -> alpha [N, 1, H, W] in [0, 1]."""

    def __init__(self, hr: int, enc_channels: Sequence[int]):
        super().__init__()
        self.conv_lr4x = ConvIBNormReLU(enc_channels[2], hr, 5)
        self.conv_f2x = ConvIBNormReLU(2 * hr, hr, 3)
        self.conv_f = nn.Sequential(
            ConvIBNormReLU(hr + 3, hr // 2, 3),
            ConvIBNormReLU(hr // 2, 1, 1, ibnorm=False, relu=False),
        )

    def forward(self, img, lr8x, hr2x):
        lr2x = _upsample(self.conv_lr4x(_upsample(lr8x, 2)), 2)
        f2x = self.conv_f2x(paddle.concat([lr2x, hr2x], axis=1))
        return F.sigmoid(self.conv_f(paddle.concat([_upsample(f2x, 2), img], axis=1)))


class MODNetHead(nn.Layer):
    """The three branches on the backbone's five features."""

    def __init__(self, hr_channels: int, enc_channels: Sequence[int]):
        super().__init__()
        self.lr_branch = LRBranch(enc_channels)
        self.hr_branch = HRBranch(hr_channels, enc_channels)
        self.f_branch = FusionBranch(hr_channels, enc_channels)

    def forward(self, img, features: List[paddle.Tensor]):
        enc2x, enc4x, enc32x = features[0], features[1], features[4]
        lr8x = self.lr_branch(enc32x)
        hr2x = self.hr_branch(img, enc2x, enc4x, lr8x)
        return self.f_branch(img, lr8x, hr2x)


class TrainingBlur(nn.Layer):
    """PaddleSeg's ``GaussianBlurLayer(1, 3)``: reflect padding and a fixed 3x3 Gaussian, used by the training
    losses only. Kept (never run) because its kernel is an entry of every official checkpoint."""

    def __init__(self):
        super().__init__()
        self.op = nn.Sequential(nn.Pad2D(1, mode="reflect"), nn.Conv2D(1, 1, 3, bias_attr=False))

    def forward(self, x):
        return self.op(x)


class MODNet(nn.Layer):
    """MODNet on ``backbone`` (a layer returning 5 features at strides 2..32, with ``feature_channels``).

    Sublayers are registered in PaddleSeg's order (backbone, head, blurer) so ``state_dict()`` matches its
    checkpoints.
    """

    def __init__(self, backbone: nn.Layer, hr_channels: int = HR_CHANNELS):
        super().__init__()
        self.backbone = backbone
        self.head = MODNetHead(hr_channels, backbone.feature_channels)
        self.blurer = TrainingBlur()

    def forward(self, img):
        """``img`` float32 [N, 3, H, W] in [-1, 1] (H, W multiples of 32) -> alpha float32 [N, 1, H, W] in [0, 1]."""
        return self.head(img, self.backbone(img))


def channel_scaler(width: float) -> Callable[[int], int]:
    """The channel count at ``width`` for a width-1 count (at least 1); ``width`` must be positive."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return lambda c: max(1, int(round(c * width)))


def _backbones() -> Dict[str, Callable[[Callable[[int], int]], nn.Layer]]:
    """Backbone name (the PaddleSeg config's suffix) -> ``constructor(channel_scaler)``."""
    from .backbones.hrnet import HRNetW18
    from .backbones.mobilenetv2 import MobileNetV2
    from .backbones.resnet_vd import ResNetVd

    return {"mobilenetv2": MobileNetV2, "resnet50_vd": lambda channel: ResNetVd(50, channel),
            "hrnet_w18": HRNetW18}


def build(width: float = 1.0, variant: str = "mobilenetv2") -> MODNet:
    """A fresh MODNet (random init, train mode) on the backbone ``variant`` (``mobilenetv2``, ``resnet50_vd``,
    ``hrnet_w18``); ``width`` 1.0 is the official model."""
    backbones = _backbones()
    if variant not in backbones:
        raise ValueError(f"MODNet has no backbone {variant!r}: {', '.join(backbones)}")
    channel = channel_scaler(width)
    return MODNet(backbones[variant](channel), hr_channels=channel(HR_CHANNELS))


def layout(width: float = 1.0, variant: str = "mobilenetv2") -> List[Tuple[str, Tuple[int, ...], str]]:
    """``[(key, shape, dtype)]`` of ``build(width, variant)``'s state_dict, in checkpoint order."""
    return state_dict_layout(build(width, variant))
