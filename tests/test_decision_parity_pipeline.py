"""The decision-aware rule wired into `convert`: the reference stage finds the program's argmax, fetches its
scores under both kernel sets, and every float comparison excuses the near-ties only.

The conversion test runs PaddleSeg's own PP-HumanMatting program (seeded weights) at 128x128 (about 50 s); the
Context tests are numpy only: a flip where the reference's margin is large still fails the artefact.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from edgematte.core import decision_parity as dp
from edgematte.core import parity as parity_lib
from edgematte.core.manifest import Manifest, ModelInfo, ReferenceInfo
from edgematte.pipeline.context import Context, ConvertOptions, DecisionAwareParity, Decisions

H = W = 16
NOISE = 1e-6  # tolerance = max(2 x SAFETY x 1e-6, FLOOR) = 4e-6


def _context(tmp_path, decisions=None, share=0.0) -> Context:
    manifest = Manifest.new(ModelInfo(name="synthetic", input_shape=[1, 3, H, W]), ReferenceInfo(backend="test"),
                            out_dir=tmp_path)
    ctx = Context(options=ConvertOptions(), out=tmp_path, work=tmp_path, manifest=manifest, formats=["onnx"])
    ctx.reference = [np.random.default_rng(i).uniform(0, 1, (1, 1, H, W)).astype(np.float32) for i in range(2)]
    ctx.decisions, ctx.boundary_pixel_share = decisions, share
    return ctx


def _decisions() -> Decisions:
    """Margins per image: large (0.3) everywhere except a near-tie (1e-6) at pixel (2, 3) of image 0."""
    margins = [np.full((1, H, W), 0.3), np.full((1, H, W), 0.3)]
    margins[0][0, 2, 3] = 1e-6
    return Decisions(margins=margins, noise=NOISE, tolerance=dp.margin_tolerance(NOISE), points=[])


def _flipped(ctx: Context, pixel, image: int = 0):
    """The reference's alphas with float noise (3e-6) everywhere and the alpha at ``pixel`` of ``image`` moved by
    at least 0.5, as a flipped decision moves it."""
    outputs = [r + np.float32(3e-6) for r in ctx.reference]
    value = ctx.reference[image][0, 0, pixel[0], pixel[1]]
    outputs[image][0, 0, pixel[0], pixel[1]] = 1.0 if value < 0.5 else 0.0
    return outputs


def _record(ctx: Context, outputs, name: str) -> dict:
    path = ctx.out / name
    path.write_bytes(b"artefact")
    parity = ctx.compare(outputs)
    return ctx.record(path, outputs, parity, bound=ctx.bounds["fp32"], format="onnx", target="any",
                      precision="fp32").to_dict()["parity"]


def test_a_flip_at_a_near_tie_is_excused_and_a_flip_at_a_large_margin_fails(tmp_path):
    ctx = _context(tmp_path, _decisions())
    excused = _record(ctx, _flipped(ctx, (2, 3)), "tie.onnx")
    assert excused["within_bound"] is True and excused["max_abs"] >= 0.5
    figures = excused["decisions"]
    assert figures["excused_pixels"] == 1 and figures["over_bound_excused"] == 1
    assert figures["max_abs_kept"] == pytest.approx(3e-6, rel=0.1)
    assert figures["excused_share"] == pytest.approx(1 / (2 * H * W))

    caught = _record(ctx, _flipped(ctx, (9, 9), image=1), "clear.onnx")
    assert caught["within_bound"] is False and caught["decisions"]["max_abs_kept"] >= 0.5
    assert caught["decisions"]["over_bound_excused"] == 0


def test_the_excused_share_is_capped(tmp_path):
    decisions = _decisions()
    decisions.margins = [np.zeros((1, H, W)), np.zeros((1, H, W))]  # every pixel a tie: noise everywhere
    ctx = _context(tmp_path, decisions)
    outputs = [1.0 - r for r in ctx.reference]
    parity = ctx.compare(outputs)
    assert isinstance(parity, DecisionAwareParity) and parity.decision.excused_share == 1.0
    assert parity.decision.max_abs_kept == 0.0 and not ctx.within(parity, ctx.bounds["fp32"])


def test_near_ties_the_artefact_decides_alike_cost_nothing(tmp_path):
    """Every pixel a near-tie, and the artefact equal to the reference: nothing needed excusing, so it passes
    (the cap counts pixels beyond the bound by an excuse, not near-ties)."""
    decisions = _decisions()
    decisions.margins = [np.zeros((1, H, W)), np.zeros((1, H, W))]
    ctx = _context(tmp_path, decisions)
    parity = ctx.compare([r.copy() for r in ctx.reference])
    assert parity.decision.excused_share == 1.0 and parity.decision.over_bound_excused == 0
    assert ctx.within(parity, ctx.bounds["fp32"])


def test_without_decisions_the_zoo_share_applies_and_inherited_figures_stay_plain(tmp_path):
    ctx = _context(tmp_path, share=1e-2)
    outputs = _flipped(ctx, (9, 9))
    outputs[0][0, 0, 9, 9] = ctx.reference[0][0, 0, 9, 9] + np.float32(2e-3)  # small enough for a float mean
    parity = ctx.compare(outputs)
    assert type(parity) is parity_lib.Parity and ctx.within(parity, ctx.bounds["fp32"])
    ctx.boundary_pixel_share = 0.0
    assert not ctx.within(parity, ctx.bounds["fp32"])
    # an arm .nb inherits its x86 twin's figures and gets no verdict of its own (bound None)
    ctx.decisions = _decisions()
    inherited = parity_lib.inherited(ctx.compare(outputs), "cannot run here")
    path = tmp_path / "model_arm.nb"
    path.write_bytes(b"nb")
    record = ctx.record(path, None, inherited, bound=None, format="nb", target="arm", precision="fp32").to_dict()
    assert "within_bound" not in record["parity"]


def test_an_unroutable_decision_keeps_the_zoo_rule(tmp_path, monkeypatch):
    """A point without a route: nothing is run, the zoo's bound and share stay, and the manifest says why."""
    from edgematte.converter import decision_logits, program
    from edgematte.pipeline.stages import reference

    point = decision_logits.DecisionPoint(7, "softmax_0.tmp_0", "arg_max_0.tmp_0", 1, (1, 3, 32, 32), None,
                                          "op 'roi_align' (writing 'x') has no known spatial footprint")
    monkeypatch.setattr(decision_logits, "decision_points", lambda _program: [point])
    monkeypatch.setattr(program, "parse_program", lambda *_: None)
    ctx = _context(tmp_path, share=1e-3)
    ctx.bounds["fp32"] = 1e-3
    ctx.frozen = SimpleNamespace(info=SimpleNamespace(program_bytes=b""), files=SimpleNamespace(model="m"),
                                 io=SimpleNamespace(recurrent=False))
    assert reference._routed_decision_points(ctx) == []
    assert ctx.decisions is None and ctx.boundary_pixel_share == 1e-3 and ctx.bounds["fp32"] == 1e-3
    found = ctx.manifest.reference.extra["decisions"]
    assert found["wired"] is False and "roi_align" in found["why"] and "0.001" in found["rule"]


def test_official_humanmatting_converts_with_the_decision_rule(tmp_path):
    pytest.importorskip("paddle", reason="converting needs paddlepaddle (edgematte[convert])")
    from tests.conftest import run_cli
    from tests.official_models import build_official_folder

    src = build_official_folder("humanmatting", tmp_path / "src")
    out = tmp_path / "out"
    r = run_cli("convert", src, "--input-shape", 1, 3, 128, 128, "--to", "onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    ref = manifest["reference"]
    decisions = ref["decisions"]
    assert decisions["wired"] is True and [p["logits"] for p in decisions["points"]] == ["softmax_0.tmp_0"]
    assert decisions["points"][0]["route"][0] == "bilinear_interp_v2"
    assert 0 <= decisions["score_noise"] < 1e-3 and decisions["margin_tolerance"] >= dp.FLOOR
    # the reference is the program with its scores fetched, shipped for verify (it reads the reference's params)
    assert ref["scores_program"]["path"] == "scores/model.pdmodel" and ref["scores_program"]["params"] in ref["files"]
    assert (out / "reference" / "scores" / "model.pdmodel").is_file()
    assert not (out / "reference" / "scores" / "model.pdiparams").exists()
    assert decisions["points"][0]["steps"][0]["op"] == "source"
    # the zoo's 1e-3 bound and 0.1% share are replaced, not applied on top: the bound is the float noise's
    assert decisions["replaces"]["boundary_pixel_share"] == 1e-3 and "bound_note" not in ref
    noise = ref["float_noise"]
    assert noise["fp32_bound"] == max(1e-4, min(2.5e-3, 4 * noise["max_abs"]))
    assert "decisions" in ref["checks"][0]
    (onnx,) = manifest["artefacts"]
    parity = onnx["parity"]
    assert parity["within_bound"] is True and parity["bound"] == noise["fp32_bound"]
    assert {"excused_pixels", "excused_share", "max_abs_kept", "margin_tolerance"} <= set(parity["decisions"])
    assert parity["decisions"]["max_abs_kept"] <= parity["bound"]

    # verify applies the same rule on the photos, at their size, through the profile
    r = run_cli("verify", out, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["reference"]["decision_aware"] is True and report["passed"] is True
    (checked,) = report["artefacts"]
    assert checked["status"] == "pass" and checked["decisions"]["max_abs_kept"] <= parity["bound"]
    assert checked["decisions"]["excused_share"] <= decisions["max_excused_share"]
