"""Channel Splits with unused outputs, whose unused channels are computed anyway, sliced as early as exactly possible.

Not a tool bug: an optimization. RVM ends in a Deep Guided Filter at full resolution: ``A`` and ``b``
(``[N, 4, h, w]``) are bilinearly upsampled to ``[N, 4, H, W]``, ``out = A_up * Concat([img, mean(img)]) + b_up``
and ``out`` is Split on channels into the foreground residual (3) and the alpha (1). With the foreground outputs
pruned the Split's 3-channel output is unread, yet every node before it still computes 4 channels at
``H x W``. Each of those nodes computes every channel from the same channel of its inputs, so computing only
the channels read is exact.

The repair (1) writes each Split on axis 1 with unread outputs as a ``Slice`` of every contiguous run of read
outputs (a run of several keeps a smaller Split after its Slice), then (2) moves each such channel Slice above
the node producing its input, as long as that node is channel-wise (below) and only these Slices read its
output (no work another reader still needs is duplicated), and (3) drops the nodes and constants nothing reads
any more. Only Slices born from a Split move: the graph's own Slices stay where paddle2onnx put them.

Channel-wise nodes, each exact because channel ``c`` of its output is a function of channel ``c`` of its inputs
(or of an operand broadcast over channels, read whole):

- elementwise ``Add Sub Mul Div Max Min PRelu``: an operand whose channel axis (numpy broadcasting, aligned on
  the right) has the output's channel count is sliced, one of size 1 or without that axis is kept whole;
- unary elementwise ops (:data:`UNARY`; ``Clip`` with constant or absent bounds);
- ``Resize`` that keeps the channel count (constant ``scales`` with a channel entry of 1, or ``sizes`` whose
  channel entry is the input's: replaced by a constant of the sliced output's static shape, since paddle2onnx
  computes it from ``Shape`` at run time): a channel scale of exactly 1 maps output channel c to input channel c
  under every coordinate mode but ``tf_crop_and_resize`` (its ``roi`` can crop channels: left alone);
- ``Concat`` on axis 1: the range comes from the source(s) it falls in. A range inside one source is that
  source (sliced, or whole), which costs nothing however many others read the Concat.

Anything else stops a Slice (a Conv mixes channels; its weights are never touched). Shapes must be static (ONNX
shape inference with data propagation, which follows paddle2onnx's ``Shape -> Slice -> Concat`` resize sizes).

In ONNX Runtime (1.23) the rewritten graph gives the bits of the graph before wherever both run the same kernels:
always with ORT's layout optimizations off (``ORT_ENABLE_EXTENDED`` and below). The unary ops listed were
measured position-independent there (the same bits whatever offset or thread chunk an element falls at); Log,
Sin, Cos, Elu, Celu, Selu and Softplus were not (:data:`NOT_BIT_STABLE`: Eigen rounds its vector body and scalar
tail differently), so they stop a Slice. At ORT's default level its NCHWc layout transformation runs a bilinear
Resize of a Conv output (RVM's ``A``, its 4 channels padded to the SIMD block: 16 on AVX-512) with its blocked
``Upsample`` kernel, but the same Resize of the sliced channel with the plain one, which rounds differently: RVM's
alpha moves by ~1e-7 at 128x128 (width 0.25) and by up to 1.5e-5 at 720x1280 (seed-0 weights, inputs in
[-1, 1]): two float32 roundings of the same function. ``converter/onnx.py`` therefore proves normalizations with
the layout optimizations off (bit for bit here); the ONNX artefact's parity runs at the default level.
"""

from typing import Dict, List, Optional, Tuple

import numpy as np

from ..base import ONNX, Match, Repair, RepairContext
from .graph import attr, constant_value, drop_unread_constants, infer_shapes, opset_version, unique_name

AXIS = 1  # channels, NCHW
BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu")
UNARY = ("Relu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "ThresholdedRelu", "Neg",
         "Abs", "Exp", "Sqrt", "Reciprocal", "Erf", "Softsign", "Floor", "Ceil", "Round", "Sign", "Identity")
# Channel-wise too, but ORT 1.23's kernels give an element other bits at another position in the tensor.
NOT_BIT_STABLE = ("Log", "Sin", "Cos", "Elu", "Celu", "Selu", "Softplus")


def _subgraph_reads(node) -> set:
    """Every tensor name read inside ``node``'s subgraphs (If/Loop/Scan bodies may read outer tensors)."""
    names, graphs = set(), [a.g for a in node.attribute if a.HasField("g")]
    graphs += [g for a in node.attribute for g in a.graphs]
    while graphs:
        for inner in graphs.pop().node:
            names.update(inner.input)
            graphs += [a.g for a in inner.attribute if a.HasField("g")] + [g for a in inner.attribute for g in a.graphs]
    return names


def _live(model) -> Tuple[set, Dict[str, list]]:
    """``(needed, readers)``: the tensors the graph outputs depend on (graph outputs and what live nodes read), and
    per tensor the live nodes reading it. A node is live when one of its outputs is needed (graph order is
    topological, so one backward pass decides)."""
    needed, live = {o.name for o in model.graph.output}, []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output if o):
            live.append(node)
            needed.update(name for name in (*node.input, *_subgraph_reads(node)) if name)
    readers: Dict[str, list] = {}
    for node in reversed(live):
        for name in {*node.input, *_subgraph_reads(node)} - {""}:
            readers.setdefault(name, []).append(node)
    return needed, readers


def _static_shapes(model, where: str) -> Tuple[Dict[str, List[int]], Dict[str, int]]:
    """Every tensor's static shape and element type that ONNX shape inference with data propagation (or the graph
    itself) knows; tensors with an unknown dimension are left out of the shapes."""
    inferred = infer_shapes(model, where, data_prop=True)
    shapes, types = {}, {}
    for info in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        types[info.name] = info.type.tensor_type.elem_type
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [int(d.dim_value) for d in dims]
    for tensor in model.graph.initializer:
        shapes[tensor.name], types[tensor.name] = list(tensor.dims), tensor.data_type
    return shapes, types


def _split_sizes(model, node, channels: Optional[int]) -> Optional[List[int]]:
    """The channel count of each output of Split ``node`` (attribute before opset 13, input since, else equal
    parts with the last one smaller, as opset 18 ``num_outputs`` splits); ``None`` when it cannot be told."""
    sizes = attr(node, "split")
    if not sizes and len(node.input) > 1 and node.input[1]:
        value = constant_value(model, node.input[1])
        if value is None:
            return None
        sizes = value.reshape(-1).tolist()
    if not sizes:
        if channels is None:
            return None
        part = -(-channels // len(node.output))
        sizes = [max(0, min(part, channels - i * part)) for i in range(len(node.output))]
    return [int(s) for s in sizes]


def _name(node) -> str:
    """``"OpType 'name'"`` for records (the first output when the node has no name)."""
    return f"{node.op_type} '{node.name or node.output[0]}'"


def _split_candidates(model) -> List[str]:
    """The first outputs of the Splits on a possibly channel axis (1, or negative) with some outputs read and
    some read by nothing (graph outputs count as read; nodes no graph output depends on do not)."""
    needed, _ = _live(model)
    return [n.output[0] for n in model.graph.node if n.op_type == "Split" and n.domain in ("", "ai.onnx")
            and (attr(n, "axis", 0) == AXIS or attr(n, "axis", 0) < 0)
            and 0 < sum(o in needed for o in n.output) < len(n.output)]


def _topological(nodes: list) -> list:
    """``nodes`` in an order where each comes after the producers of what it reads, as close to the given order as
    that allows (a Slice this rewrite shares between two readers may have been placed after one of them)."""
    import heapq

    produced_by = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waiting = [{produced_by[name] for name in {*n.input, *_subgraph_reads(n)} if name in produced_by} - {i}
               for i, n in enumerate(nodes)]
    unlocks: Dict[int, list] = {}
    for i, deps in enumerate(waiting):
        for d in deps:
            unlocks.setdefault(d, []).append(i)
    ready = [i for i, deps in enumerate(waiting) if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for j in unlocks.get(i, []):
            waiting[j].discard(i)
            if not waiting[j]:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        raise AssertionError("channel_slice_pushdown made a cycle")  # a bug here, not in the model
    return order


class _Pushdown:
    """The rewrite of one model, in place (see the module docstring); :func:`push_channel_slices` drives it."""

    def __init__(self, model, where: str):
        self.model, self.where, self.opset = model, where, opset_version(model)
        self.shapes, self.types = _static_shapes(model, where)
        graph = model.graph
        self.taken = {name for n in graph.node for name in (*n.input, *n.output, n.name)}
        self.taken |= {t.name for t in graph.initializer} | {v.name for v in (*graph.input, *graph.output)}
        self.had_value_info = len(graph.value_info) > 0
        # channel Slices this rewrite made that may move: output -> (input, start, end, the Split they came from)
        self.movable: Dict[str, Tuple[str, int, int, str]] = {}
        self.cache: Dict[tuple, str] = {}  # (input, axis, start, end) -> a Slice output made here
        self.new_tensors: List[str] = []
        self.moved: Dict[str, List[str]] = {}  # per Split: the nodes its Slices moved above
        self.stops: Dict[str, str] = {}  # per movable Slice output: why it stays
        self.read_by_removed: set = set()

    # ---- building blocks

    def _constant(self, value: np.ndarray, name: str) -> str:
        import onnx

        name = unique_name(name, self.taken)
        self.model.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
        return name

    def _slice(self, x: str, start: int, end: int, origin: str, axis: int = AXIS, out: Optional[str] = None):
        """``(tensor, nodes)``: channels ``[start, end)`` along ``axis`` of ``x``: ``x`` itself when that is all
        of it, an equal Slice this rewrite already made, or a new Slice (into ``out`` when given)."""
        import onnx

        shape = list(self.shapes[x])
        if out is None and (start, end) == (0, shape[axis]):
            return x, []
        key = (x, axis, start, end)
        if out is None and key in self.cache:
            return self.cache[key], []
        out = out or unique_name(f"{x}/channels_{start}_{end}", self.taken)
        node_name = unique_name(f"{out}/slice", self.taken)
        if self.opset >= 10:  # starts/ends/axes are inputs since opset 10
            operands = [self._constant(np.array([v], np.int64), f"{out}/{part}")
                        for part, v in (("starts", start), ("ends", end), ("axes", axis))]
            node = onnx.helper.make_node("Slice", [x, *operands], [out], name=node_name)
        else:
            node = onnx.helper.make_node("Slice", [x], [out], name=node_name, starts=[start], ends=[end], axes=[axis])
        shape[axis] = end - start
        self.shapes[out], self.types[out] = shape, self.types.get(x, 0)
        self.new_tensors.append(out)
        self.cache[key] = out
        if axis == AXIS:
            self.movable[out] = (x, start, end, origin)
        return out, [node]

    def _replace(self, output: str, new_nodes: list) -> None:
        """Put ``new_nodes`` where the node producing ``output`` is, instead of it, in topological order."""
        nodes = list(self.model.graph.node)
        at = next(i for i, n in enumerate(nodes) if output in n.output)
        self.read_by_removed.update(nodes[at].input)
        del self.model.graph.node[:]
        self.model.graph.node.extend(_topological(nodes[:at] + new_nodes + nodes[at + 1:]))

    def sweep(self) -> None:
        """Drop every node no graph output depends on (their inputs are remembered for the constants)."""
        needed, _ = _live(self.model)
        nodes = list(self.model.graph.node)
        kept = [n for n in nodes if any(o in needed for o in n.output if o)]
        if len(kept) != len(nodes):
            self.read_by_removed.update(name for n in nodes if not any(o in needed for o in n.output if o)
                                        for name in n.input)
            del self.model.graph.node[:]
            self.model.graph.node.extend(kept)
        self.cache = {key: out for key, out in self.cache.items() if out in needed}
        self.movable = {out: value for out, value in self.movable.items() if out in needed}

    # ---- step 1: Splits

    def rewrite_split(self, first_output: str) -> dict:
        """The Split writing ``first_output`` as Slices of its read outputs' channel runs (a run of several keeps a
        smaller Split after its Slice); one record (``action``, ``reason``), ``{}`` when not on the channels."""
        node = next(n for n in self.model.graph.node if n.op_type == "Split" and n.output[0] == first_output)
        x, label = node.input[0], node.name or node.output[0]
        shape, axis = self.shapes.get(x), attr(node, "axis", 0)
        if shape is not None and axis % len(shape) != AXIS:
            return {}
        record = {"onnx_node": label, "input": x, "input_shape": shape}
        sizes = _split_sizes(self.model, node, shape[AXIS] if shape else None)
        if sizes is None or shape is None or len(sizes) != len(node.output):
            return {**record, "action": "left", "reason": "the input shape or the split sizes are not static"}
        needed, _ = _live(self.model)
        used = [o in needed for o in node.output]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        runs: List[List[int]] = []
        for i in (i for i, read in enumerate(used) if read):
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        nodes = []
        for run in runs:
            start, end = offsets[run[0]], offsets[run[-1] + 1]
            out = node.output[run[0]] if len(run) == 1 else unique_name(f"{x}/channels_{start}_{end}", self.taken)
            nodes += self._slice(x, start, end, label, out=out)[1]
            if len(run) > 1:
                nodes.append(self._smaller_split(out, [sizes[i] for i in run], [node.output[i] for i in run], label))
        self._replace(node.output[0], nodes)
        self.moved[label] = []
        read = [[offsets[r[0]], offsets[r[-1] + 1]] for r in runs]
        return {**record, "action": "rewritten", "split": sizes, "read_channels": read,
                "reason": f"outputs {[i for i, r in enumerate(used) if not r]} are read by nothing: only channels "
                          f"{read} of {shape[AXIS]} are needed"}

    def _smaller_split(self, x: str, parts: List[int], outputs: List[str], label: str):
        import onnx

        name = unique_name(f"{label}/read_outputs", self.taken)
        if self.opset >= 13:  # split sizes are an input since opset 13
            parts_name = self._constant(np.array(parts, np.int64), f"{name}/split")
            return onnx.helper.make_node("Split", [x, parts_name], outputs, name=name, axis=AXIS)
        return onnx.helper.make_node("Split", [x], outputs, name=name, axis=AXIS, split=parts)

    # ---- step 2: moving the Slices up

    def push_once(self) -> bool:
        """Move the movable Slices of one tensor above its producer; ``False`` when none can move any more."""
        _, readers = _live(self.model)
        producers = {o: n for n in self.model.graph.node for o in n.output if o}
        outputs = {o.name for o in self.model.graph.output}
        for x in dict.fromkeys(value[0] for value in self.movable.values()):
            slices = [n for n in readers.get(x, []) if n.op_type == "Slice" and n.output[0] in self.movable]
            if not slices:  # cannot happen (sweep keeps only live Slices); guards the loop in push_channel_slices
                continue
            producer = producers.get(x)
            reason = self._stop_reason(producer, x, slices, readers.get(x, []), outputs)
            if reason is not None:
                self.stops.update({s.output[0]: reason for s in slices})
                continue
            for s in slices:
                _, start, end, origin = self.movable.pop(s.output[0])
                self.moved[origin] = list(dict.fromkeys([*self.moved.get(origin, []), _name(producer)]))
                if producer.op_type == "Concat":
                    self._move_above_concat(producer, s.output[0], start, end, origin)
                else:
                    self._move_above(producer, s.output[0], start, end, origin)
            self.sweep()
            return True
        return False

    def _stop_reason(self, producer, x: str, slices: list, readers: list, outputs: set) -> Optional[str]:
        """Why the channel Slices ``slices`` of ``x`` cannot move above ``producer`` (``None``: they can)."""
        if producer is None:
            return "a graph input or initializer"
        what, op = _name(producer), producer.op_type
        if producer.domain not in ("", "ai.onnx"):
            return f"{what} is not a standard ONNX op"
        if len(self.shapes.get(x, [])) <= AXIS:
            return f"{what}: its output's shape is not static"
        if op == "Concat":
            reason = self._concat_reason(producer, x)
            if reason is None and all(len(self._concat_pieces(producer, *self.movable[s.output[0]][1:3])) == 1
                                      for s in slices):
                return None  # each range is (part of) one source: nothing is computed twice
        elif op in UNARY:
            reason = self._unary_reason(producer, x)
        elif op in BINARY:
            unknown = [name for name in producer.input if self._operand_axis(name, x) == "unknown"]
            reason = f"{what}: operand '{unknown[0]}' has no static shape" if unknown else None
        elif op == "Resize":
            reason = self._resize_reason(producer, x)
        elif op in NOT_BIT_STABLE:
            reason = f"{what}: ONNX Runtime rounds it by position in the tensor (a slice would change bits)"
        else:
            mixes = " (it mixes channels)" if op in ("Conv", "ConvTranspose", "MatMul", "Gemm") else ""
            reason = f"{what} is not channel-wise{mixes}"
        if reason is not None:
            return reason
        others = sorted({_name(n) for n in readers if all(n is not s for s in slices)})
        if x in outputs or others:
            return f"{what}: its output is also read by {', '.join(others + ['a graph output'] * (x in outputs))}"
        return None

    def _unary_reason(self, node, x: str) -> Optional[str]:
        if self.shapes.get(node.input[0]) != self.shapes[x]:
            return f"{_name(node)}: its input's shape is not static"
        bounds = [name for name in node.input[1:] if name]
        if node.op_type == "Clip" and any(constant_value(self.model, name) is None for name in bounds):
            return f"{_name(node)}: its bounds are not constant"
        return None

    def _operand_axis(self, operand: str, x: str):
        """The axis of ``operand`` aligned with ``x``'s channels when it has ``x``'s channel count (slice it
        there), ``None`` when it broadcasts over channels (read it whole), ``"unknown"`` without a static shape."""
        shape, rank = self.shapes.get(operand), len(self.shapes[x])
        if shape is None:
            return "unknown"
        axis = AXIS - (rank - len(shape))  # numpy broadcasting aligns the shapes on the right
        return None if axis < 0 or shape[axis] == 1 else axis

    def _resize_inputs(self, node) -> Tuple[str, str]:
        """``(scales, sizes)`` input names of a Resize ('' when absent): opset 10 has ``(X, scales)`` only."""
        if self.opset < 11:
            return node.input[1], ""
        return (node.input[2] if len(node.input) > 2 else ""), (node.input[3] if len(node.input) > 3 else "")

    def _resize_reason(self, node, x: str) -> Optional[str]:
        what = _name(node)
        if attr(node, "coordinate_transformation_mode", b"half_pixel") == b"tf_crop_and_resize":
            return f"{what}: tf_crop_and_resize (its roi may crop channels)"
        if attr(node, "axes") is not None or attr(node, "keep_aspect_ratio_policy", b"stretch") != b"stretch":
            return f"{what}: an axes attribute or an aspect ratio policy (opset 18) is not handled"
        source = self.shapes.get(node.input[0])
        if source is None or len(source) != len(self.shapes[x]):
            return f"{what}: its input's shape is not static"
        if source[AXIS] != self.shapes[x][AXIS]:
            return f"{what} resizes channels ({source[AXIS]} -> {self.shapes[x][AXIS]})"
        scales_name, sizes_name = self._resize_inputs(node)
        if not sizes_name:
            scales = constant_value(self.model, scales_name) if scales_name else None
            if scales is None or scales.size <= AXIS:
                return f"{what}: its scales are not constant"
            if float(scales.reshape(-1)[AXIS]) != 1.0:
                return f"{what} scales channels by {float(scales.reshape(-1)[AXIS])}"
        return None  # sizes: the static output shape has the input's channel count, so sizes[1] does

    def _concat_reason(self, node, x: str) -> Optional[str]:
        rank = len(self.shapes[x])
        if attr(node, "axis", 0) % rank != AXIS:
            return f"{_name(node)} joins axis {attr(node, 'axis', 0)}, not the channels"
        if any(len(self.shapes.get(name, [])) != rank for name in node.input):
            return f"{_name(node)}: a source's shape is not static"
        return None

    def _concat_pieces(self, node, start: int, end: int) -> List[Tuple[str, int, int]]:
        """The sources of Concat ``node`` that channels ``[start, end)`` of its output fall in, each with its own
        channel range."""
        pieces, offset = [], 0
        for name in node.input:
            count = self.shapes[name][AXIS]
            lo, hi = max(start, offset), min(end, offset + count)
            if lo < hi:
                pieces.append((name, lo - offset, hi - offset))
            offset += count
        return pieces

    def _move_above(self, producer, out: str, start: int, end: int, origin: str) -> None:
        """Replace the Slice writing ``out`` (channels ``[start, end)`` of ``producer``'s output) by ``producer``
        applied to the same channels of its inputs, writing ``out``."""
        import onnx

        x, nodes, inputs = producer.output[0], [], list(producer.input)
        if producer.op_type in BINARY:
            for i, operand in enumerate(producer.input):
                axis = self._operand_axis(operand, x)
                if axis is not None:
                    inputs[i], made = self._slice(operand, start, end, origin, axis=axis)
                    nodes += made
        else:  # unary, Resize: the data input only (Clip bounds, roi and scales are not per channel)
            inputs[0], made = self._slice(producer.input[0], start, end, origin)
            nodes += made
        if producer.op_type == "Resize" and self._resize_inputs(producer)[1]:
            # the sizes (paddle2onnx computes them from Shape at run time) become the sliced output's static shape
            inputs[3] = self._constant(np.array(self.shapes[out], np.int64), f"{out}/sizes")
        label = producer.name or producer.output[0]
        moved = onnx.helper.make_node(producer.op_type, inputs, [out],
                                      name=unique_name(f"{label}/channels_{start}_{end}", self.taken))
        moved.attribute.extend(producer.attribute)
        self._replace(out, nodes + [moved])

    def _move_above_concat(self, concat, out: str, start: int, end: int, origin: str) -> None:
        """Replace the Slice writing ``out`` (channels ``[start, end)`` of ``concat``'s output) by the sources'
        channels it covers: a Slice of one source, one source itself, or a Concat of pieces."""
        import onnx

        pieces = self._concat_pieces(concat, start, end)
        whole = len(pieces) == 1 and pieces[0][1:] == (0, self.shapes[pieces[0][0]][AXIS])
        if len(pieces) == 1 and not whole:
            self._replace(out, self._slice(*pieces[0], origin, out=out)[1])  # the same Slice, of the source
            return
        graph = self.model.graph
        hidden = out in {o.name for o in graph.output} or any(out in _subgraph_reads(n) for n in graph.node)
        if whole and not hidden:
            for node in graph.node:  # a whole source: its readers read the source itself
                for i, name in enumerate(node.input):
                    if name == out:
                        node.input[i] = pieces[0][0]
            self._replace(out, [])
            return
        nodes, parts = [], []
        for piece in pieces:
            part, made = self._slice(*piece, origin)
            parts.append(part)
            nodes += made
        op = "Concat" if len(parts) > 1 else "Identity"  # Identity: a whole source that is a graph output
        joined = onnx.helper.make_node(op, parts, [out], name=unique_name(f"{out}/{op.lower()}", self.taken),
                                       **({"axis": AXIS} if op == "Concat" else {}))
        self._replace(out, nodes + [joined])

    # ---- step 3: what is left

    def finish(self) -> None:
        """Drop unread nodes and constants, the value_info of tensors gone, and describe the new tensors the way
        the graph described its own (when it did)."""
        import onnx

        self.sweep()
        subgraph_reads = {name for n in self.model.graph.node for name in _subgraph_reads(n)}
        drop_unread_constants(self.model, self.read_by_removed - subgraph_reads)
        graph = self.model.graph
        present = {o for n in graph.node for o in n.output} | {v.name for v in graph.input}
        kept = [v for v in graph.value_info if v.name in present]
        del graph.value_info[:]
        graph.value_info.extend(kept)
        if self.had_value_info:
            described = {v.name for v in graph.value_info}
            graph.value_info.extend(onnx.helper.make_tensor_value_info(name, self.types[name], self.shapes[name])
                                    for name in self.new_tensors
                                    if name in present and name not in described and self.types.get(name))


def push_channel_slices(model, where: str = "model") -> List[dict]:
    """Rewrite, in place, every Split on axis 1 with unread outputs so that only the channels read are computed,
    as far up as channel-wise nodes allow (see the module docstring). Returns one record per such Split:
    ``action`` ``"rewritten"`` (with ``read_channels`` ``[[start, end], ...]``, ``moved_above``: the nodes now
    computed on those channels only, and ``stopped_at``: where each Slice stayed and why) or ``"left"`` (shapes
    or split sizes not static), with the ``reason``. A graph without such a Split is not touched (its shapes are
    not even inferred). ``where`` names the model in errors."""
    candidates = _split_candidates(model)
    if not candidates:
        return []
    rewrite = _Pushdown(model, where)
    records = [r for r in (rewrite.rewrite_split(first_output) for first_output in candidates) if r]
    if not any(r["action"] == "rewritten" for r in records):
        return records
    rewrite.sweep()
    while rewrite.push_once():
        pass
    rewrite.finish()
    stopped: Dict[str, List[str]] = {}
    for out, (x, _, _, origin) in rewrite.movable.items():
        stopped.setdefault(origin, []).append(f"'{x}': {rewrite.stops.get(out, 'nothing to move above')}")
    for record in records:
        if record["action"] == "rewritten":
            record["moved_above"] = rewrite.moved.get(record["onnx_node"], [])
            record["stopped_at"] = sorted(set(stopped.get(record["onnx_node"], [])))
    return records


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`push_channel_slices` as a repair: one match per Split with unread outputs, changed when
    ``"rewritten"``."""
    return [Match(r["action"] == "rewritten", r) for r in push_channel_slices(model, context.where)]


REPAIR = Repair(
    name="channel_slice_pushdown",
    applies_to=ONNX,
    matches="Split nodes on the channel axis with some outputs read by nothing (e.g. RVM's foreground/alpha Split "
            "once the foreground outputs are pruned)",
    changes="writes each as Slices of the channels read and moves those Slices above channel-wise nodes "
            "(elementwise ops, Resize keeping the channel count, channel Concat) read only by them; nodes and "
            "constants left unread are dropped",
    why="not a tool bug: an optimization. With its foreground outputs pruned (convert --alpha-only), RVM still "
        "upsamples, multiplies and adds all 4 channels of its deep guided filter at full resolution to read 1: at "
        "720x1280 in ONNX Runtime (2 threads) those nodes took 74 ms of a 270 ms frame (kernel time; ORT pads the "
        "4 channels to 16 for its NCHWc upsampling), 18 ms on the alpha channel alone; the frame's median fell by "
        "59-150 ms (e.g. 463 -> 365 ms) in 8 interleaved rounds on a shared, loaded host",
    preserves_outputs=True,
    apply=apply,
)
