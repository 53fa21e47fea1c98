"""Facts about a zoo model: its checkpoint layout, parameter count and FLOPs (needs paddlepaddle)."""

import contextlib
import io
from typing import List, Optional, Tuple

from .registry import ModelSpec
from .weights import LayoutEntry, count_parameters


def model_layout(spec: ModelSpec, width: float = 1.0) -> List[LayoutEntry]:
    """The state_dict layout ``[(key, shape, dtype)]`` of the built model, in checkpoint order."""
    return spec.layout(width=width)


def count_flops(spec: ModelSpec, input_hw: Tuple[int, int], width: float = 1.0) -> int:
    """Paddle's own count (``paddle.flops``: multiply-accumulates) for one 1x3xHxW inference."""
    import paddle

    model = spec.build(width=width)
    model.eval()
    with contextlib.redirect_stdout(io.StringIO()):  # paddle.flops prints a summary table
        return int(paddle.flops(model, [1, 3, int(input_hw[0]), int(input_hw[1])], print_detail=False))


def describe(spec: ModelSpec, width: float = 1.0, input_hw: Optional[Tuple[int, int]] = None) -> dict:
    """Everything ``edgematte zoo info`` prints, as a JSON-ready dict."""
    hw = tuple(input_hw) if input_hw else spec.native_hw
    layout = model_layout(spec, width)
    macs = count_flops(spec, hw, width)
    # A model with more than the image (RVM) says so in its definition: its other feeds, its outputs, and what
    # its FLOPs count assumed
    definition = spec.definition()
    more = {key: getattr(definition, attribute) for key, attribute in
            (("other_feeds", "OTHER_FEEDS"), ("flops_note", "FLOPS_NOTE")) if hasattr(definition, attribute)}
    return {
        "name": spec.name,
        "config": spec.config,
        "paddleseg_class": spec.paddleseg_class,
        "width": width,
        "native_input": [1, 3, *spec.native_hw],
        "input_size_multiple": spec.size_multiple,
        "feed": "img",
        "output": getattr(definition, "OUTPUTS", "alpha [N, 1, H, W] float32 in [0, 1]"),
        "transforms": spec.transforms,
        "state_dict_entries": len(layout),
        "parameters": count_parameters(layout),
        "parameters_with_running_stats": count_parameters(layout, include_running_stats=True),
        "flops_input": [1, 3, *hw],
        "macs": macs,
        "gflop": round(2 * macs / 1e9, 3),
        **more,
    }


def format_facts(facts: dict) -> str:
    transforms = ", ".join(
        t["type"] + "".join(f" {k}={v}" for k, v in t.items() if k != "type") for t in facts["transforms"]
    )
    also = [f"also fed:     {', '.join(facts['other_feeds'])}"] if facts.get("other_feeds") else []
    flops_note = f"; {facts['flops_note']}" if facts.get("flops_note") else ""
    return "\n".join(
        [
            f"model:        {facts['name']} ({facts['config']}, PaddleSeg {facts['paddleseg_class']}, "
            f"width {facts['width']})",
            f"input:        feed '{facts['feed']}' NCHW float32, native {facts['native_input']}, "
            + (f"H and W multiples of {facts['input_size_multiple']}" if facts["input_size_multiple"] > 1
               else "any H and W from 64"),
            *also,
            f"output:       {facts['output']}",
            f"transforms:   {transforms}",
            f"parameters:   {facts['parameters']:,} ({facts['state_dict_entries']} state_dict entries; "
            f"{facts['parameters_with_running_stats']:,} with BatchNorm running statistics)",
            f"FLOPs:        {facts['macs']:,} multiply-accumulates at {facts['flops_input']} "
            f"(paddle.flops; {facts['gflop']} GFLOP{flops_note})",
        ]
    )
