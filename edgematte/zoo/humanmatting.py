"""PP-HumanMatting (PaddleSeg ``human_matting-resnet34_vd``) as a Paddle dygraph layer.

Input ``img``: float32 NCHW, RGB normalised as ``(rgb / 255 - 0.5) / 0.5`` (range [-1, 1]).
Output: alpha float32 ``[N, 1, H, W]`` in [0, 1] (eval-mode output; no training heads).

Data flow (strides are relative to the full-resolution input):
- the image is bilinearly downscaled by 1/4 and fed to ResNet34_vd: features at strides
  8, 16, 32, 64, 128 with [64, 64, 128, 256, 512] channels;
- glance branch: pyramid pooling (bins 1, 3, 5) on the deepest feature, five decoder stages each fed
  the pyramid output upsampled to its scale, ending in 3 classes (foreground, unknown, background)
  at stride 4;
- focus branch: a dilated bridge and five U-Net decoder stages ending in 34 channels at stride 4:
  alpha (sigmoid), an error map (unused at inference) and 32 hidden channels (ReLU);
- fusion: alpha = focus where the glance argmax is "unknown", 1 where "foreground", 0 elsewhere;
- refiner: hidden + alpha + glance probabilities resized to half resolution, two unpadded 3x3 convs,
  nearest upsampling to (H + 4, W + 4), two more unpadded 3x3 convs with the full image: alpha at
  full resolution, clipped to [0, 1].

The state_dict keys, order and shapes equal PaddleSeg's checkpoint (``humanmatting.state_dict.tsv``).
PaddleSeg upsamples the decoders by fixed factors, which only fits inputs that are multiples of 128;
here every upsampling targets the size of the feature it is joined with. At multiples of 128 this is
the same computation (the same power-of-two ratios); it also makes any multiple of 32 work.
"""

from typing import List, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .backbones.layers import ConvBN
from .backbones.resnet_vd import ResNetVd
from .registry import state_dict_layout

LAYOUT_NAME = "humanmatting"

BACKBONE_SCALE = 0.25
BACKBONE_DEPTH = 34  # ResNet34_vd
PYRAMID_BINS = (1, 3, 5)
PYRAMID_CHANNELS = 512
GLANCE_CLASSES = 3
# Glance class order: 0 foreground, 1 unknown, 2 background. (The reference run fixes this: with
# foreground = 2 the seed-0 alpha departs by 0.65; with 0 it is bit-identical.)
GLANCE_FOREGROUND, GLANCE_UNKNOWN = 0, 1
HIDDEN_CHANNELS = 32  # focus output = alpha + error map + hidden features
REFINER_CHANNELS = (24, 16, 12)  # fixed: the refiner is tiny at any width


class PyramidPooling(nn.Layer):
    """PSP module without channel reduction: adaptive average pools to each bin size, 1x1 ConvBN,
    bilinear upsampling back; concatenated with the input (deepest bin first) and fused by a 3x3 ConvBN.
    """

    def __init__(self, in_channels: int, out_channels: int, bins: Tuple[int, ...]):
        super().__init__()
        self.stages = nn.LayerList(
            [nn.Sequential(nn.AdaptiveAvgPool2D(b), ConvBN(in_channels, in_channels, 1, conv_bias=True)) for b in bins]
        )
        self.conv_bn_relu2 = ConvBN(in_channels * (len(bins) + 1), out_channels, 3, conv_bias=True)

    def forward(self, x):
        pooled = [resize_bilinear_like(stage(x), x) for stage in self.stages]
        return self.conv_bn_relu2(paddle.concat([x] + pooled[::-1], axis=1))


class Refiner(nn.Layer):
    """Full-resolution refinement with unpadded 3x3 convs (conv1..conv3 ConvBN+ReLU without conv bias,
    conv4 a plain conv with bias). Output: raw alpha ``[N, 1, H, W]`` (not yet clipped).
    """

    def __init__(self):
        super().__init__()
        c1, c2, c3 = REFINER_CHANNELS
        coarse_channels = HIDDEN_CHANNELS + 1 + GLANCE_CLASSES  # hidden + alpha + glance probabilities
        self.conv1 = ConvBN(coarse_channels + 3, c1, 3, padding=0)
        self.conv2 = ConvBN(c1, c2, 3, padding=0)
        self.conv3 = ConvBN(c2 + 3, c3, 3, padding=0)
        self.conv4 = nn.Conv2D(c3, 1, 3, padding=0)

    def forward(self, img, alpha, hidden, glance):
        # Sizes come from paddle.shape so an export with a dynamic input shape keeps them symbolic.
        # Two unpadded convs take 4 pixels per side off the padded (by 3) half-resolution map; the
        # nearest upsampling to full + 4 leaves exactly 2 per side for the last two convs to eat.
        full_hw = paddle.shape(img)[2:]
        half_hw = full_hw // _int_constant(2, "int32")
        coarse = F.interpolate(
            paddle.concat([hidden, alpha, glance], axis=1), size=half_hw, mode="bilinear", align_corners=False
        )
        img_half = F.interpolate(img, size=half_hw, mode="bilinear", align_corners=False)
        x = F.pad(paddle.concat([coarse, img_half], axis=1), [3, 3, 3, 3])
        x = self.conv2(self.conv1(x))
        x = F.interpolate(x, size=full_hw + 4, mode="nearest")
        x = self.conv3(paddle.concat([x, F.pad(img, [2, 2, 2, 2])], axis=1))
        return self.conv4(x)


def _int_constant(value: int, dtype: str):
    """A 1-element integer tensor. Mixing a Python scalar into a tensor op exports a 0-D fill_constant,
    which Paddle Lite 2.13 cannot load (abort in FillConstantOp::InferShape); shape [1] broadcasts the
    same and loads."""
    return paddle.full([1], value, dtype=dtype)


def resize_bilinear_like(x, like):
    """Bilinear resize (align_corners False) of ``x`` to the spatial size of ``like``."""
    return F.interpolate(x, size=paddle.shape(like)[2:], mode="bilinear", align_corners=False)


def _decoder_stage(in_channels: int, mid_channels: int, out_channels: int, dilated: bool = False):
    """Three 3x3 ConvBN+ReLU (conv bias); the deepest stages dilate their last two convs by 2."""
    dilation = 2 if dilated else 1
    return nn.Sequential(
        ConvBN(in_channels, mid_channels, 3, conv_bias=True),
        ConvBN(mid_channels, mid_channels, 3, dilation=dilation, conv_bias=True),
        ConvBN(mid_channels, out_channels, 3, dilation=dilation, conv_bias=True),
    )


def _output_stage(channels: int, out_channels: int):
    """Two 3x3 ConvBN+ReLU then a plain 3x3 conv with bias to the branch's outputs."""
    return nn.Sequential(
        ConvBN(channels, channels, 3, conv_bias=True),
        ConvBN(channels, channels, 3, conv_bias=True),
        nn.Conv2D(channels, out_channels, 3, padding=1),
    )


class HumanMatting(nn.Layer):
    """PP-HumanMatting. ``width`` scales every backbone and decoder channel count (1.0 = official);
    the branch outputs (3 glance classes, 34 focus channels) and the refiner stay fixed.

    Sublayers are registered in PaddleSeg's order so ``state_dict()`` matches its checkpoints.
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")

        def channel(c: int) -> int:
            return max(1, int(round(c * width)))

        self.backbone = ResNetVd(BACKBONE_DEPTH, channel)
        self.refiner = Refiner()
        f0, f1, f2, f3, f4 = self.backbone.feature_channels
        c64, c128, c256, c512 = channel(64), channel(128), channel(256), channel(512)
        pyramid = channel(PYRAMID_CHANNELS)

        # glance branch: decoder stage k (5 = deepest) below 5 is joined by the pyramid output brought
        # to its input scale through pspk
        self.psp_module = PyramidPooling(f4, pyramid, PYRAMID_BINS)
        self.psp4 = nn.Sequential(ConvBN(pyramid, c256, 3, conv_bias=True))
        self.psp3 = nn.Sequential(ConvBN(pyramid, c128, 3, conv_bias=True))
        self.psp2 = nn.Sequential(ConvBN(pyramid, c64, 3, conv_bias=True))
        self.psp1 = nn.Sequential(ConvBN(pyramid, c64, 3, conv_bias=True))
        self.decoder5_g = _decoder_stage(pyramid + f4, c512, c256, dilated=True)
        self.decoder4_g = _decoder_stage(c256 + c256, c256, c128)
        self.decoder3_g = _decoder_stage(c128 + c128, c128, c64)
        self.decoder2_g = _decoder_stage(c64 + c64, c128, c64)
        self.decoder1_g = _decoder_stage(c64 + c64, c64, c64)
        self.decoder0_g = _output_stage(c64, GLANCE_CLASSES)

        # focus branch: a U-Net over the backbone features
        self.bridge_block = nn.Sequential(
            *[ConvBN(f4 if i == 0 else c512, c512, 3, dilation=2, conv_bias=True) for i in range(3)]
        )
        self.decoder5_f = _decoder_stage(c512 + f4, c512, c256, dilated=True)
        self.decoder4_f = _decoder_stage(c256 + f3, c256, c128)
        self.decoder3_f = _decoder_stage(c128 + f2, c128, c64)
        self.decoder2_f = _decoder_stage(c64 + f1, c128, c64)
        self.decoder1_f = _decoder_stage(c64 + f0, c64, c64)
        self.decoder0_f = _output_stage(c64, 2 + HIDDEN_CHANNELS)

    def forward(self, img):
        """``img`` float32 [N, 3, H, W] normalised to [-1, 1] (H, W multiples of 32; 128 officially).
        Returns alpha float32 [N, 1, H, W] in [0, 1].
        """
        img_small = F.interpolate(img, scale_factor=BACKBONE_SCALE, mode="bilinear", align_corners=False)
        features = self.backbone(img_small)
        deepest = features[4]
        # each decoder stage ends by upsampling to the next scale: the features at strides 16, 8, 4, 2
        # of img_small, then img_small itself (x2 each when the input is a multiple of 128)
        targets = [features[3], features[2], features[1], features[0], img_small]

        pyramid = self.psp_module(deepest)
        glance = resize_bilinear_like(self.decoder5_g(paddle.concat([pyramid, deepest], axis=1)), targets[0])
        for psp, decoder, target in zip(
            (self.psp4, self.psp3, self.psp2, self.psp1),
            (self.decoder4_g, self.decoder3_g, self.decoder2_g, self.decoder1_g),
            targets[1:],
        ):
            joined = paddle.concat([resize_bilinear_like(psp(pyramid), glance), glance], axis=1)
            glance = resize_bilinear_like(decoder(joined), target)
        glance_logits = self.decoder0_g(glance)
        # Paddle Lite 2.13's x86 softmax does not subtract the maximum itself: logits in the hundreds
        # (seeded weights reach 1e3) overflow exp() and give NaN. Subtracting it here changes nothing
        # elsewhere (softmax is shift-invariant; Paddle's own kernel subtracts it anyway).
        glance_prob = F.softmax(glance_logits - glance_logits.max(axis=1, keepdim=True), axis=1)

        focus = self.bridge_block(deepest)
        focus = resize_bilinear_like(self.decoder5_f(paddle.concat([focus, deepest], axis=1)), targets[0])
        for decoder, skip, target in zip(
            (self.decoder4_f, self.decoder3_f, self.decoder2_f, self.decoder1_f), targets[:4], targets[1:]
        ):
            focus = resize_bilinear_like(decoder(paddle.concat([focus, skip], axis=1)), target)
        focus = self.decoder0_f(focus)
        focus_alpha = F.sigmoid(focus[:, 0:1])
        hidden = F.relu(focus[:, 2:])  # channel 1, the error map, only serves training

        glance_class = paddle.argmax(glance_prob, axis=1, keepdim=True)
        unknown = (glance_class == _int_constant(GLANCE_UNKNOWN, "int64")).astype("float32")
        foreground = (glance_class == _int_constant(GLANCE_FOREGROUND, "int64")).astype("float32")
        coarse_alpha = focus_alpha * unknown + foreground

        alpha = self.refiner(img, coarse_alpha, hidden, glance_prob)
        return paddle.clip(alpha, 0.0, 1.0)


def build(width: float = 1.0) -> HumanMatting:
    """A fresh PP-HumanMatting (random init, train mode); ``width`` 1.0 is the official model."""
    return HumanMatting(width=width)


def layout(width: float = 1.0) -> List[Tuple[str, Tuple[int, ...], str]]:
    """``[(key, shape, dtype)]`` of ``build(width)``'s state_dict, in checkpoint order."""
    return state_dict_layout(build(width))
