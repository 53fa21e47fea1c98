"""Int8 multiplications by one channel of a map, with that channel first spread over the other operand's channels.

PP-MattingV2's fusion blocks weight each input by one channel of their attention map: ``x * atten[:, i:i+1]``, a
MUL whose second operand is broadcast along the channels (after :mod:`.channel_slices_as_split`, a SPLIT output).
XNNPACK's int8 MUL with that broadcast runs 2.4x slower than its float one (0.24 against 0.10 ms at 256x256x32, AMD
Zen 5, 2 threads, timed alone). The same values come from a 1x1 CONV_2D of the whole attention map whose weights
pick its channel ``i`` for every output channel (int8: weight 127 at the scale 1/127, bias 0, the slice's own scale
and zero point, so the accumulator ``127 (q - z)`` requantizes to ``q`` exactly), and a MUL without broadcast. A
SPLIT whose outputs no one reads any more is taken out.

Taken: int8 MULs of a ``[1, H, W, C]`` tensor (C > 1) by a ``[1, H, W, 1]`` output of a SPLIT on the channel axis
with the split tensor's type and quantization, without fused activation. Float models are left alone: there the
broadcast MUL is as fast as it gets (the rewrite measured 50.6 -> 51.0 ms on PP-MattingV2's fp32 file). The same
bits. PP-MattingV2 512x512 int8: 18.7 -> 18.3 and 18.2 -> 17.9 ms (two runs of 60 interleaved rounds).
"""

from typing import Dict, List

import numpy as np

from ..base import TFLITE, Match, Repair, RepairContext
from .channel_slices_as_split import same_quantization

NAME_SUFFIX = "/spread"
"""Name suffix of the spread-out operand of each rewritten MUL: ``<MUL output>/spread``."""
CONV_VERSION = 3  # CONV_2D with int8 per-channel weights


def spread_broadcast_operands(edit) -> List[dict]:
    """Rewrite every matched MUL of ``edit`` (a ``TFLiteModelEdit``) in place; one record ``{"output", "channel",
    "channels"}`` each."""
    schema, graph = edit.schema, edit.graph
    int8 = schema.TensorType.INT8
    splits: Dict[int, tuple] = {}  # SPLIT output -> (split op, source tensor, channel)
    for op in graph.operators:
        if edit.op_name(op) == "SPLIT" and edit.constant_values(int(op.inputs[0])) is not None:
            source = int(op.inputs[1])
            shape = graph.tensors[source].shape
            axis = int(edit.constant_values(int(op.inputs[0])).ravel()[0])
            if shape is not None and len(shape) == 4 and axis % 4 == 3 and len(op.outputs) == int(shape[3]):
                for channel, output in enumerate(op.outputs):
                    splits[int(output)] = (op, source, channel)
    operators, records = [], []
    for op in graph.operators:
        match = _match(edit, op, splits) if edit.op_name(op) == "MUL" else None
        if match is None:
            operators.append(op)
            continue
        features, operand = match
        _, source, channel = splits[operand]
        shape = [int(d) for d in graph.tensors[features].shape]
        name = graph.tensors[int(op.outputs[0])].name.decode() + NAME_SUFFIX
        weights = np.zeros((shape[3], 1, 1, int(graph.tensors[source].shape[3])), np.int8)
        weights[:, 0, 0, channel] = 127
        quantization = edit.per_channel_quantization([1.0 / 127] * shape[3], 0)
        weight = edit.add_constant(name + "/weights", weights, int8, quantization)
        bias = edit.add_constant(name + "/bias", np.zeros(shape[3], np.int32), schema.TensorType.INT32,
                                 edit.per_channel_quantization(
                                     [float(graph.tensors[source].quantization.scale[0]) / 127] * shape[3], 0))
        spread = edit.add_activation_like(operand, name, shape)
        options = schema.Conv2DOptionsT()
        options.padding, options.strideH, options.strideW = schema.Padding.VALID, 1, 1
        options.dilationHFactor = options.dilationWFactor = 1
        conv = edit.operator(schema.BuiltinOperator.CONV_2D, [source, weight, bias], [spread], options, CONV_VERSION)
        op.inputs = np.array([features, spread], np.int32)
        operators += [conv, op]
        records.append({"output": graph.tensors[int(op.outputs[0])].name.decode(), "channel": channel,
                        "channels": shape[3]})
    read = {int(i) for op in operators for i in op.inputs} | {int(o) for o in graph.outputs}
    graph.operators = [op for op in operators
                       if not (edit.op_name(op) == "SPLIT" and not read.intersection(int(o) for o in op.outputs))]
    return records


def _match(edit, op, splits):
    """``(features, operand)`` tensor indices of a MUL this repair takes, or None."""
    graph, schema = edit.graph, edit.schema
    inputs = [int(i) for i in op.inputs]
    if len(inputs) != 2 or op.builtinOptions is not None and \
            op.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE:
        return None
    for features, operand in (inputs, inputs[::-1]):
        a, b = graph.tensors[features], graph.tensors[operand]
        if operand in splits and a.type == b.type == schema.TensorType.INT8 and a.shape is not None \
                and b.shape is not None and len(a.shape) == 4 and list(b.shape) == list(a.shape[:3]) + [1] \
                and int(a.shape[3]) > 1 and same_quantization(b, graph.tensors[splits[operand][1]]):
            return features, operand
    return None


def apply(edit, context: RepairContext) -> List[Match]:
    """:func:`spread_broadcast_operands` as a repair: one match per MUL, each changed."""
    return [Match(True, record) for record in spread_broadcast_operands(edit)]


REPAIR = Repair(
    name="int8_broadcast_multiply",
    applies_to=TFLITE,
    matches="int8 MULs of a [1, H, W, C] tensor by a one-channel output of a SPLIT on the channel axis",
    changes="the one channel spread over C channels by a 1x1 CONV_2D of the split tensor (one-hot weights, exact "
            "requantization), and the MUL without broadcast; a SPLIT no one reads any more taken out: the same bits",
    why="XNNPACK's int8 MUL broadcast along the channels runs 2.4x slower than the float one (PP-MattingV2's "
        "attention weighting: 0.24 ms at 256x256x32, AMD Zen 5): the int8 model 18.7 -> 18.3 and 18.2 -> 17.9 ms",
    preserves_outputs=True,
    apply=apply,
)
