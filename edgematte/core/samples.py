"""The bundled sample photos: real public-domain images shipped inside scikit-image (no downloads).

They feed the demo, the converter's parity checks and the built-in calibration set. scikit-image is
part of the converter and test profiles, not of the runtime.
"""

from typing import Dict, List, Tuple

import numpy as np

from .errors import EdgematteError

# (name, skimage.data function): a 512x512 portrait first, then odd-sized real scenes.
SAMPLE_PHOTOS: Tuple[Tuple[str, str], ...] = (
    ("astronaut", "astronaut"),
    ("coffee", "coffee"),
    ("chelsea", "chelsea"),
    ("rocket", "rocket"),
    ("hubble", "hubble_deep_field"),
    ("ihc", "immunohistochemistry"),
)


def _skimage_data():
    try:
        import skimage.data
    except ImportError as e:
        raise EdgematteError("the sample photos come from scikit-image: pip install 'edgematte[convert]'") from e
    return skimage.data


def sample_photo(name: str) -> np.ndarray:
    """One sample photo as RGB uint8 HxWx3."""
    functions = dict(SAMPLE_PHOTOS)
    if name not in functions:
        raise EdgematteError(f"unknown sample photo '{name}' (known: {', '.join(functions)})")
    image = np.asarray(getattr(_skimage_data(), functions[name])())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3].astype(np.uint8))


def sample_photos(names=None) -> Dict[str, np.ndarray]:
    """``{name: RGB uint8 HxWx3}`` for ``names`` (default: all, in a fixed order)."""
    return {n: sample_photo(n) for n in (names or [n for n, _ in SAMPLE_PHOTOS])}


def parity_photo_names() -> List[str]:
    """The photos every artefact's parity check runs on: a portrait and three odd-sized scenes."""
    return ["astronaut", "coffee", "chelsea", "rocket"]
