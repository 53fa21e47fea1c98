"""ONNX graph reading and editing helpers the ONNX repairs share (not a repair itself).

Constants are read where paddle2onnx puts them: initializers or ``Constant`` nodes; operands that moved
from attributes to inputs across opsets (Unsqueeze/Squeeze ``axes``, Pad ``pads``) are read either way.
Shape inference (:func:`infer_shapes`) refuses attribute values that kill the process natively
(:func:`native_hazards`) and runs in the export's native child when one is open (:mod:`edgematte.core.native_child`).
"""

from typing import Dict, List, Optional, Tuple

import numpy as np

from ....core.errors import EdgematteError
from ....core.native_child import run_native

# Window attributes that must be >= 1 (ONNX: positive). A stride of 0 on AveragePool/MaxPool/Conv makes ONNX shape
# inference and ONNX Runtime's session divide by zero (SIGFPE, onnx 1.19 / ORT 1.23; ConvTranspose: at run time).
WINDOW_ATTRIBUTES = ("strides", "kernel_shape", "dilations")


def attr(node, name, default=None):
    """The value of ``node``'s attribute ``name`` (``default`` when it has none)."""
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def opset_version(model, default: int = 11) -> int:
    """The model's default-domain opset (``default`` when it declares none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default)


def constant_value(model, name: str) -> Optional[np.ndarray]:
    """The value of tensor ``name`` when it is an initializer or a ``Constant`` node's output, else ``None``."""
    import onnx

    for tensor in model.graph.initializer:
        if tensor.name == name:
            return onnx.numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                    value = onnx.helper.get_attribute_value(a)
                    return onnx.numpy_helper.to_array(value) if a.name == "value" else np.asarray(value)
    return None


def axes_operand(model, node) -> Optional[List[int]]:
    """The ``axes`` of a node that takes them as an attribute in older opsets and as its second input since
    (Unsqueeze, Squeeze and ReduceSum from opset 13, the other reductions from 18).

    ``None`` when absent or not a constant.
    """
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = constant_value(model, node.input[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return None if axes is None else [int(a) for a in axes]


def pads_operand(model, node) -> Optional[np.ndarray]:
    """A Pad node's int64 ``pads`` (attribute before opset 11, input since); ``None`` if not constant."""
    pads = attr(node, "pads")
    if pads is None and len(node.input) > 1 and node.input[1]:
        pads = constant_value(model, node.input[1])
    return None if pads is None else np.asarray(pads, dtype=np.int64).reshape(-1)


def unique_name(name: str, taken: set) -> str:
    """``name``, or ``name_2``, ``name_3``, ... : the first not in ``taken``, which it is added to."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def int64_constant(model, name: str, values, taken: set) -> str:
    """An int64 initializer holding ``values`` (a shape, axes), added under a fresh name from ``name``; its name."""
    import onnx

    unique = unique_name(name, taken)
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(values, np.int64), unique))
    return unique


def drop_unread_constants(model, names) -> None:
    """Remove the initializers and Constant nodes among ``names`` that nothing reads any more."""
    read = {name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}
    unread = set(names) - read
    for tensor in [t for t in model.graph.initializer if t.name in unread]:
        model.graph.initializer.remove(tensor)
    kept = [n for n in model.graph.node if not (n.op_type == "Constant" and n.output[0] in unread)]
    if len(kept) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(kept)


def native_hazards(model) -> List[str]:
    """Every node attribute of ``model`` (subgraphs of If/Loop included) known to crash ONNX's or ONNX Runtime's
    native code: a window attribute (:data:`WINDOW_ATTRIBUTES`) with a value below 1. One description per
    attribute, in graph order."""
    found, graphs = [], [model.graph]
    while graphs:
        for node in graphs.pop(0).node:
            for a in node.attribute:
                if a.name in WINDOW_ATTRIBUTES and any(v < 1 for v in a.ints):
                    found.append(f"ONNX node {node.name or node.output[0]!r} ({node.op_type}) has "
                                 f"{a.name}={list(a.ints)}")
                graphs.extend([a.g] if a.HasField("g") else [])
                graphs.extend(a.graphs)
    return found


def refuse_native_hazards(model, where: str) -> None:
    """Raise :class:`EdgematteError` naming ``where``, the node and the attribute when :func:`native_hazards` finds
    any: ONNX shape inference and ONNX Runtime would die on the graph with SIGFPE, killing the process."""
    hazards = native_hazards(model)
    if hazards:
        more = f" (and {len(hazards) - 1} more)" if len(hazards) > 1 else ""
        raise EdgematteError(f"{where}: {hazards[0]}{more}; not valid ONNX (must be >= 1), and a stride of 0 kills "
                             f"ONNX shape inference and ONNX Runtime (SIGFPE)")


def infer_shapes(model, where: str, data_prop: bool = False):
    """ONNX shape inference of ``model``: a ModelProto with only the inferred ``graph.input``, ``graph.value_info``
    and ``graph.output`` (no nodes or initializers). The graph must pass :func:`refuse_native_hazards` first; then
    it runs in the export's native child when one is open, where a crash is one line naming the step."""
    refuse_native_hazards(model, where)
    return run_native("ONNX shape inference", _inferred_value_infos, model.SerializeToString(), data_prop)


def tensor_facts(model, where: str) -> Tuple[Dict[str, List[Optional[int]]], Dict[str, int]]:
    """Every tensor's shape as far as ONNX shape inference (or the graph itself) knows it (``None`` for a dimension
    it does not know; tensors of unknown rank are missing), and its element type."""
    inferred = infer_shapes(model, where)
    shapes, types = {}, {}
    for info in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        tensor_type = info.type.tensor_type
        types[info.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            shapes[info.name] = [int(d.dim_value) if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    for tensor in model.graph.initializer:
        shapes[tensor.name], types[tensor.name] = list(tensor.dims), tensor.data_type
    return shapes, types


def _inferred_value_infos(model_bytes: bytes, data_prop: bool):
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model_bytes, data_prop=data_prop)
    infos = onnx.ModelProto()
    infos.graph.input.extend(inferred.graph.input)
    infos.graph.value_info.extend(inferred.graph.value_info)
    infos.graph.output.extend(inferred.graph.output)
    return infos
