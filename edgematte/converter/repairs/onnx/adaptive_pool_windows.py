"""Paddle's adaptive pools, which paddle2onnx writes with the wrong windows, rebuilt from exact windows.

paddle2onnx 1.3.1 writes Paddle's adaptive pooling (``adaptive_avg_pool2d``, ``adaptive_max_pool2d``
and ``interpolate(mode='area')``, which Paddle computes as adaptive average pooling) as ONE pooling
node with stride ``floor(in/out)`` and kernel ``in - (out-1)*stride``. That is exact only when the
windows happen to coincide with Paddle's: Paddle's output bin ``i`` of ``out`` covers
``[floor(i*in/out), ceil((i+1)*in/out))``. Otherwise the numbers are silently wrong (8 -> 6 bins:
off by up to 0.76), and when ``out > in`` the stride is 0, which kills ONNX Runtime and ONNX shape
inference with SIGFPE (PP-MattingV2 at 256x256 input: a 4x4 grid pooled to 6x6).

This repair finds every adaptive pool the Paddle program asked for (``context.paddle_program``),
computes the windows the ONNX node really averages, and where they differ replaces the node by an
exact equivalent built from explicit pooling windows, separably over H and W: per distinct window size
one stride-1 pooling node, then one Gather picking the windows Paddle uses (and a Concat when sizes
differ). No dense matrix product: pooling and gathering quantize like any other pooling (docs/toolchain.md,
TFLite INT8). Layout: NCHW only (PaddleSeg's matting models); shapes must be static.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....core.errors import EdgematteError
from ..base import ONNX, Match, Repair, RepairContext
from .graph import attr, infer_shapes, opset_version

# [start, end) of one pooling window along one axis.
Window = Tuple[int, int]

POOL_NODE_TYPES = ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool")
# An inserted replacement must reproduce exact adaptive pooling this closely on random data.
REPAIR_SELF_CHECK_TOLERANCE = 1e-5


@dataclass(frozen=True)
class AdaptivePoolOp:
    """One adaptive pooling op of the Paddle program: what Paddle computes, as Paddle named it.

    ``kind`` is ``"avg"`` or ``"max"``; ``output_hw`` the bin counts (Paddle's ``ksize``);
    ``input_name`` / ``output_name`` the Paddle variable names, which paddle2onnx keeps as ONNX
    tensor names unless its optimizer folded a neighbouring op; ``input_shape`` the input's shape as the
    (frozen) program declares it, used where ONNX shape inference cannot tell (``None``: not static).
    """

    paddle_type: str
    kind: str
    input_name: str
    output_name: str
    output_hw: Tuple[int, int]
    input_shape: Optional[Tuple[int, ...]] = None


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
        dims = {v.name: tuple(int(d) for d in v.type.lod_tensor.tensor.dims) for v in block.vars}
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
            declared = dims.get(inputs["X"][0])
            static = declared if declared and len(declared) == 4 and min(declared) > 0 else None
            found.append(AdaptivePoolOp(op.type, kind, inputs["X"][0], outputs["Out"][0], bins, static))
    return found


# --------------------------------------------------------------------------------------------------
# The ONNX side: locate, measure, replace


def node_windows(node, in_hw: Tuple[int, int]) -> Optional[Tuple[List[Window], List[Window]]]:
    """The (rows, cols) windows an ONNX pooling node averages/maxes over an ``in_hw`` input.

    ``None`` when the node is not a plain window pool this can describe (padding, ceil mode,
    dilation, a zero stride): such a node is never proven exact and is always replaced.
    """
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
        return [(0, in_hw[0])], [(0, in_hw[1])]
    kernel = list(attr(node, "kernel_shape", []))
    strides = list(attr(node, "strides", [1] * len(kernel)))
    pads = list(attr(node, "pads", [0] * 2 * len(kernel)))
    dilations = list(attr(node, "dilations", [1] * len(kernel)))
    auto_pad = attr(node, "auto_pad", b"NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    plain = (
        len(kernel) == 2
        and auto_pad in ("NOTSET", "VALID")
        and not any(pads)
        and not attr(node, "ceil_mode", 0)
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


def _static_shapes(model, leave_out: Sequence[str], where: str) -> Dict[str, Tuple[int, ...]]:
    """Tensor name -> static shape by ONNX shape inference, without the nodes whose output is in ``leave_out``.

    Unrepaired adaptive pools must be left out: a zero stride makes ONNX's shape inference divide by
    zero and kill the whole process (SIGFPE), and their wrong output sizes must not propagate. The rest goes
    through :func:`.graph.infer_shapes` (refused if it has such attributes too; in the export's native child).
    """
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    skip = set(leave_out)
    kept = [n for n in model.graph.node if n.output[0] not in skip]
    del probe.graph.node[:]
    probe.graph.node.extend(kept)
    try:
        inferred = infer_shapes(probe, where, data_prop=True)
    except EdgematteError:  # a refused graph or a crash: plain inference would not fare better
        raise
    except Exception:  # data propagation is an extra; plain inference still gives most shapes
        inferred = infer_shapes(probe, where)
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
    opset = opset_version(model)
    pending = _locate(model, ops, where)
    claimed = {name for _, name in pending}
    for node in model.graph.node:
        if node.op_type in ("AveragePool", "MaxPool") and node.output[0] not in claimed:
            if any(s < 1 for s in attr(node, "strides", [1])):
                raise EdgematteError(f"{where}: pooling node {node.name} has a zero stride and is not an "
                                     f"adaptive pool of the Paddle program")
    records = []
    # Shapes come in waves: a pool downstream of another unrepaired pool has no known input shape yet. Where
    # ONNX shape inference cannot tell (a Resize whose sizes it does not fold), the frozen program's shape does.
    while pending:
        shapes = _static_shapes(model, [name for _, name in pending], where)
        producers = {n.output[0]: n for n in model.graph.node}

        def input_shape(op, name):
            inferred = shapes.get(producers[name].input[0], ())
            return tuple(inferred) if len(inferred) == 4 else op.input_shape

        ready = [(op, name) for op, name in pending if input_shape(op, name) is not None]
        if not ready:
            op, name = pending[0]
            raise EdgematteError(f"{where}: the input shape of adaptive pool {op.input_name} -> {op.output_name} "
                                 f"is not static; freeze the input shape first")
        for op, name in ready:
            records.append(_repair_one(model, op, producers[name], input_shape(op, name)[2:], opset))
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
        reason = (f"paddle2onnx wrote {node.op_type} kernel={list(attr(node, 'kernel_shape', []))} "
                  f"strides={list(attr(node, 'strides', []))}, not a valid window pool for "
                  f"{list(in_hw)} -> {list(out_hw)}")
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



def apply(model, context: RepairContext) -> List[Match]:
    """:func:`repair_adaptive_pools` for the adaptive pools of ``context.paddle_program``; one match per pool.

    Each record: ``action`` ``"replaced"`` (changed) or ``"kept"`` (already exact), see :func:`_repair_one`.
    """
    if context.paddle_program is None:
        raise ValueError("adaptive_pool_windows: the context must carry the Paddle program the graph came from "
                         "(which pools are adaptive cannot be told from the ONNX graph)")
    ops = read_adaptive_pools(context.paddle_program, context.where)
    return [Match(r["action"] == "replaced", r) for r in repair_adaptive_pools(model, ops, context.where)]


REPAIR = Repair(
    name="adaptive_pool_windows",
    applies_to=ONNX,
    matches="the pooling node paddle2onnx wrote for each adaptive pool of the Paddle program "
            "(adaptive_avg/max_pool2d, interpolate mode='area'); those whose windows differ from Paddle's change",
    changes="replaces each such node by exact windows: per axis one stride-1 pool per window size, "
            "then Concat + Gather of Paddle's windows (self-checked in ONNX Runtime)",
    why="paddle2onnx 1.3.1 writes adaptive pooling as one pool of stride floor(in/out): uneven bins get the wrong "
        "windows (PP-MattingV2 at 512x512: alpha off by 0.138 max abs) and more bins than inputs get stride 0, "
        "on which ONNX Runtime dies with SIGFPE (PP-HumanMatting at 512x512, PP-MattingV2 at 256x256)",
    preserves_outputs=False,
    apply=apply,
)
