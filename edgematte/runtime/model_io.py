"""Feeding a model by the roles of its inputs, and carrying recurrent state between calls.

A conversion's manifest records every input and output with its role (``ModelInfo.input_roles`` /
``output_roles``: image, trimap, state, constant; alpha, foreground, state, output). An artefact may name or
order its tensors differently from the Paddle program (onnx2tf renames and reorders), so each artefact's
tensors are matched to the roles once, by name (:func:`match_tensors`), and fed in the artefact's own order.

A *case* is a list of steps; a step maps the fed input names that are not states (image, trimap) to NCHW
float32 arrays. A one-frame model has one step per case; a recurrent one (RVM) runs a clip: states start at
zeros and each step feeds the states the previous step returned (:func:`run_case`).
"""

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import EdgematteError


def _key(name: str) -> str:
    """A tensor name as tools keep it: onnx2tf drops ``:0`` and turns separators into ``_``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name.split(":")[0]).strip("_").lower()


def match_tensors(model_names: Sequence[str], artefact_names: Sequence[str], what: str,
                  model_shapes: Optional[Sequence] = None, artefact_shapes: Optional[Sequence] = None) -> List[int]:
    """For each artefact tensor (in the artefact's order), the index of the model tensor it is: by exact name,
    then by normalized name (:func:`_key`), then, when nothing matched, by position. A partial or ambiguous
    match is an error naming ``what``, and so is a match by position that pairs tensors of different sizes
    (``model_shapes`` / ``artefact_shapes``, when given: element counts, any layout; a dimension of -1 or 0
    matches anything). Tensors of one size matched by position cannot be told apart here."""
    if len(model_names) != len(artefact_names):
        raise EdgematteError(f"{what}: has {len(artefact_names)} tensors {list(artefact_names)}, the model "
                             f"{len(model_names)} {list(model_names)}")
    exact = {n: i for i, n in enumerate(model_names)}
    keyed = {_key(n): i for i, n in enumerate(model_names)}
    order = [exact.get(n, keyed.get(_key(n))) for n in artefact_names]
    if all(i is None for i in order) or len(model_names) == 1:
        for i in range(len(model_names) if model_shapes is not None and artefact_shapes is not None else 0):
            if not _may_be_same_size(model_shapes[i], artefact_shapes[i]):
                raise EdgematteError(f"{what}: no tensor name matches the model's, and by position its tensor "
                                     f"{artefact_names[i]!r} {list(artefact_shapes[i])} cannot be the model's "
                                     f"{model_names[i]!r} {list(model_shapes[i])}")
        return list(range(len(model_names)))
    if None in order or sorted(order) != list(range(len(model_names))):
        raise EdgematteError(f"{what}: cannot match its tensors {list(artefact_names)} to the model's "
                             f"{list(model_names)}")
    return order


def _may_be_same_size(a: Optional[Sequence[int]], b: Optional[Sequence[int]]) -> bool:
    """Whether shapes ``a`` and ``b`` may hold the same number of elements (unknown: yes)."""
    if not a or not b or any(int(d) <= 0 for d in (*a, *b)):
        return True
    return int(np.prod([int(d) for d in a])) == int(np.prod([int(d) for d in b]))


# Layouts: a converted model's tensors are channels-first as in the Paddle program / ONNX, or channels-last
# where onnx2tf moved the channels (the converter records which, per tensor).
def channels_last_perm(rank: int) -> Tuple[int, ...]:
    """The axes that move a channels-first tensor of ``rank`` to channels-last: (0, 2, ..., rank - 1, 1)."""
    return (0,) + tuple(range(2, rank)) + (1,)


def layout_names(rank: int) -> Tuple[str, str]:
    """``(channels-first name, channels-last name)`` for a tensor rank: nchw/nhwc, ncw/nwc, ncdhw/ndhwc."""
    spatial = {3: "w", 4: "hw", 5: "dhw"}.get(rank)
    if spatial is None:
        return "as_onnx", "as_onnx"
    return f"nc{spatial}", f"n{spatial}c"


def onnx_to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """An ONNX-layout (channels-first) array rearranged to ``layout`` (``nhwc``, ``nwc``... or as is)."""
    first, last = layout_names(x.ndim)
    if layout == last and last != first:
        return np.ascontiguousarray(x.transpose(channels_last_perm(x.ndim)))
    return x


def layout_to_onnx(x: np.ndarray, layout: str) -> np.ndarray:
    """Inverse of :func:`onnx_to_layout`: a ``layout`` array back to ONNX's channels-first axes."""
    first, last = layout_names(x.ndim)
    if layout == last and last != first:
        return np.ascontiguousarray(x.transpose(np.argsort(channels_last_perm(x.ndim))))
    return x


@dataclass(frozen=True)
class FeedPlan:
    """How one artefact is fed: ``inputs[i]`` / ``outputs[j]`` are the role entries (``{name, role, shape,
    [pair]}``) of the artefact's i-th input / j-th output; ``layout`` of its 4-D tensors, unless
    ``input_layouts`` / ``output_layouts`` say per tensor (onnx2tf may keep an output channels-first while its
    paired state input is channels-last: a state is carried through NCHW between them)."""

    inputs: List[dict]
    outputs: List[dict]
    layout: str
    input_layouts: Optional[List[str]] = None
    output_layouts: Optional[List[str]] = None

    @classmethod
    def of(cls, input_roles: Sequence[dict], output_roles: Sequence[dict], artefact_inputs: Sequence[str],
           artefact_outputs: Sequence[str], layout: str, what: str, input_layouts: Optional[List[str]] = None,
           output_layouts: Optional[List[str]] = None, input_shapes: Optional[Sequence] = None,
           output_shapes: Optional[Sequence] = None) -> "FeedPlan":
        """``input_shapes`` / ``output_shapes``: the artefact's tensor shapes, which guard a match by position
        (:func:`match_tensors`)."""
        fed = [r for r in input_roles if r["role"] != "constant"]
        ins = match_tensors([r["name"] for r in fed], artefact_inputs, f"{what} inputs",
                            [r.get("shape") for r in fed], input_shapes)
        outs = match_tensors([r["name"] for r in output_roles], artefact_outputs, f"{what} outputs",
                             [r.get("shape") for r in output_roles], output_shapes)
        return cls([fed[i] for i in ins], [output_roles[j] for j in outs], layout, input_layouts, output_layouts)

    @classmethod
    def for_artefact(cls, model, backend, layout: str, artefact=None) -> "FeedPlan":
        """The plan for ``backend`` running a conversion whose manifest ``model`` (``ModelInfo``) records the
        roles; ``artefact`` (its manifest entry) gives the per-tensor layouts the converter recorded."""
        layouts = None, None
        if artefact is not None:
            layouts = tuple([t.extra.get("layout") or layout for t in tensors] or None
                            for tensors in (artefact.inputs, artefact.outputs))
        return cls.of(model.input_roles(), model.output_roles(), [s.name for s in backend.inputs],
                      [s.name for s in backend.outputs], layout, str(getattr(backend, "path", "the model")),
                      *layouts, input_shapes=[s.shape for s in backend.inputs],
                      output_shapes=[s.shape for s in backend.outputs])

    @classmethod
    def for_reference(cls, model, backend) -> "FeedPlan":
        """The plan for Paddle Inference running the conversion's reference program (NCHW). Its scores variant
        (``reference/scores``) fetches the model's outputs first, then the class scores, which have no role."""
        roles = model.output_roles()
        return cls.of(model.input_roles(), roles, [s.name for s in backend.inputs],
                      [s.name for s in backend.outputs][:len(roles)], "nchw", str(getattr(backend, "path", "")))

    @property
    def single_image(self) -> bool:
        """One image in, one output: fed as a plain tensor (:meth:`Backend.run`), no roles needed."""
        return len(self.inputs) == 1 and len(self.outputs) == 1

    @property
    def takes_trimap(self) -> bool:
        return any(r["role"] == "trimap" for r in self.inputs)

    @property
    def recurrent(self) -> bool:
        return any(r["role"] == "state" for r in self.inputs)

    def input_layout(self, index: int) -> str:
        return self.input_layouts[index] if self.input_layouts else self.layout

    def output_layout(self, index: int) -> str:
        return self.output_layouts[index] if self.output_layouts else self.layout

    @property
    def alpha_index(self) -> int:
        return next(j for j, r in enumerate(self.outputs) if r["role"] == "alpha")

    def zero_states(self) -> Dict[str, np.ndarray]:
        """Each state input's zeros (first frame), NCHW."""
        return {r["name"]: np.zeros(r["shape"], np.float32) for r in self.inputs if r["role"] == "state"}

    def feeds(self, step: Dict[str, np.ndarray], states: Dict[str, np.ndarray],
              ready: Optional[Dict[str, np.ndarray]] = None) -> List[np.ndarray]:
        """The artefact's input arrays, in its order and layouts, from a step and the states (NCHW both);
        ``ready`` holds inputs already in the artefact's layout (a profile's tensor)."""
        arrays = []
        for index, r in enumerate(self.inputs):
            if ready and r["name"] in ready:
                arrays.append(ready[r["name"]])
                continue
            value = states.get(r["name"]) if r["role"] == "state" else step.get(r["name"])
            if value is None:
                raise EdgematteError(f"no value for the model's {r['role']} input '{r['name']}'")
            arrays.append(onnx_to_layout(np.asarray(value, np.float32), self.input_layout(index)))
        return arrays

    def next_states(self, outputs: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
        """The states to feed next (NCHW), from this call's outputs (a state output feeds its ``pair``)."""
        return {r["pair"]: layout_to_onnx(out, self.output_layout(j))
                for j, (r, out) in enumerate(zip(self.outputs, outputs)) if r["role"] == "state"}

    def fed_zero_states(self) -> Dict[str, np.ndarray]:
        """:meth:`zero_states` in the artefact's own layout of each state input (``feeds``' ``ready``)."""
        return {r["name"]: onnx_to_layout(np.zeros(r["shape"], np.float32), self.input_layout(i))
                for i, r in enumerate(self.inputs) if r["role"] == "state"}

    def fed_next_states(self, outputs: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
        """:meth:`next_states` in the artefact's layout of each paired input, ready to feed as they are.

        A state output laid out as its input (every RVM state of an ONNX or ``.nb`` artefact, and of a
        TFLite one onnx2tf made channels-last at both ends) is passed on untouched: no transpose, no copy
        between frames. Only an output whose layout differs from its input's is rearranged.
        """
        index = {r["name"]: i for i, r in enumerate(self.inputs)}
        carried = {}
        for j, (r, out) in enumerate(zip(self.outputs, outputs)):
            if r["role"] != "state":
                continue
            given, wanted = self.output_layout(j), self.input_layout(index[r["pair"]])
            carried[r["pair"]] = out if given == wanted else onnx_to_layout(layout_to_onnx(out, given), wanted)
        return carried


def run_case(run_feeds: Callable[[List[np.ndarray]], List[np.ndarray]], plan: FeedPlan,
             steps: Sequence[Dict[str, np.ndarray]]) -> List[List[np.ndarray]]:
    """Every output of each step (artefact order), states carried from step to step (zeros first)."""
    states = plan.zero_states()
    results = []
    for step in steps:
        outputs = run_feeds(plan.feeds(step, states))
        states = {**states, **plan.next_states(outputs)}
        results.append(outputs)
    return results


def alphas(plan: FeedPlan, run_feeds, cases: Sequence[Sequence[Dict[str, np.ndarray]]]) -> List[np.ndarray]:
    """The alpha output of every step of every case, in order (what parity compares)."""
    return [outputs[plan.alpha_index] for steps in cases for outputs in run_case(run_feeds, plan, steps)]
