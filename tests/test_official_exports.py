"""Deploy folders as PaddleSeg's own export wrote them, converted end to end through the CLI.

PaddleSeg's PP-MattingV2 export keeps its shape computations (``shape`` -> ``slice`` -> pool2d ``ksize`` given as
a Variable, interpolate ``SizeTensor``): before the folding, opt refused it ("Unknown attribute type for attr
ksize") and paddle2onnx stopped ("unsupported adaptive pooling ksize=()").
"""

import json

import numpy as np
import pytest

from edgematte.runtime.backends import open_backend
from tests.conftest import run_cli
from tests.official_models import build_official_folder


@pytest.fixture(scope="module")
def official_ppmattingv2(tmp_path_factory):
    return build_official_folder("ppmattingv2", tmp_path_factory.mktemp("official") / "ppmattingv2")


def test_paddleseg_export_converts_and_matches_paddleseg_own_output(official_ppmattingv2, tmp_path, data_dir):
    out = tmp_path / "out"
    r = run_cli("convert", official_ppmattingv2, "--input-shape", 1, 3, 512, 512, "--to", "lite,onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reference"]["folded_shape_computations"] == {
        "attributes": {"bilinear_interp_v2.SizeTensor": 18, "pool2d.ksize": 2}, "materialised": [],
        "removed_ops": {"shape": 11, "slice": 22}}
    assert {a["path"] for a in manifest["artefacts"]} == {"model_x86.nb", "model_arm.nb", "model.onnx"}

    # PaddleSeg's own forward pass (dygraph, seed-0 weights, astronaut at 512x512), not edgematte's reference.
    paddleseg = np.load(data_dir / "ppmattingv2.seed0.512x512.npz")
    x = ((paddleseg["image"].astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()
    for backend, path in (("paddle_lite", "model_x86.nb"), ("onnxruntime", "model.onnx")):
        alpha = open_backend(backend, out / path, threads=2).run(x)
        # measured 1.2e-6 and 1.1e-6; the fp32 bound is 1e-4, and the faults this guards against were 0.14-0.2
        assert np.abs(alpha - paddleseg["alpha"]).max() <= 1e-4, path


def test_paddleseg_export_at_64x64_onnx_is_exact_too(official_ppmattingv2, tmp_path):
    """At 64x64 the pyramid pools its 1x1 (1/64-scale) feature to 2, 4 and 6 bins and resizes each back to 1x1,
    where paddle2onnx's Resize sampled the centre (0.2 off)."""
    out = tmp_path / "out"
    r = run_cli("convert", official_ppmattingv2, "--input-shape", 1, 3, 64, 64, "--to", "onnx", "-o", out)
    assert r.returncode == 0, r.stderr
    (onnx,) = json.loads((out / "manifest.json").read_text())["artefacts"]
    assert onnx["parity"]["max_abs"] <= 1e-4 and onnx["parity"]["within_bound"]
    resized = [r for r in onnx["onnx"]["repairs"] if r.get("coordinate_transformation_mode")]
    assert [(r["action"], r["input_shape"][2:], r["output_shape"][2:]) for r in resized] == [
        ("replaced", [bins, bins], [1, 1]) for bins in (2, 4, 6)]


def test_a_real_conversion_error_still_fails_the_noise_derived_bound(official_ppmattingv2, tmp_path, monkeypatch):
    """The uneven adaptive pool plain paddle2onnx writes (the repair turned off) is 0.138 off at 512x512: far beyond
    any bound float noise gives (at most 2.5e-3), so the conversion fails and writes nothing. (At 256x256 the
    unrepaired graph has a stride-0 pool, which the converter refuses in one line before native code sees it.)"""
    from edgematte.converter.repairs import registry
    from edgematte.core.errors import EdgematteError
    from edgematte.pipeline import ConvertOptions, convert

    unrepaired = tuple(name for name in registry.ORDER["onnx"] if name != "onnx.adaptive_pool_windows")
    monkeypatch.setitem(registry.ORDER, "onnx", unrepaired)
    options = ConvertOptions(formats=("onnx",), input_shape=(1, 3, 512, 512))
    with pytest.raises(EdgematteError, match=r"artefacts failed their parity bound: model.onnx max abs") as failed:
        convert(str(official_ppmattingv2), tmp_path / "out", options)
    worst = float(str(failed.value).split("max abs ")[1].split()[0])
    assert worst > 10 * 2.5e-3
    assert not (tmp_path / "out").exists()
