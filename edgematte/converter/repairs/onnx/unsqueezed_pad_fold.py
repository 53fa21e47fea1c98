"""paddle2onnx's Unsqueeze -> 5-D Pad -> Squeeze, which onnx2tf cannot convert, folded back into one 4-D Pad.

paddle2onnx writes Paddle's 4-D ``pad`` (``pad3d``) as ``Unsqueeze(axes=[2])`` -> 5-D ``Pad`` ->
``Squeeze(axes=[2])``: correct ONNX, on which onnx2tf's channels-last transposition fails
(PP-HumanMatting's refiner). The rewrite only moves data, so the graph must compute exactly what it did
before; the converter proves that in ONNX Runtime on the whole graph (``converter/onnx.py``).
"""

from typing import Dict, List, Optional, Tuple

import numpy as np

from ..base import ONNX, Match, Repair, RepairContext
from .graph import attr, axes_operand, drop_unread_constants, pads_operand


def _unsqueezed_pad_verdict(model, unsqueeze, pad, squeeze) -> Tuple[Optional[np.ndarray], str]:
    """Whether Unsqueeze -> Pad -> Squeeze is exactly a Pad of the Unsqueeze's input, and with which pads.

    Returns ``(pads of the equivalent lower-rank Pad, reason)``; pads ``None`` means it is not
    provably equivalent and ``reason`` says why. Pads are ONNX's ``[begin per axis..., end per axis...]``.
    """
    if len(pad.input) > 3 and pad.input[3]:
        return None, "the Pad has an 'axes' input (opset 18); not handled"
    pads = pads_operand(model, pad)
    if pads is None or pads.size % 2:
        return None, "the Pad's pads are not a constant of even length"
    rank = pads.size // 2
    inserted = axes_operand(model, unsqueeze)
    squeezed = axes_operand(model, squeeze)
    if inserted is None or squeezed is None:
        return None, "the Unsqueeze or Squeeze axes are not constant (a Squeeze without axes drops every size-1 axis)"
    inserted = sorted({a % rank for a in inserted})
    if len(inserted) >= rank or sorted({a % rank for a in squeezed}) != inserted:
        return None, f"Squeeze axes {squeezed} do not undo Unsqueeze axes {axes_operand(model, unsqueeze)}"
    nonzero = {a: (int(pads[a]), int(pads[rank + a])) for a in inserted if pads[a] or pads[rank + a]}
    if nonzero:
        # e.g. (1, -1) shifts the one element out and fills the axis with the constant
        return None, f"pads (begin, end) on inserted axes {nonzero} are not zero"
    kept = [a for a in range(rank) if a not in inserted]
    return np.concatenate([pads[kept], pads[[rank + a for a in kept]]]), "pads on the inserted axes are zero"


def fold_unsqueezed_pads(model) -> List[dict]:
    """Rewrite, in place, every Unsqueeze -> Pad -> Squeeze that only pads the original axes as one Pad.

    paddle2onnx writes Paddle's 4-D ``pad`` (``pad3d``) as ``Unsqueeze(axes=[2])`` -> 5-D ``Pad`` ->
    ``Squeeze(axes=[2])``; onnx2tf transposes the 5-D tensor to channels-last and then fails to squeeze
    the wrong axis. The chain equals a Pad of the Unsqueeze's input with the inserted axes' pads left
    out exactly when those pads are all zero (begin and end) and the Squeeze removes precisely the
    inserted axes: every output element then reads the same input element or the same fill. The Pad
    keeps its mode (constant/reflect/edge/wrap) and constant value. A chain whose intermediate tensors
    are read elsewhere (or are graph outputs) is left alone, as is a Pad with an ``axes`` input.

    Returns one record per Unsqueeze -> Pad -> Squeeze found: ``action`` ``"rewritten"`` (with the
    pads before and after) or ``"left"``, and the ``reason``.
    """
    import onnx

    graph_outputs = {o.name for o in model.graph.output}
    records, operands = [], set()
    # Pads are found by output name: rewriting replaces node messages, so references would go stale.
    for pad_output in [n.output[0] for n in model.graph.node if n.op_type == "Pad"]:
        producers = {o: n for n in model.graph.node for o in n.output}
        readers: Dict[str, list] = {}
        for n in model.graph.node:
            for name in n.input:
                readers.setdefault(name, []).append(n)
        pad = producers[pad_output]
        unsqueeze = producers.get(pad.input[0])
        squeezes = readers.get(pad_output, [])
        if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or [n.op_type for n in squeezes] != ["Squeeze"]:
            continue
        squeeze = squeezes[0]
        mode = attr(pad, "mode", b"constant")
        record = {"normalization": "unsqueeze_pad_squeeze",
                  "onnx_nodes": [n.name or n.output[0] for n in (unsqueeze, pad, squeeze)],
                  "mode": mode.decode() if isinstance(mode, bytes) else mode,
                  "unsqueeze_axes": axes_operand(model, unsqueeze)}
        folded, reason = _unsqueezed_pad_verdict(model, unsqueeze, pad, squeeze)
        if folded is not None and (len(readers.get(unsqueeze.output[0], [])) != 1
                                   or {unsqueeze.output[0], pad_output} & graph_outputs):
            folded, reason = None, "the unsqueezed or padded tensor is also read elsewhere"
        if folded is None:
            records.append({**record, "action": "left", "reason": reason})
            continue
        pads_before = pads_operand(model, pad).tolist()
        if attr(pad, "pads") is not None:  # opset < 11: pads is an attribute
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pad.attribute}
            rewritten = onnx.helper.make_node("Pad", [unsqueeze.input[0]], [squeeze.output[0]], name=pad.name,
                                              **{**attrs, "pads": folded.tolist()})
        else:
            pads_name = f"{pad_output}/pads_without_inserted_axes"  # tensor names are unique, node names need not be
            model.graph.initializer.append(onnx.numpy_helper.from_array(folded.astype(np.int64), pads_name))
            rewritten = onnx.helper.make_node("Pad", [unsqueeze.input[0], pads_name, *pad.input[2:]],
                                              [squeeze.output[0]], name=pad.name)
            rewritten.attribute.extend(pad.attribute)
        operands.update(name for n in (unsqueeze, pad, squeeze) for name in n.input[1:])
        # In the Pad's place: its inputs are all produced before it, its readers come after the Squeeze.
        dropped = {unsqueeze.output[0], squeeze.output[0]}
        kept = [rewritten if n.output[0] == pad_output else n for n in model.graph.node if n.output[0] not in dropped]
        del model.graph.node[:]
        model.graph.node.extend(kept)
        records.append({**record, "action": "rewritten",
                        "reason": f"{reason} and the Squeeze removes exactly the inserted axes: the same "
                                  f"{record['mode']} pad of the original axes",
                        "pads_before": pads_before, "pads_after": folded.tolist()})
    drop_unread_constants(model, operands)
    return records



def apply(model, context: RepairContext) -> List[Match]:
    """:func:`fold_unsqueezed_pads` as a repair: one match per chain, changed when ``action`` is ``"rewritten"``."""
    return [Match(r["action"] == "rewritten", r) for r in fold_unsqueezed_pads(model)]


REPAIR = Repair(
    name="unsqueezed_pad_fold",
    applies_to=ONNX,
    matches="Unsqueeze -> Pad -> Squeeze chains; changed when the inserted axes' pads are zero, the Squeeze "
            "removes exactly them and no other node reads the intermediate tensors",
    changes="replaces each such chain by one Pad of the Unsqueeze's input with the inserted axes' pads left out "
            "(same mode and constant value); orphaned constants are dropped",
    why="paddle2onnx 1.3.1 writes Paddle's 4-D pad as Unsqueeze -> 5-D Pad -> Squeeze and onnx2tf 1.29.24 cannot "
        "take 5-D pads: it transposes them channels-last, squeezes the wrong axis and the conversion stops "
        "(no .tflite for PP-HumanMatting, whose refiner pads)",
    preserves_outputs=True,
    apply=apply,
)
