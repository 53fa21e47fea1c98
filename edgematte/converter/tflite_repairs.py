"""The ``tflite`` repairs applied to a ``.tflite`` file, and proven exact in LiteRT before it is kept.

Every ``.tflite`` edgematte publishes (onnx2tf's float32 and float16 files, TensorFlow's full-integer,
dynamic-range and float-twin files) goes through :func:`repair_tflite_file` while it is still in the private work
folder: the registry's ``tflite`` repairs rewrite patterns XNNPACK would leave to TFLite's own kernels
(``converter/repairs/tflite``). They only move data, so the repaired model must give the same outputs bit for bit:
both models run in LiteRT (XNNPACK, 1 thread) on :data:`PROOF_DRAWS` random inputs of every input's shape and
type, and a repaired model that differs in any bit is not kept (the file stays as the tool wrote it, and a warning
says so).

What a published file carries is read back from the file (:func:`repairs_in_file`), as the manifest records it:
each rewrite names what it adds (``<output>/stacked...``, ``<output>/fan_in/<k>``, ``<source>/split_axis``).
"""

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..core.console import warn
from ..core.fsutil import atomic_path
from ..runtime.tflite_flatbuffer import TFLiteModelEdit, parse_model
from .repairs import registry
from .repairs.base import TFLITE, RepairContext
from .repairs.tflite import channel_slices_as_split, concatenation_fan_in, single_channel_concatenation

PROOF_DRAWS = 2
"""Random inputs each repaired model is compared on (bit for bit) against the file as the tool wrote it."""

# per repair: the name fragment of the one tensor each of its places adds (how a file shows it was repaired)
TRACES = {
    "single_channel_concatenation": single_channel_concatenation.STACK_NAME + "/permutation",
    "concatenation_fan_in": concatenation_fan_in.PART_NAME,
    "channel_slices_as_split": channel_slices_as_split.AXIS_NAME,
}


def repair_tflite_file(path, where: Optional[str] = None) -> List[dict]:
    """Apply the ``tflite`` repairs to the file at ``path`` (rewritten in place, atomically, only when they
    changed something and the result is proven to compute the same bits); returns :func:`registry.apply_all`'s
    records (``[]`` when the repaired model was not kept, or a rewrite failed on it: a warning says which)."""
    path = Path(path)
    original = path.read_bytes()
    try:
        edit = TFLiteModelEdit(original)
        applied = registry.apply_all(TFLITE, edit, RepairContext(where=where or str(path)))
        if not registry.changed(applied):
            return applied
        repaired = edit.to_bytes()
    except Exception as e:  # a rewrite that cannot handle this file leaves it as the tool wrote it, said aloud
        warn(f"{where or path}: the TFLite repairs were not applied ({type(e).__name__}: {e})")
        return []
    differs = _differs(original, repaired, path)
    if differs:
        warn(f"{where or path}: the TFLite repairs were not kept ({differs})")
        return []
    with atomic_path(path, suffix=".tflite") as tmp:
        Path(tmp).write_bytes(repaired)
    return applied


def repairs_in_file(path) -> List[dict]:
    """The ``tflite`` repairs the file at ``path`` carries, read from its tensor names, as a manifest keeps them
    (``registry.summary``: ``{"name", "kind", "matched", "changed", "why"}``); only those found."""
    names = [tensor.name.decode() for tensor in parse_model(Path(path).read_bytes()).subgraphs[0].tensors]
    found = []
    for repair in registry.repairs_for(TFLITE):
        places = _places(names, TRACES[repair.name])
        if places:
            found.append({"name": repair.name, "kind": TFLITE, "matched": places, "changed": places,
                          "why": repair.why})
    return found


def _places(names: Sequence[str], trace: str) -> int:
    """How many places left tensors named ``<name><trace>...``: one per distinct ``<name>``."""
    return len({name.rsplit(trace, 1)[0] for name in names if trace in name})


def _differs(original: bytes, repaired: bytes, path: Path) -> Optional[str]:
    """Why the two models do not compute the same bits on :data:`PROOF_DRAWS` random inputs (None: they do)."""
    from ..runtime.backends.litert import LiteRTBackend

    candidate = path.with_name(path.stem + ".repaired.tflite")
    candidate.write_bytes(repaired)
    try:
        before, after = LiteRTBackend(path, threads=1), LiteRTBackend(candidate, threads=1)
        rng = np.random.default_rng(0)
        for _ in range(PROOF_DRAWS):
            feeds = [_random_input(spec, rng) for spec in before.inputs]
            for spec, a, b in zip(before.outputs, before.run_feeds(feeds), after.run_feeds(feeds)):
                if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
                    gap = np.abs(a.astype(np.float64) - b.astype(np.float64)).max() if a.shape == b.shape else "shape"
                    return f"output {spec.name} differs after the rewrite (max abs {gap})"
        return None
    except Exception as e:  # a rewrite LiteRT refuses is as much a failed proof as one that computes otherwise
        return f"the rewritten model does not run: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}"
    finally:
        candidate.unlink(missing_ok=True)


def _random_input(spec, rng) -> np.ndarray:
    shape = [max(int(d), 1) for d in spec.shape]
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -128), min(info.max, 127), shape, endpoint=True).astype(dtype)
