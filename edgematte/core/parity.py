"""Parity: how far an artefact's outputs are from the reference's on the same input tensors."""

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

ONE_LEVEL = 1.0 / 255.0


@dataclass
class Parity:
    """Alpha differences over a set of inputs (``None`` figures with a ``reason`` when not run).

    ``max_abs`` / ``mean_abs`` are over every pixel of every image; ``frac_over_1_255`` is the share of
    pixels whose alpha differs by more than one 8-bit level.
    """

    max_abs: Optional[float]
    mean_abs: Optional[float]
    frac_over_1_255: Optional[float]
    compared_to: str
    runs_on_host: bool
    images: int = 0
    reason: Optional[str] = None
    frac_over_bound: Optional[float] = None  # share of pixels beyond the bound ``compare`` was given

    def to_dict(self) -> dict:
        return asdict(self)


def as_nchw_alpha(output: np.ndarray) -> np.ndarray:
    """A model's alpha output as float64 [N,1,H,W], from [N,1,H,W] or NHWC [N,H,W,1]."""
    a = np.asarray(output, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] != 1 and a.shape[-1] == 1:
        a = a.transpose(0, 3, 1, 2)
    return a


def compare(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], compared_to: str, runs_on_host=True,
            bound: Optional[float] = None) -> Parity:
    """Parity of ``outputs`` against ``references`` (pairwise, same images, any alpha layout)."""
    if len(outputs) != len(references) or not outputs:
        raise ValueError("compare() needs one output per reference image")
    diffs = []
    for out, ref in zip(outputs, references):
        o, r = as_nchw_alpha(out), as_nchw_alpha(ref)
        if o.shape != r.shape:
            raise ValueError(f"output shape {o.shape} does not match the reference's {r.shape}")
        diffs.append(np.abs(o - r).ravel())
    d = np.concatenate(diffs)
    return Parity(
        max_abs=float(d.max()),
        mean_abs=float(d.mean()),
        frac_over_1_255=float((d > ONE_LEVEL).mean()),
        compared_to=compared_to,
        runs_on_host=runs_on_host,
        images=len(outputs),
        frac_over_bound=None if bound is None else float((d > bound).mean()),
    )


def not_run(compared_to: str, reason: str) -> Parity:
    return Parity(None, None, None, compared_to=compared_to, runs_on_host=False, reason=reason)


def inherited(parity: Parity, reason: str) -> Parity:
    """Figures of a host-runnable twin, for an artefact that cannot run here (e.g. an arm .nb)."""
    return Parity(
        parity.max_abs,
        parity.mean_abs,
        parity.frac_over_1_255,
        compared_to=parity.compared_to,
        runs_on_host=False,
        images=parity.images,
        reason=reason,
        frac_over_bound=parity.frac_over_bound,
    )


FLOAT_EXACT_MEAN = 1e-5


def within(parity: Parity, bound: float, boundary_pixel_share: float = 0.0) -> bool:
    """Max abs within ``bound``; or, for a model with hard decisions (argmax/clip), at most
    ``boundary_pixel_share`` of the pixels beyond it while the mean stays float-exact."""
    if parity.max_abs is None:
        return False
    if parity.max_abs <= bound:
        return True
    return (boundary_pixel_share > 0 and parity.frac_over_bound is not None
            and parity.frac_over_bound <= boundary_pixel_share and parity.mean_abs <= FLOAT_EXACT_MEAN)
