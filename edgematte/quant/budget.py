"""Meet an accuracy budget with as little float as possible: layer groups, their sensitivity, the search.

An int8 model too far from fp32 (MAD above the budget) gets some of its ops kept in float. Which
ones is decided by measurement, not by the per-tensor error of TensorFlow's QuantizationDebugger:

- **Groups.** A group is one *computing* op (convolution, matmul, elementwise arithmetic, mean,
  activation...) together with the scale-preserving ops that feed only it (PAD, CONCATENATION,
  RESHAPE, TRANSPOSE, STRIDED_SLICE...; :data:`SCALE_PRESERVING_OPS`). Keeping a convolution float
  while the PAD or CONCATENATION right in front of it stays int8 would still hand it an int8 input;
  the group keeps them together. The identities :mod:`edgematte.quant.tflite.untie` inserts to untie
  concatenation scales (``.../requantize``) belong to no group. Every op type with several ops
  also gives one group holding all of them (:func:`op_type_groups`): on PP-MattingV2 the six
  attention BATCH_MATMULs matter only together. Groups costing more than
  :data:`MAX_GROUP_MACS_FRACTION` of the model's multiply-accumulates are not candidates.
- **Sensitivity = fall back one group at a time.** Each group alone is kept float and the MAD
  against the float model is measured on a few calibration images; the gain is the drop from the
  all-int8 MAD. Why not the debugger's per-layer error (``layer_quantization_errors``): on
  PP-MattingV2 with TF's defaults every tensor's error is 0.3-1.3 quantization steps (near pure
  rounding), so it ranks nothing, while one tensor whose scale was shared with a 40x wider one cost
  most of the MAD (visible only as a low SQNR, and keeping the op float does not fix it: the
  scale is assigned before). With the scales untied the lowest SQNRs (19-27 dB) are elementwise MULs
  and depthwise convs, while the measurement finds the attention BATCH_MATMULs (0.0072 -> 0.0057
  together). Why not "quantize one group at a time": there each op alone costs about 1e-5 MAD yet
  all together 0.018; errors compound, so the marginal effect of a fallback in the otherwise-int8
  model is what the search needs. Measuring on calibration images keeps the evaluation images for
  the budget decision.
- **Search.** Groups whose gain exceeds :data:`MIN_GAIN_FRACTION` of the MAD, largest first, are
  kept float cumulatively, at most ``max_steps`` of them, and each cumulative choice is evaluated
  (on the caller's evaluation set) until one meets the budget. Gains do not add exactly, hence the
  evaluation of every step. When no step meets the budget the most accurate one is chosen and the
  result says so.

This module is pure logic over callbacks (quantize a list of choices, measure, evaluate), so the
search is testable without TensorFlow; :mod:`edgematte.quant.tflite_int8` supplies the TFLite side.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from ..core.errors import EdgematteError
from .tflite.untie import UNTIE_SUFFIX

SCALE_PRESERVING_OPS = frozenset({
    "AVERAGE_POOL_2D", "BROADCAST_TO", "CONCATENATION", "DEPTH_TO_SPACE", "EXPAND_DIMS", "GATHER",
    "MAX_POOL_2D", "PACK", "PAD", "PADV2", "REDUCE_MAX", "REDUCE_MIN", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQUEEZE", "STRIDED_SLICE",
    "TILE", "TRANSPOSE", "UNPACK",
})
"""Ops whose int8 output shares its input's scale (they move or select values, or average/max them)."""
NOT_GROUPED_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
DEFAULT_MAX_STEPS = 8
MIN_GAIN_FRACTION = 0.01
"""A group counts as sensitive when its fallback lowers the MAD by more than this share of it (noise)."""
MAX_GROUP_MACS_FRACTION = 0.05
"""Largest share of the model's multiply-accumulates one candidate group may move to float."""


@dataclass(frozen=True)
class LayerGroup:
    """Ops kept float together. ``nodes``: their output tensor names (the anchor first)."""

    anchor: str
    anchor_op: str
    nodes: Tuple[str, ...]
    op_types: Tuple[str, ...]
    macs: int
    """Multiply-accumulates of the group's ops for one inference (a cost proxy; elementwise ops count 1 per output)."""
    anchors: int = 1
    """How many computing ops the group holds: 1, or every op of ``anchor_op``'s type."""

    @property
    def label(self) -> str:
        if self.anchors > 1:
            return f"every {self.anchor_op} ({self.anchors})"
        short = self.anchor.split(";")[0]
        return f"{self.anchor_op} {short}" + (f" (+{len(self.nodes) - 1})" if len(self.nodes) > 1 else "")

    def as_dict(self) -> dict:
        return {"label": self.label, "anchor": self.anchor, "anchor_op": self.anchor_op, "anchors": self.anchors,
                "nodes": list(self.nodes), "op_types": list(self.op_types), "macs": self.macs}


def measure_candidate(evaluate: Callable[[object], dict], path,
                      latency_ms: Optional[Callable[[object], float]]) -> dict:
    """One candidate file of a search: ``{"mad", "size_bytes", "numerics"}`` from ``evaluate(path)`` (which must
    give a ``mad``), plus ``latency_ms`` from ``latency_ms(path)`` when given."""
    numerics = dict(evaluate(path))
    if "mad" not in numerics:
        raise EdgematteError(f"evaluate({path.name}) returned no 'mad' ({sorted(numerics)})")
    result = {"mad": float(numerics["mad"]), "size_bytes": path.stat().st_size, "numerics": numerics}
    if latency_ms is not None:
        result["latency_ms"] = latency_ms(path)
    return result


def op_macs(op: dict) -> int:
    """Multiply-accumulates of one op from its tensor shapes (``op`` as ``model_ops`` lists it)."""
    if not op["outputs"]:
        return 0
    out = op["outputs"][0]["shape"]
    out_elements = 1
    for d in out:
        out_elements *= max(int(d), 1)
    inputs = op["inputs"]
    if op["op"] == "CONV_2D" and len(inputs) >= 2:  # weights [out, kh, kw, in]
        _, kh, kw, cin = inputs[1]["shape"]
        return out_elements * kh * kw * cin
    if op["op"] == "DEPTHWISE_CONV_2D" and len(inputs) >= 2:  # weights [1, kh, kw, out]
        _, kh, kw, _ = inputs[1]["shape"]
        return out_elements * kh * kw
    if op["op"] in ("FULLY_CONNECTED", "BATCH_MATMUL") and inputs:
        return out_elements * int(inputs[0]["shape"][-1])
    return out_elements


def layer_groups(ops: Sequence[dict], scale_preserving: FrozenSet[str] = SCALE_PRESERVING_OPS,
                 macs: Callable[[dict], int] = op_macs) -> List[LayerGroup]:
    """The layer groups of a model, in execution order (``ops`` as ``model_ops`` lists them).

    Every computing op anchors one group; a scale-preserving op joins the group of the op it feeds
    when that op is its only consumer, and so on upstream. Scale-preserving ops with several
    consumers, QUANTIZE/DEQUANTIZE and the untie identities belong to no group. ``scale_preserving`` and
    ``macs`` are the op vocabulary: TFLite's by default (another format's ops, in the same dict shape, bring
    their own: :mod:`edgematte.quant.onnx_int8`).
    """
    producer: Dict[str, dict] = {}
    consumers: Dict[str, List[dict]] = {}
    for op in ops:
        for tensor in op["outputs"]:
            producer[tensor["name"]] = op
        for tensor in op["inputs"]:
            consumers.setdefault(tensor["name"], []).append(op)

    def node(op):
        return op["outputs"][0]["name"]

    def is_anchor(op):
        return (op["outputs"] and op["op"] not in scale_preserving and op["op"] not in NOT_GROUPED_OPS
                and not node(op).endswith(UNTIE_SUFFIX))

    groups = []
    for op in ops:
        if not is_anchor(op):
            continue
        members, frontier = [op], [op]
        while frontier:
            current = frontier.pop()
            for tensor in current["inputs"]:
                feeder = producer.get(tensor["name"])
                if feeder is None or feeder["op"] not in scale_preserving or feeder in members:
                    continue
                if all(c is current for c in consumers.get(node(feeder), [])):
                    members.append(feeder)
                    frontier.append(feeder)
        groups.append(LayerGroup(anchor=node(op), anchor_op=op["op"], nodes=tuple(node(m) for m in members),
                                 op_types=tuple(m["op"] for m in members), macs=sum(macs(m) for m in members)))
    return groups


def op_type_groups(groups: Sequence[LayerGroup]) -> List[LayerGroup]:
    """One group per computing op type with several ops: all of them (and their feeders) together.

    Some errors only show together: on PP-MattingV2 keeping any one of the six attention
    BATCH_MATMULs float leaves the MAD as it is or raises it (by up to 5e-4), all six together
    lower it from 0.0072 to 0.0057. ``anchor`` is the op type.
    """
    by_type: Dict[str, List[LayerGroup]] = {}
    for group in groups:
        by_type.setdefault(group.anchor_op, []).append(group)
    merged = []
    for op_type, members in by_type.items():
        if len(members) < 2:
            continue
        nodes = tuple(node for member in members for node in member.nodes)
        merged.append(LayerGroup(anchor=op_type, anchor_op=op_type, nodes=nodes,
                                 op_types=tuple(t for member in members for t in member.op_types),
                                 macs=sum(member.macs for member in members), anchors=len(members)))
    return merged


def candidate_groups(ops: Sequence[dict], max_macs_fraction: float = MAX_GROUP_MACS_FRACTION,
                     scale_preserving: FrozenSet[str] = SCALE_PRESERVING_OPS,
                     macs: Callable[[dict], int] = op_macs) -> List[LayerGroup]:
    """The groups the search may keep float: single layers and whole op types, each costing at most
    ``max_macs_fraction`` of the model's multiply-accumulates (a float fallback must stay small: the
    point of int8 is its speed). ``scale_preserving``, ``macs``: as for :func:`layer_groups`."""
    total = sum(macs(op) for op in ops)
    singles = layer_groups(ops, scale_preserving, macs)
    return [g for g in singles + op_type_groups(singles) if g.macs <= max_macs_fraction * total]


@dataclass
class Sensitivity:
    """How much keeping one group float lowers the MAD of the otherwise-int8 model."""

    group: LayerGroup
    mad: float
    gain: float

    def as_dict(self) -> dict:
        return {**self.group.as_dict(), "mad": self.mad, "gain": self.gain}


def rank_groups(groups: Sequence[LayerGroup], base_mad: float,
                measure_fallbacks: Callable[[List[Tuple[str, ...]]], List[float]]) -> List[Sensitivity]:
    """Fall back each group alone and rank by gain (largest first).

    ``measure_fallbacks(list of node tuples) -> list of MADs``: the MAD of the int8 model with each
    tuple's nodes kept float (on the sensitivity images), one per tuple, in order. ``base_mad``:
    the all-int8 MAD on the same images.
    """
    mads = measure_fallbacks([g.nodes for g in groups])
    if len(mads) != len(groups):
        raise ValueError(f"measure_fallbacks returned {len(mads)} MADs for {len(groups)} groups")
    ranked = [Sensitivity(g, float(m), float(base_mad) - float(m)) for g, m in zip(groups, mads)]
    ranked.sort(key=lambda s: (-s.gain, s.group.macs))
    return ranked


@dataclass
class SearchResult:
    """The choice of :func:`search_fallback` and how it was reached."""

    kept_float_nodes: List[str]
    """Nodes kept float by the search (beyond the caller's own)."""
    mad: float
    meets_budget: bool
    history: List[dict] = field(default_factory=list)
    """One entry per evaluated step: ``step``, ``added`` (group label or None for the start),
    ``kept_float_nodes`` (cumulative), ``mad``, ``size_bytes``, ``macs_float`` and whatever else
    ``evaluate_step`` returned."""
    ranking: List[dict] = field(default_factory=list)
    """The sensitivities measured (``Sensitivity.as_dict()``), best first."""


def search_fallback(base: dict, ranked: Sequence[Sensitivity], budget_mad: float,
                    evaluate_steps: Callable[[List[Tuple[str, ...]]], List[dict]],
                    max_steps: int = DEFAULT_MAX_STEPS, min_gain: Optional[float] = None) -> SearchResult:
    """Keep the most sensitive groups float, cumulatively, until the evaluated MAD meets the budget.

    ``base``: the evaluation of the starting model (``{"mad", "size_bytes", ...}``); if it meets
    the budget nothing is kept. ``ranked``: from :func:`rank_groups`. Groups whose gain is at most
    ``min_gain`` (default :data:`MIN_GAIN_FRACTION` of the base MAD) are not tried, nor groups
    already wholly kept by an earlier step. ``macs_float`` sums the groups' costs (an op in two
    groups counts twice: an upper bound). ``evaluate_steps(list of cumulative node tuples) -> list of dicts``
    evaluates the candidate models (each ``{"mad", "size_bytes", ...}``) in order and may stop
    early: it returns the evaluations made, and must stop after the first that meets the budget.
    At most ``max_steps`` steps are tried (a hard cap).
    """
    if max_steps < 0:
        raise EdgematteError(f"max_steps must be >= 0, got {max_steps}")
    history = [{"step": 0, "added": None, "kept_float_nodes": [], "macs_float": 0, **base}]
    ranking = [s.as_dict() for s in ranked]
    if base["mad"] <= budget_mad:
        return SearchResult([], float(base["mad"]), True, history, ranking)
    threshold = MIN_GAIN_FRACTION * float(base["mad"]) if min_gain is None else float(min_gain)
    chosen, candidates, macs, cumulative = [], [], [], []
    for sensitivity in ranked:
        if len(chosen) == max_steps or sensitivity.gain <= threshold:
            break
        new_nodes = [n for n in sensitivity.group.nodes if n not in cumulative]
        if not new_nodes:  # a single layer already inside an op-type group kept earlier
            continue
        cumulative = cumulative + new_nodes
        chosen.append(sensitivity)
        candidates.append(tuple(cumulative))
        macs.append((macs[-1] if macs else 0) + sensitivity.group.macs)
    results = evaluate_steps(candidates) if candidates else []
    if len(results) > len(candidates):
        raise ValueError(f"evaluate_steps returned {len(results)} results for {len(candidates)} candidates")
    for index, result in enumerate(results):
        history.append({"step": index + 1, "added": chosen[index].group.label,
                        "kept_float_nodes": list(candidates[index]), "macs_float": macs[index], **result})
    best = min(history, key=lambda h: (h["mad"] > budget_mad, h["step"] if h["mad"] <= budget_mad else h["mad"]))
    return SearchResult(list(best["kept_float_nodes"]), float(best["mad"]), best["mad"] <= budget_mad, history, ranking)


# ---------------------------------------------------------------------------------------------
# Dynamic range: which int8 weights to give back their float values


def rank_by_cost(groups: Sequence[LayerGroup],
                 measure_alone: Callable[[List[Tuple[str, ...]]], List[float]]) -> List[Sensitivity]:
    """Quantize each group alone, everything else float, and rank by the MAD that costs (largest first).

    The dynamic-range counterpart of :func:`rank_groups`, and measured the other way round on purpose. In a
    dynamic-range model every hybrid op also quantizes its input on the fly, so no op's error is settled
    before it runs: an early op's error is amplified by every later one. Falling back one op at a time in
    the otherwise-quantized model shows none of that: on seeded MODNet-MobileNetV2 (256x256, 65 hybrid ops,
    MAD 0.066 on two held-out photos) keeping the 32 ops with the largest such gain float still leaves 0.046.
    Ranked by their cost alone, 24 ops float give 0.019 and 32 give 0.014 there (the conversion's own
    evaluation: 0.018 and 0.013, docs/toolchain.md #int8-modnet).

    ``measure_alone(list of node tuples) -> list of MADs``: the MAD against the float model of a model in
    which only each tuple's nodes are quantized. ``Sensitivity.mad`` is that MAD, ``gain`` the same number
    (what keeping the group float saves, were errors additive).
    """
    mads = measure_alone([g.nodes for g in groups])
    if len(mads) != len(groups):
        raise ValueError(f"measure_alone returned {len(mads)} MADs for {len(groups)} groups")
    ranked = [Sensitivity(g, float(m), float(m)) for g, m in zip(groups, mads)]
    ranked.sort(key=lambda s: (-s.gain, s.group.macs))
    return ranked


def search_prefix(base: dict, ranked: Sequence[Sensitivity], budget_mad: float,
                  evaluate: Callable[[Tuple[str, ...]], dict], max_steps: int = DEFAULT_MAX_STEPS) -> SearchResult:
    """The shortest head of ``ranked`` kept float whose evaluated MAD meets the budget, found by bisection on
    its length.

    Keeping the whole list float gives the float model, which meets any budget, so the answer lies between
    0 (``base``, evaluated by the caller) and ``len(ranked)``; each step evaluates the middle
    (``evaluate(nodes) -> {"mad", "size_bytes", ...}``) and keeps the half that holds the answer. At most
    ``max_steps`` evaluations (65 ops need 7). The MAD is not strictly monotonic in the length, so the result
    is the shortest head *evaluated* to meet the budget, else the most accurate one evaluated. History entries
    as in :func:`search_fallback`; ``added`` reads "the N costliest".
    """
    if max_steps < 0:
        raise EdgematteError(f"max_steps must be >= 0, got {max_steps}")
    history = [{"step": 0, "added": None, "kept_float_nodes": [], "macs_float": 0, **base}]
    ranking = [s.as_dict() for s in ranked]
    if base["mad"] <= budget_mad or not ranked:
        return SearchResult([], float(base["mad"]), base["mad"] <= budget_mad, history, ranking)
    low, high = 0, len(ranked)  # low: known to miss; high: known (or taken) to meet
    while high - low > 1 and len(history) <= max_steps:
        middle = (low + high) // 2
        nodes = tuple(dict.fromkeys(n for s in ranked[:middle] for n in s.group.nodes))
        result = evaluate(nodes)
        history.append({"step": len(history), "added": f"the {middle} costliest",
                        "kept_float_nodes": list(nodes), "macs_float": sum(s.group.macs for s in ranked[:middle]),
                        **result})
        if result["mad"] <= budget_mad:
            high = middle
        else:
            low = middle
    meeting = [h for h in history if h["mad"] <= budget_mad]
    best = (min(meeting, key=lambda h: len(h["kept_float_nodes"])) if meeting
            else min(history, key=lambda h: h["mad"]))
    return SearchResult(list(best["kept_float_nodes"]), float(best["mad"]), best["mad"] <= budget_mad, history, ranking)
