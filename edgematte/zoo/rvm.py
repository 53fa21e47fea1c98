"""RVM, Robust Video Matting (PaddleSeg ``ppmatting.models.RVM``, MobileNetV3-Large, deep guided filter refiner)
as a Paddle dygraph layer.

Inputs (in this order, as PaddleSeg's export feeds them):
- ``img``: float32 ``[N, 3, H, W]``, RGB in [0, 1] (deploy.yaml's Normalize is mean 0 / std 1; the ImageNet
  normalization happens inside the backbone);
- ``r1``..``r4``: the ConvGRU hidden states, float32 ``[N, 16, h/2, w/2]``, ``[N, 20, h/4, w/4]``,
  ``[N, 40, h/8, w/8]``, ``[N, 64, h/16, w/16]`` where ``h x w`` is the downsampled frame (sizes rounded up);
  zeros (or ``None``) on a clip's first frame, then what the previous frame returned; each lies in (-1, 1);
- ``downsample_ratio``: the frame is bilinearly scaled by it for the encoder-decoder (``h = floor(H * ratio)``)
  and the deep guided filter restores the full size. A Python number (``None``: the config's 0.25) decides the
  branch in Python, as PaddleSeg's dygraph does; a float32 ``[1]`` tensor (the exported program's feed) always
  scales and leaves the refiner to a runtime branch (a ``conditional_block``: ``if downsample_ratio != 1``).

Outputs, a tuple in PaddleSeg's order: alpha ``[N, 1, H, W]`` in [0, 1], foreground ``[N, 3, H, W]`` in [0, 1]
(the image plus a predicted residual, its channels reversed as PaddleSeg's ``to_rgb`` does), and the new states
``r1``..``r4`` (float32, the shapes above).

Data flow: the backbone's features at strides 2, 4, 8 and 16 of the downsampled frame; LR-ASPP on the last
(a 1x1 conv + BatchNorm + ReLU gated by a sigmoid of the globally pooled input); the recurrent decoder upsamples
x2 four times, each time joining the skip feature and the frame average-pooled to that scale, with a ConvGRU on
half of the channels at strides 16, 8, 4 and 2; a 1x1 projection to 4 channels (foreground residual + alpha);
then, when the frame was downsampled, the deep guided filter (box-filter statistics of the small frame and the
prediction, a 1x1 conv net for the local linear coefficients, bilinearly upsampled and applied to the full frame).
``project_seg`` (the segmentation pass) serves training only: it is built, so an official checkpoint loads, but
never runs. The state_dict keys, order and shapes equal PaddleSeg's checkpoint (``rvm_mobilenetv3.state_dict.tsv``).
"""

from typing import List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .backbones.mobilenetv3 import MobileNetV3Large
from .modnet import channel_scaler
from .registry import state_dict_layout

LRASPP_CHANNELS = 128
DECODER_CHANNELS = (80, 40, 32, 16)
REFINER_CHANNELS = 16
DEFAULT_DOWNSAMPLE_RATIO = 0.25  # PaddleSeg's rvm-mobilenetv3.yaml (the class itself defaults to 1)
STATE_NAMES = ("r1", "r2", "r3", "r4")
# What `edgematte zoo info` says about the feeds after ``img`` (channels at width 1), the outputs, and its FLOPs count
OTHER_FEEDS = ["r1 [N, 16, h/2, w/2]", "r2 [N, 20, h/4, w/4]", "r3 [N, 40, h/8, w/8]", "r4 [N, 64, h/16, w/16]",
               "downsample_ratio [1] (h x w: the frame scaled by it; states zeros on a clip's first frame)"]
OUTPUTS = ("alpha [N, 1, H, W] float32 in [0, 1], foreground [N, 3, H, W] in [0, 1], the new states r1..r4 "
           "(feed them back with the next frame)")
FLOPS_NOTE = f"downsample ratio {DEFAULT_DOWNSAMPLE_RATIO}, zero states"


def _upsample2(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class LRASPP(nn.Layer):
    """``aspp1(x) * aspp2(x)``: 1x1 conv + BatchNorm + ReLU, gated per channel by a 1x1 conv + sigmoid of the
    global average of ``x``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.aspp1 = nn.Sequential(nn.Conv2D(in_channels, out_channels, 1, bias_attr=False),
                                   nn.BatchNorm2D(out_channels), nn.ReLU())
        self.aspp2 = nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Conv2D(in_channels, out_channels, 1, bias_attr=False),
                                   nn.Sigmoid())

    def forward(self, x):
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Layer):
    """Convolutional GRU on ``channels``: ``r, z = sigmoid(ih([x, h]))``, ``c = tanh(hh([x, r * h]))``,
    ``h' = (1 - z) * h + z * c``; returns ``h'`` (the output and the new state). ``h`` None: zeros."""

    def __init__(self, channels: int):
        super().__init__()
        self.ih = nn.Sequential(nn.Conv2D(2 * channels, 2 * channels, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2D(2 * channels, channels, 3, padding=1), nn.Tanh())

    def forward(self, x, h=None):
        if h is None:
            h = paddle.zeros_like(x)
        r, z = self.ih(paddle.concat([x, h], axis=1)).split(2, axis=1)
        c = self.hh(paddle.concat([x, r * h], axis=1))
        return (1 - z) * h + z * c


class BottleneckBlock(nn.Layer):
    """Stride 16: the ConvGRU on the second half of the LR-ASPP channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.gru = ConvGRU(channels // 2)

    def forward(self, x, r=None):
        a, b = x.split(2, axis=1)
        r = self.gru(b, r)
        return paddle.concat([a, r], axis=-3), r  # -3 as PaddleSeg writes it (the same axis of NCHW)


class UpsamplingBlock(nn.Layer):
    """x2 bilinear (cropped to the skip's size: the pooled frame rounds odd sizes up), joined with the skip
    feature and the pooled frame, 3x3 conv + BatchNorm + ReLU, the ConvGRU on the second half of the channels."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2D(in_channels + skip_channels + 3, out_channels, 3, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels), nn.ReLU())
        self.gru = ConvGRU(out_channels // 2)

    def forward(self, x, skip, frame, r=None):
        x = _upsample2(x)
        x = x[:, :, :paddle.shape(frame)[2], :paddle.shape(frame)[3]]  # a size read at run time: any frame size
        x = self.conv(paddle.concat([x, skip, frame], axis=1))
        a, b = x.split(2, axis=1)
        r = self.gru(b, r)
        return paddle.concat([a, r], axis=1), r


class OutputBlock(nn.Layer):
    """x2 bilinear to the downsampled frame's size, joined with the frame, two 3x3 conv + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2D(in_channels + 3, out_channels, 3, padding=1, bias_attr=False), nn.BatchNorm2D(out_channels),
            nn.ReLU(),
            nn.Conv2D(out_channels, out_channels, 3, padding=1, bias_attr=False), nn.BatchNorm2D(out_channels),
            nn.ReLU())

    def forward(self, x, frame):
        shape = paddle.shape(frame)
        height, width = shape[2], shape[3]
        x = _upsample2(x)[:, :, :height, :width]
        return self.conv(paddle.concat([x, frame], axis=1))


class RecurrentDecoder(nn.Layer):
    """Features at strides 2, 4, 8, 16 (the last through LR-ASPP), the downsampled frame and the four states ->
    the hidden map at the frame's size and the new states ``r1``..``r4``."""

    def __init__(self, feature_channels: Sequence[int], decoder_channels: Sequence[int]):
        super().__init__()
        # 2x2 average pooling, ceil mode: an odd size keeps its last row (averaged alone: exclusive)
        self.avgpool = nn.AvgPool2D(2, 2, ceil_mode=True)
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], decoder_channels[3])

    def forward(self, s0, f1, f2, f3, f4, r1=None, r2=None, r3=None, r4=None):
        s1 = self.avgpool(s0)
        s2 = self.avgpool(s1)
        s3 = self.avgpool(s2)
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3)
        x2, r2 = self.decode2(x3, f2, s2, r2)
        x1, r1 = self.decode1(x2, f1, s1, r1)
        return self.decode0(x1, s0), r1, r2, r3, r4


class Projection(nn.Layer):
    """1x1 conv with bias (named ``conv`` as in PaddleSeg)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, 1)

    def forward(self, x):
        return self.conv(x)


class DeepGuidedFilterRefiner(nn.Layer):
    """Upsample the low-resolution prediction guided by the full-resolution frame.

    On the small frame ``x = [rgb, gray]`` and prediction ``y = [fgr, alpha]`` (4 channels each), a depthwise 3x3
    ``box_filter`` gives local means, the covariance of x and y and the variance of x; a 1x1 conv net on them and
    the decoder's hidden map gives the coefficients ``A`` (``b = mean_y - A * mean_x``), which are bilinearly
    resized to the full frame and applied there: ``A * [rgb, gray] + b`` -> foreground residual, alpha.
    """

    def __init__(self, hidden_channels: int):
        super().__init__()
        self.box_filter = nn.Conv2D(4, 4, 3, padding=1, groups=4, bias_attr=False)
        # A box filter when freshly built (the checkpoint's value replaces it, as any other parameter)
        self.box_filter.weight.set_value(paddle.full(self.box_filter.weight.shape, 1 / 9, "float32"))
        self.conv = nn.Sequential(
            nn.Conv2D(4 * 2 + hidden_channels, hidden_channels, 1, bias_attr=False), nn.BatchNorm2D(hidden_channels),
            nn.ReLU(),
            nn.Conv2D(hidden_channels, hidden_channels, 1, bias_attr=False), nn.BatchNorm2D(hidden_channels),
            nn.ReLU(),
            nn.Conv2D(hidden_channels, 4, 1))

    def forward(self, fine_src, base_src, base_fgr, base_pha, base_hid):
        fine_x = paddle.concat([fine_src, fine_src.mean(1, keepdim=True)], axis=1)
        base_x = paddle.concat([base_src, base_src.mean(1, keepdim=True)], axis=1)
        base_y = paddle.concat([base_fgr, base_pha], axis=1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(paddle.concat([cov_xy, var_x, base_hid], axis=1))
        b = mean_y - a * mean_x
        shape = paddle.shape(fine_src)
        size = [shape[2], shape[3]]
        a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        fgr, pha = (a * fine_x + b).split([3, 1], axis=1)
        return fgr, pha


class RVM(nn.Layer):
    """RVM on ``backbone`` (a layer returning 4 features at strides 2..16, with ``feature_channels``).

    Sublayers are registered in PaddleSeg's order (backbone, aspp, decoder, project_mat, project_seg, refiner) so
    ``state_dict()`` matches its checkpoint.
    """

    def __init__(self, backbone: nn.Layer, lraspp_channels: int, decoder_channels: Sequence[int],
                 refiner_channels: int, downsample_ratio: float = DEFAULT_DOWNSAMPLE_RATIO):
        super().__init__()
        self.backbone = backbone
        self.aspp = LRASPP(backbone.feature_channels[3], lraspp_channels)
        self.decoder = RecurrentDecoder(list(backbone.feature_channels[:3]) + [lraspp_channels], decoder_channels)
        self.project_mat = Projection(decoder_channels[3], 4)
        self.project_seg = Projection(decoder_channels[3], 1)  # training only: the segmentation pass
        self.refiner = DeepGuidedFilterRefiner(refiner_channels)
        self.downsample_ratio = downsample_ratio

    def forward(self, img, r1=None, r2=None, r3=None, r4=None, downsample_ratio=None) -> Tuple[paddle.Tensor, ...]:
        """One frame: ``(alpha, foreground, r1, r2, r3, r4)`` (see the module docstring)."""
        if downsample_ratio is None:
            downsample_ratio = self.downsample_ratio
        # A Python ratio decides in Python (PaddleSeg's dygraph: ratio 1 skips the scaling and the refiner); a
        # tensor (the exported program's feed) always scales, which at 1 changes nothing, and leaves the refiner
        # to the runtime branch below.
        if isinstance(downsample_ratio, (int, float)) and downsample_ratio == 1:
            small = img
        else:
            small = F.interpolate(img, scale_factor=downsample_ratio, mode="bilinear", align_corners=False)
        f1, f2, f3, f4 = self.backbone(small)
        hidden, r1, r2, r3, r4 = self.decoder(small, f1, f2, f3, self.aspp(f4), r1, r2, r3, r4)
        fgr_residual, pha = self.project_mat(hidden).split([3, 1], axis=1)
        if downsample_ratio != 1:  # a tensor's test becomes the program's conditional_block on export
            fgr_residual, pha = self.refiner(img, small, fgr_residual, pha, hidden)
        fgr = paddle.clip(fgr_residual + img, 0.0, 1.0)
        pha = paddle.clip(pha, 0.0, 1.0)
        # PaddleSeg's to_rgb (True in its config): the foreground's channels come out reversed
        return pha, paddle.flip(fgr, axis=[-3]), r1, r2, r3, r4


def build(width: float = 1.0) -> RVM:
    """A fresh RVM (random init, train mode); ``width`` 1.0 is the official model, below 1 a tiny test variant
    (every channel count scaled; the keys stay the official ones)."""
    channel = channel_scaler(width)
    return RVM(MobileNetV3Large(channel), channel(LRASPP_CHANNELS), [channel(c) for c in DECODER_CHANNELS],
               channel(REFINER_CHANNELS))


def state_shapes(model: RVM, image_hw: Tuple[int, int], downsample_ratio: float = DEFAULT_DOWNSAMPLE_RATIO,
                 batch: int = 1) -> List[Tuple[int, int, int, int]]:
    """The shapes of ``r1``..``r4`` for an ``image_hw`` frame at ``downsample_ratio`` (a clip's first frame feeds
    zeros of these): the downsampled frame ``floor(H * ratio)`` halved 1 to 4 times, rounding up (stride-2 convs
    with "same" padding, ceil-mode pooling)."""
    height, width = (int(d * downsample_ratio) for d in image_hw)
    return [(batch, c, -(-height // 2 ** level), -(-width // 2 ** level))
            for level, c in enumerate(state_channels(model), start=1)]


def state_channels(model: RVM) -> List[int]:
    """The channels of ``r1``..``r4`` (16, 20, 40, 64 at width 1): each ConvGRU's hidden width."""
    decoder = model.decoder
    return [block.gru.hh[0].weight.shape[0] for block in (decoder.decode1, decoder.decode2, decoder.decode3,
                                                          decoder.decode4)]


def export_inputs(model: RVM, image_shape: Sequence[Optional[int]]) -> list:
    """The feeds of an exported program, in PaddleSeg's order and with its names: ``img`` of ``image_shape``,
    ``r1``..``r4`` with the image's batch and their channels (their size follows the ratio fed at run time:
    left dynamic even when the image is fixed), and ``downsample_ratio`` float32 ``[1]``."""
    from paddle.static import InputSpec

    batch = image_shape[0]
    return ([InputSpec(list(image_shape), "float32", "img")]
            + [InputSpec([batch, c, None, None], "float32", name)
               for name, c in zip(STATE_NAMES, state_channels(model))]
            + [InputSpec([1], "float32", "downsample_ratio")])


def layout(width: float = 1.0) -> List[Tuple[str, Tuple[int, ...], str]]:
    """``[(key, shape, dtype)]`` of ``build(width)``'s state_dict, in checkpoint order."""
    return state_dict_layout(build(width))
