"""Model weights: the seeded-weight formula, a safe ``.pdparams`` reader, and layout checks.

A *layout* is the ordered list of state_dict entries ``(key, shape, dtype)``, the same information
as the official ``*.state_dict.tsv`` tables (``key<TAB>[d0, d1]<TAB>float32``).
"""

import io
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..core.errors import EdgematteError

LayoutEntry = Tuple[str, Tuple[int, ...], str]


# ----------------------------------------------------------------------------- seeded weights
def seeded_array(key: str, shape: Sequence[int], seed: int) -> np.ndarray:
    """The deterministic value of one state_dict entry for ``seed`` (float32, ``shape``).

    The formula is the project-wide one (see ``README.md`` "Seeded weights"): every entry draws from
    its own ``RandomState((crc32(key) + seed) % 2**32)``, so any implementation with the official
    layout reproduces the same model bit for bit. The leaf name decides the scale: BatchNorm running
    mean ``0.1 z``, running variance ``exp(0.2 z)``, biases ``0.1 z``, normalisation scales ``1 + 0.1 z``,
    kernels He-scaled by their fan-in ``z * sqrt(2 / prod(shape[1:]))``.
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.RandomState((zlib.crc32(key.encode("utf-8")) + int(seed)) % 2**32)
    z = rng.standard_normal(shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "_mean":
        value = 0.1 * z
    elif leaf == "_variance":
        value = np.exp(0.2 * z)
    elif leaf == "bias":
        value = 0.1 * z
    elif leaf == "weight" and len(shape) == 1:
        value = 1.0 + 0.1 * z
    else:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        value = z * np.sqrt(2.0 / fan_in)
    return value.astype(np.float32)


def seeded_state_dict(layout: Sequence[LayoutEntry], seed: int) -> Dict[str, np.ndarray]:
    """Seeded values for every entry of ``layout``, in layout order."""
    return {key: seeded_array(key, shape, seed) for key, shape, _ in layout}


# ----------------------------------------------------------------------------- layouts
def format_layout(layout: Sequence[LayoutEntry]) -> str:
    """Render a layout as TSV lines ``key<TAB>[d0, d1]<TAB>dtype`` (the official table format)."""
    return "".join(f"{k}\t{list(shape)}\t{dtype}\n" for k, shape, dtype in layout)


def parse_layout(text: str) -> List[LayoutEntry]:
    """Parse the TSV written by :func:`format_layout` (or the official ``*.state_dict.tsv``)."""
    layout = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
        layout.append((key, dims, dtype))
    return layout


def count_parameters(layout: Sequence[LayoutEntry], include_running_stats: bool = False) -> int:
    """Number of scalars in ``layout`` (BatchNorm ``_mean``/``_variance`` excluded by default)."""
    total = 0
    for key, shape, _ in layout:
        if not include_running_stats and key.rsplit(".", 1)[-1] in ("_mean", "_variance"):
            continue
        total += int(np.prod(shape)) if shape else 1
    return total


@dataclass
class LayoutCheck:
    """How a set of weights differs from the layout a model expects."""

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    misshaped: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def summary(self) -> str:
        if self.ok:
            return "weights match the model layout"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing (first: {self.missing[0]})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected (first: {self.unexpected[0]})")
        if self.misshaped:
            k, want, got = self.misshaped[0]
            parts.append(f"{len(self.misshaped)} mis-shaped (first: {k} expects {list(want)}, file has {list(got)})")
        return "; ".join(parts)


def check_layout(layout: Sequence[LayoutEntry], weights: Dict[str, np.ndarray]) -> LayoutCheck:
    """Compare ``weights`` with ``layout`` key by key and shape by shape."""
    expected = {k: tuple(s) for k, s, _ in layout}
    check = LayoutCheck()
    for key, shape in expected.items():
        if key not in weights:
            check.missing.append(key)
        elif tuple(np.shape(weights[key])) != shape:
            check.misshaped.append((key, shape, tuple(np.shape(weights[key]))))
    check.unexpected = [k for k in weights if k not in expected]
    return check


# ----------------------------------------------------------------------------- safe .pdparams
# paddle.save pickles a dict of numpy arrays (plus a dict of strings). Rebuilding those needs these
# globals and nothing else; a crafted pickle that names anything else (os.system, builtins.eval...)
# is refused before it can run.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            if module == "numpy._core.multiarray":  # written by numpy 2, read under numpy 1
                module = "numpy.core.multiarray"
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}'")


STRUCTURED_NAMES_KEY = "StructuredToParameterName@@"


def read_pdparams(path) -> Dict[str, np.ndarray]:
    """Load a ``.pdparams`` written by ``paddle.save`` without executing code from it.

    Returns ``{key: float32 ndarray}`` in file order (the ``StructuredToParameterName@@`` name map is
    dropped). Raises :class:`EdgematteError` naming the file if it is not a state_dict pickle or if it
    asks for anything but numpy arrays.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EdgematteError(f"{path}: cannot read weights: {e.strerror or e}") from e
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise EdgematteError(f"{path}: not a safe .pdparams state_dict ({e})") from e
    except Exception as e:  # truncated or not a pickle at all
        raise EdgematteError(f"{path}: not a readable .pdparams file ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise EdgematteError(f"{path}: not a .pdparams state_dict (top level is {type(obj).__name__}, not dict)")
    weights = {}
    for key, value in obj.items():
        if key == STRUCTURED_NAMES_KEY:
            continue
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise EdgematteError(f"{path}: entry {key!r} is {type(value).__name__}, not a numpy array")
        weights[key] = value
    return weights
