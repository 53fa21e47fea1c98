"""What the ``onnx_artefact`` repairs gain in ONNX Runtime: each zoo model's published ``model.onnx`` against the
graph it was made from (the bridge that onnx2tf and the int8 quantizer read), interleaved in one process.

Per model: ``edgematte convert NAME --seed 0 --input-shape 1 3 S S --to onnx`` with the work folder kept (made once
under ``--work``, reused), then both graphs in ONNX Runtime (CPU, ``--threads``, default optimization level, as users
run it) on the same seeded input in [0, 1]: ``--rounds`` quiet interleaved rounds (a round counts when other
processes used under 10 % of the CPUs; each run is followed by a wait until ONNX Runtime's spinning threads are idle,
outside the timing: ``benchmarks/compare_runtimes.py``'s harness), medians and quartiles, and the largest output
difference between the two (the re-associated sums' rounding). What each repair rewrote is read from the
conversion's manifest.

    .venv/bin/python benchmarks/onnx_artefact_repairs.py --work /tmp/oar          # every zoo model at 512x512
    .venv/bin/python benchmarks/onnx_artefact_repairs.py --work /tmp/oar --models ppmattingv2 --rounds 40

Results: ``benchmarks/results/onnx_artefact_repairs.md`` (``--report`` to write elsewhere).
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("GLOG_minloglevel", "2")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.compare_runtimes import Entry, interleaved_rounds  # noqa: E402
from benchmarks.official_acceptance import host_facts  # noqa: E402
from benchmarks.peak_probe import cpu_facts  # noqa: E402
from edgematte.core.fsutil import write_text_atomic  # noqa: E402
from edgematte.core.manifest import read_manifest  # noqa: E402
from edgematte.pipeline.stages.onnx import BRIDGE_NAME  # noqa: E402

MODELS = ("ppmattingv2", "modnet_mobilenetv2", "modnet_resnet50_vd", "modnet_hrnet_w18", "rvm_mobilenetv3",
          "ppmatting_hrnet_w18", "humanmatting")
DEFAULT_REPORT = REPO / "benchmarks" / "results" / "onnx_artefact_repairs.md"
WARMUP_ROUNDS = 2


def conversion(name: str, size: int, work: Path) -> Path:
    """The folder of ``name``'s ONNX conversion at ``size`` with its work folder (made when missing)."""
    from edgematte.pipeline import ConvertOptions, convert

    out = work / f"{name}_{size}"
    if not (out / ".work" / BRIDGE_NAME).is_file():
        print(f"converting {name} at {size}x{size} -> {out}", flush=True)
        convert(name, out, ConvertOptions(formats=("onnx",), input_shape=(1, 3, size, size), seed=0, keep_work=True))
    return out


def session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Feeding:
    """An ONNX Runtime session run on one fixed feed, as ``compare_runtimes.interleaved_rounds`` runs a matter."""

    def __init__(self, session, feed):
        self.session, self.feed = session, feed

    def run_tensor(self, _tensor):
        return self.session.run(None, self.feed)


def measure(folder: Path, rounds: int, max_rounds: int, threads: int) -> dict:
    """Both graphs of one conversion: medians, quartiles (ms), the largest output difference and what was split."""
    graphs = {"before": folder / ".work" / BRIDGE_NAME, "model.onnx": folder / "model.onnx"}
    sessions = {label: session(path, threads) for label, path in graphs.items()}
    first = sessions["before"]
    rng = np.random.default_rng(0)
    feed = {i.name: rng.uniform(0, 1, [d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in first.get_inputs()}
    outputs = {label: s.run(None, feed) for label, s in sessions.items()}
    difference = max(float(np.abs(a - b).max()) for a, b in zip(outputs["before"], outputs["model.onnx"]))
    entries = [Entry(label, "onnxruntime", "fp32", matter=_Feeding(s, feed), tensors=[None])
               for label, s in sessions.items()]
    timing = interleaved_rounds(entries, rounds, WARMUP_ROUNDS, max_rounds, log=lambda line: None)
    timed = {e.label: [1000 * t for t in e.samples] for e in entries}
    stats = {label: [float(np.percentile(t, q)) for q in (25, 50, 75)] for label, t in timed.items()}
    ratios = [before / after for before, after in zip(timed["before"], timed["model.onnx"])]
    manifest = read_manifest(folder)
    onnx_artefact = next(a for a in manifest.artefacts if a.path == "model.onnx")
    records = onnx_artefact.extra["onnx"]["runtime_repairs"]
    split = [r for r in records if r["repair"] == "conv_per_concatenated_part" and r["action"] == "split"]
    reductions = [r for r in records if r["repair"] == "channel_reduction_per_pixel"]
    products = [r for r in records if r["repair"] == "attention_product_per_pixel"]
    return {"stats": stats, "paired": [float(np.percentile(ratios, q)) for q in (25, 50, 75)],
            "difference": difference, "split": split, "reductions": reductions, "products": products,
            "rounds": len(ratios),
            "run": timing["rounds_run"],
            "parity": parity_text(onnx_artefact.parity)}


def parity_text(parity) -> str:
    """``max abs / bound, verdict``; for a model with hard decisions (PP-Matting's trimap), the max abs over the
    pixels no decision flipped, and how many flipped pixels the decision-aware rule excused."""
    decisions = parity.extra.get("decisions")
    verdict = "within" if parity.within_bound else "BEYOND"
    if decisions and decisions["over_bound_excused"]:
        return (f"{decisions['max_abs_kept']:.1e} / {parity.bound:.1e}, {verdict} ({decisions['over_bound_excused']} "
                f"pixels where a hard decision flips excused, max abs {parity.max_abs:.1e} there)")
    return f"{parity.max_abs:.1e} / {parity.bound:.1e}, {verdict}"


def report(results: Dict[str, dict], size: int, threads: int, argv: List[str]) -> str:
    facts, cpu = host_facts(), cpu_facts()
    host = (f"{cpu.get('Model name', facts['cpu'])} (vendor {cpu.get('vendor_id')}, family {cpu.get('cpu family')} "
            f"model {cpu.get('model')}), {facts['cores']} CPUs")
    lines = [f"# ONNX Runtime: the published model.onnx against the graph before its `onnx_artefact` repairs "
             f"({size}x{size})", "",
             f"Written by `benchmarks/onnx_artefact_repairs.py {' '.join(argv)}` on {facts['date']}; host {host}; "
             f"Python {facts['python']}; edgematte {facts['edgematte_commit']}.", "",
             f"Seeded weights (seed 0); ONNX Runtime CPU, default optimization level, {threads} threads. Both graphs "
             "loaded at once, interleaved rounds, each run followed by a wait until the runtime's threads are idle "
             "(outside the timing); only rounds where other processes used under 10 % of the CPUs count (every round "
             "when fewer than asked were; rounds: those used, of those run). Before / "
             "after: median (quartiles) over those rounds, ms; speed-up: quartiles of the per-round ratios. Output "
             "difference: the largest absolute difference between the two graphs over every output (rounding of "
             "the re-associated sums); parity: `model.onnx` against the conversion's checked reference (max abs "
             "alpha over the sample photos), its fp32 bound and the conversion's verdict.", "",
             "Split: the convolutions `conv_per_concatenated_part` split (input channels -> parts). Channel "
             "reductions: those `channel_reduction_per_pixel` rewrote, of those over the channels it matched "
             "(the channel counts of the rewritten ones). Attention products: those `attention_product_per_pixel` "
             "rewrote, of those it matched.", "",
             "| model | split (input channels -> parts) | channel reductions | attention products | before, ms | "
             "model.onnx, ms | speed-up | output difference | parity / bound | rounds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        split = "; ".join(f"{r2['onnx_node']} {sum(r2['parts'])} -> {'+'.join(map(str, r2['parts']))}"
                          for r2 in r["split"]) or "nothing"
        rewritten = [r2["shape"][1] for r2 in r["reductions"] if r2["action"] == "rewritten"]
        reductions = f"{len(rewritten)} of {len(r['reductions'])}" + (
            f" ({', '.join(str(c) for c in sorted(set(rewritten), reverse=True))} channels)" if rewritten else "")
        products = f"{sum(r2['action'] == 'rewritten' for r2 in r['products'])} of {len(r['products'])}"
        q = r["stats"]
        lines.append(f"| {name} | {split} | {reductions} | {products} | "
                     f"{q['before'][1]:.1f} ({q['before'][0]:.1f}-{q['before'][2]:.1f}) | "
                     f"{q['model.onnx'][1]:.1f} ({q['model.onnx'][0]:.1f}-{q['model.onnx'][2]:.1f}) | "
                     f"{r['paired'][1]:.2f}x ({r['paired'][0]:.2f}-{r['paired'][2]:.2f}) | {r['difference']:.1e} | "
                     f"{r['parity']} | {r['rounds']} of {r['run']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path, help="Folder for the conversions (reused).")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--size", type=int, default=512, help="Square input size (default 512).")
    parser.add_argument("--rounds", type=int, default=20, help="Quiet timed rounds per model (default 20).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.models:
        results[name] = measure(conversion(name, args.size, args.work), args.rounds, 3 * args.rounds, args.threads)
        q = results[name]["stats"]
        print(f"{name}: before {q['before'][1]:.1f} ms, model.onnx {q['model.onnx'][1]:.1f} ms", flush=True)
    shown = sys.argv[1:] if argv is None else list(argv)
    write_text_atomic(args.report, report(results, args.size, args.threads, shown))
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
