"""``Matter``: one pre/post-processing profile joined to one backend, driven by the manifest.

    matter = Matter.from_manifest("out/")            # picks a host-runnable artefact
    alpha = matter(rgb)                               # float32 H x W in [0, 1] at the original size
    out = composite_with_profile(rgb, alpha, (0, 177, 64))

The manifest says everything: artefact file, input layout, tensor dtypes and quantization, profile.
An int8-I/O model gets its input quantized and its output dequantized with the tensors' own
(scale, zero point), as the Android app does.
"""

import time
from typing import Optional

import numpy as np

from ..core.errors import EdgematteError
from ..core.manifest import Artefact, Manifest, this_platform
from .backends import backend_for_path, open_backend
from .backends.base import TensorSpec
from .backends.litert import dequantize, quantize  # TFLite's own (scale, zero point) arithmetic
from .profiles import Profile, get_profile, profile_for_model, reads_transforms
from .profiles import composite as blend

# Host-runnable artefacts in order of preference when none is named.
PREFERENCE = (("tflite", "fp32"), ("onnx", "fp32"), ("nb", "fp32"), ("tflite", "fp16"), ("tflite", "int8"))


def select_artefact(manifest: Manifest, artefact: Optional[str] = None) -> Artefact:
    """The artefact named ``artefact`` (its path or file name), else the preferred one this machine runs."""
    if artefact is not None:
        return manifest.find(artefact)
    runnable = manifest.artefacts_for(this_platform())
    for fmt, precision in PREFERENCE:
        for entry in runnable:
            if entry.format == fmt and entry.precision.startswith(precision):
                return entry
    if runnable:
        return runnable[0]
    raise EdgematteError(f"{manifest.origin}: no artefact that runs on this machine ({this_platform()})")


class Matter:
    """Image in, alpha out: ``profile.preprocess`` -> ``backend.run`` -> ``profile.postprocess``.

    ``timings`` holds the last call's pre/model/post seconds.
    """

    def __init__(self, backend, profile: Profile, layout: str = "nchw", input_hw=None,
                 input_spec: Optional[TensorSpec] = None, output_spec: Optional[TensorSpec] = None):
        self.backend = backend
        self.profile = profile
        self.layout = layout
        self.input_hw = tuple(input_hw) if input_hw else None
        self.input_spec = input_spec or backend.inputs[0]
        self.output_spec = output_spec or backend.outputs[0]
        self.timings = {}

    @classmethod
    def from_manifest(cls, path_or_dir, artefact: Optional[str] = None, backend: Optional[str] = None,
                      threads: Optional[int] = None, profile: Optional[str] = None) -> "Matter":
        """Build from ``OUT/manifest.json``, its folder or a read :class:`Manifest`; ``artefact`` names one by
        path or file name (default: the preferred one this machine runs)."""
        manifest = path_or_dir if isinstance(path_or_dir, Manifest) else Manifest.read(path_or_dir)
        entry = select_artefact(manifest, artefact)
        path = manifest.file(entry)
        engine = open_backend(backend or backend_for_path(path), path, threads=threads)
        chosen = profile_for_model(profile or entry.profile or "android", manifest.model.transforms)
        return cls(engine, chosen, layout=entry.layout or "nchw", input_hw=manifest.model.input_hw)

    def model_input(self, rgb: np.ndarray):
        """(float32 tensor in the model's layout, preprocess state) for one RGB uint8 image."""
        return self.profile.preprocess(rgb, self.input_hw, layout=self.layout)

    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Float input tensor -> float model output; int8-I/O models are quantized/dequantized around the run."""
        if self.input_spec.quant is not None:
            tensor = quantize(tensor, self.input_spec)
        output = self.backend.run(tensor)
        if self.output_spec.quant is not None:
            output = dequantize(output, self.output_spec)
        return output

    def run_model(self, rgb: np.ndarray):
        """(float model output, preprocess state) for one RGB uint8 image."""
        t0 = time.perf_counter()
        tensor, state = self.model_input(rgb)
        t1 = time.perf_counter()
        output = self.run_tensor(tensor)
        t2 = time.perf_counter()
        self.timings = {"pre_s": t1 - t0, "model_s": t2 - t1}
        return output, state

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 H x W x 3 -> alpha float32 H x W in [0, 1] at the original size."""
        output, state = self.run_model(rgb)
        t2 = time.perf_counter()
        alpha = self.profile.postprocess(output, state)
        self.timings["post_s"] = time.perf_counter() - t2
        return alpha

    matte = __call__

    def composite(self, rgb: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
        return self.profile.composite(rgb, alpha, background)


def composite_with_profile(rgb: np.ndarray, alpha: np.ndarray, background, profile: str = "android") -> np.ndarray:
    """Blend ``rgb`` over ``background`` (RGB image, (r, g, b) colour or "blur") with ``alpha``, resizing an image
    background the way ``profile`` does (:func:`edgematte.runtime.profiles.composite` blends).

    ``profile`` decides how an image background is resized. paddleseg and fastdeploy resize it with OpenCV
    (the base ``Profile.resize_rgb``) whatever their transforms, so they need no model here.
    """
    if reads_transforms(profile):
        return blend(rgb, alpha, background)
    return get_profile(profile).composite(rgb, alpha, background)
