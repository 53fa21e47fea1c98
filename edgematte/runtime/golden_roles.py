"""Golden vectors for models with several inputs (part of :func:`edgematte.runtime.vectors.write_golden_vectors`):
trimaps through each profile's geometry, recurrent state carried through :class:`~.model_io.FeedPlan`, and a
short clip through a whole :class:`~.matter.Matter` (profile, recurrent stand-in, states fed back). The Java core
(``Trimap``, ``FeedPlan``, ``MattingPipeline``) must reproduce every array: integers exactly, floats within 1e-6."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from edgematte.core.samples import sample_photo
from edgematte.runtime.backends.base import TensorSpec
from edgematte.runtime.golden_cases import CaseWriter, ProfileCase, soft_alpha
from edgematte.runtime.matter import Matter
from edgematte.runtime.model_io import FeedPlan, layout_to_onnx, onnx_to_layout, run_case
from edgematte.runtime.profiles import HW, reads_transforms
from edgematte.runtime.trimap import LEVELS, synthetic_trimap, trimap_tensor

SYNTHETIC_TRIMAP_HW: Tuple[HW, ...] = ((96, 128), (33, 20), (7, 5), (1, 1))


@dataclass(frozen=True)
class GoldenTrimap:
    """One test trimap: ``trimap`` uint8 H x W (values 0/128/255), or H x W x 3 whose first channel is it."""

    name: str
    source: str
    trimap: np.ndarray


def golden_trimaps() -> List[GoldenTrimap]:
    """Trimaps where the profiles' resizes make values between the levels, so snapping matters."""
    columns = np.tile(np.array([0, 255], np.uint8), (192, 128))
    soft = soft_alpha((107, 160))
    banded = np.full(soft.shape, 128, np.uint8)
    banded[soft < 64] = 0
    banded[soft > 191] = 255
    tiny = np.asarray(LEVELS, np.float32)[(np.arange(35).reshape(7, 5) * 7) % 3].astype(np.uint8)
    return [
        GoldenTrimap("columns", "192x256, columns alternating 0/255: halved to 96x128 every pixel is 127.5 -> 128",
                     columns),
        GoldenTrimap("banded", "107x160, the rgba image's soft alpha cut at 64/191 (letterboxed: edges between "
                               "levels)", banded),
        GoldenTrimap("tiny", "7x5, levels (7 i) mod 3 in C order (upscaled: ramps between levels)", tiny),
        GoldenTrimap("channels", "the banded trimap as 107x160x3 with other channels 255 - t and t // 2 (only "
                                 "the first is the trimap)", np.dstack([banded, 255 - banded, banded // 2])),
    ]


def write_trimaps(root: Path, chosen: Sequence[ProfileCase], input_hw: HW) -> dict:
    """Each golden trimap through ``trimap_tensor`` for each profile without a variant, and the synthetic ones."""
    cases = []
    for chosen_case in (c for c in chosen if c.variant is None):
        profile = chosen_case.profile
        for item in golden_trimaps():
            writer = CaseWriter(root, f"trimap/{chosen_case.key}/{item.name}")
            grey = item.trimap if item.trimap.ndim == 2 else item.trimap[..., 0]
            steps = profile.preprocess_steps(np.repeat(grey[..., None], 3, axis=2), input_hw)
            writer.add("input_trimap", item.trimap)
            writer.add("pre_resized", steps["resized"][..., 0])
            writer.add("trimap_tensor", trimap_tensor(profile, item.trimap, grey.shape, input_hw))
            cases.append({"id": f"trimap/{chosen_case.key}/{item.name}", "profile": profile.name,
                          "trimap": item.name, "source": item.source, "original_hw": list(grey.shape),
                          "model_hw": list(input_hw), "arrays": writer.arrays, **chosen_case.facts()})
    synthetic = []
    for hw in SYNTHETIC_TRIMAP_HW:
        writer = CaseWriter(root, f"trimap/synthetic/{hw[0]}x{hw[1]}")
        writer.add("synthetic_trimap", synthetic_trimap(hw))
        synthetic.append({"id": f"trimap/synthetic/{hw[0]}x{hw[1]}", "hw": list(hw), "arrays": writer.arrays})
    return {"levels": list(LEVELS), "cases": cases, "synthetic": synthetic}


# The recurrent stand-in's roles, as a schema 1.2 manifest records them (RVM's names, tiny shapes).
RECURRENT_STEPS = 3
RECURRENT_INPUTS = [
    {"name": "src", "role": "image", "shape": [1, 3, 8, 12], "dtype": "float32"},
    {"name": "r1i", "role": "state", "shape": [1, 4, 4, 6], "dtype": "float32", "pair": "r1o"},
    {"name": "r2i", "role": "state", "shape": [1, 2, 2, 3], "dtype": "float32", "pair": "r2o"},
    {"name": "downsample_ratio", "role": "constant", "shape": [1], "dtype": "float32", "value": [0.25]},
]
RECURRENT_OUTPUTS = [
    {"name": "fgr", "role": "foreground"},
    {"name": "pha", "role": "alpha"},
    {"name": "r1o", "role": "state", "pair": "r1i"},
    {"name": "r2o", "role": "state", "pair": "r2i"},
]
# How artefacts may name, order and lay out the same tensors: as converted (ONNX); as onnx2tf leaves them
# (":0" suffixes, other case, reordered, channels-last but r1o kept channels-first); names that match nothing
# (fed by position, all channels-last).
RECURRENT_ARTEFACTS = {
    "nchw": {"inputs": ["src", "r1i", "r2i"], "outputs": ["fgr", "pha", "r1o", "r2o"], "layout": "nchw",
             "input_layouts": None, "output_layouts": None},
    "nhwc": {"inputs": ["r2i:0", "src", "R1I"], "outputs": ["r1o:0", "pha", "r2o", "fgr"], "layout": "nhwc",
             "input_layouts": ["nhwc", "nhwc", "nhwc"], "output_layouts": ["nchw", "nhwc", "nhwc", "nhwc"]},
    "positional": {"inputs": ["input_1", "input_2", "input_3"],
                   "outputs": ["Identity", "Identity_1", "Identity_2", "Identity_3"], "layout": "nhwc",
                   "input_layouts": None, "output_layouts": None},
}


def recurrent_stand_in(src: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> Tuple[np.ndarray, ...]:
    """The recurrent stand-in "model", all float32 NCHW, every operation one float32 rounding (left to right):
    src [1,3,8,12], r1 [1,4,4,6], r2 [1,2,2,3] -> (fgr, pha, r1o, r2o) of shapes src, [1,1,8,12], r1, r2:

    - ``fgr = src * 0.75 + 0.125``
    - ``pha = src[0] * 0.25 + src[1] * 0.5 + up2(r1[0]) * 0.125 + up4(r2[1]) * 0.0625`` (upN: nearest, N times)
    - ``r1o[c] = r1[c] * float32(0.3) + src[(0, 1, 2, 0)[c]][::2, ::2] * 0.25 + (c + 1) * 0.125``
    - ``r2o[c] = r2[c] * 0.75 - r1[c][::2, ::2] * 0.5 + 0.0625``
    """
    f32 = np.float32
    fgr = src * f32(0.75) + f32(0.125)
    up1 = r1[:, :1].repeat(2, axis=2).repeat(2, axis=3)
    up2 = r2[:, 1:2].repeat(4, axis=2).repeat(4, axis=3)
    pha = src[:, :1] * f32(0.25) + src[:, 1:2] * f32(0.5) + up1 * f32(0.125) + up2 * f32(0.0625)
    bias = np.arange(1, 5, dtype=np.float32).reshape(1, 4, 1, 1) * f32(0.125)
    r1o = r1 * f32(0.3) + src[:, [0, 1, 2, 0], ::2, ::2] * f32(0.25) + bias
    r2o = r2 * f32(0.75) - r1[:, :2, ::2, ::2] * f32(0.5) + f32(0.0625)
    return fgr, pha, r1o, r2o


def recurrent_frame(step: int) -> np.ndarray:
    """float32 [1, 3, 8, 12]: step ``step``'s image, ``((7 i + 13 step) mod 31) / 15 - 1`` over the flat index i."""
    index = np.arange(3 * 8 * 12).reshape(1, 3, 8, 12)
    return ((index * 7 + 13 * step) % 31).astype(np.float32) / np.float32(15) - np.float32(1)


def _recurrent_runner(plan: FeedPlan) -> Callable[[List[np.ndarray]], List[np.ndarray]]:
    """The stand-in as an artefact named and laid out as ``plan`` says: feeds and outputs in its order/layouts."""

    def run(feeds: List[np.ndarray]) -> List[np.ndarray]:
        by_name = {r["name"]: layout_to_onnx(x, plan.input_layout(i))
                   for i, (r, x) in enumerate(zip(plan.inputs, feeds))}
        out: Dict[str, np.ndarray] = dict(zip(("fgr", "pha", "r1o", "r2o"),
                                              recurrent_stand_in(by_name["src"], by_name["r1i"], by_name["r2i"])))
        return [onnx_to_layout(out[r["name"]], plan.output_layout(j)) for j, r in enumerate(plan.outputs)]

    return run


def write_recurrent(root: Path) -> dict:
    cases = []
    for key, artefact in RECURRENT_ARTEFACTS.items():
        plan = FeedPlan.of(RECURRENT_INPUTS, RECURRENT_OUTPUTS, artefact["inputs"], artefact["outputs"],
                           artefact["layout"], f"recurrent/{key}", artefact["input_layouts"],
                           artefact["output_layouts"])
        run, fed = _recurrent_runner(plan), []

        def recording(feeds, run=run, fed=fed):
            fed.append(feeds)
            return run(feeds)

        steps = [{"src": recurrent_frame(k)} for k in range(RECURRENT_STEPS)]
        results = run_case(recording, plan, steps)
        writer = CaseWriter(root, f"recurrent/{key}")
        for k, (step, feeds, outputs) in enumerate(zip(steps, fed, results)):
            writer.add(f"step{k}_src", step["src"])
            for i, array in enumerate(feeds):
                writer.add(f"step{k}_feed{i}", array)
            for j, array in enumerate(outputs):
                writer.add(f"step{k}_output{j}", array)
        cases.append({"id": f"recurrent/{key}", **artefact, "steps": RECURRENT_STEPS,
                      "fed": [r["name"] for r in plan.inputs], "fetched": [r["name"] for r in plan.outputs],
                      "arrays": writer.arrays})
    return {"function": "edgematte.runtime.golden_roles.recurrent_stand_in", "inputs": RECURRENT_INPUTS,
            "outputs": RECURRENT_OUTPUTS, "cases": cases}


# A clip through the whole pipeline: each fixed-step profile (and its normalization variants) in front of the
# recurrent stand-in, as artefacts laid out channels-first and channels-last (onnx2tf-like, see above).
SEQUENCE_MODEL_HW: HW = (8, 12)  # the stand-in's image size: the profiles letterbox every frame into it
SEQUENCE_ARTEFACTS = ("nchw", "nhwc")


def sequence_frames(count: int = RECURRENT_STEPS) -> List[np.ndarray]:
    """``count`` RGB uint8 frames of 30 x 41 x 3: crops of skimage's astronaut panning 2 rows and 5 columns a frame
    (letterboxed into 8 x 12 they fill 8 x 11: the last column is padding). Bright enough that the default
    android profile's alpha is mostly inside (0, 1), with some clamped to 0."""
    photo = sample_photo("astronaut")
    return [np.ascontiguousarray(photo[100 + 2 * k:130 + 2 * k, 150 + 5 * k:191 + 5 * k]) for k in range(count)]


class _StandInBackend:
    """The recurrent stand-in behind the Backend interface :class:`~.matter.Matter` drives: tensors named, ordered
    and laid out as ``plan`` says (float32, no quantization); every call's feeds and outputs are kept in
    ``calls``."""

    name = "stand-in"

    def __init__(self, plan: FeedPlan, key: str):
        self.path = f"recurrent stand-in ({key})"
        self.run_feeds_of_plan = _recurrent_runner(plan)
        self.inputs = [TensorSpec(r["name"], _laid_out(r["shape"], plan.input_layout(i)), "float32")
                       for i, r in enumerate(plan.inputs)]
        self.outputs = [TensorSpec(r["name"], (), "float32") for r in plan.outputs]
        self.calls: List[Tuple[List[np.ndarray], List[np.ndarray]]] = []

    def run_feeds(self, feeds: List[np.ndarray]) -> List[np.ndarray]:
        outputs = self.run_feeds_of_plan(feeds)
        self.calls.append((feeds, outputs))
        return outputs


def _laid_out(shape: Sequence[int], layout: str) -> Tuple[int, ...]:
    """An NCHW shape in ``layout``."""
    return tuple(onnx_to_layout(np.empty(shape, np.float32), layout).shape)


def sequence_matter(chosen: ProfileCase, key: str) -> Tuple[Matter, "_StandInBackend"]:
    """A Matter running ``chosen``'s profile in front of the stand-in laid out as ``RECURRENT_ARTEFACTS[key]``."""
    artefact = RECURRENT_ARTEFACTS[key]
    plan = FeedPlan.of(RECURRENT_INPUTS, RECURRENT_OUTPUTS, artefact["inputs"], artefact["outputs"],
                       artefact["layout"], f"sequence/{key}", artefact["input_layouts"], artefact["output_layouts"])
    backend = _StandInBackend(plan, key)
    image = next(i for i, r in enumerate(plan.inputs) if r["role"] == "image")
    return Matter(backend, chosen.profile, layout=plan.input_layout(image), input_hw=SEQUENCE_MODEL_HW,
                  plan=plan), backend


def write_sequences(root: Path, chosen: Sequence[ProfileCase]) -> dict:
    """The frames of :func:`sequence_frames` as one clip (``Matter.reset()`` once, then one call per frame) for
    each fixed-step profile case x ``SEQUENCE_ARTEFACTS``. Per frame ``k``: ``frame<k>_rgb`` (uint8 H x W x 3),
    ``frame<k>_feed<i>`` (float32, the artefact's i-th input: the profile's tensor or a state),
    ``frame<k>_output<j>`` (float32, its j-th output), ``frame<k>_alpha`` (float32 H x W in [0, 1]: the
    profile's postprocess of the alpha output) and ``frame<k>_alpha8`` (uint8 H x W)."""
    frames = sequence_frames()
    cases = []
    for chosen_case in (c for c in chosen if not reads_transforms(c.profile.name)):
        for key in SEQUENCE_ARTEFACTS:
            matter, backend = sequence_matter(chosen_case, key)
            case_id = f"sequence/{chosen_case.key}/{key}"
            writer = CaseWriter(root, case_id)
            matter.reset()  # the clip's first frame starts from zero states; the others get the previous outputs
            for k, rgb in enumerate(frames):
                alpha = matter(rgb)
                feeds, outputs = backend.calls[-1]
                writer.add(f"frame{k}_rgb", rgb)
                for i, array in enumerate(feeds):
                    writer.add(f"frame{k}_feed{i}", array)
                for j, array in enumerate(outputs):
                    writer.add(f"frame{k}_output{j}", array)
                writer.add(f"frame{k}_alpha", alpha)
                writer.add(f"frame{k}_alpha8", matter.profile.alpha_to_uint8(alpha))
            artefact = RECURRENT_ARTEFACTS[key]
            cases.append({"id": case_id, "profile": chosen_case.profile.name, "artefact": key,
                          "inputs": artefact["inputs"], "outputs": artefact["outputs"], "layout": artefact["layout"],
                          "input_layouts": artefact["input_layouts"], "output_layouts": artefact["output_layouts"],
                          "image_layout": matter.layout, "frames": len(frames),
                          "original_hw": list(frames[0].shape[:2]), "model_hw": list(SEQUENCE_MODEL_HW),
                          "arrays": writer.arrays, **chosen_case.facts()})
    return {"function": "edgematte.runtime.golden_roles.recurrent_stand_in", "inputs": RECURRENT_INPUTS,
            "outputs": RECURRENT_OUTPUTS, "source": "skimage.data.astronaut() crops [100+2k:130+2k, 150+5k:191+5k]",
            "cases": cases}
