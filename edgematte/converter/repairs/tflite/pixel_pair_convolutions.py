"""Chains of convolutions with few output channels, at a large resolution, run on pairs of pixels.

XNNPACK's convolution kernels compute 16 output channels at a time wherever the CPU's vectors are that wide for the
precision (see :data:`PRECISIONS`): a convolution with 8 outputs fills half of each tile and costs what 16 would.
PP-MattingV2's head runs two of those at the photo's resolution (19 -> 8 and 8 -> 8, 3x3): measured in float at
512x512 (AMD Zen 5, 2 threads), 19 -> 8 took 4.2 ms and 19 -> 16 4.1 ms.

An NHWC map ``[1, H, W, C]`` is ``[1, H, W/2, 2C]`` without moving a byte: two horizontally adjacent pixels side by
side. A convolution of that pair map, 2 pairs wide, with ``2 O`` outputs computes two output pixels per position
(the first ``O`` outputs one pixel, the next ``O`` the pixel right of it), each from the 4 pixels its window of
2 pairs covers: the weights hold the kernel at two column offsets, zeros elsewhere. Per pixel that is 2/3 of the
arithmetic the tiles did before (4 x 2 columns with 16 outputs against 3 x 2 with 8 outputs padded to 16): the
3x3 convolutions above 4.2 -> 3.3 and 2.3 -> 1.3 ms.

A window of 2 pairs starts at an even pixel, so it is centred between pixels: each such convolution writes its output
one pixel to the left of where the original does (SAME padding of a 2-wide kernel pads only on the right, and
that pad is the original's zero border on the right). The chain keeps the shifted frame; after ``L`` 3-wide
convolutions it holds the original's columns ``L .. W-L``. The missing ``L`` columns on the left and ``L-1`` on the
right are computed by the original ops on a strip of ``4 L`` columns (the input's first and last ``2 L``, side by
side: neither half reaches the other's columns it needs), and the three parts are concatenated along the width
into the chain's original output tensor.

Matched: a CONV_2D ``[O, k, 3, C]`` (odd ``k``, stride 1, no dilation, SAME padding, ``O`` at most
:data:`MAX_OUTPUTS`) of a ``[1, H, W, C]`` map read by nothing else, ``W`` even and ``H W`` at least
:data:`MIN_PIXELS`; then each op that alone reads the previous one's output, while it is another such convolution, a
1x1 CONV_2D with at most :data:`MAX_OUTPUTS` outputs or an elementwise op of one input (:data:`ELEMENTWISE`).
Weights are constants. When the map is a channel concatenation, the strip is cut from its inputs (cut from the map
itself, the map would have a second reader and XNNPACK would copy it before the reshape: about 0.9 ms at
512x512).

The same products in the same order, with zero products between them: the same outputs bit for bit (int8 adds
integers; float was so on every file tried, and the converter proves it on each file before keeping it).
"""

import copy
from typing import Dict, List, Optional

import numpy as np

from ..base import TFLITE, Match, Repair, RepairContext

MAX_OUTPUTS = 8
"""Most output channels of a matched convolution: two pixels' worth then fill one 16-channel tile."""
MIN_PIXELS = 256 * 256
"""Fewest pixels (H x W) of a matched map: the strip's ops cost about the same at any size (about 0.3 ms at
512x512), so small maps gain little (PP-MattingV2's attention chain at 128x128: nothing measurable)."""
ELEMENTWISE = ("LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "HARD_SWISH", "LEAKY_RELU")
"""Ops of one input that work value by value, whatever the map's shape. Not a chain's DEQUANTIZE or QUANTIZE: the
model's output conversion stays the op that writes its output (what ``device arm-check`` reads the int8 output
step from)."""
PRECISIONS = ("int8",)
"""Files whose chains are paired: int8. XNNPACK's int8 kernels are 16 outputs wide on ARM64 with dot-product or i8mm
instructions and on x86 with AVX-512 (8 wide on ARMv8.0 cores and on x86 with AVX2 only); its float kernels are 16
wide on x86 but 8 on almost every ARM64 core (XNNPACK's ``gemm-config.c``). Where the tile is 8 wide the pairs do a
third more work, so the float files, which phones run too, keep their convolutions (on this x86 host they would
gain as much: PP-MattingV2 512x512 46.8 -> 44.7 ms, measured)."""


def _shape(edit, tensor: int) -> List[int]:
    shape = edit.graph.tensors[tensor].shape
    return [int(d) for d in shape] if shape is not None else []


def _convolution_width(edit, op) -> Optional[int]:
    """3 or 1 for a CONV_2D this rewrite takes (3-wide SAME, or 1x1), else None."""
    schema = edit.schema
    if edit.op_name(op) != "CONV_2D" or len(op.inputs) < 2:
        return None
    options = op.builtinOptions
    weights = _shape(edit, int(op.inputs[1]))
    if edit.constant_values(int(op.inputs[1])) is None or len(weights) != 4 or weights[0] > MAX_OUTPUTS \
            or options.strideH != 1 or options.strideW != 1 or options.dilationHFactor != 1 \
            or options.dilationWFactor != 1:
        return None
    if weights[2] == 3 and weights[1] % 2 == 1 and options.padding == schema.Padding.SAME:
        return 3
    if weights[1] == 1 and weights[2] == 1:
        return 1
    return None


def _chain(edit, first, readers: Dict[int, list], outputs: set) -> List[tuple]:
    """The ops of the chain starting at the convolution ``first``: ``[(op, width or None), ...]``."""
    chain = [(first, 3)]
    tensor = int(first.outputs[0])
    while tensor not in outputs and len(readers.get(tensor, [])) == 1:
        op = readers[tensor][0]
        width = _convolution_width(edit, op)
        if width is None and not (edit.op_name(op) in ELEMENTWISE and len(op.inputs) == 1 and len(op.outputs) == 1):
            break
        if width is not None and int(op.inputs[0]) != tensor:
            break
        chain.append((op, width))
        tensor = int(op.outputs[0])
    return chain


def _pair_weights(values: np.ndarray, width: int) -> np.ndarray:
    """``[O, k, width, C]`` OHWI weights of one pixel as ``[2 O, k, width == 3 ? 2 : 1, 2 C]`` weights of a pair."""
    outputs, rows, _, channels = values.shape
    paired = np.zeros((2 * outputs, rows, 2 if width == 3 else 1, 2 * channels), values.dtype)
    for parity in range(2):
        rows_out = slice(parity * outputs, (parity + 1) * outputs)
        if width == 1:
            paired[rows_out, :, 0, parity * channels:(parity + 1) * channels] = values[:, :, 0]
            continue
        for column in range(3):  # pixel ``parity + column`` of the 4 the window covers
            pair, half = divmod(parity + column, 2)
            paired[rows_out, :, pair, half * channels:(half + 1) * channels] = values[:, :, column]
    return paired


def _paired_constant(edit, tensor: int, arrange) -> int:
    """A new constant holding ``arrange`` of the values of the constant ``tensor``; a per-channel quantization is
    repeated for the second pixel."""
    graph = edit.graph
    values = edit.constant_values(tensor)
    if values is None:
        raise ValueError(f"weights {graph.tensors[tensor].name.decode()} are not a constant")
    original = graph.tensors[tensor]
    quantization = copy.deepcopy(original.quantization)
    if quantization is not None and quantization.scale is not None and len(quantization.scale) > 1:
        quantization.scale = np.tile(quantization.scale, 2)
        quantization.zeroPoint = np.tile(quantization.zeroPoint, 2)
    return edit.add_constant(original.name.decode() + "/pixel_pairs", arrange(values), original.type, quantization)


def _slice(edit, source: int, begin: List[int], size: List[int], name: str, new_ops: list) -> int:
    """A SLICE of ``source`` (appended to ``new_ops``); returns its output."""
    schema = edit.schema
    out = edit.add_activation_like(source, name, size)
    begin_t = edit.add_constant(name + "/begin", np.array(begin, np.int32), schema.TensorType.INT32)
    size_t = edit.add_constant(name + "/size", np.array(size, np.int32), schema.TensorType.INT32)
    version = 1 if edit.graph.tensors[source].type == schema.TensorType.FLOAT32 else 2
    new_ops.append(edit.operator(schema.BuiltinOperator.SLICE, [source, begin_t, size_t], [out],
                                 schema.SliceOptionsT(), version))
    return out


def _concatenate(edit, inputs: List[int], output: int, axis: int, new_ops: list) -> None:
    schema = edit.schema
    options = schema.ConcatenationOptionsT()
    options.axis, options.fusedActivationFunction = axis, schema.ActivationFunctionType.NONE
    version = 1 if edit.graph.tensors[output].type == schema.TensorType.FLOAT32 else 2
    new_ops.append(edit.operator(schema.BuiltinOperator.CONCATENATION, inputs, [output], options, version))


def _strip(edit, tensor: int, columns: int, producers: Dict[int, object], new_ops: list) -> int:
    """``tensor``'s first and last ``columns`` columns side by side (``[1, H, 2 columns, C]``), cut from the inputs
    of the channel concatenation that writes it when one does."""
    _, height, width, channels = _shape(edit, tensor)
    name = edit.graph.tensors[tensor].name.decode() + "/border_strip"

    def cut(source: int, label: str) -> int:
        depth = _shape(edit, source)[3]
        left = _slice(edit, source, [0, 0, 0, 0], [1, height, columns, depth], f"{label}/left", new_ops)
        right = _slice(edit, source, [0, 0, width - columns, 0], [1, height, columns, depth], f"{label}/right",
                       new_ops)
        both = edit.add_activation_like(source, label, [1, height, 2 * columns, depth])
        _concatenate(edit, [left, right], both, 2, new_ops)
        return both

    producer = producers.get(tensor)
    if producer is None or edit.op_name(producer) != "CONCATENATION" \
            or int(producer.builtinOptions.axis) % 4 != 3 \
            or any(len(_shape(edit, int(i))) != 4 for i in producer.inputs):
        return cut(tensor, name)
    parts = [cut(int(source), f"{name}/{position}") for position, source in enumerate(producer.inputs)]
    strip = edit.add_activation_like(tensor, name, [1, height, 2 * columns, channels])
    joined = copy.deepcopy(producer)  # same options (a fused activation, int8 requantization of each part)
    joined.inputs, joined.outputs = np.array(parts, np.int32), np.array([strip], np.int32)
    new_ops.append(joined)
    return strip


def pair_pixels(edit, precisions=PRECISIONS) -> List[dict]:
    """Rewrite every matched chain of ``edit`` (a ``TFLiteModelEdit``) whose input map is of one of ``precisions``
    (``"int8"``, ``"float32"``) in place; one record each."""
    graph, schema = edit.graph, edit.schema
    types = {getattr(schema.TensorType, precision.upper()) for precision in precisions}
    readers: Dict[int, list] = {}
    producers: Dict[int, object] = {}
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                readers.setdefault(int(i), []).append(op)
        for o in op.outputs:
            producers[int(o)] = op
    outputs = {int(o) for o in graph.outputs}
    replaced: Dict[int, list] = {}  # id(last op of a chain) -> the ops that take the chain's place
    removed = set()
    records = []
    for op in list(graph.operators):
        if id(op) in removed or _convolution_width(edit, op) != 3:
            continue
        source = int(op.inputs[0])
        shape = _shape(edit, source)
        if graph.tensors[source].type not in types or len(shape) != 4 or shape[0] != 1 or shape[2] % 2 \
                or shape[1] * shape[2] < MIN_PIXELS or len(readers.get(source, [])) != 1 or source in outputs:
            continue
        chain = _chain(edit, op, readers, outputs)
        shift = sum(1 for _, width in chain if width == 3)
        if shape[2] < 4 * shift:
            continue
        replaced[id(chain[-1][0])] = _rewrite(edit, source, chain, shift, producers)
        removed.update(id(o) for o, _ in chain)
        records.append({"input": graph.tensors[source].name.decode(),
                        "output": graph.tensors[int(chain[-1][0].outputs[0])].name.decode(),
                        "convolutions": shift, "ops": len(chain), "height": shape[1], "width": shape[2]})
    graph.operators = [new for op in graph.operators if id(op) not in removed or id(op) in replaced
                       for new in (replaced[id(op)] if id(op) in replaced else [op])]
    return records


def _rewrite(edit, source: int, chain: List[tuple], shift: int, producers: Dict[int, object]) -> list:
    """The ops that compute the chain's output from ``source`` on pixel pairs, with its border from a strip."""
    graph = edit.graph
    _, height, width, channels = _shape(edit, source)
    new_ops: list = []
    current = edit.add_activation_like(source, graph.tensors[source].name.decode() + "/pixel_pairs",
                                       [1, height, width // 2, 2 * channels])
    new_ops.append(edit.reshape(source, current))
    for op, conv_width in chain:
        output = int(op.outputs[0])
        depth = _shape(edit, output)[3]
        paired = copy.deepcopy(op)
        inputs = [current] + [int(i) for i in op.inputs[1:]]
        if conv_width is not None:
            inputs[1] = _paired_constant(edit, inputs[1], lambda v: _pair_weights(v, conv_width))
            if len(inputs) > 2 and inputs[2] >= 0:
                inputs[2] = _paired_constant(edit, inputs[2], lambda v: np.tile(v, 2))
        current = edit.add_activation_like(output, graph.tensors[output].name.decode() + "/pixel_pairs",
                                           [1, height, width // 2, 2 * depth])
        paired.inputs, paired.outputs = np.array(inputs, np.int32), np.array([current], np.int32)
        new_ops.append(paired)
    # the border: the original ops on the first and last 2*shift columns
    strip = _strip(edit, source, 2 * shift, producers, new_ops)
    for op, _ in chain:
        output = int(op.outputs[0])
        on_strip = edit.add_activation_like(output, graph.tensors[output].name.decode() + "/border_strip",
                                            [1, height, 4 * shift, _shape(edit, output)[3]])
        copied = copy.deepcopy(op)
        copied.inputs = np.array([strip] + [int(i) for i in op.inputs[1:]], np.int32)
        copied.outputs = np.array([on_strip], np.int32)
        new_ops.append(copied)
        strip = on_strip
    final = int(chain[-1][0].outputs[0])
    name, depth = graph.tensors[final].name.decode(), _shape(edit, final)[3]
    shifted = edit.add_activation_like(final, name + "/pixel_pairs/shifted", [1, height, width, depth])
    new_ops.append(edit.reshape(current, shifted))
    parts = [_slice(edit, strip, [0, 0, 0, 0], [1, height, shift, depth], name + "/left_border", new_ops),
             _slice(edit, shifted, [0, 0, 0, 0], [1, height, width - 2 * shift + 1, depth], name + "/inner", new_ops)]
    if shift > 1:
        parts.append(_slice(edit, strip, [0, 0, 3 * shift + 1, 0], [1, height, shift - 1, depth],
                            name + "/right_border", new_ops))
    _concatenate(edit, parts, final, 2, new_ops)
    return new_ops


def apply(edit, context: RepairContext) -> List[Match]:
    """:func:`pair_pixels` as a repair (the precisions of :data:`PRECISIONS`)."""
    return [Match(True, record) for record in pair_pixels(edit)]


REPAIR = Repair(
    name="pixel_pair_convolutions",
    applies_to=TFLITE,
    matches=f"chains of 3-wide stride-1 SAME CONV_2Ds with at most {MAX_OUTPUTS} outputs (then 1x1 convolutions "
            f"and elementwise ops) on a [1, H, W, C] map of at least {MIN_PIXELS} pixels, W even",
    changes="the map read as [1, H, W/2, 2C] (two pixels per position) and each convolution as one of 2 O outputs "
            "over 2 pairs; the border columns by the original ops on a strip; the same bits",
    why="XNNPACK's int8 kernels compute 16 output channels at a time (ARM64 with dot products, x86 with AVX-512): "
        "8 outputs cost what 16 do; PP-MattingV2's full-resolution head (512x512, AMD Zen 5) 3.6 -> 2.6 ms, the int8 "
        "model 17.1 -> 16.0 ms",
    preserves_outputs=True,
    apply=apply,
)
