"""The decision-aware rule in ``verify``: which photo pixels a near-tie of the reference may flip.

A model with hard decisions (PP-Matting, PP-HumanMatting: ``argmax`` of class scores builds the alpha) moves its
alpha by up to 1 where the reference's top-1 and top-2 scores are closer than float noise: another correct kernel
set may decide the other way there. The conversion measured this (``reference.decisions``: per decision point the
scores' name, class axis and route to the alpha; the margin tolerance from the measured score noise; the cap on
excused pixels) and shipped the reference program with the scores as extra fetches (``reference.scores_program``,
reading the reference's params).

``verify`` runs that program as its reference. Per photo one run gives the reference alpha and the scores; each
point's margins are carried to the model output's pixels along its recorded route
(:func:`edgematte.core.decision_parity.decision_margins`), the near-ties (margin <= tolerance) form a mask, and the
mask goes through the deployment profile's own post-processing (crop, resize to the photo). A photo pixel is
excused exactly when the interpolation that made it reads a near-tie pixel, with any weight; every other pixel is
held to the artefact's bound (:func:`edgematte.core.decision_parity.within`).
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..core import decision_parity
from ..core.errors import EdgematteError
from ..core.manifest import Manifest


@dataclass(frozen=True)
class DecisionPointRoute:
    """One decision point as the manifest records it: the scores' fetch name, the class axis, the route."""

    logits: str
    axis: int
    route: Tuple[dict, ...]


@dataclass(frozen=True)
class RecordedDecisions:
    """``reference.decisions`` of a manifest whose decisions the converter wired."""

    points: Tuple[DecisionPointRoute, ...]
    noise: float
    tolerance: float
    max_excused_share: float

    @classmethod
    def of(cls, manifest: Manifest) -> Optional["RecordedDecisions"]:
        """The recorded rule, or ``None`` when the conversion wired none (no decisions, or an unroutable one).
        A malformed record is a one-line error naming the manifest."""
        record = manifest.reference.extra.get("decisions")
        if not isinstance(record, dict) or record.get("wired") is not True:
            return None
        where = f"{manifest.origin}: reference.decisions"
        try:
            points = tuple(DecisionPointRoute(_text(p["logits"]), _integer(p["axis"]), _route(p["steps"]))
                           for p in record["points"])
            rule = cls(points, _number(record["score_noise"]), _number(record["margin_tolerance"]),
                       _number(record["max_excused_share"]))
        except (KeyError, TypeError, ValueError) as error:
            raise EdgematteError(f"{where}: malformed ({error!s} in a point or the rule)") from None
        if not points or rule.max_excused_share > 1:
            raise EdgematteError(f"{where}: malformed (no point, or an excused share above 1)")
        return rule

    def near_ties(self, outputs: Dict[str, np.ndarray], alpha_hw: Tuple[int, int]) -> np.ndarray:
        """(H, W) bool at the model output's alpha size: the pixels a near-tie decision reaches, from one run's
        outputs by name (the scores of every point)."""
        missing = [p.logits for p in self.points if p.logits not in outputs]
        if missing:
            raise EdgematteError(f"the reference's scores program fetches no {', '.join(missing)}")
        try:
            margins = decision_parity.combined_margins(
                [decision_parity.decision_margins(outputs[p.logits], alpha_hw, p.route, p.axis) for p in self.points])
        except (KeyError, TypeError, ValueError, IndexError) as error:  # a route edited by hand
            raise EdgematteError(f"reference.decisions: a route the scores cannot follow ({error!r})") from None
        return margins[0] <= self.tolerance

    def compare(self, alphas: Sequence[np.ndarray], references: Sequence[np.ndarray],
                excused: Sequence[np.ndarray], bound: float, compared_to: str) -> decision_parity.DecisionParity:
        """Photo-size alphas (H x W each) against the reference's, the ``excused`` masks (H x W bool) let off."""
        return decision_parity.compare_excused([a[None, None] for a in alphas], [r[None, None] for r in references],
                                               [e[None] for e in excused], self.noise, self.tolerance, bound,
                                               compared_to=compared_to)

    def within(self, parity: decision_parity.DecisionParity, bound: float) -> bool:
        return decision_parity.within(parity, bound, self.max_excused_share)


def excused_on_photo(profile, near_ties: np.ndarray, state) -> np.ndarray:
    """The model-size near-tie mask (h, w) carried to the photo through ``profile``'s post-processing (``state``
    from its pre-processing): (H, W) bool, True where the photo's alpha reads a near-tie pixel."""
    if not near_ties.any():
        return np.zeros(state.original_hw, dtype=bool)
    if near_ties.all():  # a constant plane: some profiles stretch min..max, which a constant leaves undefined
        return np.ones(state.original_hw, dtype=bool)
    carried = profile.postprocess(near_ties.astype(np.float32)[None, None], state)
    return np.asarray(carried) > 0


def reference_run(matter, rgb: np.ndarray, trimap: Optional[np.ndarray],
                  rule: RecordedDecisions) -> Tuple[np.ndarray, np.ndarray]:
    """One photo through the scores program (``matter``'s backend): ``(alpha, excused)``, both (H, W) at the
    photo's size: the reference's alpha and the pixels a near-tie may flip."""
    tensor, state = matter.model_input(rgb)
    trimap_in = matter.trimap_input(trimap, rgb.shape[:2]) if trimap is not None else None
    outputs = matter.run_outputs(tensor, trimap_in)
    names = [spec.name for spec in matter.backend.outputs]
    output = outputs[matter.alpha_index]
    alpha_hw = tuple(np.asarray(output).shape[-2:])
    near = rule.near_ties(dict(zip(names, outputs)), alpha_hw)
    return matter.profile.postprocess(output, state), excused_on_photo(matter.profile, near, state)


def _text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is no name")
    return value


def _integer(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is no integer")
    return value


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{value!r} is no finite non-negative number")
    return float(value)


def _route(steps) -> Tuple[dict, ...]:
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise ValueError("a route is a non-empty list of steps")
    if steps[0].get("op") != "source" or any(s.get("op") not in decision_parity.ROUTE_STEPS for s in steps):
        raise ValueError(f"route steps must start with 'source' and be of {decision_parity.ROUTE_STEPS}")
    return tuple(steps)
