"""Which repairs exist, in the order they run, and the one way to run them.

Adding a repair: one module under ``repairs/<kind>/`` defining ``REPAIR`` (a :class:`~.base.Repair` whose
``name`` is the module's name), and one line in :data:`ORDER`.
"""

import importlib
from typing import Any, Dict, List, Optional, Tuple

from .base import KINDS, ONNX, ONNX2TF_INPUT, ONNX_ARTEFACT, PADDLE_PROGRAM, TFLITE, Repair, RepairContext

# Per kind, the repair modules (relative to this package) in the order they run.
ORDER: Dict[str, Tuple[str, ...]] = {
    PADDLE_PROGRAM: (
        "paddle_program.relu6_threshold",
        "paddle_program.zero_d_fill_constant",
        "paddle_program.instance_norm_saved_stats",
        "paddle_program.softmax_max_shift",
        "paddle_program.int8_weights_declared_float",
    ),
    ONNX: (
        "onnx.adaptive_pool_windows",
        "onnx.resize_to_one_pixel",
        "onnx.unsqueezed_pad_fold",
        "onnx.channel_slice_pushdown",  # an optimization, not a tool bug: after the repairs that fix tools
    ),
    ONNX2TF_INPUT: (
        "onnx2tf_input.instance_norm_split_mean",  # re-associates: proven within rounding before the exact ones
        "onnx2tf_input.full_rank_add",
        "onnx2tf_input.ambiguous_input_identity",
    ),
    ONNX_ARTEFACT: (
        "onnx_artefact.conv_per_concatenated_part",
        "onnx_artefact.channel_reduction_per_pixel",
        "onnx_artefact.attention_product_per_pixel",  # after it: uses the per-pixel copies it writes
    ),
    TFLITE: (
        "tflite.identity_resize",
        "tflite.single_channel_concatenation",
        "tflite.concatenation_fan_in",  # after it: its stacking concatenation may have more than 5 inputs
        "tflite.channel_slices_as_split",
        "tflite.int8_broadcast_multiply",  # after it: reads the SPLITs it writes
        "tflite.pixel_pair_convolutions",
    ),
}
# What a manifest keeps of each applied repair (its per-match records are reported by the converter).
SUMMARY_KEYS = ("name", "kind", "matched", "changed", "why")


def repairs_for(kind: str) -> List[Repair]:
    """The repairs that apply to ``kind`` (one of :data:`~.base.KINDS`), in the order they run."""
    if kind not in KINDS:
        raise ValueError(f"no repairs for {kind!r}: the kinds are {KINDS}")
    repairs = []
    for module_name in ORDER[kind]:
        repair = importlib.import_module(f"{__package__}.{module_name}").REPAIR
        if repair.applies_to != kind or repair.name != module_name.rsplit(".", 1)[-1]:
            raise RuntimeError(f"{module_name}: registered for {kind} but its REPAIR is "
                               f"{repair.name!r} for {repair.applies_to!r}")
        repairs.append(repair)
    return repairs


def apply_all(kind: str, model: Any, context: RepairContext,
              preserves_outputs: Optional[bool] = None) -> List[dict]:
    """Apply every repair of ``kind`` to ``model`` in place, in order; one record per repair run::

        {"name", "kind", "matched": places found, "changed": places changed, "why",
         "preserves_outputs": bool, "records": [the repair's own record per match]}

    ``preserves_outputs``: run only the repairs with that property (``None``: all of them).
    """
    applied = []
    for repair in repairs_for(kind):
        if preserves_outputs is not None and repair.preserves_outputs != preserves_outputs:
            continue
        matches = repair.apply(model, context)
        applied.append({"name": repair.name, "kind": kind, "matched": len(matches),
                        "changed": sum(1 for m in matches if m.changed), "why": repair.why,
                        "preserves_outputs": repair.preserves_outputs, "records": [m.record for m in matches]})
    return applied


def summary(applied: List[dict]) -> List[dict]:
    """The records of :func:`apply_all` as a manifest keeps them: ``{"name", "kind", "matched", "changed", "why"}``."""
    return [{key: record[key] for key in SUMMARY_KEYS} for record in applied]


def changed(applied: List[dict], name: Optional[str] = None) -> int:
    """How many places the repairs of ``applied`` (or only the one called ``name``) changed."""
    return sum(record["changed"] for record in applied if name is None or record["name"] == name)
