"""Conv + BatchNorm building blocks with PaddleSeg's parameter names, shared by the backbones and decoders.

PaddleSeg's ``ConvBNLayer`` / ``ConvBNReLU`` name their parts ``_conv`` and ``_batch_norm`` (BatchNorm entries
``weight``, ``bias``, ``_mean``, ``_variance``); its MobileNetV3 ``ConvBNLayer`` names them ``conv`` and ``bn``
(:class:`ConvBNAct`). A checkpoint loads only when these names are kept.
"""

from typing import Optional, Union

import paddle.nn as nn
import paddle.nn.functional as F

ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6, "hardswish": F.hardswish, None: None}


class ConvBN(nn.Layer):
    """Conv2D + BatchNorm2D (epsilon 1e-5) + an optional activation: ``act`` is "relu", "relu6", "hardswish"
    or None.

    ``conv_bias`` adds a convolution bias (PaddleSeg's ``ConvBNReLU``; its ``ConvBNLayer`` has none).
    ``avg_pool_first`` average-pools 2x2 (stride 2, ceil mode) before the conv: the "vd" shortcut of ResNet_vd.
    ``padding`` defaults to ``dilation * (kernel_size - 1) // 2`` on every side; "same" is Paddle's SAME
    algorithm, which pads a stride-2 conv on an even input by 0 before and 1 after (HRNet's choice).
    Input and output float32 NCHW.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Optional[Union[int, str]] = None,
        dilation: int = 1,
        groups: int = 1,
        conv_bias: bool = False,
        act: Optional[str] = "relu",
        avg_pool_first: bool = False,
    ):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(a for a in ACTIVATIONS if a)} or None, got {act!r}")
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        # ceil_mode: an odd-sized input keeps its last row/column (averaged alone: exclusive pooling)
        self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, ceil_mode=True) if avg_pool_first else None
        self._conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias_attr=None if conv_bias else False,
        )
        self._batch_norm = nn.BatchNorm2D(out_channels)
        self._act = ACTIVATIONS[act]

    def forward(self, x):
        if self._pool2d_avg is not None:
            x = self._pool2d_avg(x)
        x = self._batch_norm(self._conv(x))
        return x if self._act is None else self._act(x)


class ConvBNAct(nn.Layer):
    """Conv2D (no bias) + BatchNorm2D + an optional activation (a key of ``ACTIVATIONS``), with the parts named
    ``conv`` and ``bn`` as PaddleSeg's MobileNetV3 ``ConvBNLayer`` names them.

    ``epsilon`` is the BatchNorm's: that MobileNetV3 builds the fluid-style ``nn.BatchNorm``, whose programs carry
    1e-3 (PaddleSeg's RVM export), not ``BatchNorm2D``'s 1e-5. Padding ``dilation * (kernel_size - 1) // 2``
    keeps the size at stride 1. Input and output float32 NCHW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: Optional[str] = "relu", epsilon: float = 1e-5):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(a for a in ACTIVATIONS if a)} or None, got {act!r}")
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=dilation * (kernel_size - 1) // 2, dilation=dilation, groups=groups,
                              bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels, epsilon=epsilon)
        self._act = ACTIVATIONS[act]

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self._act is None else self._act(x)
