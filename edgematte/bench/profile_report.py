"""``edgematte bench --profile``'s files: ``profile_<artefact>.md``, ``.json`` and ``.png`` beside ``bench.md``.

Each artefact that a runtime profiled (:mod:`edgematte.runtime.op_profile` on the host and boards,
:mod:`edgematte.bench.op_profile` on phones) gets its time per op type and its slowest layers, in ms per run and
as a share of the sum of its ops, plus a bar chart of the op types (matplotlib). Each file is written atomically
and recorded as edgematte's. The entries :func:`write_profiles` returns go into ``bench.json`` under
``"profiles"``, and ``bench.md`` links the files or says, in one line per artefact, why there is no profile.
"""

import json
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..core.fsutil import atomic_path, record_outputs, write_text_atomic

TOP_LAYERS = 25
PLOTTED_TYPES = 15
PROFILE_SCHEMA = "edgematte.op_profile/1"

NAMING = {
    "onnxruntime": "layer: the tensor the node writes (for a converted model, the Paddle variable of the source "
                   "layer); node: the .onnx node. ONNX Runtime profiles the kernels it runs after its own graph "
                   "optimizations, as in the timed runs: a fused node counts once, ReorderInput/ReorderOutput are "
                   "its NCHWc layout copies (no layer of the model)",
    "paddle_inference": "layer: the op's output variable in the program Paddle Inference runs after its fusion "
                        "passes (the source model's names; a fused op is named by its last output)",
    "litert": "layer: the op's first output tensor as the .tflite names it; each op was timed alone (see the "
              "profiler above), so a row is what the op costs on its own, not inside the model",
    "benchmark_model": "layer: the output tensors of a builtin op as the .tflite names them, or the operator "
                       "XNNPACK runs for a delegated part (XNNPACK names those, not the model)",
    "benchmark_bin": "Paddle Lite's profiler names kernels, not layers: a row is the op type, its place in the "
                     "program and its output dimensions; its averages include benchmark_bin's warm-up runs "
                     "after the first",
}


def profile_stem(artefact: str) -> str:
    """``profile_<artefact>`` with every character but letters, digits, ``.``, ``_`` and ``-`` made ``_``."""
    return "profile_" + re.sub(r"[^A-Za-z0-9._-]", "_", artefact)


def is_profile_file(name: str) -> bool:
    """Whether ``name`` is one of the files :func:`write_profiles` writes (``profile_<artefact>.json/.md/.png``)."""
    return name.startswith("profile_") and name.endswith((".json", ".md", ".png"))


def _ms(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _share(x: float) -> str:
    return f"{100 * x:.1f} %"


def profile_markdown(profile: dict, target: str, model: dict, timed_median_s: Optional[float] = None,
                     top: int = TOP_LAYERS) -> str:
    """``profile_<artefact>.md``: what was profiled how, the time per op type, the ``top`` slowest layers."""
    shape = "x".join(str(d) for d in model.get("input_shape") or [])
    lines = [f"# Per-op profile: {profile['artefact']} on {target}", "",
             f"- model: {model.get('name')} {shape}; {profile['threads']} thread(s); profiler: {profile['profiler']}",
             f"- {profile.get('runs', 'n/a')} profiled runs, apart from the timed ones (warm-up left out); "
             f"sum of the ops: {_ms(profile['total_ms'])} ms per run"
             + (f"; the profiled runs took {_ms(profile['run_ms'])} ms each" if profile.get("run_ms") else "")
             + (f"; the whole model, run in the same process: {_ms(profile['whole_model_ms'])} ms"
                if profile.get("whole_model_ms") else "")
             + (f"; timed model median (unprofiled): {_ms(1000 * timed_median_s)} ms" if timed_median_s else ""),
             f"- {NAMING.get(profile['runtime'], 'layer names as the runtime reports them')}"]
    if profile.get("not_run_alone"):
        alone = profile["not_run_alone"]
        lines.append(f"- {len(alone)} op(s) could not run alone, no time for them: "
                     + ", ".join(sorted({f['op_type'] for f in alone})))
    lines += ["", "## Time per op type", "", "| op type | ops | ms per run | share |", "|---|---|---|---|"]
    lines += [f"| {t['op_type']} | {t['count']} | {_ms(t['ms'])} | {_share(t['share'])} |" for t in profile["by_type"]]
    rows = sorted(profile["rows"], key=lambda r: -r["ms"])[:top]
    lines += ["", f"## Top {len(rows)} of {len(profile['rows'])} layers", "",
              "| # | layer | node | op type | ms per run | share |", "|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r['layer']} | {r.get('node') or r.get('kernel') or ''} | {r['op_type']} | {_ms(r['ms'])} | "
              f"{_share(r['share'])} |" for i, r in enumerate(rows, 1)]
    return "\n".join(lines) + "\n"


def plot_profile(profile: dict, path: Path, plt) -> None:
    """A horizontal bar chart of the time per op type (the :data:`PLOTTED_TYPES` slowest)."""
    types = profile["by_type"][:PLOTTED_TYPES][::-1]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(types)))
    try:
        ax.barh(range(len(types)), [t["ms"] for t in types], color="#4a7ab5")
        ax.set_yticks(range(len(types)))
        ax.set_yticklabels([f"{t['op_type']} ({t['count']})" for t in types], fontsize=8)
        for i, t in enumerate(types):
            ax.text(t["ms"], i, f" {_share(t['share'])}", va="center", fontsize=7)
        ax.set_xlabel("ms per run (sum over the ops of the type)")
        ax.set_title(f"{profile['artefact']}, {profile['threads']} thread(s): time per op type "
                     f"({_ms(profile['total_ms'])} ms in all)", fontsize=9)
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def _timed_median(results: Sequence[dict], artefact: str, threads: int) -> Optional[float]:
    for r in results:
        if r.get("artefact") == artefact and r.get("threads") == threads and "error" not in r:
            return r["model_s"].get("median") or r["model_s"].get("mean")
    return None


def write_profiles(out_dir, doc: dict, profiles: Sequence[dict]) -> Tuple[List[dict], List[str]]:
    """Write each profile of ``profiles`` (the targets' answers) into ``out_dir``; returns (the entries for
    ``bench.json``'s ``"profiles"``, the file names written)."""
    from .report import _pyplot

    out_dir = Path(out_dir)
    plt = _pyplot()
    entries, written = [], []
    for profile in profiles:
        head = {"artefact": profile["artefact"], "threads": profile.get("threads")}
        if "rows" not in profile:
            why = profile.get("unsupported") or profile.get("error") or "no profile"
            entries.append({**head, ("unsupported" if "unsupported" in profile else "error"): why})
            continue
        stem = profile_stem(profile["artefact"])
        files = [f"{stem}.json", f"{stem}.md"]
        write_text_atomic(out_dir / files[0], json.dumps({"schema": PROFILE_SCHEMA, "target": doc["target"],
                                                          "model": doc["model"], **profile}, indent=2) + "\n")
        median = _timed_median(doc["results"], profile["artefact"], profile.get("threads"))
        write_text_atomic(out_dir / files[1], profile_markdown(profile, doc["target"], doc["model"], median))
        if plt is not None:
            plot_profile(profile, out_dir / f"{stem}.png", plt)
            files.append(f"{stem}.png")
        written += files
        entries.append({**head, "runtime": profile["runtime"], "profiler": profile["profiler"],
                        "total_ms": profile["total_ms"], "files": files})
    record_outputs(out_dir, written)
    return entries, written


def profile_lines(entries: Sequence[dict]) -> List[str]:
    """``bench.md``'s section on the profiles: a link to each one's files, or why an artefact has none."""
    if not entries:
        return []
    lines = ["", "## Per-op profiles (bench --profile; profiled apart from the timed runs)", ""]
    for e in entries:
        if "files" in e:
            links = ", ".join(f"[{name}]({name})" for name in e["files"])
            lines.append(f"- {e['artefact']} x {e['threads']} threads ({e['runtime']}): {_ms(e['total_ms'])} ms of "
                         f"ops per run: {links}")
        else:
            lines.append(f"- {e['artefact']}: no profile: {e.get('unsupported') or e.get('error')}")
    return lines
