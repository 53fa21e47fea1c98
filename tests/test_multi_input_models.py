"""Models with several inputs, as PaddleSeg's export writes them: RVM (image, four recurrent states, a scalar
``downsample_ratio``; six outputs) and DIM (image + trimap).

``--input-shape`` fixes the image; the converter derives the rest (states from the image through the model
itself, the trimap from the image's size), freezes the scalar as a constant, inlines the branch it decides,
and records every input and output with its role in the manifest.
"""

import json

import cv2
import numpy as np
import pytest

paddle = pytest.importorskip("paddle", reason="the converter tests need paddlepaddle (edgematte[convert])")

from edgematte.converter.freeze import freeze_input_shape  # noqa: E402
from edgematte.core.errors import EdgematteError  # noqa: E402
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend  # noqa: E402
from edgematte.runtime.imageio import write_image  # noqa: E402
from edgematte.runtime.matter import Matter  # noqa: E402
from edgematte.runtime.model_io import FeedPlan, match_tensors, run_case  # noqa: E402
from edgematte.runtime.video import open_video, read_frames  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.official_models import build_official_folder  # noqa: E402

# RVM at 128x128, ratio 0.25: the encoder sees 32x32, its ConvGRU states sit at 1/2 .. 1/16 of that.
RVM_STATES_128 = {"r1": [1, 16, 16, 16], "r2": [1, 20, 8, 8], "r3": [1, 40, 4, 4], "r4": [1, 64, 2, 2]}


@pytest.fixture(scope="module")
def rvm(tmp_path_factory):
    return build_official_folder("rvm_mobilenetv3", tmp_path_factory.mktemp("official") / "rvm")


@pytest.fixture(scope="module")
def dim(tmp_path_factory):
    return build_official_folder("dim_vgg16", tmp_path_factory.mktemp("official") / "dim")


def _original_frames(folder, frames, ratio, state_shapes):
    """The original program, fed ``ratio`` and its own states (zeros of ``state_shapes`` first), on each frame:
    every output."""
    from paddle import inference

    config = inference.Config(str(folder / "model.pdmodel"), str(folder / "model.pdiparams"))
    config.disable_mkldnn()
    config.disable_glog_info()
    config.set_cpu_math_library_num_threads(2)  # as the backend below: the thread count changes GEMM sums
    predictor = inference.create_predictor(config)
    states = {name: np.zeros(shape, np.float32) for name, shape in state_shapes.items()}
    results = []
    for frame in frames:
        feeds = {"img": frame, "downsample_ratio": np.array([ratio], np.float32), **states}
        for name in predictor.get_input_names():
            handle = predictor.get_input_handle(name)
            handle.reshape(list(feeds[name].shape))
            handle.copy_from_cpu(feeds[name])
        predictor.run()
        outputs = [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]
        states = dict(zip(("r1", "r2", "r3", "r4"), outputs[2:]))
        results.append(outputs)
    return results


def test_rvm_roles_and_state_shapes_follow_from_the_image(rvm, tmp_path):
    frozen = freeze_input_shape(rvm, tmp_path / "frozen", [1, 3, 128, 128])
    io = frozen.io
    assert [(i.name, i.role) for i in io.inputs] == [
        ("img", "image"), ("r1", "state"), ("r2", "state"), ("r3", "state"), ("r4", "state"),
        ("downsample_ratio", "constant")]
    assert {i.name: list(i.shape) for i in io.of_role("state")} == RVM_STATES_128
    assert io.of_role("constant")[0].value == (0.25,)
    assert [o.role for o in io.outputs] == ["alpha", "foreground", "state", "state", "state", "state"]
    assert [o.pair for o in io.outputs[2:]] == ["r1", "r2", "r3", "r4"]
    # The frozen program has no downsample_ratio input and no branch left.
    assert set(frozen.info.feed_names) == {"img", "r1", "r2", "r3", "r4"}
    assert "conditional_block" not in frozen.info.op_counts and "select_input" not in frozen.info.op_counts
    assert frozen.inlined["inlined_blocks"] == 1 and not frozen.still_dynamic


def test_frozen_rvm_computes_what_paddleseg_program_computes_over_a_clip(rvm, tmp_path):
    """Three frames with the states fed back, at a downsample ratio that is not the default. The states are bit
    for bit; alpha and foreground come from the refiner, the branch that was inlined, where Paddle Inference's
    IR passes now fuse conv + batch_norm (they never look inside a conditional block): measured 1.2e-6."""
    frozen = freeze_input_shape(rvm, tmp_path / "frozen", [1, 3, 128, 128], constants={"downsample_ratio": 0.5})
    states_05 = {"r1": [1, 16, 32, 32], "r2": [1, 20, 16, 16], "r3": [1, 40, 8, 8], "r4": [1, 64, 4, 4]}
    assert {i.name: list(i.shape) for i in frozen.io.of_role("state")} == states_05
    rng = np.random.default_rng(3)
    frames = [rng.random((1, 3, 128, 128), dtype=np.float32) for _ in range(3)]
    expected = _original_frames(rvm, frames, 0.5, states_05)
    backend = PaddleInferenceBackend(frozen.files.model, threads=2, use_onednn=False)  # the kernels used above
    entries_in, entries_out = frozen.io.manifest_entries()
    plan = FeedPlan.of(entries_in, entries_out, [s.name for s in backend.inputs], [s.name for s in backend.outputs],
                       "nchw", "frozen RVM")
    got = run_case(backend.run_feeds, plan, [{"img": f} for f in frames])
    names = [s.name for s in backend.outputs]
    for frame_expected, frame_got in zip(expected, got):
        for k, want in enumerate(frame_expected):
            value = frame_got[names.index(entries_out[k]["name"])]
            if entries_out[k]["role"] == "state":
                assert np.array_equal(value, want)
            else:
                assert np.abs(value - want).max() <= 1e-5


def test_alpha_only_drops_the_foreground_and_keeps_alpha_and_states_bit_for_bit(rvm, dim, tmp_path):
    """``--alpha-only``: the foreground's fetch and the ops only it needed leave the program; over three frames with
    the states fed back, the alpha and every state equal the full program's bit for bit (same kernels)."""
    full = freeze_input_shape(rvm, tmp_path / "full", [1, 3, 128, 128])
    pruned = freeze_input_shape(rvm, tmp_path / "pruned", [1, 3, 128, 128], alpha_only=True)
    assert [o.role for o in pruned.io.outputs] == ["alpha", "state", "state", "state", "state"]
    assert [(o.name, o.role) for o in pruned.dropped_outputs] == [(full.io.outputs[1].name, "foreground")]
    # the foreground's tail: its fetch, the residual + image add, the clip and what fed only them
    assert {"fetch", "elementwise_add", "clip"} <= set(pruned.dropped_ops)
    assert len(pruned.info.fetch_names) == 5 and sum(pruned.info.op_counts.values()) == \
        sum(full.info.op_counts.values()) - len(pruned.dropped_ops)
    rng = np.random.default_rng(4)
    frames = [{"img": rng.random((1, 3, 128, 128), dtype=np.float32)} for _ in range(3)]
    results = []
    for frozen in (full, pruned):
        backend = PaddleInferenceBackend(frozen.files.model, threads=2, use_onednn=False)
        entries_in, entries_out = frozen.io.manifest_entries()
        plan = FeedPlan.of(entries_in, entries_out, [s.name for s in backend.inputs],
                           [s.name for s in backend.outputs], "nchw", "frozen RVM")
        names = [s.name for s in backend.outputs]
        results.append([{o["name"]: outputs[names.index(o["name"])] for o in entries_out}
                        for outputs in run_case(backend.run_feeds, plan, frames)])
    for frame_full, frame_pruned in zip(*results):
        assert set(frame_pruned) == set(frame_full) - {full.io.outputs[1].name}
        for name, value in frame_pruned.items():
            assert np.array_equal(value, frame_full[name]), name
    # The ONNX export then computes only the alpha's channel of the refiner at full resolution
    # (repairs/onnx/channel_slice_pushdown), proven bit for bit against the graph before.
    import onnx

    from edgematte.converter.onnx import export_onnx

    info = export_onnx(pruned.files.model.parent, tmp_path / "pruned.onnx")
    (pushdown,) = [r for r in info["normalizations"] if r.get("action") == "rewritten"]
    assert info["normalization_check"]["max_abs"] == 0.0 and len(pushdown["moved_above"]) >= 4
    model = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "pruned.onnx")))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    full_size = [shapes[n.output[0]] for n in model.graph.node
                 if n.op_type == "Resize" and shapes.get(n.output[0], [0, 0])[2:] == [128, 128]]
    assert full_size == [[1, 1, 128, 128]] * 2
    # A model that only returns its alpha loses nothing.
    dim_frozen = freeze_input_shape(dim, tmp_path / "dim_frozen", [1, 3, 64, 64], alpha_only=True)
    assert dim_frozen.dropped_outputs == () and dim_frozen.dropped_ops == ()


def test_dim_trimap_takes_the_image_size_whatever_deploy_yaml_says(dim, tmp_path):
    frozen = freeze_input_shape(dim, tmp_path / "frozen", [1, 3, 64, 96])
    assert [(i.name, i.role, list(i.shape)) for i in frozen.io.inputs] == [
        ("img", "image", [1, 3, 64, 96]), ("trimap", "trimap", [1, 1, 64, 96])]
    assert [o.role for o in frozen.io.outputs] == ["alpha"]


@pytest.fixture(scope="module")
def rvm_conversion(rvm, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "rvm"
    # 128x128: the state r1 [1, 16, 16, 16] reads the same channels-first and channels-last (the onnx2tf repair
    # ambiguous_input_identity and the input-layout rule of converter/tflite.py; off by 1.0 without them)
    r = run_cli("convert", rvm, "--input-shape", 1, 3, 128, 128, "--to", "lite,onnx,tflite", "--no-fp16",
                "--lite-targets", "x86", "-o", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def dim_conversion(dim, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "dim"
    r = run_cli("convert", dim, "--input-shape", 1, 3, 64, 64, "--to", "onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def test_rvm_converts_with_roles_in_the_manifest(rvm_conversion):
    manifest = json.loads((rvm_conversion / "manifest.json").read_text())
    model = manifest["model"]
    assert [(i["name"], i["role"]) for i in model["inputs"]][-1] == ("downsample_ratio", "constant")
    assert {i["name"]: i["shape"] for i in model["inputs"] if i["role"] == "state"} == RVM_STATES_128
    assert [o["role"] for o in model["outputs"]] == ["alpha", "foreground", "state", "state", "state", "state"]
    assert manifest["reference"]["inlined_branches"]["inlined_blocks"] == 1
    for artefact in manifest["artefacts"]:
        # 4 photos x 3 frames, states carried by each runtime itself
        assert artefact["parity"]["images"] == 12 and artefact["parity"]["within_bound"], artefact["path"]
        assert {t["name"] for t in artefact["inputs"]} == {"img", "r1", "r2", "r3", "r4"}
    tflite = next(a for a in manifest["artefacts"] if a["path"] == "model_fp32.tflite")
    assert {t["name"]: t["layout"] for t in tflite["inputs"]}["r1"] == "nhwc"  # as onnx2tf moves every input
    assert {(r["name"], r["changed"]) for r in manifest["repairs"] if r["artefact"] == "model_fp32.tflite"} >= {
        ("ambiguous_input_identity", 1)}


def test_rvm_runtime_carries_states_and_a_photo_is_a_first_frame(rvm_conversion, tmp_path):
    photo = np.asarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3)), np.uint8)
    for artefact in ("model.onnx", "model_x86.nb", "model_fp32.tflite"):
        matter = Matter.from_manifest(rvm_conversion, artefact=artefact)
        assert matter.recurrent and not matter.takes_trimap
        first, second = matter(photo), matter(photo)
        matter.reset()
        again = matter(photo)
        assert np.array_equal(first, again) and first.shape == (90, 120)
        assert np.abs(first - second).max() > 1e-3  # the second call fed the first call's states
    r = run_cli("verify", rvm_conversion)
    assert r.returncode == 0 and "PASS: 3 passed, 0 failed" in r.stdout, r.stdout + r.stderr
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    r = run_cli("matte", tmp_path / "photo.png", "--model", rvm_conversion, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "out" / "photo_alpha.png"), cv2.IMREAD_UNCHANGED).shape == (90, 120)


def test_bench_runs_rvm_with_its_states_and_reports_their_io(rvm_conversion, tmp_path):
    r = run_cli("bench", rvm_conversion, "--artefacts", "model.onnx,model_x86.nb,model_fp32.tflite", "--threads", "1",
                "--runs", "3", "--warmup", "1", "--size", "160x120", "-o", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "b" / "bench.json").read_text())
    state_bytes = 2 * 4 * sum(int(np.prod(shape)) for shape in RVM_STATES_128.values())  # fed and fetched, float32
    assert [result["artefact"] for result in doc["results"]] == ["model.onnx", "model_x86.nb", "model_fp32.tflite"]
    for result in doc["results"]:
        assert result["states"]["count"] == 4 and result["states"]["bytes"] == state_bytes, result
        assert 0 < result["states"]["copy_s"]["median"] < result["model_s"]["median"]
    lines = (tmp_path / "b" / "bench.md").read_text().splitlines()
    assert sum(f"4 states, {state_bytes / 1e6:.2f} MB in and out" in line for line in lines) == 3


def test_quant_eval_of_a_clip_carries_states_and_adds_the_temporal_figures(rvm_conversion, tmp_path):
    """`quant eval --sequence` on numbered frames and on a video: the artefact and the fp32 reference each carry
    their states from frame to frame; ONNX follows the reference to float noise, so dtSSD and MESSDdt are
    float-small, and a video cut short is an error."""
    from .test_runtime_video import cut_clip, write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=4, size=(160, 120))
    capture, _ = open_video(clip)
    frames = list(read_frames(capture))
    for index, rgb in enumerate(frames):
        write_image(tmp_path / "frames" / f"{index:04d}.png", rgb)
    results = {}
    for name, data, extra in (("frames", tmp_path / "frames", ["--sequence"]), ("video", clip, []),
                              ("photos", tmp_path / "frames", [])):
        r = run_cli("quant", "eval", rvm_conversion, "--artefact", "model.onnx", "--data", data, *extra, "--json")
        assert r.returncode == 0, r.stderr
        results[name] = json.loads(r.stdout)
    for name in ("frames", "video"):
        result = results[name]
        assert result["sequence"] is True and result["images"] == 4
        temporal = result["temporal_vs_fp32"]
        assert temporal["frame_pairs"] == 3 and len(temporal["dtssd_per_pair"]) == 3
        assert 0 <= temporal["dtssd"] <= 1e-4 and 0 <= temporal["messddt"] <= 1e-6  # float noise only
        assert result["vs_fp32"]["max_abs"] <= 1e-4
    assert results["frames"]["temporal_vs_fp32"] == results["video"]["temporal_vs_fp32"]  # the same decoded frames
    photos = results["photos"]  # each image on its own: zero states every time, no temporal figures
    assert photos["sequence"] is False and "temporal_vs_fp32" not in photos and photos["images"] == 4
    # verify --sequence: the same clip as frames and as a video, every artefact with states carried.
    for data in (tmp_path / "frames", clip):
        r = run_cli("verify", rvm_conversion, "--sequence", data, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        report = json.loads(r.stdout)
        assert report["sequence"] is True and len(report["images"]) == 4
        checked = [a for a in report["artefacts"] if a["status"] == "pass"]
        assert {a["path"] for a in checked} == {"model.onnx", "model_x86.nb", "model_fp32.tflite"}
        for artefact in checked:
            assert artefact["temporal"]["frame_pairs"] == 3 and len(artefact["images"]) == 4
            assert 0 <= artefact["temporal"]["dtssd"] <= 1e-4 and 0 <= artefact["temporal"]["messddt"] <= 1e-6
    r = run_cli("verify", rvm_conversion, "--sequence", tmp_path / "frames", "--images", tmp_path / "frames")
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].endswith(
        "give photos (--images) or one clip (--sequence), not both")
    cut = cut_clip(tmp_path / "cut.mp4", keep=0.5)
    r = run_cli("quant", "eval", rvm_conversion, "--data", cut)
    assert r.returncode == 1 and "declared frames could be decoded" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("quant", "eval", rvm_conversion, "--data", clip, "--gt", tmp_path / "frames")
    assert r.returncode == 1 and "--gt takes the ground truth of a folder of frames" in r.stderr


def test_dim_runtime_takes_the_users_trimap(dim_conversion, tmp_path):
    photo = np.asarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3)), np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    trimap = np.zeros((60, 80), np.uint8)
    trimap[15:45, 20:60], trimap[22:38, 30:50] = 128, 255
    cv2.imwrite(str(tmp_path / "trimap.png"), trimap)
    r = run_cli("matte", tmp_path / "photo.png", "--model", dim_conversion, "-o", tmp_path / "none")
    assert r.returncode != 0 and "the model takes a trimap with the image: give --trimap FILE" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("matte", tmp_path / "photo.png", "--model", dim_conversion, "--trimap", tmp_path / "trimap.png",
                "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "out" / "photo_alpha.png"), cv2.IMREAD_UNCHANGED).shape == (60, 80)
    cv2.imwrite(str(tmp_path / "small.png"), trimap[:30])
    matter = Matter.from_manifest(dim_conversion)
    with pytest.raises(EdgematteError, match="the trimap is 80x30, the photo 80x60"):
        matter(photo, trimap=trimap[:30])
    r = run_cli("verify", dim_conversion)
    assert r.returncode == 0 and "PASS: 1 passed, 0 failed" in r.stdout, r.stdout + r.stderr


def test_a_trimap_follows_the_photo_into_the_model_input():
    """Under the android profile's letterbox, a 128x64 (w x h) trimap fills the top 32 rows of a 64x64 input and
    the padding is background. Its left half alternates background and foreground columns: halved, they average
    to 127.5, which snaps to unknown (no new level appears); the right half stays foreground."""
    from edgematte.runtime.profiles import get_profile
    from edgematte.runtime.trimap import LEVELS, trimap_tensor

    trimap = np.full((64, 128), 255, np.uint8)
    trimap[:, 0:64:2] = 0
    tensor = trimap_tensor(get_profile("android"), trimap, (64, 128), (64, 64))
    assert tensor.shape == (1, 1, 64, 64) and set(np.unique(tensor)) <= set(LEVELS)
    assert (tensor[0, 0, 32:] == 0).all()
    assert (tensor[0, 0, :32, :32] == 128).all() and (tensor[0, 0, :32, 32:] == 255).all()


def test_dim_converts_with_its_trimap(dim_conversion):
    manifest = json.loads((dim_conversion / "manifest.json").read_text())
    assert [(i["name"], i["role"], i["shape"]) for i in manifest["model"]["inputs"]] == [
        ("img", "image", [1, 3, 64, 64]), ("trimap", "trimap", [1, 1, 64, 64])]
    (onnx,) = manifest["artefacts"]
    assert onnx["parity"]["within_bound"] and onnx["parity"]["max_abs"] <= onnx["parity"]["bound"]


@pytest.mark.parametrize("args, message", [
    (("--downsample-ratio", "1.5"), "--downsample-ratio 1.5: must be in (0, 1]"),
    (("--constant", "ratio"), "'ratio' is not NAME=NUMBER"),
])
def test_bad_constants_are_one_line(rvm, tmp_path, args, message):
    r = run_cli("convert", rvm, "--input-shape", 1, 3, 128, 128, "--to", "onnx", *args, "-o", tmp_path / "out")
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_scalar_the_model_does_not_have_is_refused(dim, tmp_path):
    with pytest.raises(EdgematteError, match="has no scalar input 'downsample_ratio'"):
        freeze_input_shape(dim, tmp_path / "frozen", [1, 3, 64, 64], constants={"downsample_ratio": 0.5})


def test_tensors_are_matched_by_name_as_tools_rename_them():
    model = ["img", "r1", "save_infer_model/scale_0.tmp_0"]
    assert match_tensors(model, ["r1", "save_infer_model/scale_0.tmp_0", "img"], "x") == [1, 2, 0]
    assert match_tensors(model, ["save_infer_model_scale_0_tmp_0:0", "IMG", "r1"], "x") == [2, 0, 1]
    assert match_tensors(["a", "b"], ["input_0", "input_1"], "x") == [0, 1]  # nothing matches: by position
    with pytest.raises(EdgematteError, match="cannot match its tensors"):
        match_tensors(model, ["img", "r1", "other"], "x")


def test_a_match_by_position_must_pair_tensors_of_one_size():
    """Paddle Lite's PTQ program renames its outputs (``save_infer_model/scale_N...``): a match by position is
    then guarded by the sizes, in any layout; unknown dimensions match anything."""
    model, shapes = ["alpha", "r1o"], [[1, 1, 64, 96], [1, 16, 32, 48]]
    assert match_tensors(model, ["out_0", "out_1"], "m.nb outputs", shapes, [(1, 64, 96, 1), (1, 32, 48, 16)]) == [0, 1]
    assert match_tensors(model, ["out_0", "out_1"], "m.nb outputs", shapes, [(-1, 1, -1, -1), ()]) == [0, 1]
    with pytest.raises(EdgematteError) as caught:  # the two outputs in the other order
        match_tensors(model, ["out_0", "out_1"], "m.nb outputs", shapes, [(1, 16, 32, 48), (1, 1, 64, 96)])
    assert str(caught.value) == ("m.nb outputs: no tensor name matches the model's, and by position its tensor "
                                 "'out_0' [1, 16, 32, 48] cannot be the model's 'alpha' [1, 1, 64, 96]")
    with pytest.raises(EdgematteError, match="'out_0' \\[1, 2, 2, 1\\] cannot be the model's 'alpha'"):
        match_tensors(["alpha"], ["out_0"], "m.nb outputs", [[1, 1, 64, 96]], [(1, 2, 2, 1)])


def test_a_state_is_carried_through_nchw_between_layouts():
    """An NHWC state input whose paired output comes back NCHW (as onnx2tf writes RVM) gets it transposed."""
    roles_in = [{"name": "img", "role": "image", "shape": [1, 3, 2, 2]},
                {"name": "h", "role": "state", "shape": [1, 2, 2, 3], "pair": "h_out"}]
    roles_out = [{"name": "alpha", "role": "alpha"}, {"name": "h_out", "role": "state", "pair": "h"}]
    plan = FeedPlan.of(roles_in, roles_out, ["h", "img"], ["h_out", "alpha"], "nhwc", "t",
                       ["nhwc", "nhwc"], ["nchw", "nchw"])
    seen = []

    def run(arrays):
        h, img = arrays
        seen.append(h.copy())
        assert h.shape == (1, 2, 3, 2) and img.shape == (1, 2, 2, 3)
        return [h.transpose(0, 3, 1, 2) + 1, img[..., :1].transpose(0, 3, 1, 2)]

    run_case(run, plan, [{"img": np.zeros((1, 3, 2, 2), np.float32)}] * 3)
    assert [float(h.mean()) for h in seen] == [0.0, 1.0, 2.0]


def test_int8_for_a_trimap_model_is_refused_in_one_line(dim, tmp_path):
    """Recurrent states are calibrated from the reference's own clips (test_quant_int8_recurrent); a trimap is not
    calibrated yet."""
    r = run_cli("convert", dim, "--input-shape", 1, 3, 64, 64, "--to", "lite", "--lite-targets", "x86", "--int8",
                "-o", tmp_path / "out")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "INT8 for a model with inputs beside the image (trimap) is not supported yet" in r.stderr
    assert not (tmp_path / "out").exists()
