"""``Matter``: one pre/post-processing profile joined to one backend, driven by the manifest.

    matter = Matter.from_manifest("out/")            # picks a host-runnable artefact
    alpha = matter(rgb)                               # float32 H x W in [0, 1] at the original size
    out = composite_with_profile(rgb, alpha, (0, 177, 64))

The manifest says everything: artefact file, input layout, tensor dtypes and quantization, profile, and
the role of every input and output. An int8-I/O model gets its input quantized and its output dequantized
with the tensors' own (scale, zero point), as the Android app does.

Models with more than the image (:mod:`edgematte.runtime.model_io`): a recurrent one (RVM) carries its
states from call to call (zeros after :meth:`Matter.reset`, so one call is one frame from zero states);
one that takes a trimap (DIM) gets it per call (``matter(rgb, trimap=...)``, see
:func:`edgematte.runtime.trimap.trimap_tensor`).
"""

import time
from typing import Dict, List, Optional

import numpy as np

from ..core.errors import EdgematteError
from ..core.manifest import Artefact, Manifest, this_platform
from .backends import backend_for_path, open_backend
from .backends.base import TensorSpec
from .backends.litert import dequantize, quantize  # TFLite's own (scale, zero point) arithmetic
from .model_io import FeedPlan
from .profiles import Profile, get_profile, profile_for_model, reads_transforms
from .profiles import composite as blend
from .trimap import trimap_tensor

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
                 input_spec: Optional[TensorSpec] = None, output_spec: Optional[TensorSpec] = None,
                 plan: Optional[FeedPlan] = None):
        self.backend = backend
        self.profile = profile
        self.layout = layout
        self.input_hw = tuple(input_hw) if input_hw else None
        self.plan = None if plan is None or plan.single_image else plan
        image = next(i for i, r in enumerate(self.plan.inputs) if r["role"] == "image") if self.plan else 0
        self.input_spec = input_spec or backend.inputs[image]
        self.output_spec = output_spec or backend.outputs[self.plan.alpha_index if self.plan else 0]
        if self.plan is not None and (self.input_spec.quant is not None or self.output_spec.quant is not None):
            raise EdgematteError(f"{backend.path}: integer I/O for a model with several inputs is not supported")
        self.states: Dict[str, np.ndarray] = {}  # the next call's state inputs, in the artefact's layout
        self.reset()
        self.timings = {}

    @property
    def takes_trimap(self) -> bool:
        return self.plan is not None and self.plan.takes_trimap

    @property
    def recurrent(self) -> bool:
        return self.plan is not None and self.plan.recurrent

    def reset(self) -> None:
        """Start a new clip: a recurrent model's next call starts from zero states."""
        self.states = self.plan.fed_zero_states() if self.plan is not None else {}

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
        layout = entry.layout or "nchw"
        return cls(engine, chosen, layout=layout, input_hw=manifest.model.input_hw,
                   plan=FeedPlan.for_artefact(manifest.model, engine, layout, entry))

    def model_input(self, rgb: np.ndarray):
        """(float32 tensor in the model's layout, preprocess state) for one RGB uint8 image."""
        return self.profile.preprocess(rgb, self.input_hw, layout=self.layout)

    def trimap_input(self, trimap: np.ndarray, image_hw) -> np.ndarray:
        """float32 [1, 1, h, w] for a uint8 trimap of the photo's size (:func:`.trimap.trimap_tensor`)."""
        return trimap_tensor(self.profile, trimap, image_hw, self.input_hw)

    def run_tensor(self, tensor: np.ndarray, trimap: Optional[np.ndarray] = None) -> np.ndarray:
        """Float input tensor -> float model output (the alpha); int8-I/O models are quantized/dequantized
        around the run. ``trimap``: :meth:`trimap_input`'s tensor, for a model that takes one. A recurrent
        model feeds the states the previous call returned and keeps the new ones."""
        if self.plan is None:
            if self.input_spec.quant is not None:
                tensor = quantize(tensor, self.input_spec)
            output = self.backend.run(tensor)
            if self.output_spec.quant is not None:
                output = dequantize(output, self.output_spec)
            return output
        return self.run_outputs(tensor, trimap)[self.plan.alpha_index]

    def run_outputs(self, tensor: np.ndarray, trimap: Optional[np.ndarray] = None) -> List[np.ndarray]:
        """Every output of one call, in the backend's order (float I/O models only): what :meth:`run_tensor`
        takes the alpha from (:attr:`alpha_index`), with states carried the same way."""
        if self.plan is None:
            if self.input_spec.quant is not None or self.output_spec.quant is not None:
                raise EdgematteError(f"{self.backend.path}: every output of an integer-I/O model is not available")
            return self.backend.run_feeds([tensor])
        if self.plan.takes_trimap and trimap is None:
            raise EdgematteError(f"{self.backend.path}: this model takes a trimap with the image (matte --trimap)")
        step = {r["name"]: trimap for r in self.plan.inputs if r["role"] == "trimap"}
        # States stay in the artefact's layout from call to call (fed as they came out).
        ready = {**self.states, **{r["name"]: tensor for r in self.plan.inputs if r["role"] == "image"}}
        outputs = self.backend.run_feeds(self.plan.feeds(step, {}, ready))
        self.states.update(self.plan.fed_next_states(outputs))
        return outputs

    @property
    def alpha_index(self) -> int:
        """The alpha's position among the backend's outputs."""
        return self.plan.alpha_index if self.plan is not None else 0

    def run_model(self, rgb: np.ndarray, trimap: Optional[np.ndarray] = None):
        """(float model output, preprocess state) for one RGB uint8 image (and its uint8 trimap, if the model
        takes one)."""
        t0 = time.perf_counter()
        tensor, state = self.model_input(rgb)
        trimap_in = self.trimap_input(trimap, rgb.shape[:2]) if trimap is not None else None
        t1 = time.perf_counter()
        output = self.run_tensor(tensor, trimap_in)
        t2 = time.perf_counter()
        self.timings = {"pre_s": t1 - t0, "model_s": t2 - t1}
        return output, state

    def __call__(self, rgb: np.ndarray, trimap: Optional[np.ndarray] = None) -> np.ndarray:
        """RGB uint8 H x W x 3 (and a uint8 H x W trimap for a model that takes one) -> alpha float32 H x W in
        [0, 1] at the original size."""
        output, state = self.run_model(rgb, trimap)
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
