"""Golden vectors: every intermediate of a profile on a few images, for the Java twin to match.

``write_golden_vectors(OUT)`` writes ``OUT/index.json`` plus one ``.npy`` per array. The Java core
(``android_demo/core``) reads them and must reproduce each array: uint8 arrays exactly, float32
arrays within 1e-6. The Android app's verification mode writes its own results in the same format
(``generator.side == "android"``), so one reader (:func:`read_golden_vectors`) serves both.

Images (:func:`golden_images`), all from scikit-image, small so a test writes them in a second:
``portrait`` (astronaut, 256x256), ``landscape`` (chelsea, 300x451: odd-sized), ``tiny`` (7x5
crop of coffee: upscaled by the profile) and ``rgba`` (rocket, 107x160, with a synthetic soft
alpha channel that reaches 0 and 255; its RGB is unpremultiplied, as Android's
``Bitmap.getPixels`` returns it; every profile ignores the alpha channel).

Normalizations: each fixed-step (Android) profile is also written with the deploy.yaml transforms of
``NORMALIZATION_VARIANTS`` (only their Normalize counts: mean 0 / std 1 as RVM's, ImageNet's mean/std,
and none at all), as profile keys ``<profile>@<variant>`` (``android@imagenet``: case ids
``android@imagenet/portrait``, the describe() under ``index["profiles"]["android@imagenet"]``). Such a
case records ``variant`` and the ``transforms`` list it was built from (the Java twin builds its
profile from them as from a manifest's ``model.transforms``); a case without ``transforms`` used none.

Arrays per case (profile x image), names as in ``index.json``:

- ``input_rgb`` uint8 H x W x 3, ``input_alpha`` uint8 H x W (rgba image only)
- ``pre_<step>``: every array the profile's ``preprocess_steps`` returns (``resized``,
  ``normalized``, ``padded``...) with ``pre_tensor_nchw`` / ``pre_tensor_nhwc`` for both layouts
- ``model_output`` float32: what the model returned (dequantized when its output is integer), in
  the model's layout; ``post_<step>``: every array of ``postprocess_steps`` on it, ending with
  ``post_alpha`` (float32 H x W in [0, 1])
- ``alpha8`` uint8 H x W (the profile's ``alpha_to_uint8``)
- ``background_blur`` uint8 H x W x 3 and ``composite_colour`` / ``composite_blur`` /
  ``composite_image`` uint8 H x W x 3 (over ``BACKGROUND_COLOUR``, the "blur" background and
  the shared ``background_image`` resized by the profile)
- ``quant_input`` int8 (the model-layout tensor quantized), ``quant_output`` int8 and
  ``quant_output_dequantized`` float32, with the ``(scale, zero_point)`` pairs in ``index.json``
  ``quant``: the model's own when its tensors are int8, else ``STAND_IN_QUANT``.

The model: with ``model=None`` a deterministic stand-in (:func:`stand_in_alpha`, a smooth function
of the normalized tensor, no runtime needed) at ``DEFAULT_INPUT_HW``; otherwise a
:class:`~edgematte.runtime.backends.base.Backend`, or the path of a ``.tflite`` / ``.onnx`` /
``.nb`` file or of a converter output folder / ``manifest.json`` (its first host-runnable artefact).

Models with several inputs (:mod:`edgematte.runtime.model_io`, :mod:`edgematte.runtime.trimap`), under keys of
their own so the cases above stay as they were:

- ``index["trimaps"]["cases"]`` (:mod:`edgematte.runtime.golden_roles`): each uint8 trimap of
  ``golden_trimaps`` through ``trimap_tensor`` for each profile (without variants: a trimap is not
  normalized), at the model's input size: ``input_trimap`` (uint8 H x W, or H x W x 3 whose first channel is
  the trimap), ``pre_resized`` (uint8: the first channel of the
  profile's ``resized`` step on it, before snapping) and ``trimap_tensor`` (float32 [1, 1, h, w], values 0, 128,
  255); ``index["trimaps"]["synthetic"]``: ``synthetic_trimap`` at each of ``SYNTHETIC_TRIMAP_HW``.
- ``index["recurrent"]``: a tiny recurrent stand-in (``golden_roles.recurrent_stand_in``: image, two states and a
  constant in; foreground, alpha and two states out) run for ``RECURRENT_STEPS`` steps from zero states through
  ``FeedPlan`` / ``run_case``, once per artefact naming of ``RECURRENT_ARTEFACTS`` (as converted, onnx2tf-like
  renamed and reordered NHWC with one output left channels-first, matched by position). Per step ``k``:
  ``step<k>_src`` (the NCHW image), ``step<k>_feed<i>`` (what the artefact's i-th input was fed, its layout) and
  ``step<k>_output<j>`` (its j-th output); ``fed`` / ``fetched`` name the roles matched to the artefact's tensors.
- ``index["sequences"]["cases"]`` (:func:`edgematte.runtime.golden_roles.write_sequences`): a clip of
  ``RECURRENT_STEPS`` RGB uint8 frames (30x41, a pan over a photo) through a whole ``Matter``: each fixed-step
  profile case (variants included: ``unit`` is RVM's mean 0 / std 1) in front of the recurrent stand-in at
  ``SEQUENCE_MODEL_HW`` (8x12), laid out as the ``nchw`` and ``nhwc`` artefacts, reset once and the states fed
  back. Case ids ``sequence/<profile key>/<artefact>``; per frame ``k``: ``frame<k>_rgb``, ``frame<k>_feed<i>``,
  ``frame<k>_output<j>``, ``frame<k>_alpha`` (float32 H x W in [0, 1]) and ``frame<k>_alpha8`` (uint8).

Run ``python -m edgematte.runtime.vectors OUT [--model PATH] [--profile NAME ...] [--no-variants]`` (the
fixed-step profiles only: the runtime holds no model's deploy.yaml transforms), or ``edgematte runtime
vectors``, which passes PP-MattingV2's transforms from the zoo for paddleseg/fastdeploy.
"""

import argparse
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np

from edgematte import __version__
from edgematte.core.errors import EdgematteError
from edgematte.core.fsutil import atomic_dir, read_json_document
from edgematte.core.samples import sample_photo  # scikit-image is imported only when a photo is asked for
from edgematte.runtime.backends.base import Backend, TensorSpec
from edgematte.runtime.backends.litert import dequantize, quantize
from edgematte.runtime.golden_cases import CaseWriter, ProfileCase, soft_alpha
from edgematte.runtime.golden_roles import write_recurrent, write_sequences, write_trimaps
from edgematte.runtime.profiles import HW, blurred_background, profile_for_model, reads_transforms

SCHEMA = "edgematte.golden/1"
INDEX_NAME = "index.json"
DEFAULT_PROFILES = ("android", "paddleseg-android")
DEFAULT_INPUT_HW: HW = (96, 128)
# deploy.yaml transforms the fixed-step profiles are also written with (see the module docstring). "unit":
# RVM's v / 255 (255 * mean and 255 * std exact: android's "exact" rule); "imagenet": not exact in float32
# (android falls back to the "paddleseg" rule); "raw": no Normalize, float32(v) in 0..255; its resize is
# there to show that the Android profiles ignore the transforms' geometry.
NORMALIZATION_VARIANTS = {
    "unit": [{"type": "LoadImages", "to_rgb": True},
             {"type": "Normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}],
    "imagenet": [{"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}],
    "raw": [{"type": "LoadImages"}, {"type": "ResizeByShort", "short_size": 512}],
}
BACKGROUND_COLOUR = (24, 160, 88)
# Used for the quantization vectors when the model's own tensors are float. Input: pixel 255
# normalizes to 1.0 -> 128, clipped to 127; output: the stand-in's -0.05..1.05 reaches past both
# ends of int8 (-141..141 before the clip). Ties of round-half-to-even are unit-tested in Java.
STAND_IN_QUANT = {
    "input": {"dtype": "int8", "scale": 1.0 / 128.0, "zero_point": 0},
    "output": {"dtype": "int8", "scale": 1.0 / 256.0, "zero_point": -128},
}


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldenImage:
    """One test image: ``rgb`` uint8 H x W x 3, ``alpha`` uint8 H x W or None."""

    name: str
    source: str
    rgb: np.ndarray
    alpha: Optional[np.ndarray] = None


def golden_images() -> List[GoldenImage]:
    """The four images of the module docstring (needs scikit-image; no downloads)."""
    astronaut = cv2.resize(sample_photo("astronaut"), (256, 256), interpolation=cv2.INTER_AREA)
    rocket = cv2.resize(sample_photo("rocket"), (160, 107), interpolation=cv2.INTER_AREA)
    return [
        GoldenImage("portrait", "skimage.data.astronaut() 512x512, cv2 INTER_AREA to 256x256", astronaut),
        GoldenImage("landscape", "skimage.data.chelsea() 300x451 as is", sample_photo("chelsea")),
        GoldenImage("tiny", "skimage.data.coffee()[180:187, 290:295] (7x5)",
                    np.ascontiguousarray(sample_photo("coffee")[180:187, 290:295])),
        GoldenImage("rgba", "skimage.data.rocket() 427x640, INTER_AREA to 107x160, synthetic soft alpha",
                    rocket, soft_alpha(rocket.shape[:2])),
    ]


def golden_background() -> np.ndarray:
    """uint8 90 x 135 x 3: skimage's coffee shrunk; each profile resizes it to every photo."""
    return cv2.resize(sample_photo("coffee"), (135, 90), interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def stand_in_alpha(tensor: np.ndarray, layout: str = "nchw") -> np.ndarray:
    """The stand-in "model": float32 [1,1,h,w] ("nchw") or [1,h,w,1] ("nhwc") from a normalized tensor.

    ``z = 3 * (0.5 r + 0.35 g - 0.45 b) + 2 * c`` with ``r, g, b`` the tensor's channels (float64)
    and ``c = 1 - 2 * hypot((y - 0.45) / 0.6, (x - 0.5) / 0.5)`` a centred blob on the unit square
    (pixel centres), then ``1.1 * sigmoid(z) - 0.05``: smooth, following the photo's colours, and
    slightly outside [0, 1] so the profiles' clamping is exercised.
    """
    x = np.asarray(tensor, np.float64)
    planes = x[0] if layout == "nchw" else x[0].transpose(2, 0, 1)
    red, green, blue = planes
    h, w = red.shape
    rows = (np.arange(h) + 0.5) / h
    cols = (np.arange(w) + 0.5) / w
    centre = 1.0 - 2.0 * np.hypot((rows[:, None] - 0.45) / 0.6, (cols[None, :] - 0.5) / 0.5)
    z = 3.0 * (0.5 * red + 0.35 * green - 0.45 * blue) + 2.0 * centre
    alpha = (1.1 / (1.0 + np.exp(-z)) - 0.05).astype(np.float32)
    return alpha[None, None] if layout == "nchw" else alpha[None, :, :, None]


@dataclass
class _Model:
    """What the vectors need from a model: float tensor in, float alpha out, plus its facts."""

    description: dict
    input_hw: Optional[HW]
    layout: str
    input_quant: Optional[dict]
    output_quant: Optional[dict]
    run: Callable[[np.ndarray], np.ndarray]


def _quant_entry(spec: TensorSpec) -> Optional[dict]:
    if spec.quant is None:
        return None
    return {"dtype": spec.dtype, "scale": float(spec.quant[0]), "zero_point": int(spec.quant[1])}


def _spec_entry(spec: TensorSpec) -> dict:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "quant": _quant_entry(spec)}


def _backend_model(backend: Backend) -> _Model:
    in_spec, out_spec = backend.inputs[0], backend.outputs[0]
    shape = tuple(in_spec.shape)
    if len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise EdgematteError(f"{backend.path}: model input {in_spec.name} has shape {list(shape)}; expected "
                             f"[1,3,h,w] or [1,h,w,3]")
    layout = "nchw" if shape[1] == 3 else "nhwc"
    hw = shape[2:4] if layout == "nchw" else shape[1:3]
    input_hw = tuple(int(d) for d in hw) if all(d > 0 for d in hw) else None

    def run(tensor):
        x = quantize(tensor, in_spec) if in_spec.quant is not None else tensor
        out = backend.run(x)
        return dequantize(out, out_spec) if out_spec.quant is not None else np.asarray(out, np.float32)

    description = {"kind": "backend", "backend": backend.name, "path": str(backend.path),
                   "input": _spec_entry(in_spec), "output": _spec_entry(out_spec)}
    return _Model(description, input_hw, layout, _quant_entry(in_spec), _quant_entry(out_spec), run)


_BACKEND_BY_SUFFIX = {".tflite": ("litert", "LiteRTBackend"), ".onnx": ("onnxruntime", "OnnxRuntimeBackend"),
                      ".nb": ("paddle_lite", "PaddleLiteBackend")}


def _open_model_file(path: Path) -> Backend:
    if path.suffix not in _BACKEND_BY_SUFFIX:
        raise EdgematteError(f"{path}: not a model file this runtime opens ({', '.join(_BACKEND_BY_SUFFIX)})")
    module, cls = _BACKEND_BY_SUFFIX[path.suffix]
    return getattr(importlib.import_module(f"edgematte.runtime.backends.{module}"), cls)(path, threads=1)


def _is_vectors_folder(folder: Path) -> bool:
    """A vectors folder written before outputs were marked: it holds an index of ours."""
    try:
        read_json_document(Path(folder) / "index.json", SCHEMA, "golden-vector index")
        return True
    except EdgematteError:
        return False


def _manifest_model_path(path: Path) -> Path:
    """The first artefact of a converter manifest that runs on this host (x86 .nb, .onnx, .tflite)."""
    from edgematte.core.manifest import read_manifest, this_platform

    manifest = read_manifest(path)
    for artefact in manifest.artefacts_for(this_platform()):
        return manifest.file(artefact)
    raise EdgematteError(f"{path}: the manifest lists no artefact that runs on this host (x86 .nb, .onnx, .tflite)")


def _resolve_model(model, input_hw: Optional[HW]) -> _Model:
    if model is None:
        hw = tuple(input_hw) if input_hw is not None else DEFAULT_INPUT_HW
        description = {"kind": "stand-in", "function": "edgematte.runtime.vectors.stand_in_alpha",
                       "formula": "1.1 * sigmoid(3 * (0.5 r + 0.35 g - 0.45 b) + 2 * centre_blob) - 0.05"}
        return _Model(description, hw, "nchw", None, None, lambda t: stand_in_alpha(t, "nchw"))
    if not isinstance(model, Backend):
        path = Path(model)
        is_manifest = path.is_dir() or path.name.endswith(".json")
        model = _open_model_file(_manifest_model_path(path) if is_manifest else path)
    resolved = _backend_model(model)
    if input_hw is not None and resolved.input_hw is not None and tuple(input_hw) != resolved.input_hw:
        raise EdgematteError(f"{model.path}: model input is {resolved.input_hw[0]}x{resolved.input_hw[1]}, "
                             f"not the requested {input_hw[0]}x{input_hw[1]}")
    if resolved.input_hw is None:
        resolved.input_hw = tuple(input_hw) if input_hw is not None else None
    return resolved


# ----------------------------------------------------------------------------------------------
# Writing and reading
# ----------------------------------------------------------------------------------------------


def _quant_spec(entry: dict) -> TensorSpec:
    return TensorSpec("vector", (), entry["dtype"], (entry["scale"], entry["zero_point"]))


def _add_steps(writer: CaseWriter, prefix: str, steps: dict, skip=("state", "tensor")) -> None:
    for name, value in steps.items():
        if name not in skip and isinstance(value, np.ndarray):
            writer.add(f"{prefix}_{name}", value)


def _profile_cases(names: Sequence[str], transforms: Optional[Sequence[dict]],
                   variants: Sequence[str]) -> List[ProfileCase]:
    """Each profile with ``transforms``, then each fixed-step one again per normalization variant (after
    all the others, so the cases of a run without variants keep their places in the index)."""
    unknown = [v for v in variants if v not in NORMALIZATION_VARIANTS]
    if unknown:
        raise EdgematteError(f"unknown normalization variant(s) {unknown}; choose from "
                             f"{', '.join(NORMALIZATION_VARIANTS)}")
    used = list(transforms) if transforms else None  # profile_for_model takes [] as None too
    cases = [ProfileCase(name, profile_for_model(name, used), None, used) for name in names]
    for name in (n for n in names if not reads_transforms(n)):
        cases.extend(ProfileCase(f"{name}@{v}", profile_for_model(name, NORMALIZATION_VARIANTS[v]), v,
                                  NORMALIZATION_VARIANTS[v]) for v in variants)
    return cases


def _write_case(root: Path, chosen: ProfileCase, image: GoldenImage, model: _Model, quant: dict,
                background: np.ndarray) -> dict:
    profile, profile_name = chosen.profile, chosen.profile.name
    writer = CaseWriter(root, f"{chosen.key}/{image.name}")
    writer.add("input_rgb", image.rgb)
    if image.alpha is not None:
        writer.add("input_alpha", image.alpha)
    steps = {layout: profile.preprocess_steps(image.rgb, model.input_hw, layout) for layout in ("nchw", "nhwc")}
    _add_steps(writer, "pre", steps["nchw"])
    for layout in ("nchw", "nhwc"):
        writer.add(f"pre_tensor_{layout}", steps[layout]["tensor"])
    tensor, state = steps[model.layout]["tensor"], steps[model.layout]["state"]
    writer.add("quant_input", quantize(tensor, _quant_spec(quant["input"])))

    output = model.run(tensor)
    writer.add("model_output", output)
    quantized_output = quantize(output, _quant_spec(quant["output"]))
    writer.add("quant_output", quantized_output)
    writer.add("quant_output_dequantized", dequantize(quantized_output, _quant_spec(quant["output"])))
    post = profile.postprocess_steps(output, state)
    _add_steps(writer, "post", post, skip=())
    alpha = post["alpha"]
    writer.add("alpha8", profile.alpha_to_uint8(alpha))

    writer.add("background_blur", blurred_background(image.rgb))
    writer.add("composite_colour", profile.composite(image.rgb, alpha, BACKGROUND_COLOUR))
    writer.add("composite_blur", profile.composite(image.rgb, alpha, "blur"))
    writer.add("composite_image", profile.composite(image.rgb, alpha, background))
    state_dict = state.as_dict()
    return {
        "id": f"{chosen.key}/{image.name}",
        "profile": profile_name,
        "image": image.name,
        "source": image.source,
        "layout": model.layout,
        "original_hw": list(state_dict["original_hw"]),
        "model_hw": list(state_dict["model_hw"]),
        "resized_hw": list(state_dict["resized_hw"]),
        "crop_hw": list(state_dict["crop_hw"]),
        "arrays": writer.arrays,
        **chosen.facts(),
    }


def write_golden_vectors(out_dir, profiles: Sequence[str] = DEFAULT_PROFILES, model=None,
                         input_hw: Optional[HW] = None, images: Optional[Sequence[GoldenImage]] = None,
                         transforms: Optional[Sequence[dict]] = None,
                         variants: Optional[Sequence[str]] = None) -> Path:
    """Write golden vectors for ``profiles`` x ``images`` into ``out_dir``; returns the index path.

    ``model``: None (the stand-in at ``input_hw`` or ``DEFAULT_INPUT_HW``), a Backend, or a path
    (model file, converter output folder or manifest.json). ``images`` default to
    :func:`golden_images`. ``transforms``: the model's deploy.yaml transforms list, which the
    paddleseg/fastdeploy profiles need (callers above the runtime pass the zoo's, e.g. ppmattingv2's);
    the fixed-step profiles take only its Normalize. ``variants``: names in ``NORMALIZATION_VARIANTS``
    the fixed-step profiles are written with as well; None means all of them for the stand-in and none
    for a real model (whose own normalization is in its transforms). The folder appears complete or not
    at all (replacing an older one).
    """
    if variants is None:
        variants = tuple(NORMALIZATION_VARIANTS) if model is None else ()
    chosen = _profile_cases(profiles, transforms, variants)
    resolved = _resolve_model(model, input_hw)
    images = list(images) if images is not None else golden_images()
    names = [image.name for image in images]
    if len(set(names)) != len(names):
        raise ValueError(f"golden image names must be unique, got {names}")
    quant = {
        "input": {**(resolved.input_quant or STAND_IN_QUANT["input"]),
                  "source": "model" if resolved.input_quant else "stand-in"},
        "output": {**(resolved.output_quant or STAND_IN_QUANT["output"]),
                   "source": "model" if resolved.output_quant else "stand-in"},
    }
    background = golden_background()
    out_dir = Path(out_dir)
    inputs = [model] if isinstance(model, (str, Path)) else []
    with atomic_dir(out_dir, inputs=inputs, recognise=_is_vectors_folder, what="vectors folder") as tmp:
        np.save(tmp / "background_image.npy", background, allow_pickle=False)
        index = {
            "schema": SCHEMA,
            "generator": {"side": "python", "edgematte": __version__},
            "model": {**resolved.description,
                      "input_hw": list(resolved.input_hw) if resolved.input_hw else None,
                      "layout": resolved.layout},
            "quant": quant,
            "background_colour": list(BACKGROUND_COLOUR),
            "background_image": {"file": "background_image.npy", "shape": list(background.shape),
                                 "dtype": "uint8"},
            "profiles": {c.key: c.profile.describe() for c in chosen},
            "cases": [_write_case(tmp, c, image, resolved, quant, background) for c in chosen for image in images],
            "trimaps": write_trimaps(tmp, chosen, resolved.input_hw or DEFAULT_INPUT_HW),
            "recurrent": write_recurrent(tmp),
            "sequences": write_sequences(tmp, chosen),
        }
        (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return out_dir / INDEX_NAME


@dataclass
class GoldenVectors:
    """A golden-vector folder: ``index`` (the parsed index.json) and lazy access to its arrays."""

    root: Path
    index: dict

    @property
    def cases(self) -> List[dict]:
        return self.index["cases"]

    def case(self, case_id: str) -> dict:
        for case in self.cases:
            if case["id"] == case_id:
                return case
        raise KeyError(f"{self.root}: no case {case_id!r}")

    def array(self, case: dict, name: str) -> np.ndarray:
        """The array ``name`` of ``case`` (a case dict or id), checked against its recorded shape/dtype."""
        if isinstance(case, str):
            case = self.case(case)
        entry = case["arrays"][name]
        array = np.load(self.root / entry["file"], allow_pickle=False)
        if list(array.shape) != entry["shape"] or array.dtype.name != entry["dtype"]:
            raise EdgematteError(f"{self.root / entry['file']}: holds {array.dtype.name} {list(array.shape)}, "
                                 f"index.json says {entry['dtype']} {entry['shape']}")
        return array


def read_golden_vectors(path) -> GoldenVectors:
    """Open a golden-vector folder (or its index.json) written by Python or by the Android app."""
    path = Path(path)
    index_path = path / INDEX_NAME if path.is_dir() else path
    index = read_json_document(index_path, SCHEMA, "golden-vector index")
    return GoldenVectors(index_path.parent, index)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgematte.runtime.vectors",
                                     description="Write golden vectors (index.json + .npy) into OUT.")
    parser.add_argument("out", help="output folder (replaced when complete)")
    parser.add_argument("--model", default=None,
                        help="model file (.tflite/.onnx/.nb), converter output folder or manifest.json "
                             "(default: the deterministic stand-in)")
    parser.add_argument("--profile", dest="profiles", action="append", default=None,
                        help=f"profile to write (repeatable; default: {', '.join(DEFAULT_PROFILES)}; paddleseg and "
                             f"fastdeploy need a model's transforms: use `edgematte runtime vectors`)")
    parser.add_argument("--input-size", nargs=2, type=int, default=None, metavar=("H", "W"),
                        help=f"stand-in model input size (default {DEFAULT_INPUT_HW[0]} {DEFAULT_INPUT_HW[1]})")
    parser.add_argument("--no-variants", action="store_true",
                        help=f"skip the normalization variants ({', '.join(NORMALIZATION_VARIANTS)}) the stand-in "
                             f"is written with by default")
    args = parser.parse_args(argv)
    try:
        index = write_golden_vectors(args.out, tuple(args.profiles or DEFAULT_PROFILES), args.model,
                                     tuple(args.input_size) if args.input_size else None,
                                     variants=() if args.no_variants else None)
    except EdgematteError as error:
        print(f"edgematte: error: {error}", file=sys.stderr)
        return 1
    cases = json.loads(index.read_text())["cases"]
    print(f"wrote {len(cases)} golden-vector cases to {index.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
