"""InstanceNormalization over a large plane, whose TFLite MEAN adds every value of the plane in one float32 sum.

onnx2tf 1.29.24 writes ``InstanceNormalization`` as ``tf.nn.moments`` (MEAN, SQUARED_DIFFERENCE, MEAN) plus the
affine tail. LiteRT's MEAN (its builtin kernel and XNNPACK alike) adds the ``H * W`` values of each channel one
after another in float32, so its rounding error grows with the plane, and fastest where a flat region adds the
same value many times in a row (the errors then all point one way). MODNet-MobileNetV2 at 512x512 normalizes
16 channels over 256x256 in its high-resolution branch: LiteRT's mean there was 5.5e-4 off (a pairwise sum:
9e-8), that op's output 1.1e-2, and the TFLite alpha 1.03e-3 from a float64 evaluation of the program, against
1.6e-4 for Paddle and ONNX Runtime. The conversion failed its noise-derived bound (6.5e-4), while the graph
onnx2tf wrote was right.

The repair writes each such normalization with its reductions split: the mean over W, then over H, each an
``AveragePool`` (a window of one row, then of one column, which onnx2tf keeps channels-last: splitting with two
``ReduceMean`` instead made it insert 53 TRANSPOSEs into MODNet), the variance the same way on the squared
deviations, then ``(x - mean) / sqrt(var + eps) * scale + B``. Each sum then runs over W and H values rather
than ``H * W``: on that 256x256 normalization 1.1e-2 -> 9.4e-6 in TFLite. It is the same function with other
rounding, not the same bits, so it is proven against the model before within a tolerance
(:func:`edgematte.converter.tflite.repair_bridge`); the TFLite parity against the reference then holds it to
the model's bound. Only the copy onnx2tf reads changes; ONNX Runtime computes the ONNX artefact well as it is.
"""

from typing import List

import numpy as np

from ..base import ONNX2TF_INPUT, Match, Repair, RepairContext
from ..onnx.graph import attr, constant_value, drop_unread_constants, tensor_facts, unique_name


def _split_nodes(model, node, height: int, width: int, taken: set) -> list:
    """The nodes that compute ``node`` (an InstanceNormalization of an ``[N, C, height, width]`` input with
    constant scale and bias) with reductions over one axis at a time; the output keeps its name."""
    import onnx

    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    x, scale_name, bias_name = node.input
    base = node.name or node.output[0]

    def name(suffix):
        return unique_name(f"{base}/{suffix}", taken)

    scale, bias = constant_value(model, scale_name), constant_value(model, bias_name)
    channels = scale.shape[0]
    constants = {"scale": scale.reshape(1, channels, 1, 1), "bias": bias.reshape(1, channels, 1, 1),
                 "epsilon": np.array(attr(node, "epsilon", 1e-5), scale.dtype)}
    names = {key: name(key) for key in constants}
    model.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(value), names[key])
                                   for key, value in constants.items())
    nodes = []

    def mean_over_plane(value: str, what: str) -> str:
        for axis_name, kernel, size in (("w", [1, width], width), ("h", [height, 1], height)):
            if size > 1:
                out = name(f"{what}_over_{axis_name}")
                nodes.append(helper.make_node("AveragePool", [value], [out], name=out, kernel_shape=kernel,
                                              strides=kernel))
                value = out
        return value

    mean = mean_over_plane(x, "mean")
    deviation, squared = name("deviation"), name("squared")
    nodes += [helper.make_node("Sub", [x, mean], [deviation], name=deviation),
              helper.make_node("Mul", [deviation, deviation], [squared], name=squared)]
    variance = mean_over_plane(squared, "variance")
    shifted, std, normalized, scaled = name("variance_eps"), name("std"), name("normalized"), name("scaled")
    nodes += [helper.make_node("Add", [variance, names["epsilon"]], [shifted], name=shifted),
              helper.make_node("Sqrt", [shifted], [std], name=std),
              helper.make_node("Div", [deviation, std], [normalized], name=normalized),
              helper.make_node("Mul", [normalized, names["scale"]], [scaled], name=scaled),
              helper.make_node("Add", [scaled, names["bias"]], list(node.output[:1]), name=node.name)]
    return nodes


def split_instance_norms(model, where: str = "model") -> List[dict]:
    """Rewrite, in place, every InstanceNormalization of a rank-4 input with a static plane of more than one
    value and constant scale and bias (see the module docstring). One record per InstanceNormalization:
    ``{"onnx_node", "plane": [H, W], "action": "rewritten" | "left", "reason"}``."""
    shapes, _ = tensor_facts(model, where)
    taken = {name for n in model.graph.node for name in (*n.input, *n.output, n.name)}
    taken |= {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
    records, kept = [], []
    for node in model.graph.node:
        if node.op_type != "InstanceNormalization" or node.domain not in ("", "ai.onnx"):
            kept.append(node)
            continue
        shape = shapes.get(node.input[0])
        record = {"onnx_node": node.name or node.output[0], "plane": shape[2:] if shape else None}
        reason = None
        if shape is None or len(shape) != 4 or None in shape[2:]:
            reason = "the input is not rank 4 with a static plane"
        elif shape[2] * shape[3] < 2:
            reason = "a plane of one value: nothing is summed"
        elif any(constant_value(model, name) is None for name in node.input[1:3]):
            reason = "scale or bias is not a constant"
        if reason:
            records.append({**record, "action": "left", "reason": reason})
            kept.append(node)
            continue
        kept.extend(_split_nodes(model, node, shape[2], shape[3], taken))
        records.append({**record, "action": "rewritten",
                        "reason": f"TFLite's MEAN would add the {shape[2] * shape[3]} values of each channel in one "
                                  f"float32 sum; split into sums of {shape[3]} and {shape[2]}"})
    if any(r["action"] == "rewritten" for r in records):
        replaced = {name for n in model.graph.node if n.op_type == "InstanceNormalization" for name in n.input[1:3]}
        del model.graph.node[:]
        model.graph.node.extend(kept)
        drop_unread_constants(model, replaced)  # the [C] scales and biases, now read as [1, C, 1, 1] copies
    return records


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`split_instance_norms` as a repair: one match per InstanceNormalization, changed unless ``"left"``."""
    return [Match(r["action"] == "rewritten", r) for r in split_instance_norms(model, context.where)]


REPAIR = Repair(
    name="instance_norm_split_mean",
    applies_to=ONNX2TF_INPUT,
    matches="InstanceNormalization nodes of a rank-4 input with a static plane of two or more values and "
            "constant scale and bias",
    changes="computes the mean and the variance with one AveragePool over W, then one over H (channels-last "
            "for onnx2tf), then (x - mean) / sqrt(var + eps) * scale + B, in the copy onnx2tf reads",
    why="LiteRT's MEAN adds a whole H x W plane in one float32 sum, whose error grows with the plane and where "
        "values repeat (MODNet-MobileNetV2 at 512x512: a 256x256 normalization 1.1e-2 off, the TFLite alpha "
        "1.03e-3 from float64 against Paddle's 1.6e-4, over the model's bound)",
    preserves_outputs=False,
    apply=apply,
)
