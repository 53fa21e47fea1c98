"""ONNX graph reading and editing helpers the ONNX repairs share (not a repair itself).

Constants are read where paddle2onnx puts them: initializers or ``Constant`` nodes; operands that moved
from attributes to inputs across opsets (Unsqueeze/Squeeze ``axes``, Pad ``pads``) are read either way.
"""

from typing import List, Optional

import numpy as np


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
    """The ``axes`` of an Unsqueeze/Squeeze node (attribute before opset 13, input since).

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
