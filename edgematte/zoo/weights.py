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

from ..core.errors import EdgematteError, one_line, shown_value
from ..core.userfiles import read_user_bytes

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
# paddle.save pickles a dict of numpy arrays (plus a dict of strings). Measured with pickletools on real files
# (paddle 2.6 writes protocols 2-4; pickle.dump of the same dict gives 0-5), rebuilding them needs:
#   every protocol but 5: numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'), numpy.dtype('f4', ...)
#   protocols 0-2: _codecs.encode(text, 'latin1') for every bytes object (the raw data, the b'b' above),
#                  and builtins.bytes() (written "__builtin__ bytes") for the empty data of a 0-element array
#   protocol 5: numpy.core.numeric._frombuffer(bytearray, dtype, shape, order) for contiguous arrays
# (numpy 2 writes numpy._core.*). Each is replaced by a function that accepts only that narrow form; a pickle
# naming anything else (os.system, builtins.eval, copyreg._reconstructor...) is refused before it can run.
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex: no objects, strings or structured records


class _NdarrayType:
    """Stands in for ``numpy.ndarray`` inside the pickle: only :func:`_safe_reconstruct` accepts it."""

    __slots__ = ()  # a pickle's BUILD cannot set attributes on it

    def __repr__(self):
        return "numpy.ndarray"

    def __call__(self, *args, **kwargs):
        _refuse("to call numpy.ndarray")


_NDARRAY = _NdarrayType()


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something that is not a plain numeric array."""


def _refuse(what: str):
    raise _Refused(f"refusing {what}")


def _safe_codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        _refuse(f"_codecs.encode({type(text).__name__}, {shown_value(encoding)}): only (text, 'latin1') rebuilds bytes")
    return text.encode("latin-1")


def _safe_bytes(*args):
    if args:
        _refuse("builtins.bytes with arguments")
    return b""


def _safe_dtype(name, align=False, copy=False):
    if not isinstance(name, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        _refuse(f"numpy.dtype({shown_value(name)}, {shown_value(align)}, {shown_value(copy)})")
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS or dtype.names is not None:
        _refuse(f"numpy dtype {shown_value(name)} (only numeric dtypes)")
    return np.dtype(name, align, copy)


def _safe_reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        _refuse(f"numpy _reconstruct({shown_value(subtype)}, {shown_value(shape)}, {shown_value(typecode)})")
    return np.ndarray((0,), "b")  # what numpy's _reconstruct makes; __setstate__ then fills it


def _safe_frombuffer(buf, dtype, shape, order):
    ok_shape = isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or not ok_shape \
            or order not in ("C", "F"):
        _refuse(f"numpy _frombuffer with {type(buf).__name__}, {shown_value(dtype)}, {shown_value(shape)}, "
                f"{shown_value(order)}")
    if dtype.kind not in _NUMERIC_KINDS or dtype.names is not None:
        _refuse(f"numpy dtype {dtype} (only numeric dtypes)")
    return np.frombuffer(bytearray(buf) if isinstance(buf, bytes) else buf, dtype=dtype).reshape(shape, order=order)


def _sealed(fn):
    """``fn`` as a callable without attributes: a pickle's BUILD on a plain function could set its
    ``__defaults__`` or ``__dict__`` for every later load; on this object it fails."""
    return type(f"_{fn.__name__}", (), {"__slots__": (), "__call__": staticmethod(fn),
                                        "__repr__": lambda self: fn.__name__})()


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _sealed(_safe_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _sealed(_safe_reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _sealed(_safe_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _sealed(_safe_frombuffer),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _sealed(_safe_dtype),
    ("_codecs", "encode"): _sealed(_safe_codecs_encode),
    ("builtins", "bytes"): _sealed(_safe_bytes),
    ("__builtin__", "bytes"): _sealed(_safe_bytes),  # how protocols 0-2 name builtins.bytes
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        _refuse(f"to load global '{module}.{name}'")


STRUCTURED_NAMES_KEY = "StructuredToParameterName@@"
BIG_PARAMS_KEY = "UnpackBigParamInfor@@"  # protocols 2-3: paddle.save splits tensors over 1 GiB into slices


def _join_big_params(path: Path, obj: dict) -> dict:
    """Undo paddle.save's split of big tensors (``key@@.0``, ``key@@.1``... plus the ``UnpackBigParamInfor@@``
    map of ``{key: {"OriginShape": shape, "slices": [names]}}``) as ``paddle.load`` does."""
    info = obj.pop(BIG_PARAMS_KEY)
    if not isinstance(info, dict):
        raise EdgematteError(f"{path}: {BIG_PARAMS_KEY} is {type(info).__name__}, not dict")
    joined = {}
    for key, entry in info.items():
        where = f"{path}: {BIG_PARAMS_KEY} entry {shown_value(key)}"
        try:
            names, shape = list(entry["slices"]), tuple(int(d) for d in entry["OriginShape"])
            missing = [n for n in names if not isinstance(n, str) or n not in obj]
        except (KeyError, TypeError, ValueError) as e:
            raise EdgematteError(f"{where} is not {{'OriginShape': shape, 'slices': [names]}} "
                                 f"({type(e).__name__}: {one_line(e)})") from None
        if missing:
            raise EdgematteError(f"{where} names slice {shown_value(missing[0])}, not in the file")
        parts = [obj.pop(name) for name in names]
        if not all(type(p) is np.ndarray and p.ndim == 1 for p in parts) or min(shape, default=0) < 0:
            raise EdgematteError(f"{where}: slices must be 1-D arrays and the shape non-negative")
        try:
            joined[key] = np.concatenate(parts).reshape(shape)
        except ValueError as e:
            raise EdgematteError(f"{where}: cannot join its slices ({one_line(e)})") from None
    obj.update(joined)
    return obj


def read_pdparams(path) -> Dict[str, np.ndarray]:
    """Load a ``.pdparams`` written by ``paddle.save`` (any pickle protocol) without executing code from it.

    The file is read as a regular file within the weights size limit (a FIFO or ``/dev/zero`` is refused).
    Returns ``{key: ndarray}`` in file order, numeric dtypes only (the ``StructuredToParameterName@@`` name map
    is dropped, tensors paddle split into slices are joined). Raises :class:`EdgematteError` with one line
    naming the file if it is not a state_dict pickle or if it asks for anything but numpy arrays.
    """
    path = Path(path)
    data = read_user_bytes(path, "weights")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()  # as paddle.load (Python 2 files)
    except _Refused as e:
        raise EdgematteError(f"{path}: not a safe .pdparams state_dict ({one_line(e)})") from None
    except Exception as e:  # truncated, not a pickle at all, or arguments numpy rejects
        raise EdgematteError(f"{path}: not a readable .pdparams file ({type(e).__name__}: {one_line(e)})") from None
    finally:
        del data
    if not isinstance(obj, dict):
        raise EdgematteError(f"{path}: not a .pdparams state_dict (top level is {type(obj).__name__}, not dict)")
    if BIG_PARAMS_KEY in obj:
        obj = _join_big_params(path, obj)
    weights = {}
    for key, value in obj.items():
        if key == STRUCTURED_NAMES_KEY:
            continue
        if not isinstance(key, str) or type(value) is not np.ndarray:
            raise EdgematteError(f"{path}: entry {shown_value(key)} is {type(value).__name__}, "
                                 "not a numpy array")
        if value.dtype.kind not in _NUMERIC_KINDS or value.dtype.hasobject or value.dtype.names is not None:
            raise EdgematteError(f"{path}: entry {shown_value(key)} has dtype {value.dtype}, not a numeric dtype")
        weights[key] = value
    return weights
