"""Benchmark reports: ``bench.json`` (stable schema), ``bench.md`` (tables) and ``bench.png`` (a plot)."""

import json
from pathlib import Path
from typing import List

from ..fsutil import atomic_path, write_text_atomic

SCHEMA = "edgematte.bench/1"


def _ms(x):
    return "n/a" if x is None else f"{1000 * x:.1f}"


def bench_document(target: str, emulated: bool, manifest: dict, results: List[dict], settings: dict) -> dict:
    return {
        "schema": SCHEMA,
        "target": target,
        "emulated": emulated,
        "model": {k: manifest["model"].get(k) for k in ("name", "source_sha256", "input_shape")},
        "settings": settings,
        "results": results,
    }


def markdown(doc: dict) -> str:
    label = " (EMULATED: correctness only, timings are not real)" if doc["emulated"] else ""
    lines = [f"# edgematte benchmark: {doc['model']['name']} {doc['model']['input_shape']} on {doc['target']}{label}", ""]
    ok = [r for r in doc["results"] if "error" not in r]
    if ok:
        m = ok[0]["machine"]
        lines += [f"- machine: {m.get('cpu_model')} ({m.get('machine')}, {m.get('cpu_count')} CPUs, governor {m.get('governor')})",
                  f"- runs {doc['settings']['runs']}, warmup {doc['settings']['warmup']}, end-to-end image "
                  f"{doc['settings']['size'][0]}x{doc['settings']['size'][1]}; figures in ms, medians unless said", ""]
    lines += ["| artefact | backend | threads | model min | model median | model p90 | model max | end-to-end median | "
              "pre median | post median | load | first run | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ok:
        ms, e = r["model_s"], r["end_to_end_s"]
        threads = f"{r['threads']}" + ("" if r.get("threads_effective", True) else " (ignored)")
        lines.append(f"| {r['artefact']} | {r['backend']} | {threads} | {_ms(ms['min'])} | {_ms(ms['median'])} | "
                     f"{_ms(ms['p90'])} | {_ms(ms['max'])} | {_ms(e['median'])} | {_ms(r['pre_s']['median'])} | "
                     f"{_ms(r['post_s']['median'])} | {_ms(r['load_s'])} | {_ms(r['first_inference_s'])} | "
                     f"{r['peak_rss_mb']:.0f} |")
    failed = [r for r in doc["results"] if "error" in r]
    if failed:
        lines += ["", "## Failed configurations", ""]
        lines += [f"- {r['artefact']} x {r['threads']} threads: {r['error']}" for r in failed]
    if ok:
        lines += ["", "## Library versions on the target", ""]
        lines += [f"- {k}: {v}" for k, v in ok[0]["versions"].items()]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in doc["results"] if "error" not in r]
    labels = [f"{r['artefact']}\n{r['threads']} thr" for r in ok]
    medians = [1000 * r["model_s"]["median"] for r in ok]
    low = [1000 * (r["model_s"]["median"] - r["model_s"]["min"]) for r in ok]
    high = [1000 * (r["model_s"]["p90"] - r["model_s"]["median"]) for r in ok]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(ok)), 4.5))
    ax.bar(range(len(ok)), medians, yerr=[low, high], capsize=4, color="#4a7ab5")
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("model latency, ms (median; bars: min..p90)")
    title = f"{doc['model']['name']} {doc['model']['input_shape'][2]}x{doc['model']['input_shape'][3]} on {doc['target']}"
    ax.set_title(title + (" (EMULATED)" if doc["emulated"] else ""))
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_reports(out_dir, doc: dict) -> Path:
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "bench.json", json.dumps(doc, indent=2) + "\n")
    write_text_atomic(out_dir / "bench.md", markdown(doc))
    if any("error" not in r for r in doc["results"]):
        plot(doc, out_dir / "bench.png")
    return out_dir
