"""A map multiplied by a one-channel attention map, in the per-pixel layout its channel reductions already use.

PP-MattingV2's attention blocks reduce each map over its channels and multiply the same map by the attention that
comes out (``x * sigmoid(...)[:, i:i+1]``, a ``[N, 1, H, W]`` map broadcast over the channels). After
``channel_reduction_per_pixel`` ONNX Runtime reorders each such map out of its blocked layout twice: to NHWC for the
reductions, to NCHW for the multiplication (``ReorderOutput`` 6.7 -> 8.9 ms at 512x512, AMD Zen 5, 2 threads).

The rewrite multiplies the ``[N, H*W, C]`` copy instead, by the attention reshaped to ``[N, H*W, 1]``, and writes
the original output through ``Reshape [N, H, W, C]`` and ``Transpose [0, 3, 1, 2]``. When nothing else reads the
map in NCHW its NCHW reorder goes, and where the product feeds a blocked convolution ONNX Runtime folds the
transpose back into the convolution's ``ReorderInput`` (``channels_last``). The same products of the same numbers:
exact. PP-MattingV2 512x512, AMD Zen 5, 2 threads: 51.5 -> 48.3 ms (60 interleaved rounds, after the two other
``onnx_artefact`` repairs), bit-identical outputs.

Matched: a float ``Mul`` of a map that has a per-pixel copy (``Reshape(Transpose(x, [0, 2, 3, 1]))`` to ``[N, H*W,
C]``, as ``channel_reduction_per_pixel`` writes it) by a ``[N, 1, H, W]`` map; rewritten when every other reader of
the map is that copy's Transpose or another matched ``Mul`` (so its NCHW copy goes) and the copy is written before
the ``Mul`` in the graph's order.
"""

from collections import defaultdict
from typing import Dict, List, Optional

from ..base import ONNX_ARTEFACT, Match, Repair, RepairContext
from ..onnx.graph import attr, int64_constant, tensor_facts, unique_name
from .conv_per_concatenated_part import FLOAT


def multiply_per_pixel(model, where: str = "model") -> List[dict]:
    """Rewrite, in place, each matched ``Mul`` (module docstring) in the map's per-pixel layout. One record per
    ``Mul`` of a map with a per-pixel copy by a one-channel map: ``{"onnx_node", "map", "shape", "action":
    "rewritten" | "left", "reason"}``."""
    shapes, types = tensor_facts(model, where)
    nodes = list(model.graph.node)
    position = {output: k for k, node in enumerate(nodes) for output in node.output}
    copies = _per_pixel_copies(nodes, shapes)
    readers: Dict[str, list] = defaultdict(list)
    for node in nodes:
        for name in node.input:
            readers[name].append(node)
    products = {id(node): _operands(node, copies, shapes, types) for node in nodes if node.op_type == "Mul"
                and node.domain in ("", "ai.onnx")}
    products = {key: operands for key, operands in products.items() if operands is not None}
    outputs = {o.name for o in model.graph.output}
    taken = {name for n in nodes for name in (*n.input, *n.output, n.name)}
    taken |= {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
    records, rewritten = [], []
    for k, node in enumerate(nodes):
        if id(node) not in products:
            rewritten.append(node)
            continue
        x, attention = products[id(node)]
        flat, transpose = copies[x]
        record = {"onnx_node": node.name or node.output[0], "map": x, "shape": shapes[x]}
        others = [r.op_type for r in readers[x] if r is not transpose and id(r) not in products]
        others += ["a graph output"] * (x in outputs)
        reason = (f"the map is also read in NCHW ({', '.join(sorted(set(others)))}): its NCHW copy would stay"
                  if others else None)
        if reason is None and position[flat] > k:
            reason = "the map's per-pixel copy is written after this Mul"
        if reason is not None:
            records.append({**record, "action": "left", "reason": reason})
            rewritten.append(node)
            continue
        rewritten.extend(_product_per_pixel(model, node, x, flat, attention, shapes[x], taken))
        records.append({**record, "action": "rewritten", "reason": "multiplied in [N, H*W, C]"})
    if any(r["action"] == "rewritten" for r in records):
        del model.graph.node[:]
        model.graph.node.extend(rewritten)
    return records


def _per_pixel_copies(nodes, shapes) -> Dict[str, tuple]:
    """``{map: ([N, H*W, C] tensor, the Transpose node)}`` for each ``Reshape(Transpose(map, [0, 2, 3, 1]))`` to
    ``[N, H*W, C]``."""
    transposes = {node.output[0]: node for node in nodes if node.op_type == "Transpose"
                  and node.domain in ("", "ai.onnx") and attr(node, "perm") == [0, 2, 3, 1]}
    copies = {}
    for node in nodes:
        transpose = transposes.get(node.input[0]) if node.op_type == "Reshape" else None
        shape, flat = shapes.get(transpose.input[0]) if transpose else None, shapes.get(node.output[0])
        if shape and flat and len(shape) == 4 and None not in shape[1:] \
                and flat[1:] == [shape[2] * shape[3], shape[1]]:
            copies.setdefault(transpose.input[0], (node.output[0], transpose))
    return copies


def _operands(node, copies, shapes, types) -> Optional[tuple]:
    """``(map, attention)`` when ``node`` multiplies a map with a per-pixel copy by a float ``[N, 1, H, W]`` map."""
    for x, attention in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
        if x in copies and types.get(x) == FLOAT and types.get(attention) == FLOAT:
            shape, one = shapes[x], shapes.get(attention)
            if one and len(one) == 4 and one[1] == 1 and one[2:] == shape[2:]:
                return x, attention
    return None


def _product_per_pixel(model, node, x: str, flat: str, attention: str, shape: List[int], taken: set) -> list:
    """``node``'s product in the per-pixel layout and the Reshape and Transpose writing its output."""
    import onnx

    _, channels, height, width = shape
    out = node.output[0]
    attention_flat = unique_name(f"{out}/attention_per_pixel", taken)
    product = unique_name(f"{out}/per_pixel", taken)
    nhwc = unique_name(f"{out}/nhwc", taken)
    to_flat = int64_constant(model, f"{attention_flat}/shape", [0, height * width, 1], taken)
    to_nhwc = int64_constant(model, f"{nhwc}/shape", [0, height, width, channels], taken)
    operands = [flat, attention_flat] if node.input[0] == x else [attention_flat, flat]  # the order kept
    return [
        onnx.helper.make_node("Reshape", [attention, to_flat], [attention_flat], name=attention_flat),
        onnx.helper.make_node("Mul", operands, [product], name=product),
        onnx.helper.make_node("Reshape", [product, to_nhwc], [nhwc], name=nhwc),
        onnx.helper.make_node("Transpose", [nhwc], [out], name=node.name or out, perm=[0, 3, 1, 2])]


def apply(model, context: RepairContext) -> List[Match]:
    """:func:`multiply_per_pixel` as a repair: one match per product of a map with a per-pixel copy by a
    one-channel map, changed when rewritten."""
    return [Match(r["action"] == "rewritten", r) for r in multiply_per_pixel(model, context.where)]


REPAIR = Repair(
    name="attention_product_per_pixel",
    applies_to=ONNX_ARTEFACT,
    matches="a float Mul of a map that has a per-pixel copy [N, H*W, C] (channel_reduction_per_pixel's) by a "
            "[N, 1, H, W] map, where nothing else reads the map in NCHW",
    changes="the product of the per-pixel copy and the attention reshaped to [N, H*W, 1], then Reshape to NHWC and "
            "Transpose to the original NCHW output; the same products (exact)",
    why="after channel_reduction_per_pixel ONNX Runtime reorders each attention map out of its blocked layout twice, "
        "to NHWC for the reductions and to NCHW for the product; PP-MattingV2 512x512, AMD Zen 5, 2 threads: "
        "51.5 -> 48.3 ms",
    preserves_outputs=True,
    apply=apply,
)
