"""What every golden-vector writer shares: one case's arrays written as ``.npy`` files and indexed, and the
soft test alpha the images and trimaps are drawn from (:mod:`edgematte.runtime.vectors`,
:mod:`edgematte.runtime.golden_roles`)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgematte.runtime.profiles import HW, Profile


def soft_alpha(hw: HW) -> np.ndarray:
    """uint8 H x W: 255 in an elliptic centre, falling smoothly to 0 at the corners."""
    rows = (np.arange(hw[0]) + 0.5) / hw[0] - 0.5
    cols = (np.arange(hw[1]) + 0.5) / hw[1] - 0.5
    distance = np.hypot(rows[:, None] / 0.5, cols[None, :] / 0.5)
    return np.round(np.clip(1.6 - 1.5 * distance, 0.0, 1.0) * 255.0).astype(np.uint8)


class CaseWriter:
    """The arrays of one case under ``root/case_dir``: each ``add`` writes ``NAME.npy`` and indexes it (file,
    shape, dtype) in :attr:`arrays`."""

    def __init__(self, root: Path, case_dir: str):
        self.root, self.case_dir, self.arrays = root, case_dir, {}

    def add(self, name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        relative = f"{self.case_dir}/{name}.npy"
        (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
        np.save(self.root / relative, array, allow_pickle=False)
        self.arrays[name] = {"file": relative, "shape": list(array.shape), "dtype": array.dtype.name}


@dataclass(frozen=True)
class ProfileCase:
    """One profile the vectors are written for: ``key`` names its cases ("android", "android@unit")."""

    key: str
    profile: Profile
    variant: Optional[str] = None
    transforms: Optional[list] = None

    def facts(self) -> dict:
        """What a case records beyond the profile name so the Java twin can build the same profile."""
        facts = {} if self.variant is None else {"variant": self.variant}
        if self.transforms is not None:
            facts["transforms"] = self.transforms
        return facts
