"""The human-readable conversion report: ``OUT/report.md`` plus PNGs in ``OUT/report/``."""

from pathlib import Path
from typing import Dict

import cv2
import numpy as np

from ..core.fsutil import atomic_path, write_text_atomic
from ..core.manifest import Manifest, ParityRecord
from ..core.versions import describe


def _png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"{path}: cv2.imwrite failed")


def alpha_to_gray(alpha: np.ndarray) -> np.ndarray:
    """float alpha HxW in [0,1] -> uint8 gray (rounded; clipped)."""
    return np.clip(np.rint(np.asarray(alpha, np.float64) * 255.0), 0, 255).astype(np.uint8)


def difference_heatmap(diff: np.ndarray, full_scale: float) -> np.ndarray:
    """|difference| HxW -> BGR uint8 heat map, ``full_scale`` mapping to the hottest colour."""
    scaled = np.clip(np.abs(diff) / max(full_scale, 1e-12), 0.0, 1.0)
    return cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)


def _fmt(x, spec=".2e"):
    return "n/a" if x is None else format(x, spec)


def _parity_note(parity: ParityRecord) -> str:
    """The reason an artefact was not run here, and how many pixels lie beyond a bound it passed by the
    model's decision-flip rule (see the parity rule line)."""
    notes = [parity.reason] if parity.reason else []
    bound, share = parity.bound, parity.extra.get("frac_over_bound")
    if bound is not None and share and parity.max_abs > bound:
        notes.append(f"{share:.3%} of pixels beyond {bound:g} ({'within' if parity.within_bound else 'OUTSIDE'} "
                     "the parity rule)")
    return "; ".join(notes)


def _fmt_ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _kernel_lines(int8_artefacts) -> list:
    """What each INT8 ``.nb`` computes in int8, from its kernel keys: the share of int8 convolutions and the
    fp32 <-> int8 conversions (calib ops, each a pass over a whole activation) opt put around them."""
    lines = []
    for a in int8_artefacts:
        census = a.extra.get("kernels")
        if census:
            convs = census["convolutions"]
            lines.append(f"- `{a.path}` kernels: {convs.get('int8', 0)} of {sum(convs.values())} convolutions in "
                         f"int8; {census['calib']} calib (fp32 <-> int8) ops")
    return [""] + lines if lines else []


FP32_PEER = {"nb": "nb_x86", "tflite": "tflite", "onnx": "onnx"}


def _fallback_tables(int8_artefacts, fp32_latency: dict, threads) -> list:
    """Per INT8 fallback search: each choice tried, its MAD against its latency (and size), so a user can
    see what the budget cost in speed. TFLite's float- and int8-I/O models share one search: shown once."""
    lines, shown = [], []
    for a in int8_artefacts:
        quantization = a.extra.get("quantization", {})
        lite_history = quantization.get("history")
        history = lite_history or (quantization.get("fallback") or {}).get("history")
        if not history or history in shown:
            continue
        shown.append(history)
        peer = fp32_latency.get(FP32_PEER.get(a.format, ""))
        yardstick = f"fp32: {_fmt_ms(peer)} ms" if peer is not None else "fp32 latency not measured"
        lines += ["", f"Fallback choices of `{a.path}` (median latency on this host, {threads} threads; {yardstick}):",
                  "", "| choice | kept float | MAD | latency ms | time vs fp32 | size MB |",
                  "|---|---|---|---|---|---|"]
        for h in history:
            if a.precision in ("dynamic", "int8_weights"):  # int8 weights given back their float values
                choice = "every weight int8" if h.get("added") is None else f"{h['added']} float"
                kept = f"{len(h.get('kept_float_nodes') or [])} weights"
            elif lite_history:
                choice, kept = h["step"], ", ".join(map(str, h.get("kept_float", []))) or "-"
            else:
                choice = "full integer" if h.get("added") is None else f"+ {h['added']}"
                kept = f"{len(h.get('kept_float_nodes') or [])} nodes"
            latency = h.get("latency_ms")
            ratio = f"{latency / peer:.2f}x" if latency is not None and peer else "-"
            lines.append(f"| {choice} | {kept} | {h.get('mad', float('nan')):.4f} | {_fmt_ms(latency)} | {ratio} | "
                         f"{h.get('size_bytes', 0) / 1e6:.1f} |")
    return lines


def _repair_lines(manifest: Manifest) -> list:
    """The graph repairs applied, one line each (a repair applied to several artefacts is listed once)."""
    seen, lines = {}, []
    for repair in manifest.repairs:
        seen.setdefault(repair["name"], []).append(repair)
    for name, applied in seen.items():
        first = applied[0]
        where = ", ".join(sorted({f"`{r['artefact']}`" for r in applied}))
        lines.append(f"- {name} ({where}): matched {first.get('matched')}, changed {first.get('changed')}. "
                     f"Why: {first.get('why', '')}")
    return ["", "## Graph repairs", ""] + lines if lines else []


def write_conversion_report(out_dir, manifest: Manifest, preview_rgb: np.ndarray, reference_alpha: np.ndarray,
                 artefact_alphas: Dict[str, np.ndarray]) -> Path:
    """Write ``report.md`` and its pictures for the first parity image.

    ``preview_rgb`` is the model-input-sized RGB uint8 image, ``reference_alpha`` the reference's alpha
    (HxW float), ``artefact_alphas`` maps artefact paths (as in the manifest) to their alpha for it.
    """
    out_dir = Path(out_dir)
    pics = out_dir / "report"
    _png(pics / "input.png", cv2.cvtColor(preview_rgb, cv2.COLOR_RGB2BGR))
    _png(pics / "reference_alpha.png", alpha_to_gray(reference_alpha))
    model = manifest.model
    lines = [
        f"# edgematte conversion report: {model.name}",
        "",
        f"- source: `{model.origin}` (sha256 `{model.source_sha256[:16]}...`)",
        f"- input: `{model.input_name}` {model.input_shape} -> output `{model.output_name}`",
        f"- reference: {manifest.reference.description}",
    ]
    for check in manifest.reference.checks:
        lines.append(f"  - checked against {check['against']}: max abs {_fmt(check['max_abs'])} over "
                     f"{check['images']} images")
    if manifest.reference.extra.get("bound_note"):
        lines.append(f"- parity rule for this model: {manifest.reference.extra['bound_note']}")
    lines += [
        f"- parity images: {', '.join(manifest.extra['parity_images'])}",
        f"- created {manifest.created} with edgematte {manifest.tools['edgematte']}",
        "",
        "## Artefacts",
        "",
        "| artefact | format | target | precision | layout | MB | max abs | mean abs | > 1/255 | runs here | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in manifest.artefacts:
        p = a.parity
        lines.append(
            f"| `{a.path}` | {a.format} | {a.target} | {a.precision} | {a.layout} | "
            f"{a.size_bytes / 1e6:.1f} | {_fmt(p.max_abs)} | {_fmt(p.mean_abs)} | "
            f"{_fmt(p.frac_over_1_255, '.4%')} | {'yes' if p.runs_on_host else 'no'} | {_parity_note(p)} |"
        )
    lines += _repair_lines(manifest)
    int8 = [a for a in manifest.artefacts if a.numerics is not None]
    if int8:
        q = manifest.extra["int8"]
        lines += ["", "## INT8 numerics (against the fp32 reference, alpha at the original image size)", "",
                  f"- calibration: {q['calibration']['calibration_count']} images from "
                  f"{q['calibration']['source'].get('source', 'the built-in set')}; algorithm {q['algo']}; "
                  f"evaluated on {len(q['evaluation_images'])} held-out images ({', '.join(q['evaluation_images'])})",
                  f"- budget: MAD <= {q['budget_mad']}",
                  "",
                  "| artefact | MAD | max abs | > 8/255 | SAD | MSE | Grad | Conn | size vs fp32 | latency ms "
                  "| within budget | kept float |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for a in int8:
            n = a.numerics
            quantization = a.extra.get("quantization", {})
            kept = quantization.get("kept_float") or []
            if isinstance(kept, dict):  # TFLite: {"nodes": [...], "ops": [...]}
                kept = [*kept.get("ops", []), *kept.get("nodes", [])]
            ratio = a.extra.get("size_ratio_vs_fp32")
            lines.append(
                f"| `{a.path}` | {n['mad']:.4f} | {n['max_abs']:.3f} | {n['frac_over_8_255']:.2%} | {n['sad']:.2f} | "
                f"{n['mse']:.5f} | {n['grad']:.2f} | {n['conn']:.2f} | {'n/a' if ratio is None else f'{ratio:.1%}'} | "
                f"{_fmt_ms(quantization.get('latency_ms'))} | "
                f"{'yes' if n['within_budget'] else 'NO'} | {', '.join(map(str, kept)) or '-'} |")
        lines += _kernel_lines(int8)
        lines += _fallback_tables(int8, q.get("fp32_latency_ms") or {}, q.get("latency_threads"))
    lines += ["", "## Pictures (first parity image)", "", "| input | reference alpha |", "|---|---|",
              "| ![](report/input.png) | ![](report/reference_alpha.png) |", ""]
    if artefact_alphas:
        lines += ["| artefact | alpha | abs difference (heat map, full scale = its max) |", "|---|---|---|"]
    for path, alpha in artefact_alphas.items():
        stem = path.replace("/", "_").replace(".", "_")
        diff = np.abs(np.asarray(alpha, np.float64) - np.asarray(reference_alpha, np.float64))
        _png(pics / f"{stem}_alpha.png", alpha_to_gray(alpha))
        _png(pics / f"{stem}_diff.png", difference_heatmap(diff, float(diff.max())))
        lines.append(f"| `{path}` (max {diff.max():.2e}) | ![](report/{stem}_alpha.png) "
                     f"| ![](report/{stem}_diff.png) |")
    lines += ["", "## Steps", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} |" for s in manifest.steps]
    lines += ["", "## Tool versions", ""]
    lines += [f"- {k}: {describe(v)}" for k, v in manifest.tools.items()]
    path = out_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
