"""The channel_slice_pushdown repair: a channel Split with unread outputs computes only the channels read, and every
graph output keeps its bits.

Synthetic graphs are shaped like RVM's deep guided filter tail (``A``, ``b`` at 8x8 with 4 channels, bilinear x4 to
32x32, ``A_up * Concat([img, mean(img)]) + b_up``, Split [3, 1], only the clipped alpha an output), in the forms
paddle2onnx writes (Split sizes as an attribute or an input, Resize by scales, by sizes, or by sizes computed from
``Shape`` at run time). The reference for every rewrite is ONNX Runtime on the graph before it, on inputs holding
NaN, +-inf and -0.0. The real model is RVM (seeded, width 0.25) converted to ONNX at 128x128 by the converter,
its foreground output removed.

ONNX Runtime's default optimization level adds its NCHWc layout transformation, which runs a bilinear Resize whose
input comes from a Conv as its own blocked ``Upsample`` kernel (rounded differently from the plain Resize kernel a
sliced tensor gets): there the alpha moves by float rounding (RVM, width 0.25, 128x128: 0.9e-7 to 1.2e-7 by
feed; full width at 720x1280: up to 1.5e-5). With the layout transformation off (``ORT_ENABLE_EXTENDED``), both
graphs run the same kernels and agree bit for bit.
"""

import collections
import json
import time

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgematte.converter.repairs.base import RepairContext
from edgematte.converter.repairs.onnx import channel_slice_pushdown as repair
from edgematte.converter.repairs.onnx.graph import attr

LOW, FULL = 8, 32
EXTENDED = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # every optimization but the NCHWc layout


def _model(nodes, inputs, outputs, initializers=(), opset=13):
    model = helper.make_model(
        helper.make_graph(nodes, "tail", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                          initializer=list(initializers)),
        opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _f32(name, values):
    return numpy_helper.from_array(np.array(values, np.float32), name)


def _resize(x, out, by, channels=4, scales=(1, 1, 4, 4), mode="linear"):
    """Bilinear (``mode``) half_pixel Resize of ``x`` to 32x32 ``by`` constant ``"scales"``, constant ``"sizes"``, or
    ``"shape"``: sizes = Concat(Slice(Shape(x), 0, 2), [32, 32]), as paddle2onnx writes them. Returns (nodes,
    initializers)."""
    linear = {"mode": mode, "coordinate_transformation_mode": "half_pixel"}
    if by == "scales":
        return ([helper.make_node("Resize", [x, "empty", f"{out}/scales"], [out], name=out, **linear)],
                [_f32(f"{out}/scales", scales)])
    if by == "sizes":
        return ([helper.make_node("Resize", [x, "empty", "empty", f"{out}/sizes"], [out], name=out, **linear)],
                [_i64(f"{out}/sizes", [1, channels, FULL, FULL])])
    nodes = [helper.make_node("Shape", [x], [f"{out}/shape"]),
             helper.make_node("Slice", [f"{out}/shape", "zero", "two"], [f"{out}/nc"]),
             helper.make_node("Concat", [f"{out}/nc", "full_hw"], [f"{out}/sizes"], axis=0),
             helper.make_node("Resize", [x, "empty", "empty", f"{out}/sizes"], [out], name=out, **linear)]
    return nodes, []


def _split(x, outputs, parts, opset):
    if opset >= 13:
        node = helper.make_node("Split", [x, "split_sizes"], outputs, name="split", axis=1)
        return [node], [_i64("split_sizes", parts)]
    return [helper.make_node("Split", [x], outputs, name="split", axis=1, split=parts)], []


COMMON = [_f32("empty", []), _i64("zero", [0]), _i64("two", [2]), _i64("full_hw", [FULL, FULL]),
          _f32("lo", 0.0), _f32("hi", 1.0)]


def _rvm_tail(opset=13, by="scales", conv=False, extra_reader=False, conv_before_split=False, a_channels=4,
              broadcast=False):
    """The deep guided filter tail (see the module docstring). ``conv``: A and b are 1x1 Convs (3 -> 4 channels) of an
    8x8 input ``x``, else graph inputs. The foreground branch (Split output 0 -> + img -> Clip) is left in the graph,
    read by nothing, as a pruned output leaves it. Variants: ``extra_reader`` (the 4-channel sum is also a graph
    output's input), ``conv_before_split`` (a 4 -> 4 Conv between the sum and the Split), ``a_channels=2`` (A's
    Resize, nearest, scales channels 2 -> 4), ``broadcast`` (the sum is also scaled by a [1, 1, 32, 32] gain,
    shifted by a [4, 1, 1] bias and by a scalar)."""
    rng = np.random.default_rng(7)
    inputs = [("img", [1, 3, FULL, FULL])]
    nodes, inits = [], list(COMMON)
    if conv:
        inputs.append(("x", [1, 3, LOW, LOW]))
        for name in ("A", "b"):
            inits.append(_f32(f"w_{name}", rng.standard_normal((4, 3, 1, 1))))
            nodes.append(helper.make_node("Conv", ["x", f"w_{name}"], [name], name=f"conv_{name}"))
    else:
        inputs += [("A", [1, a_channels, LOW, LOW]), ("b", [1, 4, LOW, LOW])]
    for name in ("A", "b"):
        channel_scale = 4 / a_channels if name == "A" else 1
        # ORT's linear Resize refuses to scale channels; nearest does it
        made, consts = _resize(name, f"{name}_up", by, scales=(1, channel_scale, 4, 4),
                               mode="linear" if channel_scale == 1 else "nearest")
        nodes += made
        inits += consts
    nodes += [helper.make_node("ReduceMean", ["img"], ["mean"], name="mean", axes=[1], keepdims=1),
              helper.make_node("Concat", ["img", "mean"], ["fine"], name="fine", axis=1),
              helper.make_node("Mul", ["A_up", "fine"], ["scaled"], name="mul"),
              helper.make_node("Add", ["scaled", "b_up"], ["out"], name="add")]
    outputs, split_input = [("alpha", [1, 1, FULL, FULL])], "out"
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["out"], ["out_relu"], name="other_reader"))
        outputs.append(("out_relu", [1, 4, FULL, FULL]))
    if conv_before_split:
        inits.append(_f32("w_mix", rng.standard_normal((4, 4, 1, 1))))
        nodes.append(helper.make_node("Conv", ["out", "w_mix"], ["mixed"], name="mix"))
        split_input = "mixed"
    if broadcast:
        inits += [_f32("gain", rng.standard_normal((1, 1, FULL, FULL))), _f32("bias", rng.standard_normal((4, 1, 1))),
                  _f32("shift", 0.25)]
        nodes += [helper.make_node("Mul", [split_input, "gain"], ["gained"], name="gain_mul"),
                  helper.make_node("Add", ["gained", "bias"], ["biased"], name="bias_add"),
                  helper.make_node("Sub", ["biased", "shift"], ["shifted"], name="shift_sub")]
        split_input = "shifted"
    made, consts = _split(split_input, ["fgr", "pha"], [3, 1], opset)
    nodes += made + [helper.make_node("Add", ["fgr", "img"], ["fgr_img"], name="fgr_add"),
                     helper.make_node("Clip", ["fgr_img", "lo", "hi"], ["fgr_out"], name="fgr_clip"),
                     helper.make_node("Clip", ["pha", "lo", "hi"], ["alpha"], name="alpha_clip")]
    return _model(nodes, inputs, outputs, inits + consts, opset)


def _feed(model, seed=0):
    """Uniform [-2, 2] inputs with NaN, +-inf and -0.0 scattered through every channel."""
    rng = np.random.default_rng(seed)
    feed = {}
    for value in model.graph.input:
        x = rng.uniform(-2, 2, [d.dim_value for d in value.type.tensor_type.shape.dim]).astype(np.float32)
        flat = x.reshape(-1)
        for offset, special in enumerate((np.nan, np.inf, -np.inf, -0.0)):
            flat[offset::37] = special
        feed[value.name] = x
    return feed


def _run(model, feed, level=None, threads=1):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if level is not None:
        options.graph_optimization_level = level
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _shapes(model):
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.graph.value_info, *inferred.graph.output)}


def _rewrite_checked(model, level=None):
    """Apply the repair; the result passes the full ONNX checker, leaves no constant unread that was read before,
    and reproduces every output bit for bit on two feeds (ONNX Runtime at ``level``, default: its default).
    Returns the matches."""
    before = onnx.ModelProto()
    before.CopyFrom(model)
    matches = repair.REPAIR.apply(model, RepairContext(where="tail"))
    onnx.checker.check_model(model, full_check=True)
    assert _unread_initializers(model) <= _unread_initializers(before)
    for seed in (0, 1):
        feed = _feed(before, seed)
        expected, got = _run(before, feed, level), _run(model, feed, level)
        assert [o.name for o in model.graph.output] == [o.name for o in before.graph.output]
        assert all(_same_bits(a, b) for a, b in zip(expected, got))
    return matches


def _unread_initializers(model):
    return {t.name for t in model.graph.initializer} - {name for n in model.graph.node for name in n.input}


def _ops(model):
    return collections.Counter(n.op_type for n in model.graph.node)


def _readers(model, name):
    return [n.name or n.output[0] for n in model.graph.node if name in n.input]


@pytest.mark.parametrize("opset, by, conv", [(11, "scales", False), (13, "sizes", False), (14, "shape", False),
                                             (13, "scales", True), (14, "shape", True)])
def test_the_rvm_tail_computes_only_the_alpha_channel(opset, by, conv):
    model = _rvm_tail(opset, by, conv)

    matches = _rewrite_checked(model, level=EXTENDED if conv else None)

    assert [m.changed for m in matches] == [True]
    record = matches[0].record
    assert record["read_channels"] == [[3, 4]] and record["split"] == [3, 1]
    assert set(record["moved_above"]) == {"Add 'add'", "Mul 'mul'", "Resize 'A_up'", "Resize 'b_up'", "Concat 'fine'"}
    stop = "Conv 'conv_{}' is not channel-wise (it mixes channels)" if conv else "a graph input or initializer"
    assert record["stopped_at"] == sorted(f"'{name}': {stop.format(name)}" for name in ("A", "b"))
    # no Split, no Concat, no Shape arithmetic, no foreground branch: two 1-channel Resizes of slices of A and b
    assert _ops(model) == {"ReduceMean": 1, "Slice": 2, "Resize": 2, "Mul": 1, "Add": 1, "Clip": 1,
                           **({"Conv": 2} if conv else {})}
    shapes = _shapes(model)
    for resize in [n for n in model.graph.node if n.op_type == "Resize"]:
        (sliced,) = [n for n in model.graph.node if n.output[0] == resize.input[0]]
        assert sliced.op_type == "Slice" and sliced.input[0] in ("A", "b")
        assert shapes[sliced.output[0]] == [1, 1, LOW, LOW] and shapes[resize.output[0]] == [1, 1, FULL, FULL]
    (mul,) = [n for n in model.graph.node if n.op_type == "Mul"]
    assert "mean" in mul.input  # channel 3 of Concat([img, mean]) is the mean itself
    (add,) = [n for n in model.graph.node if n.op_type == "Add"]
    assert add.output[0] == "pha" and _readers(model, "pha") == ["alpha_clip"]
    gone = {"split_sizes", "A_up/sizes", "b_up/sizes"} | ({"zero", "two", "full_hw"} if by == "shape" else set())
    assert not gone & {t.name for t in model.graph.initializer}  # the Split's, the sizes' and the Shape chain's


def test_without_conv_the_default_ort_level_is_bit_exact_too_but_the_nchwc_layout_rounds_after_a_conv():
    """Without a Conv before the Resizes ORT runs the same kernels at every level (tested above at its default).
    After a Conv, its default NCHWc layout upsamples the 4-channel Conv output with its blocked kernel, the
    1-channel slice with the plain one: float rounding, not a different function."""
    model = _rvm_tail(13, "scales", conv=True)
    before = onnx.ModelProto()
    before.CopyFrom(model)
    repair.REPAIR.apply(model, RepairContext())
    feed = {k: np.nan_to_num(v, nan=0.5, posinf=2.0, neginf=-2.0) for k, v in _feed(before).items()}
    diff = float(np.abs(_run(before, feed)[0] - _run(model, feed)[0]).max())
    print(f"conv tail, ORT default level (NCHWc): alpha max abs {diff:.3g}")
    assert diff <= 1e-6


def test_a_sum_another_node_reads_stays_whole():
    model = _rvm_tail(13, "scales", extra_reader=True)

    matches = _rewrite_checked(model)

    record = matches[0].record
    assert record["action"] == "rewritten" and record["moved_above"] == []
    assert record["stopped_at"] == ["'out': Add 'add': its output is also read by Relu 'other_reader'"]
    assert _ops(model) == {"Resize": 2, "ReduceMean": 1, "Concat": 1, "Mul": 1, "Add": 1, "Relu": 1, "Slice": 1,
                           "Clip": 1}
    (sliced,) = [n for n in model.graph.node if n.op_type == "Slice"]
    assert sliced.input[0] == "out" and sliced.output[0] == "pha"
    assert all(_shapes(model)[n.output[0]][1] == 4 for n in model.graph.node if n.op_type == "Resize")


def test_a_conv_stops_the_slice_and_keeps_its_weights():
    model = _rvm_tail(13, "scales", conv_before_split=True)
    weights = next(t for t in model.graph.initializer if t.name == "w_mix").SerializeToString()

    matches = _rewrite_checked(model, level=EXTENDED)

    record = matches[0].record
    assert record["moved_above"] == []
    assert record["stopped_at"] == ["'mixed': Conv 'mix' is not channel-wise (it mixes channels)"]
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv"]
    assert conv.input == ["out", "w_mix"] and _readers(model, "mixed") == ["pha/slice"]
    assert next(t for t in model.graph.initializer if t.name == "w_mix").SerializeToString() == weights
    assert _shapes(model)["mixed"] == [1, 4, FULL, FULL]


def test_a_resize_that_scales_channels_is_not_moved():
    """A [1, 2, 8, 8] -> nearest Resize scales [1, 2, 4, 4] -> [1, 4, 32, 32]: output channel 3 reads input channel
    1, so that Resize stays; b's Resize, the Mul and the Add move."""
    model = _rvm_tail(13, "scales", a_channels=2)

    matches = _rewrite_checked(model)

    record = matches[0].record
    assert set(record["moved_above"]) == {"Add 'add'", "Mul 'mul'", "Resize 'b_up'", "Concat 'fine'"}
    assert "'A_up': Resize 'A_up' resizes channels (2 -> 4)" in record["stopped_at"]
    shapes = _shapes(model)
    assert shapes["A_up"] == [1, 4, FULL, FULL]
    (b_resize,) = [n for n in model.graph.node if n.op_type == "Resize" and n.output[0] != "A_up"]
    assert shapes[b_resize.output[0]] == [1, 1, FULL, FULL]


def test_a_broadcast_operand_is_read_whole_and_a_per_channel_one_is_sliced():
    model = _rvm_tail(13, "sizes", broadcast=True)

    matches = _rewrite_checked(model)

    assert {"Mul 'gain_mul'", "Add 'bias_add'", "Sub 'shift_sub'", "Resize 'A_up'"} <= set(
        matches[0].record["moved_above"])
    by_name = {n.name.split("/")[0]: n for n in model.graph.node}
    assert by_name["gain_mul"].input[1] == "gain"  # [1, 1, 32, 32]: the same for every channel
    assert by_name["shift_sub"].input[1] == "shift"  # a scalar
    (bias_slice,) = [n for n in model.graph.node if n.op_type == "Slice" and n.input[0] == "bias"]
    axes = next(t for t in model.graph.initializer if t.name == bias_slice.input[3])
    assert numpy_helper.to_array(axes).tolist() == [0]
    assert by_name["bias_add"].input[1] == bias_slice.output[0]  # [4, 1, 1]: its axis 0 is the channel axis
    assert _shapes(model)[bias_slice.output[0]] == [1, 1, 1]


def test_two_read_outputs_in_a_row_keep_a_smaller_split():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"),
             helper.make_node("Split", ["s"], ["p0", "p1", "p2", "p3"], name="split", axis=1, split=[1, 2, 1, 2]),
             helper.make_node("Relu", ["p1"], ["y1"]), helper.make_node("Relu", ["p2"], ["y2"])]
    model = _model(nodes, [("x", [1, 6, 5, 7])], [("y1", [1, 2, 5, 7]), ("y2", [1, 1, 5, 7])], opset=11)

    matches = _rewrite_checked(model)

    assert matches[0].record["read_channels"] == [[1, 4]] and matches[0].record["moved_above"] == ["Sigmoid 'sigmoid'"]
    assert [n.op_type for n in model.graph.node] == ["Slice", "Sigmoid", "Split", "Relu", "Relu"]
    split = model.graph.node[2]
    assert list(split.output) == ["p1", "p2"] and attr(split, "split") == [2, 1]
    assert _shapes(model)[model.graph.node[1].output[0]] == [1, 3, 5, 7]


def test_a_graph_whose_split_outputs_are_all_read_is_not_touched():
    model = _rvm_tail(13, "scales")
    model.graph.output.append(helper.make_tensor_value_info("fgr_out", TensorProto.FLOAT, [1, 3, FULL, FULL]))
    before = model.SerializeToString()

    assert repair.REPAIR.apply(model, RepairContext()) == []
    assert model.SerializeToString() == before


# --------------------------------------------------------------------------------------------------
# The real model


@pytest.fixture(scope="module")
def rvm_without_foreground(tmp_path_factory):
    """RVM (seed 0, width 0.25) at 128x128 as the converter writes its ONNX (zoo export, frozen shapes, paddle2onnx,
    the registered repairs, onnxsim: ``converter.onnx.export_onnx``), its foreground output (role "foreground")
    then removed from the graph outputs, the nodes only it needed left in place, as the outputs of a graph someone
    prunes are. (``edgematte convert`` takes twice as long for the same file: reference, noise and parity runs.)"""
    pytest.importorskip("paddle", reason="building RVM needs paddlepaddle (edgematte[convert])")
    from edgematte.converter.freeze import freeze_input_shape
    from edgematte.converter.onnx import export_onnx
    from edgematte.zoo.export import export_deploy_folder

    tmp = tmp_path_factory.mktemp("rvm")
    frozen = freeze_input_shape(export_deploy_folder("rvm_mobilenetv3", tmp / "deploy", seed=0, width=0.25),
                                tmp / "frozen", [1, 3, 128, 128])
    export_onnx(frozen.files.model.parent, tmp / "model.onnx")
    roles = {o.name: o.role for o in frozen.io.outputs}
    model = onnx.load(str(tmp / "model.onnx"))
    kept = [o for o in model.graph.output if roles[o.name] != "foreground"]
    assert len(kept) == len(model.graph.output) - 1 and [roles[o.name] for o in kept] == ["alpha"] + ["state"] * 4
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return model


def _without_dead_nodes(model):
    """A copy of ``model`` without the nodes no graph output depends on (what pruning at the source leaves)."""
    needed, kept = {o.name for o in model.graph.output}, []
    for node in reversed(model.graph.node):
        if needed & set(node.output):
            kept.insert(0, node)
            needed |= set(node.input)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.node[:]
    copy.graph.node.extend(kept)
    return copy


def _rvm_feed(model, seed=0):
    rng = np.random.default_rng(seed)
    return {v.name: rng.uniform(0 if v.name == "img" else -1, 1, [d.dim_value for d in v.type.tensor_type.shape.dim])
            .astype(np.float32) for v in model.graph.input}


def _median_ms(sessions, feed, runs=30):
    """Median latency (ms) of each session over ``runs`` runs, interleaved so that host load hits both alike."""
    times = [[] for _ in sessions]
    for session in sessions:
        session.run(None, feed)
    for _ in range(runs):
        for session, spent in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, feed)
            spent.append(time.perf_counter() - start)
    return [1000 * float(np.median(t)) for t in times]


def test_rvm_without_foreground_upsamples_one_channel_with_the_same_outputs(rvm_without_foreground):
    before = rvm_without_foreground
    model = onnx.ModelProto()
    model.CopyFrom(before)

    matches = repair.REPAIR.apply(model, RepairContext(where="rvm 128x128"))

    assert [m.changed for m in matches] == [True]
    print(json.dumps(matches[0].record, indent=1))
    onnx.checker.check_model(model, full_check=True)
    shapes = _shapes(model)
    full = [n for n in model.graph.node if n.op_type == "Resize" and shapes[n.output[0]][2:] == [128, 128]]
    assert len(full) == 2 and all(shapes[n.output[0]][1] == 1 for n in full)
    at_full = [n.op_type for n in model.graph.node if shapes.get(n.output[0], [0, 0])[2:] == [128, 128]]
    assert "Split" not in at_full and "Concat" not in at_full
    for seed in (0, 1):
        feed = _rvm_feed(before, seed)
        expected, got = _run(before, feed, EXTENDED), _run(model, feed, EXTENDED)
        assert all(_same_bits(a, b) for a, b in zip(expected, got))
        # ORT's default level (NCHWc): the states are untouched, the alpha rounds differently (module docstring)
        expected, got = _run(before, feed), _run(model, feed)
        assert all(_same_bits(a, b) for a, b in zip(expected[1:], got[1:]))
        print(f"seed {seed}: alpha max abs at ORT's default level {float(np.abs(expected[0] - got[0]).max()):.3g}")
        assert float(np.abs(expected[0] - got[0]).max()) <= 1e-6

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 2, 3
    # before: without the foreground branch either, so that only the channel slicing is timed
    sessions = [onnxruntime.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                for m in (_without_dead_nodes(before), model)]
    slow, fast = _median_ms(sessions, _rvm_feed(before))
    print(f"RVM width 0.25 at 128x128, ORT 2 threads, median of 30 interleaved: {slow:.2f} ms before (foreground "
          f"branch dropped), {fast:.2f} ms after")
