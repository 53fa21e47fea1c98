"""The calibrated model: TensorFlow's calibration (worker side) and when a cached one may be reused.

Calibration runs the float model on the calibration data and records every activation's min/max;
it is the slow stage (about 30 s for PP-MattingV2 at 512x512 with 32 images), so its result is
kept beside a ``.key.json`` naming what it was made from (SavedModel, calibration data, activation
ranges) and reused while those match.
"""

import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ...core.errors import EdgematteError
from ...core.fsutil import atomic_path, sha256_file

CALIBRATION_KEY_SUFFIX = ".key.json"


def stack_calibration(calib_batches) -> np.ndarray:
    """Calibration batches as one finite float32 ``[K, *input_shape]`` array."""
    calibration = np.stack([np.asarray(b, dtype=np.float32) for b in calib_batches])
    if calibration.shape[0] < 1 or not np.isfinite(calibration).all():
        raise EdgematteError(
            f"calibration data must be finite float32 [K, *input_shape], got shape {calibration.shape}"
        )
    return calibration


def saved_model_hash(saved_model_dir: Path) -> str:
    """sha256 over every file of a SavedModel (relative path and content), in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in saved_model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(saved_model_dir).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def calibration_key(saved_model_dir: Path, calibration: np.ndarray, activation_ranges: str) -> dict:
    """What a calibrated model was made from (the content of its ``.key.json``)."""
    return {"saved_model_sha256": saved_model_hash(saved_model_dir),
            "calibration_sha256": hashlib.sha256(repr(calibration.shape).encode() + calibration.tobytes()).hexdigest(),
            "activation_ranges": activation_ranges}


def key_path(calibrated_model) -> Path:
    return Path(str(calibrated_model) + CALIBRATION_KEY_SUFFIX)


def reusable(calibrated_model, saved_model_dir: Path, calibration: Optional[np.ndarray],
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


def write_key(calibrated_model, saved_model_dir: Path, calibration: np.ndarray, activation_ranges: str) -> None:
    """Record (atomically) what ``calibrated_model`` was made from."""
    with atomic_path(key_path(calibrated_model)) as tmp:
        tmp.write_text(json.dumps(calibration_key(saved_model_dir, calibration, activation_ranges)),
                       encoding="utf-8")


def calibrate(saved_model_dir: str, calibration: np.ndarray) -> bytes:
    """The calibrated model: float TFLite with every activation's min/max over ``calibration``."""
    import tensorflow as tf

    def representative_dataset():
        for batch in calibration:
            yield [batch]

    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    (input_spec,) = signature.structured_input_signature[1].values()
    expected = tuple(input_spec.shape)
    if tuple(calibration.shape[1:]) != expected:
        raise ValueError(
            f"calibration batches have shape {list(calibration.shape[1:])} but the SavedModel input "
            f"{input_spec.name!r} is {list(expected)} (the converted model's layout)"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # stop after calibration; mlir_quantize does the rest
    return converter.convert()
