"""Matter: manifest-driven profile + backend; equal to the converter's own runs; no paddle/tensorflow needed."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.core.samples import parity_photo_names, sample_photo
from edgematte.runtime.matter import Matter

from .test_install_profiles import BLOCKER


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("artefact", ["model_fp32.tflite", "model_fp16.tflite", "model.onnx", "model_x86.nb"])
def test_matter_reproduces_the_converters_recorded_output(tiny_conversion, artefact):
    entry = next(a for a in _manifest(tiny_conversion)["artefacts"] if a["path"] == artefact)
    recorded = np.load(tiny_conversion / entry["parity"]["first_image_output"])
    matter = Matter.from_manifest(tiny_conversion, artefact=artefact, threads=2)
    photo = sample_photo(parity_photo_names()[0])
    output, _ = matter.run_model(photo)
    assert output.shape == recorded.shape
    assert np.abs(output - recorded).max() <= 1e-6
    alpha = matter(photo)
    assert alpha.shape == photo.shape[:2] and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0 and alpha.std() > 0.01


def test_arm_artefact_is_refused_on_this_host(tiny_conversion):
    with pytest.raises(EdgematteError, match="model_arm.nb"):
        Matter.from_manifest(tiny_conversion, artefact="model_arm.nb")


def test_unknown_artefact_lists_the_known_ones(tiny_conversion):
    with pytest.raises(EdgematteError, match="no artefact 'model.bin'.*model_fp32.tflite"):
        Matter.from_manifest(tiny_conversion, artefact="model.bin")


def test_default_artefact_is_fp32_tflite(tiny_conversion):
    matter = Matter.from_manifest(tiny_conversion)
    assert str(matter.backend.path).endswith("model_fp32.tflite")


def test_runtime_runs_tflite_and_onnx_without_paddle_and_tensorflow(tiny_conversion):
    code = BLOCKER + textwrap.dedent(
        f"""
        import numpy as np
        from edgematte.runtime.matter import Matter, composite_with_profile
        rgb = (np.arange(300 * 410 * 3) % 251).astype(np.uint8).reshape(300, 410, 3)
        for artefact in ("model_fp32.tflite", "model.onnx"):
            m = Matter.from_manifest({str(tiny_conversion)!r}, artefact=artefact)
            alpha = m(rgb)
            assert alpha.shape == (300, 410), alpha.shape
            out = composite_with_profile(rgb, alpha, (0, 255, 0))
            assert out.shape == (300, 410, 3) and out.dtype == np.uint8
        import sys
        assert not any(k.split('.')[0] in ('paddle', 'tensorflow') for k in sys.modules)
        print('ok')
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")
