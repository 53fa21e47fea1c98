"""The ``tflite`` repairs applied to a ``.tflite`` file, and proven exact in LiteRT before it is kept.

Every ``.tflite`` edgematte publishes (onnx2tf's float32 and float16 files, TensorFlow's full-integer,
dynamic-range and float-twin files) goes through :func:`repair_tflite_file` while it is still in the private work
folder: the registry's ``tflite`` repairs rewrite patterns XNNPACK would leave to TFLite's own kernels
(``converter/repairs/tflite``). They only move data, so the repaired model must give the same outputs bit for bit:
both models run in LiteRT (XNNPACK, 1 thread) on :data:`PROOF_DRAWS` random inputs of every input's shape and
type, and a repaired model that differs in any bit is not kept (the file stays as the tool wrote it, and a warning
says so).

A repaired file says so itself: its metadata entry :data:`METADATA_NAME` holds the repairs applied and how many places
each changed (JSON), written before the proof, so the file proven is the file published. The manifest's records are
read back from there (:func:`repairs_in_file`): a file copied or renamed on the way (the int8 search's steps) still
says what it carries.
"""

import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..core.console import warn
from ..core.fsutil import atomic_path
from ..runtime.tflite_flatbuffer import TFLiteModelEdit, parse_model
from .repairs import registry
from .repairs.base import TFLITE, RepairContext

PROOF_DRAWS = 2
"""Random inputs each repaired model is compared on (bit for bit) against the file as the tool wrote it."""

METADATA_NAME = "edgematte.tflite_repairs"
"""The name of the metadata entry of a repaired ``.tflite``: JSON ``[{"name", "matched", "changed"}, ...]``."""
METADATA_MAX_BYTES = 1 << 16


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
        _add_metadata(edit, [{k: record[k] for k in ("name", "matched", "changed")} for record in applied
                             if record["changed"]])
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
    """The ``tflite`` repairs the file at ``path`` carries (its :data:`METADATA_NAME` entry), as a manifest keeps them
    (``registry.summary``: ``{"name", "kind", "matched", "changed", "why"}``, the ``why`` from the registry); ``[]``
    for a file without the entry. Only repairs of the registry are listed."""
    model = parse_model(Path(path).read_bytes())
    entry = next((m for m in model.metadata or [] if m.name is not None and m.name.decode() == METADATA_NAME), None)
    if entry is None:
        return []
    data = model.buffers[entry.buffer].data
    if data is None or len(data) > METADATA_MAX_BYTES:
        return []
    known = {repair.name: repair for repair in registry.repairs_for(TFLITE)}
    found = []
    for record in json.loads(bytes(bytearray(data)).decode("utf-8")):
        repair = known.get(record.get("name"))
        if repair is not None:
            found.append({"name": repair.name, "kind": TFLITE, "matched": int(record["matched"]),
                          "changed": int(record["changed"]), "why": repair.why})
    return found


def _add_metadata(edit: TFLiteModelEdit, records: List[dict]) -> None:
    """Record ``records`` in the model's :data:`METADATA_NAME` entry, after those of an earlier repair of the file."""
    schema = edit.schema
    earlier = [m for m in edit.model.metadata or [] if m.name is not None and m.name.decode() == METADATA_NAME]
    if earlier and edit.model.buffers[earlier[-1].buffer].data is not None:
        records = json.loads(bytes(bytearray(edit.model.buffers[earlier[-1].buffer].data)).decode("utf-8")) + records
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(records).encode("utf-8"), np.uint8)
    edit.model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME.encode(), len(edit.model.buffers) - 1
    edit.model.metadata = [m for m in edit.model.metadata or [] if m not in earlier] + [entry]


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
