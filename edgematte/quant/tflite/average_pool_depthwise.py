"""Integer average pools as depthwise convolutions, so that XNNPACK runs them (worker side: imports TF's schema).

LiteRT's XNNPACK delegate takes AVERAGE_POOL_2D in float only: in a full-integer model every int8 pool runs on
TFLite's own single-threaded kernel and cuts the delegated graph in two around it. PP-MattingV2 has 13 (its image
pyramid pools the 512x512 photo itself, STDC's downsampling, the pyramid pooling module): its int8 TFLite ran in
14 XNNPACK partitions and the pools cost about 5 of its 27 ms (AMD Zen 5, 2 threads).

A VALID-padded k_h x k_w pool is a depthwise convolution with every weight ``1 / (k_h * k_w)``, same window and
stride. In int8: each weight is 127 with the per-channel scale ``1 / (k_h * k_w * 127)`` (so the stored weight is
the mean's factor exactly), the bias 0, and the output keeps the pool's own scale and zero point. The pool and the
convolution then compute the same window mean and differ only in how the last bit is rounded (fixed-point
multiplier against the pool's integer division): at most 2 steps of the output's scale, measured on PP-MattingV2;
the model's alpha error is measured against the budget like any int8 model's. SAME-padded pools (whose window
count shrinks at the border) and pools with a fused activation are left as they are.

A large window is slow as one depthwise convolution: XNNPACK's int8 depthwise kernels take up to 25 taps in one pass
and run a bigger window in many passes over an accumulator. PP-MattingV2's pyramid pooling averages 128x128 maps in
16x16 windows and 64x64 ones in 8x8: 0.43 ms each as convolutions, against 0.03 ms for the float pools (AMD Zen 5, 2
threads). A pool whose stride equals its window (the windows tile the input) is the same mean as a pool of pools:
16x16 is 4x4 of 4x4 (``floor(floor(H / a) / b) = floor(H / (a b))``, and the outer window covers exactly the inner
windows of its pixels). Such a pool of more than :data:`MAX_TAPS` taps becomes a chain of depthwise convolutions of
at most that many taps each (``<output>/stage<k>`` between them, at the pool input's scale: a window's mean stays in
its input's range). Each intermediate rounding adds at most half a step of that scale. PP-MattingV2 512x512: the
int8 model 20.5 -> 19.5 ms, its alpha MAD against fp32 in the conversion's record.
"""

import re
from typing import List, Sequence, Tuple

import numpy as np

from ...runtime.tflite_flatbuffer import TFLiteModelEdit

WEIGHT_SUFFIX = "/average_pool_weights"
"""Name suffix of the weight tensors of pools rewritten as convolutions (how a model shows it was rewritten; the
later stages of a chain add their number)."""
STAGE_SUFFIX = "/stage"
"""Name fragment of the tensors between the convolutions of a large pool's chain (``<output>/stage<k>``)."""
MAX_TAPS = 25
"""The largest window XNNPACK's int8 depthwise kernels take in one pass (5x5)."""
INT8_DEPTHWISE_VERSION = 3  # DEPTHWISE_CONV_2D with int8 per-channel weights


def average_pools_as_depthwise(quantized: bytes) -> Tuple[bytes, List[str]]:
    """``quantized`` (a full-integer model) with its int8 VALID average pools as depthwise convolutions, a large
    tiling window as a chain of them (see the module docstring); returns the model and the output tensor names of
    the pools rewritten."""
    edit = TFLiteModelEdit(quantized)
    schema, graph = edit.schema, edit.graph
    operators, rewritten = [], []
    for op in graph.operators:
        if edit.op_name(op) != "AVERAGE_POOL_2D":
            operators.append(op)
            continue
        pool = op.builtinOptions
        source, output = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if source.type != schema.TensorType.INT8 or output.type != schema.TensorType.INT8 \
                or pool.padding != schema.Padding.VALID \
                or pool.fusedActivationFunction != schema.ActivationFunctionType.NONE:
            operators.append(op)
            continue
        name = output.name.decode()
        windows = [(pool.filterHeight, pool.filterWidth, pool.strideH, pool.strideW)]
        if (pool.strideH, pool.strideW) == (pool.filterHeight, pool.filterWidth):
            windows = [(h, w, h, w) for h, w in tiling_stages(pool.filterHeight, pool.filterWidth)]
        reads = int(op.inputs[0])
        height, width = int(source.shape[1]), int(source.shape[2])
        for stage, (window_h, window_w, stride_h, stride_w) in enumerate(windows):
            height, width = (height - window_h) // stride_h + 1, (width - window_w) // stride_w + 1
            if stage == len(windows) - 1:
                writes = int(op.outputs[0])
            else:  # between two stages: the pool input's type and scale
                writes = edit.add_activation_like(int(op.inputs[0]), f"{name}{STAGE_SUFFIX}{stage}",
                                                  [int(source.shape[0]), height, width, int(source.shape[3])])
            operators.append(_depthwise_mean(edit, reads, writes, window_h, window_w, stride_h, stride_w,
                                             f"{name}{WEIGHT_SUFFIX}" + (f"{stage}" if stage else "")))
            reads = writes
        rewritten.append(name)
    graph.operators = operators
    return (edit.to_bytes() if rewritten else quantized), rewritten


def pools_rewritten(ops: Sequence[dict]) -> List[str]:
    """The output names of the pools a model's ops (``tflite_ops``' dicts) show rewritten: the depthwise
    convolutions with pool weights that end a pool (not a ``<output>/stage<k>`` in a chain)."""
    stage = re.compile(re.escape(STAGE_SUFFIX) + r"\d+$")
    return [op["outputs"][0]["name"] for op in ops
            if op["op"] == "DEPTHWISE_CONV_2D" and not stage.search(op["outputs"][0]["name"])
            and any(WEIGHT_SUFFIX in t["name"] for t in op["inputs"])]


def tiling_stages(window_h: int, window_w: int) -> List[Tuple[int, int]]:
    """The windows of a chain of tiling pools that computes a ``window_h x window_w`` tiling pool, each of at most
    :data:`MAX_TAPS` taps where the sizes factor so (prime factors multiplied up per stage, height and width side
    by side); ``[(window_h, window_w)]`` when the window is small enough or cannot be factored."""
    if window_h * window_w <= MAX_TAPS:
        return [(window_h, window_w)]
    stages_h, stages_w = _grouped_factors(window_h), _grouped_factors(window_w)
    count = max(len(stages_h), len(stages_w))
    stages_h += [1] * (count - len(stages_h))
    stages_w += [1] * (count - len(stages_w))
    stages = list(zip(stages_h, stages_w))
    return stages if all(h * w <= MAX_TAPS for h, w in stages) else [(window_h, window_w)]


def _grouped_factors(size: int) -> List[int]:
    """``size``'s prime factors multiplied together while a square window of the product stays within MAX_TAPS."""
    factors, rest, divisor = [], size, 2
    while rest > 1:
        while rest % divisor == 0:
            factors.append(divisor)
            rest //= divisor
        divisor += 1
    groups = []
    for factor in factors:
        if groups and (groups[-1] * factor) ** 2 <= MAX_TAPS:
            groups[-1] *= factor
        else:
            groups.append(factor)
    return groups


def _depthwise_mean(edit, reads: int, writes: int, window_h: int, window_w: int, stride_h: int, stride_w: int,
                    weight_name: str):
    """A DEPTHWISE_CONV_2D computing the ``window_h x window_w`` mean of ``reads`` into ``writes`` (int8)."""
    schema, graph = edit.schema, edit.graph
    channels, window = int(graph.tensors[reads].shape[3]), window_h * window_w
    weight_scale = 1.0 / (window * 127)
    weights = edit.add_constant(weight_name, np.full((1, window_h, window_w, channels), 127, np.int8),
                                schema.TensorType.INT8, edit.per_channel_quantization([weight_scale] * channels, 3))
    input_scale = float(graph.tensors[reads].quantization.scale[0])
    bias = edit.add_constant(weight_name + "/bias", np.zeros(channels, np.int32), schema.TensorType.INT32,
                             edit.per_channel_quantization([input_scale * weight_scale] * channels, 0))
    options = schema.DepthwiseConv2DOptionsT()
    options.padding, options.strideH, options.strideW = schema.Padding.VALID, stride_h, stride_w
    options.depthMultiplier, options.dilationHFactor, options.dilationWFactor = 1, 1, 1
    options.fusedActivationFunction = schema.ActivationFunctionType.NONE
    return edit.operator(schema.BuiltinOperator.DEPTHWISE_CONV_2D, [reads, weights, bias], [writes], options,
                         INT8_DEPTHWISE_VERSION)
