"""Concatenations of more than 5 inputs, as a concatenation of concatenations XNNPACK takes.

LiteRT's XNNPACK delegate (ai-edge-litert 2.1.0) takes a CONCATENATION of 2 to 5 inputs and leaves one of 6 or
more to TFLite's own kernel (measured, float and int8: one delegated part becomes two, with the op between them).
TFLite's kernel copies one run of the concatenation axis at a time, and PP-MattingV2 concatenates six one-channel
maps (the channel means and maxima of its three fusion inputs) at four resolutions: at 256x256 that op alone took
1.05 ms (AMD Zen 5, 2 threads), the same in float and int8.

Each such concatenation becomes one concatenation per run of at most 5 consecutive inputs (``<output>/fan_in/<k>``,
of the output's type and quantization: an int8 input is requantized to the output's scale there, as the
concatenation itself would) and the original one, now of those parts (its fused activation stays on it). A
concatenation only copies, so the values are the same bits. PP-MattingV2 512x512, this repair alone on its four
6-map concatenations: XNNPACK parts 7 -> 3 (float) and 9 -> 5 (int8), 52.0 -> 50.9 ms float and 21.8 -> 21.2 ms int8
(80 interleaved rounds). Since :mod:`.single_channel_concatenation` runs first, it splits the stacking concatenations
there (same count, same parts).
"""

from typing import List

import numpy as np

from ..base import TFLITE, Match, Repair, RepairContext

MAX_INPUTS = 5
"""The most inputs of a CONCATENATION LiteRT's XNNPACK delegate takes."""
PART_NAME = "/fan_in/"
"""What the name of every part carries: ``<output>/fan_in/<k>``."""


def split_wide_concatenations(edit, max_inputs: int = MAX_INPUTS) -> List[dict]:
    """Rewrite every CONCATENATION of ``edit`` (a ``TFLiteModelEdit``) with more than ``max_inputs`` inputs, in
    place; one record ``{"output", "inputs", "parts"}`` per concatenation."""
    schema, graph = edit.schema, edit.graph
    operators, records = [], []
    for op in graph.operators:
        inputs = [int(i) for i in op.inputs]
        if edit.op_name(op) != "CONCATENATION" or len(inputs) <= max_inputs \
                or any(graph.tensors[i].shape is None for i in inputs + [int(op.outputs[0])]):
            operators.append(op)
            continue
        output = int(op.outputs[0])
        rank = len(graph.tensors[output].shape)
        axis = int(op.builtinOptions.axis) % rank
        name, count, made = graph.tensors[output].name.decode(), len(inputs), 0
        while len(inputs) > max_inputs:  # more than max_inputs^2 inputs take another level
            parts = []
            for start in range(0, len(inputs), max_inputs):
                group = inputs[start:start + max_inputs]
                if len(group) == 1:
                    parts.append(group[0])
                    continue
                shape = [int(d) for d in graph.tensors[group[0]].shape]
                shape[axis] = sum(int(graph.tensors[i].shape[axis]) for i in group)
                part = edit.add_activation_like(output, f"{name}{PART_NAME}{made}", shape)
                made += 1
                options = schema.ConcatenationOptionsT()
                options.axis, options.fusedActivationFunction = op.builtinOptions.axis, \
                    schema.ActivationFunctionType.NONE
                operators.append(edit.operator(schema.BuiltinOperator.CONCATENATION, group, [part], options,
                                               edit.model.operatorCodes[op.opcodeIndex].version))
                parts.append(part)
            inputs = parts
        op.inputs = np.array(inputs, np.int32)
        operators.append(op)
        records.append({"output": name, "inputs": count, "parts": len(inputs)})
    graph.operators = operators
    return records


def apply(edit, context: RepairContext) -> List[Match]:
    """:func:`split_wide_concatenations` as a repair: one match per wide concatenation, each changed."""
    return [Match(True, record) for record in split_wide_concatenations(edit)]


REPAIR = Repair(
    name="concatenation_fan_in",
    applies_to=TFLITE,
    matches=f"CONCATENATION ops of more than {MAX_INPUTS} inputs",
    changes=f"each becomes a concatenation of concatenations of at most {MAX_INPUTS} consecutive inputs: the same "
            "bits",
    why=f"LiteRT's XNNPACK delegate takes at most {MAX_INPUTS} inputs and leaves a wider concatenation to TFLite's "
        "single-threaded kernel between two delegated parts (PP-MattingV2 512x512: four 6-input concatenations, "
        "1.05 ms for the one at 256x256; the model 52.0 -> 50.9 ms float, 21.8 -> 21.2 ms int8, AMD Zen 5)",
    preserves_outputs=True,
    apply=apply,
)
