"""Benchmark reports: ``bench.json`` (stable schema), ``bench.md`` (tables) and ``bench.png`` (a plot).

One report covers one target. :func:`merge_reports` joins reports from several targets into one
document of the same schema, in which every result carries its own ``target`` and ``emulated`` and
``sources`` lists the input reports; the same renderer then draws one comparison table. Emulated
(qemu) timings are never put in the same table or plot panel as real ones.

:func:`write_reports` says exactly what it wrote (:class:`WrittenReport`): ``bench.png`` needs matplotlib
(the converter profile has it, the runtime profile does not) and at least one configuration that ran; without
them the plot is not written, a ``bench.png`` left from an earlier report in that folder is removed (it
would show other figures than the new bench.json), and the summary says why.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_path, read_json_document, record_outputs, write_text_atomic
from ..core.manifest import Manifest
from .profile_report import profile_lines

SCHEMA = "edgematte.bench/1"
EMULATED_NOTE = "EMULATED: correctness only, timings are not real"


def _ms(x):
    return "n/a" if x is None else f"{1000 * x:.1f}"


def median_cell(stats: dict) -> str:
    """The median in ms; tools that print only a mean (Paddle Lite's benchmark_bin) get it, labelled."""
    if stats.get("median") is None and stats.get("mean") is not None:
        return f"{_ms(stats['mean'])} (mean)"
    return _ms(stats.get("median"))


def _bar(stats: dict):
    """(centre, below, above) in ms for a latency bar: the median (else the mean), spread min..p90; an end a
    tool does not print is drawn at the centre."""
    centre = stats["median"] if stats.get("median") is not None else stats["mean"]
    low = stats["min"] if stats.get("min") is not None else centre
    high = stats["p90"] if stats.get("p90") is not None else centre
    return 1000 * centre, 1000 * (centre - low), 1000 * (high - centre)


def bench_document(target: str, emulated: bool, manifest: Manifest, results: List[dict], settings: dict) -> dict:
    model = manifest.model
    return {
        "schema": SCHEMA,
        "target": target,
        "emulated": emulated,
        "model": {"name": model.name, "source_sha256": model.source_sha256, "input_shape": model.input_shape},
        "settings": settings,
        "results": results,
    }


def result_rows(doc: dict) -> List[dict]:
    """Every result of ``doc`` with ``target`` and ``emulated`` set (a one-target report keeps them at the top)."""
    return [{"target": doc["target"], "emulated": doc["emulated"], **r} for r in doc["results"]]


def report_sources(doc: dict) -> List[dict]:
    """``[{"target", "emulated", "settings", "report", ...}]``: one per input report (a one-target report is
    its own)."""
    return doc.get("sources") or [{"target": doc["target"], "emulated": doc["emulated"], "settings": doc["settings"],
                                   "report": None}]


def _machine_line(rows: List[dict], target: str) -> str:
    ok = [r for r in rows if r["target"] == target and "error" not in r]
    if not ok:
        return "machine unknown (no configuration ran)"
    m = ok[0]["machine"]
    return f"{m.get('cpu_model')} ({m.get('machine')}, {m.get('cpu_count')} CPUs, governor {m.get('governor')})"


def _settings_line(settings: dict) -> str:
    return (f"runs {settings['runs']}, warmup {settings['warmup']}, end-to-end image "
            f"{settings['size'][0]}x{settings['size'][1]}")


def _table(rows: List[dict], with_target: bool) -> List[str]:
    lead = ["target"] if with_target else []
    head = lead + ["artefact", "backend", "threads", "model min", "model median", "model p90", "model max",
                   "end-to-end median", "pre median", "post median", "load", "first run", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ms, e = r["model_s"], r["end_to_end_s"]
        threads = f"{r['threads']}" + ("" if r.get("threads_effective", True) else " (ignored)")
        cells = ([r["target"]] if with_target else []) + [
            r["artefact"], r["backend"], threads, _ms(ms["min"]), median_cell(ms), _ms(ms["p90"]), _ms(ms["max"]),
            _ms(e["median"]), _ms(r["pre_s"]["median"]), _ms(r["post_s"]["median"]), _ms(r["load_s"]),
            _ms(r["first_inference_s"]), "n/a" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _state_lines(rows: List[dict], with_target: bool) -> List[str]:
    """A recurrent model's state I/O per configuration (targets that run the runtime report it)."""
    with_states = [r for r in rows if r.get("states")]
    if not with_states:
        return []
    lines = ["", "## Recurrent state I/O per frame (part of the model figure)", ""]
    for r in with_states:
        state = r["states"]
        where = f"{r['target']}: " if with_target else ""
        lines.append(f"- {where}{r['artefact']} x {r['threads']} threads: {state['count']} states, "
                     f"{state['bytes'] / 1e6:.2f} MB in and out, copied in {_ms(state['copy_s']['median'])} ms "
                     f"({_share(state['copy_s']['median'], r['model_s']['median'])} of the model median)")
    return lines


def _share(part: Optional[float], whole: Optional[float]) -> str:
    return "n/a" if not part or not whole else f"{100 * part / whole:.1f} %"


def markdown(doc: dict) -> str:
    """``bench.md`` of a one-target report or of a merged one (then with a target column)."""
    rows, sources = result_rows(doc), report_sources(doc)
    targets = list(dict.fromkeys(s["target"] for s in sources))
    merged = len(targets) > 1
    all_emulated = all(s["emulated"] for s in sources)
    label = f" ({EMULATED_NOTE})" if all_emulated else ""
    model = doc["model"]
    lines = [f"# edgematte benchmark: {model['name']} {model['input_shape']} on {', '.join(targets)}{label}", ""]
    ok = [r for r in rows if "error" not in r]
    if merged:
        for s in sources:
            origin = f"; from {s['report']}" if s.get("report") else ""
            mark = " (EMULATED)" if s["emulated"] else ""
            lines.append(f"- {s['target']}{mark}: {_machine_line(rows, s['target'])}; "
                         f"{_settings_line(s['settings'])}{origin}")
        if len({s.get("source_sha256") for s in sources}) > 1:
            lines.append("- note: the reports come from conversions of different source models (source_sha256 differs)")
        lines += ["- figures in ms, medians unless said", ""]
    elif ok:
        lines += [f"- machine: {_machine_line(rows, targets[0])}",
                  f"- {_settings_line(sources[0]['settings'])}; figures in ms, medians unless said", ""]
    real = [r for r in ok if not r["emulated"]]
    emulated = [r for r in ok if r["emulated"]]
    if real and emulated:
        lines += _table(real, merged)
        lines += ["", f"## Emulated targets ({EMULATED_NOTE})", ""]
        lines += _table(emulated, merged)
    else:
        lines += _table(ok, merged)
    lines += _state_lines(ok, merged)
    lines += profile_lines(doc.get("profiles") or [])
    failed = [r for r in rows if "error" in r]
    if failed:
        lines += ["", "## Failed configurations", ""]
        lines += [f"- {r['target'] + ': ' if merged else ''}{r['artefact']} x {r['threads']} threads: {r['error']}"
                  for r in failed]
    if ok and merged:
        lines += ["", "## Library versions per target", ""]
        for target in targets:
            versions = next((r["versions"] for r in ok if r["target"] == target), None)
            if versions:
                lines.append(f"- {target}: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    elif ok:
        lines += ["", "## Library versions on the target", ""]
        lines += [f"- {k}: {v}" for k, v in ok[0]["versions"].items()]
    return "\n".join(lines) + "\n"


NO_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib)"
NOTHING_TO_PLOT = "no configuration ran, so there is nothing to plot"


def _pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is missing (the runtime profile)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(doc: dict, path: Path) -> None:
    """``bench.png``: model latency per configuration; emulated configurations get their own panel.

    Needs matplotlib and at least one configuration without an error (:class:`EdgematteError` otherwise)."""
    plt = _pyplot()
    if plt is None:
        raise EdgematteError(f"{path}: not written: {NO_MATPLOTLIB}")
    ok = [r for r in result_rows(doc) if "error" not in r]
    if not ok:
        raise EdgematteError(f"{path}: not written: {NOTHING_TO_PLOT}")
    merged = len({s["target"] for s in report_sources(doc)}) > 1
    candidates = (([r for r in ok if not r["emulated"]], ""),
                  ([r for r in ok if r["emulated"]], " (EMULATED: not real timings)"))
    panels = [(rows, title) for rows, title in candidates if rows]
    width = max(6, 1.1 * max(len(rows) for rows, _ in panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 4.5 * len(panels)), squeeze=False)
    shape = doc["model"]["input_shape"]
    for ax, (rows, note) in zip(axes[:, 0], panels):
        labels = [(f"{r['target']}\n" if merged else "") + f"{r['artefact']}\n{r['threads']} thr" for r in rows]
        medians, low, high = zip(*(_bar(r["model_s"]) for r in rows))
        ax.bar(range(len(rows)), medians, yerr=[low, high], capsize=4, color="#b5714a" if note else "#4a7ab5")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("model latency, ms (median, else mean; bars: min..p90)")
        targets = ", ".join(dict.fromkeys(r["target"] for r in rows))
        ax.set_title(f"{doc['model']['name']} {shape[2]}x{shape[3]} on {targets}{note}", fontsize=9)
    try:
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


@dataclass
class WrittenReport:
    """What :func:`write_reports` wrote into ``folder`` (file names, in order) and, when ``bench.png`` is not
    among them, why (``no_plot``)."""

    folder: Path
    files: List[str] = field(default_factory=list)
    no_plot: Optional[str] = None

    def _why_no_plot(self) -> str:
        return f"; no bench.png: {self.no_plot}" if self.no_plot else ""

    def names(self) -> str:
        """``bench.json, bench.md, bench.png`` or ``bench.json, bench.md; no bench.png: why``."""
        return ", ".join(self.files) + self._why_no_plot()

    def summary(self) -> str:
        """One line: ``wrote DIR/bench.json, DIR/bench.md, DIR/bench.png``, or with the reason the plot is missing."""
        return "wrote " + ", ".join(str(self.folder / name) for name in self.files) + self._why_no_plot()


def write_reports(out_dir, doc: dict) -> WrittenReport:
    """bench.json, bench.md and, when matplotlib is there and a configuration ran, bench.png into ``out_dir``."""
    out_dir = Path(out_dir)
    written = WrittenReport(out_dir)
    write_text_atomic(out_dir / "bench.json", json.dumps(doc, indent=2) + "\n")
    write_text_atomic(out_dir / "bench.md", markdown(doc))
    written.files += ["bench.json", "bench.md"]
    if not any("error" not in r for r in doc["results"]):
        written.no_plot = NOTHING_TO_PLOT
    elif _pyplot() is None:
        written.no_plot = NO_MATPLOTLIB
    else:
        plot(doc, out_dir / "bench.png")
        written.files.append("bench.png")
    stale = out_dir / "bench.png"
    if written.no_plot and (stale.is_file() or stale.is_symlink()):
        stale.unlink()
        written.no_plot += "; the bench.png of an earlier report there was removed"
    record_outputs(out_dir, written.files)  # OUT/bench/TARGET stays edgematte's: OUT can be converted into again
    return written


def read_report(path) -> dict:
    """A ``bench.json`` (or the report folder holding one); one-line errors name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    return read_json_document(path, SCHEMA, "bench report", hint=" (run 'edgematte bench' first)")


def merge_documents(docs: Sequence[dict], names: Sequence[str]) -> dict:
    """One report of every row of ``docs`` (one-target or merged reports), ``names[i]`` saying where
    ``docs[i]`` is from.

    All must be of the same model (name and input shape). A target named alike in two reports (two
    ``local`` runs on different hosts) is told apart as ``"TARGET [NAME]"``. Rows are ordered by
    artefact, thread count, then target, so one artefact's figures on every target stand together.
    """
    first = docs[0]["model"]
    for doc, name in zip(docs[1:], names[1:]):
        model = doc["model"]
        if (model["name"], model["input_shape"]) != (first["name"], first["input_shape"]):
            raise EdgematteError(f"{name}: a benchmark of {model['name']} {model['input_shape']}, not of "
                                 f"{first['name']} {first['input_shape']} like {names[0]}; only reports of one "
                                 "model merge")
    if len(set(names)) < len(names):
        raise EdgematteError(f"{next(n for n in names if names.count(n) > 1)}: given twice")
    seen = [[s["target"] for s in report_sources(doc)] for doc in docs]
    shared = {t for i, ts in enumerate(seen) for t in ts if any(t in other for j, other in enumerate(seen) if j != i)}
    sources, rows = [], []
    for doc, name, targets in zip(docs, names, seen):
        rename = {t: f"{t} [{name}]" if t in shared else t for t in targets}
        sources += [{**s, "target": rename[s["target"]], "report": s.get("report") or name,
                     "source_sha256": s.get("source_sha256", doc["model"].get("source_sha256"))}
                    for s in report_sources(doc)]
        rows += [{**r, "target": rename[r["target"]]} for r in result_rows(doc)]
    artefact_order = list(dict.fromkeys(r["artefact"] for r in rows))
    target_order = [s["target"] for s in sources]
    rows.sort(key=lambda r: (artefact_order.index(r["artefact"]), r["threads"], target_order.index(r["target"])))
    return {
        "schema": SCHEMA,
        "target": ", ".join(target_order),
        "emulated": all(s["emulated"] for s in sources),
        "model": first,
        "settings": {"merged_reports": len(sources)},
        "sources": sources,
        "results": rows,
    }


def merge_reports(report_paths: Sequence, out_dir) -> Tuple[dict, WrittenReport]:
    """Read each report folder (or bench.json), merge them (:func:`merge_documents`), write bench.json/md/png
    to ``out_dir``; returns the merged document and what was written."""
    paths = [Path(p) for p in report_paths]
    docs = [read_report(p) for p in paths]
    doc = merge_documents(docs, [str(p) for p in paths])
    return doc, write_reports(out_dir, doc)
