"""deploy.yaml ``Deploy.transforms``: the parser, and the base of the profiles they drive (no Java twin;
the Android profiles read only the Normalize step, :func:`.normalization.model_normalization`).

The transforms are the model's: a converter manifest's ``model.transforms`` (deploy.yaml's list as the
converter read it) or, above the runtime, the zoo's ``get_model_spec(name).transforms``. The runtime
holds no per-model defaults.
"""

from typing import Optional, Sequence, Tuple

from edgematte.core.errors import EdgematteError

from .base import Profile
from .normalization import normalization_table

_RESIZES = ("LimitShort", "ResizeByShort", "ResizeToIntMult")


def _positive_int(transform: dict, key: str, default=None, optional=False):
    """``transform[key]`` (or ``default``) as an int >= 1; None when missing and ``optional``."""
    value = transform.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EdgematteError(f"deploy.yaml transform {transform.get('type')}: {key} must be a positive integer, "
                             f"got {value!r}")
    return value


def parse_transforms(transforms: Sequence[dict]) -> Tuple[dict, ...]:
    """Validate a deploy.yaml ``Deploy.transforms`` list; returns normalized dicts.

    Supported: LimitShort(max_short, min_short), ResizeByShort(short_size), ResizeToIntMult(mult_int,
    default 32), Normalize(mean, std, default 0.5), LoadImages (reading is done already; only
    ``to_rgb: true`` is accepted). Normalize must come after every resize.
    """
    parsed = []
    normalized = False
    for transform in transforms:
        if not isinstance(transform, dict) or "type" not in transform:
            raise EdgematteError(f"deploy.yaml transform must be a mapping with a 'type', got {transform!r}")
        kind = transform["type"]
        if kind == "LoadImages":
            if transform.get("to_rgb", True) is not True:
                raise EdgematteError("deploy.yaml transform LoadImages with to_rgb: false (BGR input) is not supported")
            continue
        if kind in _RESIZES and normalized:
            raise EdgematteError(f"deploy.yaml transform {kind} after Normalize is not supported")
        if kind == "LimitShort":
            parsed.append({"type": kind, "max_short": _positive_int(transform, "max_short", optional=True),
                           "min_short": _positive_int(transform, "min_short", optional=True)})
        elif kind == "ResizeByShort":
            parsed.append({"type": kind, "short_size": _positive_int(transform, "short_size")})
        elif kind == "ResizeToIntMult":
            parsed.append({"type": kind, "mult_int": _positive_int(transform, "mult_int", 32)})
        elif kind == "Normalize":
            mean = [float(v) for v in transform.get("mean", (0.5, 0.5, 0.5))]
            std = [float(v) for v in transform.get("std", (0.5, 0.5, 0.5))]
            if len(mean) != 3 or len(std) != 3 or not all(s != 0 for s in std):
                raise EdgematteError(f"deploy.yaml transform Normalize: need 3 means and 3 non-zero stds, "
                                     f"got mean={mean} std={std}")
            parsed.append({"type": kind, "mean": mean, "std": std})
            normalized = True
        else:
            raise EdgematteError(f"deploy.yaml transform {kind!r} is not supported (supported: LoadImages, "
                                 f"LimitShort, ResizeByShort, ResizeToIntMult, Normalize)")
    return tuple(parsed)


def _normalize_of(transforms: Sequence[dict]) -> Optional[dict]:
    """The first parsed Normalize transform (``mean``/``std``: 3 floats each), or None."""
    return next((t for t in transforms if t["type"] == "Normalize"), None)


class _TransformsProfile(Profile):
    """Shared by the two profiles driven by a deploy.yaml transforms list.

    ``transforms``: the model's list (required; see :func:`parse_transforms`). ``table``: float32
    [256, 3], the Normalize transform's table by ``normalization_rule`` (raw 0..255 without one).
    """

    normalization_rule = "paddleseg"

    def __init__(self, transforms: Sequence[dict]):
        self.transforms = parse_transforms(transforms)
        norm = _normalize_of(self.transforms)
        # Without Normalize the references feed raw 0..255 values as float32.
        self.table = (normalization_table(self.normalization_rule, norm["mean"], norm["std"]) if norm
                      else normalization_table("none"))

    @classmethod
    def from_transforms(cls, transforms: Sequence[dict]):
        """Build from a deploy.yaml ``Deploy.transforms`` list of dicts."""
        return cls(transforms)

    def _describe_normalize(self, expression: str) -> dict:
        norm = _normalize_of(self.transforms)
        if norm is None:
            return {"expression": "float32(v) (no Normalize transform)"}
        return {"mean": norm["mean"], "std": norm["std"], "expression": expression}
