"""Concatenations of one-channel maps along the channel axis, as a stack of the maps transposed.

XNNPACK copies each input of a channel concatenation pixel by pixel: for a one-channel map that is one value per
copy. PP-MattingV2's fusion blocks concatenate six one-channel maps (the channel means and maxima of their three
inputs) at 32 to 256 pixels square: at 256x256, 0.4-0.6 ms in XNNPACK after :mod:`.concatenation_fan_in` (AMD Zen 5,
2 threads, float and int8 alike), 1.05 ms before in TFLite's own kernel.

The same values come out of three copies XNNPACK runs with whole rows: the maps stacked along the batch axis (each
one contiguous block, ``<output>/stacked``: ``[N, H, W, 1]``), reshaped to ``[N, H*W]``, transposed to ``[H*W, N]``
and reshaped to the output's ``[1, H, W, N]``. Taken: a CONCATENATION on the last axis of a 4-D ``[1, H, W, N]``
output whose inputs all have one channel, without fused activation (the stack gets the output's type and
quantization: an int8 input of another scale is requantized in the stacking concatenation, as it was in the
original). More than 5 maps: the stacking concatenation is then split by :mod:`.concatenation_fan_in`, which runs
after. Only copies: the same bits. PP-MattingV2 512x512 (5 concatenations): float 51.4 -> 50.0 ms, int8 20.8 -> 19.5
ms against the same files with only the fan-in and the splits (50 interleaved rounds).
"""

from typing import List

import numpy as np

from ..base import TFLITE, Match, Repair, RepairContext

STACK_NAME = "/stacked"
"""The name suffix of each stack of maps: ``<output>/stacked``."""


def stack_single_channel_concatenations(edit) -> List[dict]:
    """Rewrite every matched concatenation of ``edit`` (a ``TFLiteModelEdit``) in place; one record ``{"output",
    "maps", "height", "width"}`` each."""
    schema, graph = edit.schema, edit.graph
    operators, records = [], []
    for op in graph.operators:
        inputs, output = [int(i) for i in op.inputs], int(op.outputs[0])
        shape = [int(d) for d in graph.tensors[output].shape] if graph.tensors[output].shape is not None else []
        if edit.op_name(op) != "CONCATENATION" or len(inputs) < 2 or len(shape) != 4 or shape[0] != 1 \
                or int(op.builtinOptions.axis) % 4 != 3 \
                or op.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE \
                or any(graph.tensors[i].shape is None or int(graph.tensors[i].shape[3]) != 1 for i in inputs):
            operators.append(op)
            continue
        maps, height, width = len(inputs), shape[1], shape[2]
        name = graph.tensors[output].name.decode()
        stacked = edit.add_activation_like(output, name + STACK_NAME, [maps, height, width, 1])
        op.builtinOptions.axis = 0
        op.outputs = np.array([stacked], np.int32)
        flat = edit.add_activation_like(output, name + STACK_NAME + "/flat", [maps, height * width])
        transposed = edit.add_activation_like(output, name + STACK_NAME + "/transposed", [height * width, maps])
        permutation = edit.add_constant(name + STACK_NAME + "/permutation", np.array([1, 0], np.int32),
                                        schema.TensorType.INT32)
        transpose = edit.operator(schema.BuiltinOperator.TRANSPOSE, [flat, permutation], [transposed],
                                  schema.TransposeOptionsT(),
                                  1 if graph.tensors[output].type == schema.TensorType.FLOAT32 else 2)
        operators += [op, edit.reshape(stacked, flat), transpose, edit.reshape(transposed, output)]
        records.append({"output": name, "maps": maps, "height": height, "width": width})
    graph.operators = operators
    return records


def apply(edit, context: RepairContext) -> List[Match]:
    """:func:`stack_single_channel_concatenations` as a repair: one match per concatenation, each changed."""
    return [Match(True, record) for record in stack_single_channel_concatenations(edit)]


REPAIR = Repair(
    name="single_channel_concatenation",
    applies_to=TFLITE,
    matches="CONCATENATION ops on the channel axis of a [1, H, W, N] output whose inputs all have one channel",
    changes="each becomes the maps stacked on the batch axis, reshaped to [N, H*W], transposed and reshaped to "
            "[1, H, W, N]: the same bits",
    why="XNNPACK copies a channel concatenation pixel by pixel, one value per copy for one-channel maps "
        "(PP-MattingV2's channel mean and max maps: 0.4-0.6 ms at 256x256, AMD Zen 5); stacked and transposed, "
        "whole rows are copied (the model 51.4 -> 50.0 ms float, 20.8 -> 19.5 ms int8)",
    preserves_outputs=True,
    apply=apply,
)
