"""uint8 -> float32 normalization through per-value tables (Java twin: ``Normalization``).

:func:`normalization_table` gives a float32 [256, 3] table (one column per channel) that keeps each
deployment's exact float expression; :func:`normalize` maps a uint8 H x W x 3 image through it to a
float32 H x W x 3 array (in [-1, 1] for mean = std = 0.5).

The fixed-step (Android) profiles take only the Normalize step of a model's deploy.yaml transforms:
:func:`model_normalization` reads it (Java ``Normalization.Spec.fromTransforms``) and
:func:`fixed_step_rule` picks the rule both languages compute bit for bit.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from edgematte.core.errors import EdgematteError

DEFAULT_MEAN: Tuple[float, float, float] = (0.5, 0.5, 0.5)
DEFAULT_STD: Tuple[float, float, float] = (0.5, 0.5, 0.5)


def normalization_table(rule: str, mean: Sequence[float] = DEFAULT_MEAN,
                        std: Sequence[float] = DEFAULT_STD) -> np.ndarray:
    """float32 [256, 3]: the normalized value of each uint8 ``v`` per channel, by ``rule``.

    A per-value table keeps each deployment's exact float expression (they differ in the last bit):

    - ``"paddleseg"``: PaddleSeg ``normalize``: ``x = float32(v) / 255`` in float32, then
      ``x -= mean``, ``x /= std`` with float64 constants, stored to float32 after each step. The
      PaddleSeg Android demo's Java ``(float)((v / 255 - 0.5) / 0.5)`` gives the same bits.
    - ``"fastdeploy"``: FastDeploy ``Normalize`` via ``convertTo``: ``float32(v * a + b)`` with
      ``a = float32((1 / 255) / std)``, ``b = float32(-mean / std)`` (mean/std parsed as float32)
      and one rounding (the fused multiply-add of OpenCV's AVX2/NEON paths; exact in float64 here).
    - ``"exact"``: ``(v - 255 * mean) / (255 * std)`` in float32; both constants (products taken in
      float64) must be exact float32 (127.5 is), so the result is the float32 nearest the true value
      (``android``).
    - ``"none"``: ``float32(v)``, raw 0..255 (a model without Normalize); ``mean``/``std`` are ignored.
    """
    values = np.arange(256, dtype=np.float32)[:, None]
    mean64 = np.asarray(mean, np.float64)[None, :]
    std64 = np.asarray(std, np.float64)[None, :]
    if rule == "paddleseg":
        x = values / np.float32(255.0)
        x = (x.astype(np.float64) - mean64).astype(np.float32)
        x = (x.astype(np.float64) / std64).astype(np.float32)
    elif rule == "fastdeploy":
        mean_f = mean64.astype(np.float32).astype(np.float64)
        std_f = std64.astype(np.float32).astype(np.float64)
        scale = ((1.0 / 255.0) / std_f).astype(np.float32).astype(np.float64)
        shift = (-mean_f / std_f).astype(np.float32).astype(np.float64)
        x = (values.astype(np.float64) * scale + shift).astype(np.float32)
    elif rule == "exact":
        if not exact_in_float32(mean, std):
            raise ValueError(f"rule 'exact' needs 255*mean and 255*std exact in float32, got {mean}, {std}")
        offset, divisor = 255.0 * mean64, 255.0 * std64
        x = (values - offset.astype(np.float32)) / divisor.astype(np.float32)
    elif rule == "none":
        x = values
    else:
        raise ValueError(f"unknown normalization rule {rule!r}")
    return np.ascontiguousarray(np.broadcast_to(x, (256, 3)), dtype=np.float32)


def exact_in_float32(mean: Sequence[float], std: Sequence[float]) -> bool:
    """Whether every ``255 * mean[c]`` and ``255 * std[c]`` (float64 products) is exactly a float32.

    True for mean = std = 0.5 (127.5) and mean 0 / std 1 (0 and 255); False for ImageNet's
    (255 * 0.485 = 123.675 is no float32). Java decides the same with ``(double)(float) x == x``.
    """
    products = 255.0 * np.concatenate([np.asarray(mean, np.float64), np.asarray(std, np.float64)])
    with np.errstate(over="ignore"):
        return bool((products.astype(np.float32) == products).all())


@dataclass(frozen=True)
class ModelNormalization:
    """A model's Normalize step as the fixed-step (Android) profiles read it.

    ``mean``/``std``: 3 floats each (float64, deploy.yaml's numbers), or both None for a model whose
    transforms have no Normalize: it is fed raw ``float32(v)`` in 0..255.
    """

    mean: Optional[Tuple[float, float, float]]
    std: Optional[Tuple[float, float, float]]

    @property
    def raw(self) -> bool:
        return self.mean is None

    def table(self, rule: str) -> np.ndarray:
        """float32 [256, 3]: :func:`normalization_table` of ``rule`` with these numbers ("none" if raw)."""
        if self.raw:
            return normalization_table("none")
        return normalization_table(rule, self.mean, self.std)


DEFAULT_NORMALIZATION = ModelNormalization(DEFAULT_MEAN, DEFAULT_STD)
RAW_NORMALIZATION = ModelNormalization(None, None)


def model_normalization(transforms: Optional[Sequence[dict]],
                        default: ModelNormalization = DEFAULT_NORMALIZATION) -> ModelNormalization:
    """The Normalize step of a deploy.yaml transforms list, for the profiles that read only that step.

    ``None`` or an empty list: nothing declared (a model folder without deploy.yaml records ``[]``),
    ``default``. A list without Normalize: :data:`RAW_NORMALIZATION`. Otherwise its mean/std (default
    0.5 each), checked as :func:`~.transforms.parse_transforms` checks them. Every other entry
    (LoadImages, resizes, types the transform profiles do not support) is ignored but must be a mapping
    with a ``type``; two Normalize steps raise EdgematteError (they would have to be applied in turn).
    """
    # Imported here: transforms imports this module (normalization_table) at its top.
    from .transforms import parse_transforms

    if not transforms:
        return default
    steps = []
    for transform in transforms:
        if not isinstance(transform, dict) or "type" not in transform:
            raise EdgematteError(f"deploy.yaml transform must be a mapping with a 'type', got {transform!r}")
        if transform["type"] == "Normalize":
            try:
                steps.extend(parse_transforms([transform]))
            except (TypeError, ValueError) as error:  # e.g. mean: 0.5 (not a list) or "a"
                raise EdgematteError(f"deploy.yaml transform Normalize: mean and std must be lists of 3 numbers, "
                                     f"got {transform!r} ({error})") from None
    if len(steps) > 1:
        raise EdgematteError(f"deploy.yaml transforms hold {len(steps)} Normalize steps; one is supported")
    if not steps:
        return RAW_NORMALIZATION
    return ModelNormalization(tuple(steps[0]["mean"]), tuple(steps[0]["std"]))


def fixed_step_rule(normalization: ModelNormalization, prefer_exact: bool) -> str:
    """The :func:`normalization_table` rule a fixed-step profile uses for ``normalization``.

    ``"none"`` when raw; ``"exact"`` when ``prefer_exact`` (the ``android`` profile) and
    :func:`exact_in_float32`; otherwise ``"paddleseg"``, whose float32/float64 steps Java's double
    arithmetic reproduces bit for bit.
    """
    if normalization.raw:
        return "none"
    if prefer_exact and exact_in_float32(normalization.mean, normalization.std):
        return "exact"
    return "paddleseg"


def describe_normalization(normalization: ModelNormalization, rule: str) -> dict:
    """The manifest's ``normalize`` entry of a fixed-step profile: rule, mean/std and the expression."""
    if rule == "none":
        return {"rule": rule, "mean": None, "std": None,
                "expression": "float32(v), raw 0..255 (the model's transforms have no Normalize)"}
    mean, std = list(normalization.mean), list(normalization.std)
    if rule == "exact":
        offsets = [255.0 * m for m in mean]
        divisors = [255.0 * s for s in std]
        if len(set(offsets)) == 1 and len(set(divisors)) == 1:
            expression = f"(v - {offsets[0]}f) / {divisors[0]}f in float32"
        else:
            expression = (f"(v - offset[c]) / divisor[c] in float32, offset = {offsets}, divisor = {divisors} "
                          "(255 * mean, 255 * std: exact float32)")
    elif rule == "paddleseg":
        expression = ("x = v / 255f (float32); x = (float)((double) x - mean[c]); x = (float)((double) x / std[c]) "
                      "(PaddleSeg's numpy normalize; Java's double arithmetic gives the same bits)")
    else:
        raise ValueError(f"unknown fixed-step normalization rule {rule!r}")
    return {"rule": rule, "mean": mean, "std": std, "expression": expression}


def normalize(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """float32 H x W x 3: ``table[rgb[..., c], c]`` (see :func:`normalization_table`).

    OpenCV's per-channel look-up (a copy of table entries, so exact) is several times faster than
    numpy's fancy indexing.
    """
    return cv2.LUT(np.ascontiguousarray(rgb, np.uint8), np.ascontiguousarray(table, np.float32).reshape(256, 1, 3))
