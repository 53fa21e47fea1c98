"""The calibrated model: TensorFlow's calibration (worker side) and when a cached one may be reused.

Calibration runs the float model on the calibration data and records every activation's min/max;
it is the slow stage (about 30 s for PP-MattingV2 at 512x512 with 32 images), so its result is
kept beside a ``.key.json`` naming what it was made from (SavedModel, calibration data, activation
ranges) and reused while those match.

Calibration data is one float32 ``[K, *input_shape]`` array for a model with one input, or for a model with
several (a recurrent one: the image and its states) a dict ``{input name: [K, *shape]}`` keyed by the
SavedModel's signature input names: sample ``k`` feeds every input its ``k``-th array (:func:`stack_calibration`).
"""

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ...core.errors import EdgematteError
from ...core.fsutil import atomic_path, sha256_file

CALIBRATION_KEY_SUFFIX = ".key.json"


Calibration = Union[np.ndarray, Dict[str, np.ndarray]]


def stack_calibration(calib_batches) -> Calibration:
    """Calibration batches as one finite float32 ``[K, *input_shape]`` array; for a model with several inputs
    (``calib_batches`` a dict ``{name: K arrays}`` or a sequence of K dicts ``{name: array}``) a dict
    ``{name: [K, *shape]}``, every input with the same K."""
    if isinstance(calib_batches, dict) or (isinstance(calib_batches, (list, tuple)) and calib_batches
                                           and isinstance(calib_batches[0], dict)):
        return _stack_named(calib_batches)
    calibration = np.stack([np.asarray(b, dtype=np.float32) for b in calib_batches])
    if calibration.shape[0] < 1 or not np.isfinite(calibration).all():
        raise EdgematteError(
            f"calibration data must be finite float32 [K, *input_shape], got shape {calibration.shape}"
        )
    return calibration


def _stack_named(calib_batches) -> Dict[str, np.ndarray]:
    if isinstance(calib_batches, dict):
        named = {str(n): np.stack([np.asarray(b, dtype=np.float32) for b in v]) for n, v in calib_batches.items()}
    else:
        names = list(calib_batches[0])
        if any(sorted(sample) != sorted(names) for sample in calib_batches):
            raise EdgematteError(f"calibration samples must all feed the same inputs {names}")
        named = {n: np.stack([np.asarray(s[n], dtype=np.float32) for s in calib_batches]) for n in names}
    counts = {a.shape[0] for a in named.values()}
    if not named or len(counts) != 1 or counts == {0} or not all(np.isfinite(a).all() for a in named.values()):
        raise EdgematteError("calibration data for several inputs must be finite float32 [K, *shape] per input, "
                             f"one K for all; got {({n: list(a.shape) for n, a in named.items()})}")
    return named


def calibration_count(calibration: Calibration) -> int:
    """K, the number of calibration samples."""
    return next(iter(calibration.values())).shape[0] if isinstance(calibration, dict) else calibration.shape[0]


def calibration_head(calibration: Calibration, count: int) -> Calibration:
    """The first ``count`` samples."""
    if isinstance(calibration, dict):
        return {n: a[:count] for n, a in calibration.items()}
    return calibration[:count]


def calibration_samples(calibration: Calibration) -> List[Union[np.ndarray, Dict[str, np.ndarray]]]:
    """The samples one by one: arrays, or dicts ``{name: array}`` for several inputs."""
    if isinstance(calibration, dict):
        return [{n: a[k] for n, a in calibration.items()} for k in range(calibration_count(calibration))]
    return list(calibration)


def save_calibration(calibration: Calibration, folder: Path) -> str:
    """Write the calibration data into ``folder``; returns the file name (``.npy``, or ``.npz`` for several inputs)."""
    if isinstance(calibration, dict):
        np.savez(folder / "calibration.npz", **calibration)
        return "calibration.npz"
    np.save(folder / "calibration.npy", calibration)
    return "calibration.npy"


def load_calibration(path) -> Calibration:
    """What :func:`save_calibration` wrote."""
    if str(path).endswith(".npz"):
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
    return np.load(path)


def saved_model_hash(saved_model_dir: Path) -> str:
    """sha256 over every file of a SavedModel (relative path and content), in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in saved_model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(saved_model_dir).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def calibration_key(saved_model_dir: Path, calibration: Calibration, activation_ranges: str) -> dict:
    """What a calibrated model was made from (the content of its ``.key.json``)."""
    if isinstance(calibration, dict):
        digest = hashlib.sha256()
        for name in sorted(calibration):
            array = calibration[name]
            digest.update(name.encode() + b"\0" + repr(array.shape).encode() + array.tobytes())
        calibration_sha256 = digest.hexdigest()
    else:
        calibration_sha256 = hashlib.sha256(repr(calibration.shape).encode() + calibration.tobytes()).hexdigest()
    return {"saved_model_sha256": saved_model_hash(saved_model_dir), "calibration_sha256": calibration_sha256,
            "activation_ranges": activation_ranges}


def key_path(calibrated_model) -> Path:
    return Path(str(calibrated_model) + CALIBRATION_KEY_SUFFIX)


def reusable(calibrated_model, saved_model_dir: Path, calibration: Optional[Calibration],
             activation_ranges: str) -> bool:
    """Whether ``calibrated_model`` exists and may be used instead of calibrating again.

    Without calibration data an existing file is accepted unchecked, unless its key names other
    activation ranges (:class:`EdgematteError`); with data its key must match them exactly.
    """
    if calibrated_model is None or not Path(calibrated_model).is_file():
        return False
    key_file = key_path(calibrated_model)
    key = json.loads(key_file.read_text()) if key_file.is_file() else None
    if calibration is None:
        if key is not None and key.get("activation_ranges") != activation_ranges:
            raise EdgematteError(f"{calibrated_model}: calibrated with {key.get('activation_ranges')!r} "
                                 f"activation ranges, {activation_ranges!r} asked (give calibration data)")
        return True
    if key is not None and (saved_model_dir / "saved_model.pb").is_file():
        return key == calibration_key(saved_model_dir, calibration, activation_ranges)
    return False


def write_key(calibrated_model, saved_model_dir: Path, calibration: Calibration, activation_ranges: str) -> None:
    """Record (atomically) what ``calibrated_model`` was made from."""
    with atomic_path(key_path(calibrated_model)) as tmp:
        tmp.write_text(json.dumps(calibration_key(saved_model_dir, calibration, activation_ranges)),
                       encoding="utf-8")


def calibrate(saved_model_dir: str, calibration: Calibration) -> bytes:
    """The calibrated model: float TFLite with every activation's min/max over ``calibration`` (one array, or a
    dict keyed by the signature's input names for a model with several inputs)."""
    import tensorflow as tf

    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    if isinstance(calibration, dict):
        if sorted(specs) != sorted(calibration):
            raise ValueError(f"calibration data feeds {sorted(calibration)} but the SavedModel's inputs are "
                             f"{sorted(specs)}")
        for name, spec in specs.items():
            if tuple(calibration[name].shape[1:]) != tuple(spec.shape):
                raise ValueError(f"calibration batches for {name!r} have shape {list(calibration[name].shape[1:])} "
                                 f"but the SavedModel input is {list(spec.shape)} (the converted model's layout)")

        def representative_dataset():
            for sample in calibration_samples(calibration):
                yield sample  # by signature input name: TF feeds each input its own array
    else:
        (input_spec,) = specs.values()
        expected = tuple(input_spec.shape)
        if tuple(calibration.shape[1:]) != expected:
            raise ValueError(
                f"calibration batches have shape {list(calibration.shape[1:])} but the SavedModel input "
                f"{input_spec.name!r} is {list(expected)} (the converted model's layout)"
            )

        def representative_dataset():
            for batch in calibration:
                yield [batch]
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # stop after calibration; mlir_quantize does the rest
    return converter.convert()
