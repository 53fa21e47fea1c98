"""Paddle inference model -> ONNX, with the graph repairs that make paddle2onnx's output exact.

paddle2onnx 1.3.1 writes Paddle's adaptive pooling (``adaptive_avg_pool2d``, ``adaptive_max_pool2d``
and ``interpolate(mode='area')``, which Paddle computes as adaptive average pooling) as ONE pooling
node with stride ``floor(in/out)`` and kernel ``in - (out-1)*stride``. That is exact only when the
windows happen to coincide with Paddle's: Paddle's output bin ``i`` of ``out`` covers
``[floor(i*in/out), ceil((i+1)*in/out))``. Otherwise the numbers are silently wrong (8 -> 6 bins:
off by up to 0.76), and when ``out > in`` the stride is 0, which kills ONNX Runtime and ONNX shape
inference with SIGFPE (PP-MattingV2 at 256x256 input: a 4x4 grid pooled to 6x6).

This module finds every adaptive pool the Paddle program asked for, computes the windows the ONNX
node really averages, and where they differ replaces the node by an exact equivalent built from
explicit pooling windows, separably over H and W: per distinct window size one stride-1 pooling node,
then one Gather picking the windows Paddle uses (and a Concat when sizes differ). No dense matrix
product: pooling and gathering quantize like any other pooling (TOOLCHAIN.md, INT8 section).

It then normalizes patterns that are correct ONNX but that onnx2tf cannot convert, each by an exactly
equivalent rewrite that ONNX Runtime must confirm on the whole graph (:func:`normalize_graph`):
paddle2onnx writes Paddle's 4-D ``pad`` as Unsqueeze -> 5-D Pad -> Squeeze, on which onnx2tf's
channels-last transposition fails (PP-HumanMatting's refiner); it becomes one 4-D Pad.

Layout: NCHW only (PaddleSeg's matting models). Shapes must be static; freeze the input first.
"""

import importlib.metadata
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_path
from .program import locate_model_files, parse_program, read_program

# [start, end) of one pooling window along one axis.
Window = Tuple[int, int]

POOL_NODE_TYPES = ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool")
PADDLE2ONNX_TIMEOUT_S = 900
ONNXSIM_TIMEOUT_S = 900
# onnxsim's result is kept only when it reproduces the unsimplified graph this closely (max abs on
# inputs in [-1, 1]); a deep net whose BatchNorm folding moves more than this simply stays unsimplified.
SIMPLIFY_TOLERANCE = 1e-5
# An inserted replacement must reproduce exact adaptive pooling this closely on random data.
REPAIR_SELF_CHECK_TOLERANCE = 1e-5
# A graph normalization only moves data (no arithmetic changes): the whole graph must reproduce its
# outputs to within float32 rounding of a changed kernel schedule, on inputs in [-1, 1].
NORMALIZATION_TOLERANCE = 1e-7


@dataclass(frozen=True)
class AdaptivePoolOp:
    """One adaptive pooling op of the Paddle program: what Paddle computes, as Paddle named it.

    ``kind`` is ``"avg"`` or ``"max"``; ``output_hw`` the bin counts (Paddle's ``ksize``);
    ``input_name`` / ``output_name`` the Paddle variable names, which paddle2onnx keeps as ONNX
    tensor names unless its optimizer folded a neighbouring op.
    """

    paddle_type: str
    kind: str
    input_name: str
    output_name: str
    output_hw: Tuple[int, int]


def adaptive_windows(in_size: int, out_size: int) -> List[Window]:
    """Paddle's adaptive pooling windows along one axis: bin i covers [floor(i*in/out), ceil((i+1)*in/out)).

    Valid for any ``in_size, out_size >= 1``, including ``out_size > in_size`` (windows overlap).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"adaptive pooling needs positive sizes, got in={in_size} out={out_size}")
    return [((i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)) for i in range(out_size)]


def adaptive_pool_reference(x: np.ndarray, output_hw: Tuple[int, int], kind: str = "avg") -> np.ndarray:
    """Adaptive pooling of NCHW ``x`` (float) to ``output_hw`` bins, straight from the window definition.

    Returns float32 ``[N, C, out_h, out_w]``. Used to self-check every inserted replacement.
    """
    reduce = {"avg": np.mean, "max": np.max}[kind]
    rows = adaptive_windows(x.shape[2], output_hw[0])
    cols = adaptive_windows(x.shape[3], output_hw[1])
    out = np.empty(x.shape[:2] + (len(rows), len(cols)), dtype=np.float64)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            out[:, :, i, j] = reduce(x[:, :, h0:h1, w0:w1].astype(np.float64), axis=(2, 3))
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# The Paddle side: which pools are adaptive


def read_adaptive_pools(program, where: str = "model") -> List[AdaptivePoolOp]:
    """Every adaptive pooling op of a parsed Paddle ``ProgramDesc``, in program order.

    Covers ``pool2d`` with ``adaptive=True`` (``adaptive_avg_pool2d``, ``interpolate(mode='area')``,
    and the avg/max pool2d forms) and ``max_pool2d_with_index`` with ``adaptive=True``
    (``adaptive_max_pool2d``). ``where`` names the model in errors.
    """
    found = []
    for block in program.blocks:
        for op in block.ops:
            if op.type not in ("pool2d", "max_pool2d_with_index"):
                continue
            attrs = {a.name: a for a in op.attrs}
            if not (attrs.get("adaptive") and attrs["adaptive"].b):
                continue
            data_format = attrs["data_format"].s if "data_format" in attrs else "NCHW"
            if data_format not in ("NCHW", "AnyLayout"):
                raise EdgematteError(f"{where}: adaptive pooling in layout {data_format} is not supported (NCHW only)")
            kind = "max" if op.type == "max_pool2d_with_index" else attrs["pooling_type"].s
            inputs = {v.parameter: list(v.arguments) for v in op.inputs}
            outputs = {v.parameter: list(v.arguments) for v in op.outputs}
            bins = tuple(attrs["ksize"].ints)
            if len(bins) != 2 or kind not in ("avg", "max"):
                raise EdgematteError(f"{where}: unsupported adaptive pooling {op.type} ksize={bins} type={kind}")
            found.append(AdaptivePoolOp(op.type, kind, inputs["X"][0], outputs["Out"][0], bins))
    return found


# --------------------------------------------------------------------------------------------------
# The ONNX side: locate, measure, replace


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_windows(node, in_hw: Tuple[int, int]) -> Optional[Tuple[List[Window], List[Window]]]:
    """The (rows, cols) windows an ONNX pooling node averages/maxes over an ``in_hw`` input.

    ``None`` when the node is not a plain window pool this can describe (padding, ceil mode,
    dilation, a zero stride): such a node is never proven exact and is always replaced.
    """
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
        return [(0, in_hw[0])], [(0, in_hw[1])]
    kernel = list(_attr(node, "kernel_shape", []))
    strides = list(_attr(node, "strides", [1] * len(kernel)))
    pads = list(_attr(node, "pads", [0] * 2 * len(kernel)))
    dilations = list(_attr(node, "dilations", [1] * len(kernel)))
    auto_pad = _attr(node, "auto_pad", b"NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    plain = (
        len(kernel) == 2
        and auto_pad in ("NOTSET", "VALID")
        and not any(pads)
        and not _attr(node, "ceil_mode", 0)
        and all(d == 1 for d in dilations)
        and all(s >= 1 for s in strides)
        and all(1 <= k <= n for k, n in zip(kernel, in_hw))
    )
    if not plain:
        return None
    return tuple(
        [(i * s, i * s + k) for i in range((n - k) // s + 1)] for n, k, s in zip(in_hw, kernel, strides)
    )


class _NodeWriter:
    """Collects the nodes and constant tensors of one replacement, with names under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes = []
        self.constants = []
        self._count = 0

    def fresh(self, label: str) -> str:
        self._count += 1
        return f"{self.prefix}/{label}_{self._count}"

    def node(self, op_type: str, inputs: Sequence[str], label: str, **attrs) -> str:
        import onnx

        out = self.fresh(label)
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def int64_constant(self, values: Sequence[int], label: str) -> str:
        import onnx

        name = self.fresh(label)
        self.constants.append(onnx.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name


def _pool_along(writer: _NodeWriter, x: str, axis: int, kernel: int, stride: int, kind: str) -> str:
    """One pooling node with a 1-D window along spatial ``axis`` (2 = H, 3 = W)."""
    kernel_shape = [kernel, 1] if axis == 2 else [1, kernel]
    strides = [stride, 1] if axis == 2 else [1, stride]
    if kind == "avg":
        return writer.node("AveragePool", [x], f"avgpool{kernel}", kernel_shape=kernel_shape, strides=strides,
                           pads=[0, 0, 0, 0], count_include_pad=0)
    return writer.node("MaxPool", [x], f"maxpool{kernel}", kernel_shape=kernel_shape, strides=strides,
                       pads=[0, 0, 0, 0])


def _exact_windows_along(writer: _NodeWriter, x: str, axis: int, windows: List[Window], in_size: int, kind: str) -> str:
    """Reduce tensor ``x`` over each window along ``axis``; returns the name of the [.., len(windows), ..] result.

    Evenly tiled windows become one strided pool. Otherwise: one stride-1 pool per distinct window
    size (all windows of that size at every start), the results concatenated along ``axis``, and one
    Gather picking each bin's window in bin order.
    """
    sizes = sorted({end - start for start, end in windows})
    if len(sizes) == 1 and windows == [(i * sizes[0], (i + 1) * sizes[0]) for i in range(in_size // sizes[0])]:
        # the windows tile the axis: identity for size 1, else one strided pool
        return x if sizes[0] == 1 else _pool_along(writer, x, axis, sizes[0], sizes[0], kind)
    pooled, offset_of_size, offset = [], {}, 0
    for size in sizes:
        pooled.append(x if size == 1 else _pool_along(writer, x, axis, size, 1, kind))
        offset_of_size[size] = offset
        offset += in_size - size + 1  # a stride-1 pool of this size yields one value per start
    joined = pooled[0] if len(pooled) == 1 else writer.node("Concat", pooled, "concat", axis=axis)
    picks = [offset_of_size[end - start] + start for start, end in windows]
    if picks == list(range(offset)):
        return joined
    return writer.node("Gather", [joined, writer.int64_constant(picks, "bins")], "gather", axis=axis)


def exact_adaptive_pool_nodes(x: str, y: str, in_hw: Tuple[int, int], output_hw: Tuple[int, int], kind: str,
                              prefix: str):
    """ONNX nodes (opset >= 11) computing Paddle's adaptive ``kind`` pooling of NCHW ``x`` into tensor ``y``.

    Separable: first over H, then over W (exact for both mean and max, since every 2-D window is a
    row window times a column window). Returns ``(nodes, int64 initializers)``.
    """
    import onnx

    writer = _NodeWriter(prefix)
    rows = adaptive_windows(in_hw[0], output_hw[0])
    cols = adaptive_windows(in_hw[1], output_hw[1])
    t = _exact_windows_along(writer, x, 2, rows, in_hw[0], kind)
    t = _exact_windows_along(writer, t, 3, cols, in_hw[1], kind)
    if t == x:  # output == input (each bin one element): still one node must produce y
        writer.nodes.append(onnx.helper.make_node("Identity", [x], [y], name=f"{prefix}/identity"))
    else:
        last = writer.nodes[-1]
        assert last.output[0] == t
        last.output[0] = y
    return writer.nodes, writer.constants


def _self_check(in_hw, output_hw, kind, opset) -> float:
    """Run the replacement for these sizes alone in ONNX Runtime on random data.

    Returns its max abs error against the window definition (:func:`adaptive_pool_reference`).
    """
    import onnx
    import onnxruntime

    x_name, y_name = "x", "y"
    nodes, constants = exact_adaptive_pool_nodes(x_name, y_name, in_hw, output_hw, kind, "self_check")
    graph = onnx.helper.make_graph(
        nodes, "adaptive_pool_self_check",
        [onnx.helper.make_tensor_value_info(x_name, onnx.TensorProto.FLOAT, [1, 3, *in_hw])],
        [onnx.helper.make_tensor_value_info(y_name, onnx.TensorProto.FLOAT, [1, 3, *output_hw])],
        initializer=constants,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, *in_hw)).astype(np.float32)
    got = session.run(None, {x_name: x})[0]
    return float(np.abs(got - adaptive_pool_reference(x, output_hw, kind)).max())


def _static_shapes(model, leave_out: Sequence[str]) -> Dict[str, Tuple[int, ...]]:
    """Tensor name -> static shape by ONNX shape inference, without the nodes whose output is in ``leave_out``.

    Unrepaired adaptive pools must be left out: a zero stride makes ONNX's shape inference divide by
    zero and kill the whole process (SIGFPE), and their wrong output sizes must not propagate.
    """
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    skip = set(leave_out)
    kept = [n for n in model.graph.node if n.output[0] not in skip]
    del probe.graph.node[:]
    probe.graph.node.extend(kept)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    except Exception:  # data propagation is an extra; plain inference still gives most shapes
        inferred = onnx.shape_inference.infer_shapes(probe)
    shapes = {}
    for v in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shapes[v.name] = tuple(d.dim_value for d in dims)
    return shapes


def _locate(model, ops: Sequence[AdaptivePoolOp], where: str):
    """Pair each Paddle adaptive op with the ONNX pooling node paddle2onnx wrote for it, in graph order.

    Returns ``[(op, name of the node's output)]`` (ONNX tensor names are unique, so the name is the key).

    Matched by the op's output name (paddle2onnx keeps Paddle's variable names), else by its input
    name when exactly one unclaimed pooling node of the same kind reads that tensor. A pooling node's
    attributes alone cannot tell adaptive from plain pooling (adaptive 8 -> 6 is written exactly like a
    plain 3x3 stride-1 pool), so an op that cannot be paired is an error, never a guess.
    """
    pool_nodes = [n for n in model.graph.node if n.op_type in POOL_NODE_TYPES]
    by_output = {n.output[0]: n for n in pool_nodes}
    claimed, pairs = set(), []
    for op in ops:
        node = by_output.get(op.output_name)
        if node is None:
            want = ("AveragePool", "GlobalAveragePool") if op.kind == "avg" else ("MaxPool", "GlobalMaxPool")
            readers = [n for n in pool_nodes
                       if n.input[0] == op.input_name and n.op_type in want and n.output[0] not in claimed]
            if len(readers) != 1:
                raise EdgematteError(
                    f"{where}: cannot find the ONNX node paddle2onnx wrote for Paddle's adaptive pooling "
                    f"{op.input_name} -> {op.output_name} ({len(readers)} candidates); refusing to leave it unchecked"
                )
            node = readers[0]
        if node.output[0] in claimed:
            raise EdgematteError(f"{where}: two Paddle adaptive pools map to ONNX node {node.name}")
        claimed.add(node.output[0])
        pairs.append((op, node.output[0]))
    order = {n.output[0]: i for i, n in enumerate(model.graph.node)}
    return sorted(pairs, key=lambda pair: order[pair[1]])


def repair_adaptive_pools(model, ops: Sequence[AdaptivePoolOp], where: str = "model") -> List[dict]:
    """Replace, in place, every ONNX node of ``ops`` whose windows differ from Paddle's.

    ``model`` is an ``onnx.ModelProto`` straight from paddle2onnx; ``where`` names it in errors.
    Returns one record per adaptive op: ``action`` is ``"replaced"`` or ``"kept"`` (already exact),
    with the ONNX node, the sizes, the windows the node computed, why, and the replacement's
    self-check error against the window definition.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 11)
    pending = _locate(model, ops, where)
    claimed = {name for _, name in pending}
    for node in model.graph.node:
        if node.op_type in ("AveragePool", "MaxPool") and node.output[0] not in claimed:
            if any(s < 1 for s in _attr(node, "strides", [1])):
                raise EdgematteError(f"{where}: pooling node {node.name} has a zero stride and is not an "
                                     f"adaptive pool of the Paddle program")
    records = []
    # Shapes come in waves: a pool downstream of another unrepaired pool has no known input shape yet.
    while pending:
        shapes = _static_shapes(model, [name for _, name in pending])
        producers = {n.output[0]: n for n in model.graph.node}
        ready = [(op, name) for op, name in pending if len(shapes.get(producers[name].input[0], ())) == 4]
        if not ready:
            op, name = pending[0]
            raise EdgematteError(f"{where}: the input shape of adaptive pool {op.input_name} -> {op.output_name} "
                                 f"is not static; freeze the input shape first")
        for op, name in ready:
            node = producers[name]
            records.append(_repair_one(model, op, node, shapes[node.input[0]][2:], opset))
        done = {name for _, name in ready}
        pending = [(op, name) for op, name in pending if name not in done]
    return records


def _format_windows(windows: Sequence[Window]) -> str:
    return " ".join(f"[{start},{end})" for start, end in windows)


def _repair_one(model, op: AdaptivePoolOp, node, in_hw: Tuple[int, int], opset: int) -> dict:
    out_hw = tuple(b if b > 0 else n for b, n in zip(op.output_hw, in_hw))  # Paddle: None keeps that axis
    exact = (adaptive_windows(in_hw[0], out_hw[0]), adaptive_windows(in_hw[1], out_hw[1]))
    written = node_windows(node, in_hw)
    record = {
        "paddle_op": op.paddle_type,
        "pooling": op.kind,
        "paddle_output": op.output_name,
        "onnx_node": node.name or node.output[0],
        "onnx_op": node.op_type,
        "input_hw": list(in_hw),
        "output_hw": list(out_hw),
    }
    if written is not None and tuple(written) == exact:
        return {**record, "action": "kept", "reason": "paddle2onnx's windows equal Paddle's adaptive windows"}
    if written is None:
        reason = (f"paddle2onnx wrote {node.op_type} kernel={list(_attr(node, 'kernel_shape', []))} "
                  f"strides={list(_attr(node, 'strides', []))}, not a valid window pool for {list(in_hw)} -> {list(out_hw)}")
    else:
        reason = "; ".join(
            f"{axis} windows: paddle2onnx {_format_windows(w)}, Paddle {_format_windows(e)}"
            for axis, w, e in zip("HW", written, exact) if w != e
        )
    nodes, constants = exact_adaptive_pool_nodes(node.input[0], node.output[0], in_hw, out_hw, op.kind,
                                                 prefix=f"{node.output[0]}/exact_adaptive_{op.kind}pool")
    error = _self_check(in_hw, out_hw, op.kind, opset)
    if not error <= REPAIR_SELF_CHECK_TOLERANCE:
        raise AssertionError(f"exact adaptive pooling {in_hw}->{out_hw} self-check failed: max abs {error}")
    graph_nodes = model.graph.node
    index = next(i for i, n in enumerate(graph_nodes) if n.output[0] == node.output[0])
    del graph_nodes[index]
    for offset, new in enumerate(nodes):
        graph_nodes.insert(index + offset, new)
    model.graph.initializer.extend(constants)
    return {**record, "action": "replaced", "reason": reason,
            "replacement": [n.op_type for n in nodes], "self_check_max_abs": error}


# --------------------------------------------------------------------------------------------------
# Graph normalizations: exact rewrites of patterns that are correct ONNX but that onnx2tf breaks


def _constant_value(model, name: str) -> Optional[np.ndarray]:
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


def _axes_operand(model, node) -> Optional[List[int]]:
    """The ``axes`` of an Unsqueeze/Squeeze node (attribute before opset 13, input since).

    ``None`` when absent or not a constant.
    """
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = _constant_value(model, node.input[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return None if axes is None else [int(a) for a in axes]


def _pads_operand(model, node) -> Optional[np.ndarray]:
    """A Pad node's int64 ``pads`` (attribute before opset 11, input since); ``None`` if not constant."""
    pads = _attr(node, "pads")
    if pads is None and len(node.input) > 1 and node.input[1]:
        pads = _constant_value(model, node.input[1])
    return None if pads is None else np.asarray(pads, dtype=np.int64).reshape(-1)


def _unsqueezed_pad_verdict(model, unsqueeze, pad, squeeze) -> Tuple[Optional[np.ndarray], str]:
    """Whether Unsqueeze -> Pad -> Squeeze is exactly a Pad of the Unsqueeze's input, and with which pads.

    Returns ``(pads of the equivalent lower-rank Pad, reason)``; pads ``None`` means it is not
    provably equivalent and ``reason`` says why. Pads are ONNX's ``[begin per axis..., end per axis...]``.
    """
    if len(pad.input) > 3 and pad.input[3]:
        return None, "the Pad has an 'axes' input (opset 18); not handled"
    pads = _pads_operand(model, pad)
    if pads is None or pads.size % 2:
        return None, "the Pad's pads are not a constant of even length"
    rank = pads.size // 2
    inserted = _axes_operand(model, unsqueeze)
    squeezed = _axes_operand(model, squeeze)
    if inserted is None or squeezed is None:
        return None, "the Unsqueeze or Squeeze axes are not constant (a Squeeze without axes drops every size-1 axis)"
    inserted = sorted({a % rank for a in inserted})
    if len(inserted) >= rank or sorted({a % rank for a in squeezed}) != inserted:
        return None, f"Squeeze axes {squeezed} do not undo Unsqueeze axes {_axes_operand(model, unsqueeze)}"
    nonzero = {a: (int(pads[a]), int(pads[rank + a])) for a in inserted if pads[a] or pads[rank + a]}
    if nonzero:
        # e.g. (1, -1) shifts the one element out and fills the axis with the constant
        return None, f"pads (begin, end) on inserted axes {nonzero} are not zero"
    kept = [a for a in range(rank) if a not in inserted]
    return np.concatenate([pads[kept], pads[[rank + a for a in kept]]]), "pads on the inserted axes are zero"


def fold_unsqueezed_pads(model) -> List[dict]:
    """Rewrite, in place, every Unsqueeze -> Pad -> Squeeze that only pads the original axes as one Pad.

    paddle2onnx writes Paddle's 4-D ``pad`` (``pad3d``) as ``Unsqueeze(axes=[2])`` -> 5-D ``Pad`` ->
    ``Squeeze(axes=[2])``; onnx2tf transposes the 5-D tensor to channels-last and then fails to squeeze
    the wrong axis. The chain equals a Pad of the Unsqueeze's input with the inserted axes' pads left
    out exactly when those pads are all zero (begin and end) and the Squeeze removes precisely the
    inserted axes: every output element then reads the same input element or the same fill. The Pad
    keeps its mode (constant/reflect/edge/wrap) and constant value. A chain whose intermediate tensors
    are read elsewhere (or are graph outputs) is left alone, as is a Pad with an ``axes`` input.

    Returns one record per Unsqueeze -> Pad -> Squeeze found: ``action`` ``"rewritten"`` (with the
    pads before and after) or ``"left"``, and the ``reason``.
    """
    import onnx

    graph_outputs = {o.name for o in model.graph.output}
    records, operands = [], set()
    # Pads are found by output name: rewriting replaces node messages, so references would go stale.
    for pad_output in [n.output[0] for n in model.graph.node if n.op_type == "Pad"]:
        producers = {o: n for n in model.graph.node for o in n.output}
        readers: Dict[str, list] = {}
        for n in model.graph.node:
            for name in n.input:
                readers.setdefault(name, []).append(n)
        pad = producers[pad_output]
        unsqueeze = producers.get(pad.input[0])
        squeezes = readers.get(pad_output, [])
        if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or [n.op_type for n in squeezes] != ["Squeeze"]:
            continue
        squeeze = squeezes[0]
        mode = _attr(pad, "mode", b"constant")
        record = {"normalization": "unsqueeze_pad_squeeze",
                  "onnx_nodes": [n.name or n.output[0] for n in (unsqueeze, pad, squeeze)],
                  "mode": mode.decode() if isinstance(mode, bytes) else mode,
                  "unsqueeze_axes": _axes_operand(model, unsqueeze)}
        folded, reason = _unsqueezed_pad_verdict(model, unsqueeze, pad, squeeze)
        if folded is not None and (len(readers.get(unsqueeze.output[0], [])) != 1
                                   or {unsqueeze.output[0], pad_output} & graph_outputs):
            folded, reason = None, "the unsqueezed or padded tensor is also read elsewhere"
        if folded is None:
            records.append({**record, "action": "left", "reason": reason})
            continue
        pads_before = _pads_operand(model, pad).tolist()
        if _attr(pad, "pads") is not None:  # opset < 11: pads is an attribute
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pad.attribute}
            rewritten = onnx.helper.make_node("Pad", [unsqueeze.input[0]], [squeeze.output[0]], name=pad.name,
                                              **{**attrs, "pads": folded.tolist()})
        else:
            pads_name = f"{pad_output}/pads_without_inserted_axes"  # tensor names are unique, node names need not be
            model.graph.initializer.append(onnx.numpy_helper.from_array(folded.astype(np.int64), pads_name))
            rewritten = onnx.helper.make_node("Pad", [unsqueeze.input[0], pads_name, *pad.input[2:]],
                                              [squeeze.output[0]], name=pad.name)
            rewritten.attribute.extend(pad.attribute)
        operands.update(name for n in (unsqueeze, pad, squeeze) for name in n.input[1:])
        # In the Pad's place: its inputs are all produced before it, its readers come after the Squeeze.
        dropped = {unsqueeze.output[0], squeeze.output[0]}
        kept = [rewritten if n.output[0] == pad_output else n for n in model.graph.node if n.output[0] not in dropped]
        del model.graph.node[:]
        model.graph.node.extend(kept)
        records.append({**record, "action": "rewritten",
                        "reason": f"{reason} and the Squeeze removes exactly the inserted axes: the same "
                                  f"{record['mode']} pad of the original axes",
                        "pads_before": pads_before, "pads_after": folded.tolist()})
    _drop_unread_constants(model, operands)
    return records


def _drop_unread_constants(model, names) -> None:
    """Remove the initializers and Constant nodes among ``names`` that nothing reads any more."""
    read = {name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}
    unread = set(names) - read
    for tensor in [t for t in model.graph.initializer if t.name in unread]:
        model.graph.initializer.remove(tensor)
    kept = [n for n in model.graph.node if not (n.op_type == "Constant" and n.output[0] in unread)]
    if len(kept) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(kept)


def normalize_graph(model) -> List[dict]:
    """Apply, in place, every exact graph normalization (so far :func:`fold_unsqueezed_pads`); returns their records."""
    return fold_unsqueezed_pads(model)


def _normalize_checked(model, feed, reference_outputs) -> Tuple[List[dict], Optional[dict]]:
    """:func:`normalize_graph` on ``model`` in place, proven: the ONNX checker passes and ONNX Runtime
    reproduces ``reference_outputs`` (the graph before, on ``feed``) within NORMALIZATION_TOLERANCE.

    Returns ``(records, {"max_abs", "tolerance"})``; the check is ``None`` when nothing was rewritten.
    """
    import onnx

    records = normalize_graph(model)
    if not any(r["action"] == "rewritten" for r in records):
        return records, None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise AssertionError(f"normalized graph fails the ONNX checker: {e}") from e
    outputs = _run_onnx(model, feed)
    diff = max(float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
               for a, b in zip(outputs, reference_outputs))
    if not diff <= NORMALIZATION_TOLERANCE:
        raise AssertionError(f"graph normalization changed the outputs by {diff:g} (> {NORMALIZATION_TOLERANCE:g})")
    return records, {"max_abs": diff, "tolerance": NORMALIZATION_TOLERANCE}


# --------------------------------------------------------------------------------------------------
# The tools


def _run_tool(argv, timeout, what) -> subprocess.CompletedProcess:
    """Run a converter tool with this interpreter, output captured (C++ tools print straight to fd 1/2)."""
    try:
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "GLOG_minloglevel": os.environ.get("GLOG_minloglevel", "2")})
    except subprocess.TimeoutExpired as e:
        raise EdgematteError(f"{what}: timed out after {timeout} s") from e


def run_paddle2onnx(model_dir, out_path, opset: int = 11) -> str:
    """Convert the Paddle inference model in ``model_dir`` with paddle2onnx, unrepaired; returns its log.

    paddle2onnx exits 0 even when it fails (it then leaves an empty file), so success is judged by
    the file it writes.
    """
    files = locate_model_files(model_dir)
    model, params = files.model, files.params
    out_path = Path(out_path)
    out_path.unlink(missing_ok=True)
    done = _run_tool(
        ["-m", "paddle2onnx.command", "--model_dir", str(model.parent), "--model_filename", model.name,
         "--params_filename", params.name, "--save_file", str(out_path), "--opset_version", str(opset),
         "--enable_onnx_checker", "True"],
        PADDLE2ONNX_TIMEOUT_S, f"{model}: paddle2onnx")
    log = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or not out_path.is_file() or out_path.stat().st_size == 0:
        lines = [ln for ln in log.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise EdgematteError(f"{model}: paddle2onnx failed: {last}")
    return log


def _random_feed(model, seed: int = 0) -> Dict[str, np.ndarray]:
    """Seeded inputs in [-1, 1] (PaddleSeg's normalized image range) for every graph input."""
    import onnx

    rng = np.random.default_rng(seed)
    initializers = {i.name for i in model.graph.initializer}
    feed = {}
    for v in model.graph.input:
        if v.name in initializers:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        shape = [d.dim_value for d in v.type.tensor_type.shape.dim]
        feed[v.name] = rng.uniform(-1, 1, shape).astype(dtype)
    return feed


def _run_onnx(model, feed) -> List[np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _simplify(model, workdir: Path, reference_outputs, feed) -> Tuple[object, dict]:
    """onnxsim ``model`` (in a subprocess: a crash there must not take the export down).

    Returns ``(model to keep, note)``: the simplified graph only if it passes the ONNX checker and
    reproduces ``reference_outputs`` within SIMPLIFY_TOLERANCE, else the unsimplified one.
    """
    import onnx

    src, dst = workdir / "repaired.onnx", workdir / "simplified.onnx"
    onnx.save(model, src)
    done = _run_tool(["-m", "onnxsim", str(src), str(dst)], ONNXSIM_TIMEOUT_S, "onnxsim")
    note = {"log_tail": (done.stdout + done.stderr).strip()[-2000:]}
    if done.returncode != 0 or not dst.is_file():
        return model, {**note, "kept": False, "reason": f"onnxsim exited with {done.returncode}"}
    try:
        simplified = onnx.load(str(dst))
        onnx.checker.check_model(simplified, full_check=True)
        outputs = _run_onnx(simplified, feed)
    except Exception as e:
        return model, {**note, "kept": False, "reason": f"simplified graph invalid: {str(e).splitlines()[0][:300]}"}
    diff = max(float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
               for a, b in zip(outputs, reference_outputs))
    if not diff <= SIMPLIFY_TOLERANCE:
        return model, {**note, "kept": False, "reason": f"simplified graph differs by {diff:g}", "max_abs": diff}
    return simplified, {**note, "kept": True, "max_abs": diff,
                        "nodes_before": len(model.graph.node), "nodes_after": len(simplified.graph.node)}


def tool_versions() -> Dict[str, str]:
    versions = {}
    for dist in ("paddle2onnx", "paddlepaddle", "onnx", "onnxsim", "onnxruntime"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "missing"
    return versions


def _tensor_infos(values, initializers=()) -> List[dict]:
    import onnx

    return [{"name": v.name,
             "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim],
             "dtype": str(onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))}
            for v in values if v.name not in initializers]


def export_onnx(model_dir, out_path, opset: int = 11) -> dict:
    """Paddle legacy inference model (fixed input shape) -> exact ONNX file at ``out_path``.

    Steps: paddle2onnx (opset ``opset``; it may raise the opset if an op needs it), repair of every
    adaptive pool whose windows differ from Paddle's, exact graph normalizations for onnx2tf
    (:func:`normalize_graph`, proven in ONNX Runtime), onnxsim (kept only if it validates), atomic
    write. Returns::

        {"path", "opset", "inputs": [{"name", "shape", "dtype"}], "outputs": [...same, shapes measured],
         "repairs": [one record per Paddle adaptive pool, see repair_adaptive_pools],
         "normalizations": [one record per pattern found, see normalize_graph],
         "normalization_check": {"max_abs", "tolerance"} or None when nothing was rewritten,
         "simplify": {"kept", "reason"?, "max_abs"?, ...}, "tool_versions": {...}, "paddle2onnx_log": str}
    """
    import onnx

    model_file = locate_model_files(model_dir).model
    program_info = read_program(model_file)
    for feed in program_info.feeds:
        if any(d <= 0 for d in feed.shape):
            raise EdgematteError(f"{model_file}: input '{feed.name}' has shape {list(feed.shape)}; export needs a "
                                 f"fixed input shape (freeze it first)")
    adaptive_ops = read_adaptive_pools(parse_program(program_info.program_bytes, str(model_file)), str(model_file))
    with tempfile.TemporaryDirectory(prefix="edgematte-onnx-") as tmp:
        tmp = Path(tmp)
        raw_path = tmp / "paddle2onnx.onnx"
        log = run_paddle2onnx(model_dir, raw_path, opset)
        model = onnx.load(str(raw_path))
        repairs = repair_adaptive_pools(model, adaptive_ops, where=str(model_file))
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:
            raise AssertionError(f"repaired graph fails the ONNX checker: {e}") from e
        feed = _random_feed(model)
        reference_outputs = _run_onnx(model, feed)
        normalizations, normalization_check = _normalize_checked(model, feed, reference_outputs)
        model, simplify_note = _simplify(model, tmp, reference_outputs, feed)

        outputs = _tensor_infos(model.graph.output)
        for info, value in zip(outputs, reference_outputs):
            info["shape"] = list(value.shape)
        with atomic_path(out_path, suffix=".onnx") as target:
            onnx.save(model, str(target))
    return {
        "path": str(out_path),
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset),
        "inputs": _tensor_infos(model.graph.input, {i.name for i in model.graph.initializer}),
        "outputs": outputs,
        "repairs": repairs,
        "normalizations": normalizations,
        "normalization_check": normalization_check,
        "simplify": simplify_note,
        "tool_versions": tool_versions(),
        "paddle2onnx_log": log,
    }
