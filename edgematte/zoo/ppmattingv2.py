"""PP-MattingV2 (PaddleSeg config ``ppmattingv2-stdc1-human_512``) as a Paddle dygraph layer.

Written from PaddleSeg's published architecture (the data flow below); the sublayer and parameter names follow the
official checkpoint (``tests/data/ppmattingv2.state_dict.tsv``), so an official ``.pdparams`` loads
with ``set_state_dict`` unchanged and the seeded-weight formula gives the same model as PaddleSeg's.

Data flow (strides relative to the input):

    img ─ STDC1 ─> feats 2x(32) 4x(64) 8x(256) 16x(512) 32x(1024)
    feats 4x..32x ─ DoublePyramidPool ─> context (256 ch, 1/64 scale)
    32x: [32x feat, context]            ─ MultiLevelFusion ─> 128 ch
    16x: [16x feat, previous, context]  ─ MultiLevelFusion ─>  96 ch
     8x: [8x feat, previous, context]   ─ MultiLevelFusion ─>  64 ch
     4x: [4x feat, previous, img/4]     ─ MultiLevelFusion ─>  32 ch
     2x: [2x feat, previous, img/2]     ─ MultiLevelFusion ─>  16 ch
    upsample to input size, concat img ─ MattingHead ─> alpha [N, 1, H, W] in [0, 1]

Input height and width must be multiples of 32 (the deploy transforms guarantee it): the pyramid
pooling concatenates 4x..32x features pooled to one 1/64 grid, and the image pyramid uses exact
window averages.
"""

from typing import List, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .registry import state_dict_layout
from .weights import LayoutEntry

LAYOUT_NAME = "ppmattingv2"

# Stride of each backbone feature (features[0..4]) relative to the input.
FEATURE_STRIDES = (2, 4, 8, 16, 32)


# ----------------------------------------------------------------------------- building blocks
class ConvBN(nn.Layer):
    """PaddleSeg ``layers.ConvBN``: conv (``_conv``) then BatchNorm (``_batch_norm``), eps 1e-5."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, groups=1, bias=True):
        super().__init__()
        self._conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, padding=padding, groups=groups, bias_attr=None if bias else False
        )
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class ConvBNReLU(ConvBN):
    """PaddleSeg ``layers.ConvBNReLU``: :class:`ConvBN` followed by ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, padding, groups, bias)
        self._relu = nn.ReLU()

    def forward(self, x):
        return self._relu(self._batch_norm(self._conv(x)))


# ----------------------------------------------------------------------------- STDC1 backbone
class STDCConvBNReLU(nn.Layer):
    """The backbone's own conv+BN+ReLU (parts named ``conv``, ``bn``, ``relu``), 'same' padding, no bias."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias_attr=False
        )
        self.bn = nn.BatchNorm2D(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class CatBottleneck(nn.Layer):
    """STDC "cat bottleneck" with 4 convs: out/2 (1x1), out/4, out/8, out/8 (3x3), all concatenated.

    With ``stride == 2`` the second conv reads a depthwise 3x3 stride-2 conv+BN of the first conv's
    output (``avd_layer``), and the first conv's output itself enters the concatenation average-pooled
    (3x3, stride 2, pad 1, padding excluded from the average). Output: ``out_channels`` channels.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        # Registered first so its entries lead the block's state_dict, as in the checkpoint.
        self.conv_list = nn.LayerList()
        if stride == 2:
            self.avd_layer = nn.Sequential(
                nn.Conv2D(half, half, 3, stride=2, padding=1, groups=half, bias_attr=False),
                nn.BatchNorm2D(half),
            )
            self.skip = nn.AvgPool2D(kernel_size=3, stride=2, padding=1)
        self.conv_list.append(STDCConvBNReLU(in_channels, half, kernel_size=1))
        self.conv_list.append(STDCConvBNReLU(half, out_channels // 4))
        self.conv_list.append(STDCConvBNReLU(out_channels // 4, out_channels // 8))
        self.conv_list.append(STDCConvBNReLU(out_channels // 8, out_channels // 8))

    def forward(self, x):
        first = self.conv_list[0](x)
        out = self.avd_layer(first) if self.stride == 2 else first
        parts = []
        for conv in self.conv_list[1:]:
            out = conv(out)
            parts.append(out)
        if self.stride == 2:
            first = self.skip(first)
        return paddle.concat([first] + parts, axis=1)


class STDC1(nn.Layer):
    """STDC1 backbone (stage layers [2, 2, 2]) returning the five features at strides 2, 4, 8, 16, 32.

    Channels are ``[base/2, base, 4 base, 8 base, 16 base]`` (official ``base`` = 64).
    """

    STAGE_LAYERS = (2, 2, 2)

    def __init__(self, base=64):
        super().__init__()
        self.feat_channels = [base // 2, base, base * 4, base * 8, base * 16]
        blocks = [STDCConvBNReLU(3, base // 2, 3, stride=2), STDCConvBNReLU(base // 2, base, 3, stride=2)]
        in_channels = base
        for stage, num_blocks in enumerate(self.STAGE_LAYERS):
            out_channels = base * 4 * 2**stage
            for index in range(num_blocks):
                blocks.append(CatBottleneck(in_channels, out_channels, stride=2 if index == 0 else 1))
                in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        # Index (exclusive) of the last block of each stride-8/16/32 stage in ``features``.
        ends, end = [], 2
        for num_blocks in self.STAGE_LAYERS:
            end += num_blocks
            ends.append(end)
        self._stage_ends = ends

    def forward(self, x) -> List[paddle.Tensor]:
        feats = []
        x = self.features[0](x)
        feats.append(x)
        x = self.features[1](x)
        feats.append(x)
        start = 2
        for end in self._stage_ends:
            for index in range(start, end):
                x = self.features[index](x)
            feats.append(x)
            start = end
        return feats


# ----------------------------------------------------------------------------- transformer (TopFormer style)
class Conv2DBN(nn.Layer):
    """1x1 (or ``kernel_size``) conv without bias (``c``) and BatchNorm (``bn``)."""

    def __init__(self, in_channels, out_channels, kernel_size=1):
        super().__init__()
        self.c = nn.Conv2D(in_channels, out_channels, kernel_size, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self.bn(self.c(x))


class Attention(nn.Layer):
    """Multi-head self-attention over the pixels of a small map, all projections 1x1 conv+BN.

    q, k: ``num_heads * key_dim`` channels; v: ``num_heads * attn_ratio * key_dim`` channels.
    Scores are the plain dot products q.k (no 1/sqrt(key_dim) scaling, as in the official model),
    softmax over keys; the heads are merged and projected by ReLU6 + conv+BN back to ``dim``.
    Input and output [N, dim, h, w].
    """

    def __init__(self, dim, key_dim, num_heads, attn_ratio):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.merged_value_dim = self.value_dim * num_heads
        self.to_q = Conv2DBN(dim, key_dim * num_heads)
        self.to_k = Conv2DBN(dim, key_dim * num_heads)
        self.to_v = Conv2DBN(dim, self.merged_value_dim)
        self.proj = nn.Sequential(nn.ReLU6(), Conv2DBN(self.merged_value_dim, dim))

    def forward(self, x):
        shape = paddle.shape(x)  # a tensor, so the exported program keeps h and w dynamic
        height, width = shape[2], shape[3]
        # [N, heads, pixels, key_dim] @ [N, heads, key_dim, pixels] -> [N, heads, pixels, pixels]
        queries = self.to_q(x).reshape([0, self.num_heads, self.key_dim, -1]).transpose([0, 1, 3, 2])
        keys = self.to_k(x).reshape([0, self.num_heads, self.key_dim, -1])
        values = self.to_v(x).reshape([0, self.num_heads, self.value_dim, -1]).transpose([0, 1, 3, 2])
        weights = F.softmax(paddle.matmul(queries, keys), axis=-1)
        attended = paddle.matmul(weights, values)  # [N, heads, pixels, value_dim]
        attended = attended.transpose([0, 1, 3, 2]).reshape([0, self.merged_value_dim, height, width])
        return self.proj(attended)


class ConvMLP(nn.Layer):
    """Feed-forward part of a transformer block: 1x1 conv+BN, depthwise 3x3 (with bias), ReLU6, 1x1 conv+BN."""

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = Conv2DBN(dim, hidden_dim)
        self.dwconv = nn.Conv2D(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.ReLU6()
        self.fc2 = Conv2DBN(hidden_dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class TransformerBlock(nn.Layer):
    """Residual attention then residual MLP; [N, dim, h, w] -> same shape."""

    def __init__(self, dim, key_dim, num_heads, mlp_ratio, attn_ratio):
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, attn_ratio)
        self.mlp = ConvMLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(x)
        return self.mlp(x) + x


class TransformerStack(nn.Layer):
    """``num_blocks`` transformer blocks in sequence (PaddleSeg ``BasicLayer``)."""

    def __init__(self, num_blocks, dim, key_dim, num_heads, mlp_ratio, attn_ratio):
        super().__init__()
        self.transformer_blocks = nn.LayerList(
            [TransformerBlock(dim, key_dim, num_heads, mlp_ratio, attn_ratio) for _ in range(num_blocks)]
        )

    def forward(self, x):
        for block in self.transformer_blocks:
            x = block(x)
        return x


# ----------------------------------------------------------------------------- double pyramid pooling
def pyramid_pool_agg(feats: Sequence[paddle.Tensor]) -> paddle.Tensor:
    """Average-pool features of strides 4, 8, 16, 32 to stride 64 (kernel = stride = 16, 8, 4, 2), concat.

    Input: list of [N, C_i, H/s_i, W/s_i]; output [N, sum C_i, H/64, W/64] (floor). A function rather
    than a layer: ``paddle.flops`` hooks every leaf layer and expects a single tensor input.
    """
    factor = 2 ** len(feats)
    pooled = []
    for feat in feats:
        pooled.append(F.avg_pool2d(feat, kernel_size=factor, stride=factor))
        factor //= 2
    return paddle.concat(pooled, axis=1)


class DoublePyramidPool(nn.Layer):
    """Context module: pyramid pool aggregation, then per-bin transformer pyramids merged by addition.

    :func:`pyramid_pool_agg` gives the 1/64-scale concatenation, ``conv_mid`` (1x1 conv with bias
    + BN) reduces it to ``mid_channels``; each ``pp2`` stage adaptive-average-pools that to b x b
    (b in ``bin_sizes``) and runs a transformer stack; the stages are bilinearly upsampled back and summed with the
    ``conv_mid`` output; ``conv_out`` (1x1 conv with bias + BN + ReLU) gives ``out_channels``.
    Output [N, out_channels, H/64, W/64].
    """

    def __init__(self, in_channels, mid_channels, out_channels, bin_sizes, blocks_per_bin, key_dim, num_heads,
                 mlp_ratio, attn_ratio):
        super().__init__()
        self.conv_mid = ConvBN(in_channels, mid_channels, 1)
        self.pp2 = nn.LayerList(
            [
                nn.Sequential(
                    nn.AdaptiveAvgPool2D(output_size=bins),
                    TransformerStack(blocks_per_bin, mid_channels, key_dim, num_heads, mlp_ratio, attn_ratio),
                )
                for bins in bin_sizes
            ]
        )
        self.conv_out = ConvBNReLU(mid_channels, out_channels, 1)

    def forward(self, feats):
        context = self.conv_mid(pyramid_pool_agg(feats))
        size = paddle.shape(context)[2:]
        merged = context
        for stage in self.pp2:
            merged = merged + F.interpolate(stage(context), size=size, mode="bilinear", align_corners=False)
        return self.conv_out(merged)


# ----------------------------------------------------------------------------- decoder
class MultiLevelFusion(nn.Layer):
    """Fuse n inputs at one target size with a spatial attention map per input.

    Each input: 1x1 conv+BN (no bias) -> bilinear resize to the target -> depthwise 3x3 conv+BN+ReLU.
    Attention: per input its channel mean and channel max, interleaved ([mean_0, max_0, mean_1, ...],
    2n channels) -> 3x3 conv+BN+ReLU (n) -> 3x3 conv+BN (n) -> sigmoid; input i is scaled by map i.
    The scaled inputs are concatenated and fused by a 3x3 conv+BN+ReLU to ``out_channels``.
    """

    def __init__(self, in_channels: Sequence[int], mid_channels: Sequence[int], out_channels: int):
        super().__init__()
        self.pwconvs = nn.LayerList()
        self.dwconvs = nn.LayerList()
        for cin, cmid in zip(in_channels, mid_channels):
            self.pwconvs.append(ConvBN(cin, cmid, 1, bias=False))
            self.dwconvs.append(ConvBNReLU(cmid, cmid, 3, padding=1, groups=cmid, bias=False))
        count = len(in_channels)
        self.conv_atten = nn.Sequential(
            ConvBNReLU(2 * count, count, 3, padding=1, bias=False),
            ConvBN(count, count, 3, padding=1, bias=False),
        )
        self.conv_out = ConvBNReLU(sum(mid_channels), out_channels, 3, padding=1, bias=False)

    def forward(self, inputs, size):
        """``inputs``: list of [N, C_i, h_i, w_i]; ``size``: target [H, W] (int32 tensor); -> [N, out, H, W]."""
        feats = []
        for pwconv, dwconv, x in zip(self.pwconvs, self.dwconvs, inputs):
            x = F.interpolate(pwconv(x), size=size, mode="bilinear", align_corners=False)
            feats.append(dwconv(x))
        reduced = []
        for feat in feats:
            reduced.append(paddle.mean(feat, axis=1, keepdim=True))
            reduced.append(paddle.max(feat, axis=1, keepdim=True))
        attention = F.sigmoid(self.conv_atten(paddle.concat(reduced, axis=1)))
        weighted = [feat * attention[:, i:i + 1, :, :] for i, feat in enumerate(feats)]
        return self.conv_out(paddle.concat(weighted, axis=1))


class MattingHead(nn.Layer):
    """3x3 conv+BN+ReLU, ``num_mid - 1`` more of them, 1x1 conv (no bias), sigmoid: [N, C, H, W] -> [N, 1, H, W]."""

    def __init__(self, in_channels, mid_channels, num_mid=1):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3, padding=1, bias=False)
        self.mid_conv = nn.LayerList(
            [ConvBNReLU(mid_channels, mid_channels, 3, padding=1, bias=False) for _ in range(num_mid - 1)]
        )
        self.conv_out = nn.Conv2D(mid_channels, 1, 1, bias_attr=False)

    def forward(self, x):
        x = self.conv(x)
        for conv in self.mid_conv:
            x = conv(x)
        return F.sigmoid(self.conv_out(x))


def _area_downsample(img, factor):
    """``interpolate(mode='area')`` to size/factor: exact window means when H and W divide by ``factor``.

    Written as a plain average pool because Paddle 2.6 records an adaptive pool's tensor-valued output
    size as a constant in an exported program, which breaks inputs of any other size.
    """
    return F.avg_pool2d(img, kernel_size=factor, stride=factor)


# ----------------------------------------------------------------------------- the model
class PPMattingV2(nn.Layer):
    """PP-MattingV2: img [N, 3, H, W] float32 normalised ``(rgb/255 - 0.5)/0.5`` -> alpha [N, 1, H, W] in [0, 1].

    H and W must be multiples of 32. The defaults are the official configuration; ``build(width)``
    scales the channel counts. ``matting_head_mlff8x`` is PaddleSeg's training-only auxiliary head:
    it is built so the checkpoint loads, and never runs in ``forward``.
    """

    def __init__(self, backbone_base=64, decoder_channels=(128, 96, 64, 32, 16), head_channels=8,
                 aux_head_channels=32, dpp_mid_channels=256, dpp_out_channels=256, dpp_bin_sizes=(2, 4, 6),
                 dpp_blocks_per_bin=1, key_dim=16, num_heads=8, mlp_ratio=2, attn_ratio=2):
        super().__init__()
        self.backbone = STDC1(backbone_base)
        feat = self.backbone.feat_channels  # channels at strides 2, 4, 8, 16, 32
        dec = list(decoder_channels)
        self.dpp = DoublePyramidPool(
            in_channels=sum(feat[1:]), mid_channels=dpp_mid_channels, out_channels=dpp_out_channels,
            bin_sizes=dpp_bin_sizes, blocks_per_bin=dpp_blocks_per_bin, key_dim=key_dim, num_heads=num_heads,
            mlp_ratio=mlp_ratio, attn_ratio=attn_ratio,
        )
        ctx = dpp_out_channels
        self.mlff32x = MultiLevelFusion([feat[4], ctx], [ctx, ctx], dec[0])
        self.mlff16x = MultiLevelFusion([feat[3], dec[0], ctx], [dec[0]] * 3, dec[1])
        self.mlff8x = MultiLevelFusion([feat[2], dec[1], ctx], [dec[1]] * 3, dec[2])
        self.mlff4x = MultiLevelFusion([feat[1], dec[2], 3], [dec[2], dec[2], 3], dec[3])
        self.mlff2x = MultiLevelFusion([feat[0], dec[3], 3], [dec[3], dec[3], 3], dec[4])
        self.matting_head_mlff8x = MattingHead(dec[2], aux_head_channels)
        self.matting_head_mlff2x = MattingHead(dec[4] + 3, head_channels, num_mid=2)

    def forward(self, img):
        feats = self.backbone(img)
        context = self.dpp(feats[1:])
        x = self.mlff32x([feats[4], context], paddle.shape(feats[4])[2:])
        x = self.mlff16x([feats[3], x, context], paddle.shape(feats[3])[2:])
        x = self.mlff8x([feats[2], x, context], paddle.shape(feats[2])[2:])
        x = self.mlff4x([feats[1], x, _area_downsample(img, FEATURE_STRIDES[1])], paddle.shape(feats[1])[2:])
        x = self.mlff2x([feats[0], x, _area_downsample(img, FEATURE_STRIDES[0])], paddle.shape(feats[0])[2:])
        x = F.interpolate(x, size=paddle.shape(img)[2:], mode="bilinear", align_corners=False)
        return self.matting_head_mlff2x(paddle.concat([x, img], axis=1))


# Below about 8 channels the seeded model degenerates (a 2-channel head gives a nearly constant
# alpha), which would make the tiny test model useless for parity checks.
MIN_SCALED_CHANNELS = 8


def _scaled(channels: int, width: float, multiple: int = 1) -> int:
    """``channels * width`` rounded to a multiple of ``multiple``, at least :data:`MIN_SCALED_CHANNELS`."""
    scaled = int(round(channels * width / multiple)) * multiple
    return max(scaled, -(-MIN_SCALED_CHANNELS // multiple) * multiple)


def build(width: float = 1.0) -> PPMattingV2:
    """PP-MattingV2 with every channel count scaled by ``width`` (1.0 = official; 0.25 gives a tiny model).

    The state_dict keys and their order do not depend on ``width``; only the shapes do. Heads (8),
    bins, blocks and the 3-channel image inputs stay fixed; scaled counts stay at least 8 and the
    backbone base a multiple of 8 (the cat bottleneck splits its output into halves, quarters and
    eighths). Random init, train mode.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return PPMattingV2(
        backbone_base=_scaled(64, width, 8),
        decoder_channels=tuple(_scaled(c, width) for c in (128, 96, 64, 32, 16)),
        head_channels=_scaled(8, width),
        aux_head_channels=_scaled(32, width),
        dpp_mid_channels=_scaled(256, width),
        dpp_out_channels=_scaled(256, width),
        key_dim=_scaled(16, width),
    )


def layout(width: float = 1.0) -> List[LayoutEntry]:
    """``[(key, shape, dtype)]`` of ``build(width)``'s state_dict, in checkpoint order."""
    return state_dict_layout(build(width))
