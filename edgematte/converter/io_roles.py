"""What each input and output of a PaddleSeg matting program is for, and the fixed shape of every input.

``--input-shape`` fixes the image; everything else follows from the program and that shape:

- **image**: the first 4-D input whose declared channel count is 3, or the model's only tensor input.
- **state** (recurrent, RVM's ``r1``..``r4``): a 4-D input that has an output of the same declared shape to pair
  with. PaddleSeg's matting models all fetch the alpha first, so the first output never pairs; the others pair
  with the state inputs in order. A state's spatial size is what the model computes for it from the image:
  :func:`resolve_state_shapes` runs the part of the program that leads to the op which first reads the state
  (RVM: the ConvGRU's ``concat([x, h])``) and takes the size of the other operand. States that depend on other
  states (RVM's decoder runs r4 first) are resolved once those are known.
- **trimap** (DIM): any other 4-D input with one channel; the image's batch and size. deploy.yaml's
  ``[-1, 1, -1, -1]`` for DIM is a PaddleSeg quirk (its input-spec helper overwrites the channel count), so
  only the program's own declaration is read.
- **constant**: an input of one element (RVM's ``downsample_ratio``). It is frozen into the program as a
  constant (:func:`edgematte.converter.program.freeze_input_shape`), so the deployed model has no such input.

Outputs: the first is the **alpha**; a 3-channel output that is not a state is the **foreground**; the paired
ones are **state** outputs (``pair`` names the input they feed on the next frame); anything else is ``output``.

The roles go into the manifest (``model.inputs`` / ``model.outputs``); the runtime, the Java core, bench and
verify read them from there and never guess from names.
"""

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import EdgematteError
from .static_program import op_reads, op_writes

IMAGE, TRIMAP, STATE, CONSTANT = "image", "trimap", "state", "constant"
ALPHA, FOREGROUND, OUTPUT = "alpha", "foreground", "output"
INPUT_ROLES = (IMAGE, TRIMAP, STATE, CONSTANT)
OUTPUT_ROLES = (ALPHA, FOREGROUND, STATE, OUTPUT)

# Known scalar inputs and the option that sets them; a scalar input not named here needs --constant NAME=VALUE.
SCALAR_OPTIONS = {"downsample_ratio": "--downsample-ratio"}
# RVM's config default; PaddleSeg's infer.py feeds min(512 / max(h, w), 1) instead (docs/toolchain.md).
DEFAULT_DOWNSAMPLE_RATIO = 0.25


@dataclass(frozen=True)
class InputRole:
    """One model input: ``shape`` is fixed once known (None: a state not resolved yet); ``value`` is set for a
    constant; ``pair`` names a state input's output."""

    name: str
    role: str
    declared: Tuple[int, ...]
    dtype: str
    shape: Optional[Tuple[int, ...]] = None
    value: Optional[Tuple[float, ...]] = None
    pair: Optional[str] = None

    def as_dict(self) -> dict:
        entry = {"name": self.name, "role": self.role, "shape": list(self.shape or ()), "dtype": self.dtype}
        if self.pair is not None:
            entry["pair"] = self.pair
        if self.value is not None:
            entry["value"] = list(self.value)
        return entry


@dataclass(frozen=True)
class OutputRole:
    """One model output; ``pair`` names the state input a state output feeds on the next call."""

    name: str
    role: str
    pair: Optional[str] = None

    def as_dict(self) -> dict:
        entry = {"name": self.name, "role": self.role}
        if self.pair is not None:
            entry["pair"] = self.pair
        return entry


@dataclass(frozen=True)
class ModelIO:
    """Every input and output of a program with its role, in feed / fetch order."""

    inputs: Tuple[InputRole, ...]
    outputs: Tuple[OutputRole, ...] = field(default=())

    def of_role(self, role: str) -> List[InputRole]:
        return [i for i in self.inputs if i.role == role]

    @property
    def image(self) -> InputRole:
        return self.of_role(IMAGE)[0]

    @property
    def fed(self) -> Tuple[InputRole, ...]:
        """The inputs the frozen model still has (constants are part of it)."""
        return tuple(i for i in self.inputs if i.role != CONSTANT)

    @property
    def constants(self) -> Dict[str, np.ndarray]:
        return {i.name: np.asarray(i.value, dtype=i.dtype).reshape(i.shape) for i in self.of_role(CONSTANT)}

    @property
    def recurrent(self) -> bool:
        return bool(self.of_role(STATE))

    def with_shapes(self, shapes: Mapping[str, Sequence[int]]) -> "ModelIO":
        inputs = tuple(replace(i, shape=tuple(int(d) for d in shapes[i.name])) if i.name in shapes else i
                       for i in self.inputs)
        return replace(self, inputs=inputs)

    def alpha_only(self) -> Tuple["ModelIO", Tuple[OutputRole, ...]]:
        """``(this plan with only the alpha and state outputs, the outputs it leaves out)`` (``--alpha-only``)."""
        kept = tuple(o for o in self.outputs if o.role in (ALPHA, STATE))
        return replace(self, outputs=kept), tuple(o for o in self.outputs if o not in kept)

    def manifest_entries(self) -> Tuple[List[dict], List[dict]]:
        """``(inputs, outputs)`` as ``model.inputs`` / ``model.outputs`` of the manifest record them."""
        return [i.as_dict() for i in self.inputs], [o.as_dict() for o in self.outputs]


def _is_scalar(declared: Sequence[int]) -> bool:
    return len(declared) <= 1 and all(d in (1, -1) for d in declared)


def _state_pairs(inputs, outputs) -> Dict[str, str]:
    """4-D inputs (not the image) paired in order with outputs after the first that have the same declared
    shape (batch aside); an input with no such output stays unpaired."""
    pairs: Dict[str, str] = {}
    free = list(outputs[1:])
    for feed in inputs:
        match = next((o for o in free if len(o.shape) == len(feed.shape) == 4
                      and tuple(o.shape[1:]) == tuple(feed.shape[1:]) and feed.shape[1] > 0), None)
        if match is not None:
            pairs[feed.name] = match.name
            free = free[free.index(match) + 1:]  # in order: a later input pairs with a later output
    return pairs


def image_feed(feeds, path):
    """The image among ``feeds`` (:class:`~edgematte.converter.program.VarSpec` each): the first 4-D input with
    3 channels, or the only tensor input; an error naming ``path`` when there is none."""
    tensors = [f for f in feeds if not _is_scalar(f.shape)]
    image = next((f for f in tensors if len(f.shape) == 4 and f.shape[1] == 3),
                 tensors[0] if len(tensors) == 1 else None)  # a sole input is the image whatever its channels
    if image is None:
        raise EdgematteError(f"{path}: no input looks like an image (a 4-D input with 3 channels); inputs: "
                             f"{[(f.name, list(f.shape)) for f in feeds]}")
    return image


def plan_io(feeds, fetches, image_shape: Sequence[int], path, constants: Optional[Mapping[str, float]] = None,
            option: str = "--input-shape") -> ModelIO:
    """The roles of ``feeds`` / ``fetches`` (:class:`~edgematte.converter.program.VarSpec` each, in program
    order) with every input's shape fixed from ``image_shape`` (N, C, H, W), except states (see
    :func:`resolve_state_shapes`). ``constants`` gives scalar inputs their values (by input name); a known scalar
    without one gets its default (``downsample_ratio``: 0.25). ``path`` is named in errors."""
    constants = dict(constants or {})
    unknown = sorted(set(constants) - {f.name for f in feeds})
    if unknown:
        raise EdgematteError(f"{path}: the model has no scalar input {unknown[0]!r} (inputs: "
                             f"{[f.name for f in feeds]})")
    image = image_feed(feeds, path)
    tensors = [f for f in feeds if not _is_scalar(f.shape)]
    n, _, h, w = image_shape
    pairs = _state_pairs([f for f in tensors if f is not image], list(fetches))
    roles: List[InputRole] = []
    for feed in feeds:
        if feed is image:
            roles.append(InputRole(feed.name, IMAGE, feed.shape, feed.dtype, tuple(image_shape)))
        elif feed.name in pairs:
            roles.append(InputRole(feed.name, STATE, feed.shape, feed.dtype, pair=pairs[feed.name]))
        elif _is_scalar(feed.shape):
            if feed.name not in constants and feed.name not in SCALAR_OPTIONS:
                raise EdgematteError(f"{path}: the model has a scalar input {feed.name!r}; give its value with "
                                     f"--constant {feed.name}=VALUE")
            value = constants.get(feed.name, DEFAULT_DOWNSAMPLE_RATIO)
            roles.append(InputRole(feed.name, CONSTANT, feed.shape, feed.dtype, (1,) * max(len(feed.shape), 1),
                                   value=(float(value),)))
        elif len(feed.shape) == 4 and feed.shape[1] == 1:
            roles.append(InputRole(feed.name, TRIMAP, feed.shape, feed.dtype, (n, 1, h, w)))
        else:
            raise EdgematteError(f"{path}: cannot tell what input {feed.name!r} {list(feed.shape)} is for (known: "
                                 "an image, a one-channel trimap, recurrent states paired with outputs, scalars)")
    state_outputs = {out: state for state, out in pairs.items()}
    outputs = []
    for index, fetch in enumerate(fetches):
        if fetch.name in state_outputs:
            outputs.append(OutputRole(fetch.name, STATE, pair=state_outputs[fetch.name]))
        elif index == 0:
            outputs.append(OutputRole(fetch.name, ALPHA))
        elif len(fetch.shape) == 4 and fetch.shape[1] == 3 and not any(o.role == FOREGROUND for o in outputs):
            outputs.append(OutputRole(fetch.name, FOREGROUND))
        else:
            outputs.append(OutputRole(fetch.name, OUTPUT))
    return ModelIO(tuple(roles), tuple(outputs))


def _state_partners(program, unresolved: Sequence[str]) -> Dict[str, str]:
    """For each state in ``unresolved``: the other operand of the first op that reads it, when that operand
    does not depend on any unresolved state (a shape-preserving op: the state has its spatial size)."""
    dependent = set(unresolved)
    for op in program.blocks[0].ops:
        if set(op_reads(op)) & dependent:
            dependent |= set(op_writes(op))
    partners = {}
    for state in unresolved:
        reader = next((op for op in program.blocks[0].ops if state in op_reads(op)), None)
        others = [a for a in (op_reads(reader) if reader is not None else []) if a not in dependent]
        if others:
            partners[state] = others[0]
    return partners


def resolve_state_shapes(plan: ModelIO, program, run) -> ModelIO:
    """``plan`` with every state's shape fixed. ``program`` is the parsed ``ProgramDesc``; ``run(feeds,
    names)`` runs the model on ``feeds`` (name -> array) pruned to what ``names`` need and returns their
    shapes. Raises :class:`EdgematteError` when a state's size cannot be derived this way."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    states = plan.of_role(STATE)
    feeds = {i.name: np.zeros(i.shape, i.dtype) for i in plan.inputs if i.role in (IMAGE, TRIMAP)}
    feeds.update({name: value for name, value in plan.constants.items()})
    while len(shapes) < len(states):
        unresolved = [s.name for s in states if s.name not in shapes]
        partners = _state_partners(program, unresolved)
        if not partners:
            raise EdgematteError(f"cannot derive the shape of the recurrent state(s) {unresolved}: no op reads "
                                 "them together with a tensor computed from the image")
        known = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
        found = run({**feeds, **known}, list(partners.values()))
        for state in states:
            if state.name in partners:
                size = found[partners[state.name]]
                channels = state.declared[1] if state.declared[1] > 0 else size[1]
                shapes[state.name] = (plan.image.shape[0], channels, *size[2:])
    return plan.with_shapes(shapes)
