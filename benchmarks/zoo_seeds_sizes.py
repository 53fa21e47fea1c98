"""Seeded zoo models at other seeds and sizes: alive, exported faithfully, and round-tripped through .pdparams.

PaddleSeg's own outputs exist only for seed 0 at 512x512, so for other seeds and sizes this measures what can be
measured without them (issue #16), per model x seed x size:

(a) alive: the seeded (+ calibrated, ``build_with_weights``) float32 dygraph alpha on the bundled astronaut photo is
    neither constant nor saturated: its std, the share of pixels in (0.02, 0.98), min and max. Alive means
    std > 0.01 (ALIVE_STD) and more than 0.1 % of pixels in (0.02, 0.98).
(b) the deploy folder ``export_deploy_folder`` writes (dynamic shape, once per seed), run in Paddle Inference
    (``PaddleInferenceBackend``, 2 threads, the project's oneDNN fix), reproduces the dygraph model within a bound
    derived from measured float noise. The noise is how far the float32 dygraph model lies from the same model cast
    to float64 (``model.to(dtype="float64")``), max abs. The rule is the converter's own for an fp32 artefact
    (:func:`edgematte.converter.float64_program.derived_bound`: ``min(2.5e-3, max(1e-4, 4 x noise))``), and both
    the program against the dygraph float32 model and the program against float64 must be within it. (A bare
    2 x noise failed PP-MattingV2 at seed 1, where the noise is 2.7e-6 and Paddle Inference's kernels alone sit
    3.9e-6 from float64: kernel rounding, which the converter's floor of 1e-4 exists for.)
    (The sum "dygraph-vs-float64 + program-vs-float64" is not used as the bound: program-vs-dygraph is always
    within it, by the triangle inequality, so that check could never fail.)
    The argmax models (PP-HumanMatting, PP-Matting) flip boundary pixels where two class scores nearly tie, so
    their max abs is up to 1 even for float noise: their bound is the zoo's stated float32 bound
    (``spec.fp32_parity_bound``, 1e-3, measured at seed 0 / 512x512), and they pass when the max abs is within it or
    when at most ``spec.boundary_pixel_share`` of the pixels lie beyond it (the share is reported, and so is the
    same share for the dygraph float32 model against float64: the flips float noise alone makes).
(c) the save/load round trip: ``paddle.save(model.state_dict())`` -> ``build_with_weights(spec, weights=path)``
    gives bit-identical outputs to the seeded model (every output, every frame).

RVM runs a 3-frame clip (the astronaut panned 6 px a frame, ``pan_clip``) from zero states with the states fed back,
at downsample ratio 0.25; its figures cover every output (alpha, foreground, r1..r4) of every frame, its alive
figures are the last frame's alpha.

Results: ``zoo_seeds_sizes.json`` and ``.md`` in ``--results``; a run of some models keeps the other rows of the
earlier results (same model/seed/size rows are replaced).

    .venv/bin/python benchmarks/zoo_seeds_sizes.py                                   # all models, seeds 1 7
    .venv/bin/python benchmarks/zoo_seeds_sizes.py --models modnet_mobilenetv2 --seeds 1 --sizes 288x480
"""

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("GLOG_minloglevel", "2")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.official_acceptance import host_facts, one_line, parse_size  # noqa: E402
from edgematte.converter.float64_program import derived_bound  # noqa: E402
from edgematte.core.fsutil import write_text_atomic  # noqa: E402
from edgematte.core.samples import sample_photo  # noqa: E402
from edgematte.zoo.bn_calibration import calibration_input, pan_clip  # noqa: E402
from edgematte.zoo.registry import MODELS, get_model_spec  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
STEM = "zoo_seeds_sizes"
PHOTO = "astronaut"
THREADS = 2
FRAMES, SHIFT, RATIO = 3, 6, 0.25  # RVM's clip, as its seed-0 reference clip is made
MID = (0.02, 0.98)
# alive: not constant (std above the weakest threshold the zoo tests use, test_zoo_ppmattingv2's 0.01) and not
# saturated (more than 0.1 % of pixels strictly between 0.02 and 0.98); MODNet's and RVM's tests ask std > 0.05
ALIVE_STD, ALIVE_MID = 0.01, 1e-3


# ------------------------------------------------------------------------------------------ small helpers
def size_name(hw: Tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def is_recurrent(spec) -> bool:
    return hasattr(spec.definition(), "export_inputs")


def is_argmax(spec) -> bool:
    return spec.boundary_pixel_share > 0


# ------------------------------------------------------------------------------------------ running the models
def model_inputs(spec, hw: Tuple[int, int]) -> List[np.ndarray]:
    """The model inputs at ``hw``: the astronaut normalized by the model's transforms (RVM: its 3-frame clip)."""
    photo = sample_photo(PHOTO)
    frames = pan_clip(photo, hw, FRAMES, SHIFT) if is_recurrent(spec) else [photo]
    return [calibration_input(frame, hw, spec.transforms) for frame in frames]


def run_dygraph(model, spec, xs: Sequence[np.ndarray], dtype=np.float32) -> List[List[np.ndarray]]:
    """Per frame, every output as numpy (a still model: one frame, one output; RVM: the states fed back)."""
    import paddle

    results = []
    with paddle.no_grad():
        if not is_recurrent(spec):
            out = model(paddle.to_tensor(xs[0].astype(dtype)))
            outs = out if isinstance(out, (list, tuple)) else [out]
            return [[o.numpy() for o in outs]]
        states = None
        for x in xs:
            tensors = [None] * 4 if states is None else [paddle.to_tensor(s) for s in states]
            outputs = model(paddle.to_tensor(x.astype(dtype)), *tensors, downsample_ratio=RATIO)
            results.append([o.numpy() for o in outputs])
            states = results[-1][2:]
    return results


def run_program(backend, spec, model, xs: Sequence[np.ndarray], hw) -> List[List[np.ndarray]]:
    """The deploy folder's outputs in the same layout as :func:`run_dygraph` (RVM from zero states)."""
    if not is_recurrent(spec):
        return [list(backend.run_feeds([xs[0]]))]
    from edgematte.zoo.rvm import state_shapes

    states = [np.zeros(shape, np.float32) for shape in state_shapes(model, hw, RATIO)]
    results = []
    for x in xs:
        outputs = list(backend.run_feeds([x, *states, np.array([RATIO], np.float32)]))
        results.append(outputs)
        states = outputs[2:]
    return results


def max_abs(a: List[List[np.ndarray]], b: List[List[np.ndarray]]) -> float:
    worst = 0.0
    for fa, fb in zip(a, b, strict=True):
        for x, y in zip(fa, fb, strict=True):
            if x.shape != y.shape:
                raise ValueError(f"output shapes differ: {x.shape} vs {y.shape}")
            worst = max(worst, float(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).max()))
    return worst


def identical(a: List[List[np.ndarray]], b: List[List[np.ndarray]]) -> bool:
    return all(x.shape == y.shape and np.array_equal(x, y) for fa, fb in zip(a, b, strict=True)
               for x, y in zip(fa, fb, strict=True))


def alive_figures(outputs: List[List[np.ndarray]]) -> dict:
    """std, share in (0.02, 0.98), min, max, mean of the last frame's alpha; RVM adds every frame's std."""
    alpha = np.asarray(outputs[-1][0], np.float64)
    figures = {"std": float(alpha.std()), "mid_share": float(((alpha > MID[0]) & (alpha < MID[1])).mean()),
               "min": float(alpha.min()), "max": float(alpha.max()), "mean": float(alpha.mean()),
               "shape": list(alpha.shape)}
    if len(outputs) > 1:
        figures["std_per_frame"] = [float(np.asarray(frame[0]).std()) for frame in outputs]
    figures["alive"] = is_alive(figures)
    return figures


def is_alive(figures: dict) -> bool:
    return figures["std"] > ALIVE_STD and figures["mid_share"] > ALIVE_MID


def rejudge(record: dict) -> dict:
    """A record's alive flag and verdict recomputed from its figures by this script's rule (earlier rows too)."""
    if record.get("error"):
        return record
    record["alive"]["alive"] = is_alive(record["alive"])
    check = record["check"]
    if "allowed_share" not in check:  # a continuous model: the bound from its recorded noise, by today's rule
        check["bound"] = derived_bound(check["dygraph_fp32_vs_fp64"])
        check["rule"] = "the converter's: min(2.5e-3, max(1e-4, 4 x dygraph fp32-vs-fp64 noise))"
        check["ok"] = bool(check["dygraph_fp32_vs_fp64"] > 0 and check["program_vs_dygraph"] <= check["bound"]
                           and check["program_vs_fp64"] <= check["bound"])
    record["ok"] = bool(record["alive"]["alive"] and record["check"]["ok"] and record["round_trip"]["identical"])
    return record


def share_beyond(a: List[List[np.ndarray]], b: List[List[np.ndarray]], bound: float) -> Tuple[float, float]:
    """Share of alpha pixels (all frames) differing by more than ``bound``, and the mean abs alpha difference."""
    diffs = np.concatenate([np.abs(np.asarray(fa[0], np.float64) - np.asarray(fb[0], np.float64)).ravel()
                            for fa, fb in zip(a, b)])
    return float((diffs > bound).mean()), float(diffs.mean())


def judge(spec, dyg32, dyg64, prog) -> dict:
    """The noise-derived check of the program (see the module docstring for the rule)."""
    noise = max_abs(dyg32, dyg64)
    prog_vs_fp64 = max_abs(prog, dyg64)
    prog_vs_dyg = max_abs(prog, dyg32)
    figures = {"dygraph_fp32_vs_fp64": noise, "program_vs_fp64": prog_vs_fp64, "program_vs_dygraph": prog_vs_dyg}
    if is_argmax(spec):
        bound = float(spec.fp32_parity_bound)
        share, mean = share_beyond(prog, dyg32, bound)
        noise_share, _ = share_beyond(dyg32, dyg64, bound)
        share64, _ = share_beyond(prog, dyg64, bound)
        allowed = float(spec.boundary_pixel_share)
        ok = (prog_vs_dyg <= bound or share <= allowed) and (prog_vs_fp64 <= bound or share64 <= allowed)
        figures.update(rule="argmax: stated bound, share beyond it", bound=bound, allowed_share=allowed,
                       share_beyond_program_vs_dygraph=share, mean_abs_program_vs_dygraph=mean,
                       share_beyond_program_vs_fp64=share64, share_beyond_dygraph_fp32_vs_fp64=noise_share)
    else:
        bound = derived_bound(noise)
        ok = noise > 0 and prog_vs_dyg <= bound and prog_vs_fp64 <= bound
        figures.update(rule="the converter's: min(2.5e-3, max(1e-4, 4 x dygraph fp32-vs-fp64 noise))", bound=bound)
    figures["ok"] = bool(ok)
    return figures


# ------------------------------------------------------------------------------------------ one model, one seed
def run_seed(name: str, seed: int, sizes: Sequence[Tuple[int, int]], work: Path, log=print,
             keep: Optional[dict] = None) -> List[dict]:
    """Every figure for ``name`` at ``seed`` and each of ``sizes``: one record per size. The deploy folder stays in
    ``work``; given a ``keep`` dict, the inputs, outputs and the model (cast to float64) are left in it too, by size:
    ``inputs``, ``fp32``, ``fp64``, ``program``, and ``folder``, ``model``."""
    import paddle

    from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
    from edgematte.zoo.export import build_with_weights, export_deploy_folder

    spec = get_model_spec(name)
    records = {hw: {"model": name, "seed": seed, "size": size_name(hw), "seconds": {}} for hw in sizes}
    shared = {}

    def lap(key, began, hw=None):
        seconds = round(time.perf_counter() - began, 2)
        if hw is None:
            shared[key] = seconds
        else:
            records[hw]["seconds"][key] = seconds
        log(f"  {name} seed {seed}{'' if hw is None else ' ' + size_name(hw)}: {key} {seconds:.1f} s")

    began = time.perf_counter()
    model = build_with_weights(spec, seed=seed)
    lap("build", began)
    inputs = {hw: model_inputs(spec, hw) for hw in sizes}
    fp32 = {}
    for hw in sizes:
        began = time.perf_counter()
        fp32[hw] = run_dygraph(model, spec, inputs[hw])
        lap("dygraph_fp32", began, hw)
        records[hw]["alive"] = alive_figures(fp32[hw])

    # (c) paddle.save -> build_with_weights(weights=...)
    began = time.perf_counter()
    path = work / f"{name}.seed{seed}.pdparams"
    paddle.save(model.state_dict(), str(path))
    loaded = build_with_weights(spec, weights=path)
    for hw in sizes:
        again = run_dygraph(loaded, spec, inputs[hw])
        records[hw]["round_trip"] = {"identical": identical(again, fp32[hw]), "max_abs": max_abs(again, fp32[hw])}
    del loaded
    path.unlink()
    gc.collect()
    lap("save_load_round_trip", began)

    # (b) the deploy folder in Paddle Inference
    began = time.perf_counter()
    folder = export_deploy_folder(name, work / f"{name}.seed{seed}", seed=seed)
    lap("export", began)
    backend = PaddleInferenceBackend(folder, threads=THREADS)
    program = {}
    for hw in sizes:
        began = time.perf_counter()
        program[hw] = run_program(backend, spec, model, inputs[hw], hw)
        lap("program", began, hw)
    del backend
    gc.collect()

    model.to(dtype="float64")
    fp64 = {}
    for hw in sizes:
        began = time.perf_counter()
        fp64[hw] = run_dygraph(model, spec, inputs[hw], dtype=np.float64)
        lap("dygraph_fp64", began, hw)
        records[hw]["check"] = judge(spec, fp32[hw], fp64[hw], program[hw])
    if keep is not None:
        keep.update(inputs=inputs, fp32=fp32, fp64=fp64, program=program, folder=folder, model=model)
    del model, fp64
    gc.collect()
    for hw in sizes:
        records[hw]["seconds"].update(shared)
        r = records[hw]
        r["ok"] = bool(r["alive"]["alive"] and r["check"]["ok"] and r["round_trip"]["identical"])
    return list(records.values())


# ------------------------------------------------------------------------------------------ the report
def fmt(value, spec=".2e") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def row(r: dict) -> str:
    if r.get("error"):
        return (f"| {r['model']} | {r['seed']} | {r['size']} | " + "- | " * 10 + "- | **FAIL** | - | "
                f"{r['error']} |")
    a, c, s = r["alive"], r["check"], r["seconds"]
    share = "-"
    if "share_beyond_program_vs_dygraph" in c:
        share = (f"{c['share_beyond_program_vs_dygraph']:.4%} "
                 f"(fp32 vs fp64: {c['share_beyond_dygraph_fp32_vs_fp64']:.4%}; "
                 f"allowed {c['allowed_share']:.2%})")
    times = " / ".join(fmt(s.get(k), ".1f") for k in ("dygraph_fp32", "dygraph_fp64", "program"))
    return (f"| {r['model']} | {r['seed']} | {r['size']} | {a['std']:.3f} | {a['mid_share']:.2%} | "
            f"{a['min']:.3f} / {a['max']:.3f} | {'yes' if a['alive'] else '**no**'} | "
            f"{fmt(c['dygraph_fp32_vs_fp64'])} | {fmt(c['program_vs_fp64'])} | {fmt(c['program_vs_dygraph'])} | "
            f"{fmt(c['bound'])} | {share} | {'pass' if c['ok'] else '**FAIL**'} | "
            f"{'identical' if r['round_trip']['identical'] else '**differs** ' + fmt(r['round_trip']['max_abs'])} | "
            f"{'ok' if r['ok'] else '**FAIL**'} | {times} |  |")


def markdown(report: dict) -> str:
    lines = ["# Seeded zoo models at other seeds and sizes (issue #16)", "", "Runs:", ""]
    lines += [f"{i}. `{run['command']}` on {run['date']}, edgematte commit {run['commit']}"
              for i, run in enumerate(report["runs"], 1)]
    host = report["host"]
    lines += ["", f"Host: {host['cpu']}, {host['cores']} cores (shared with other jobs), {host['threads']} threads; "
              f"Python {host['python']}.", "",
              "Astronaut photo, resized (INTER_AREA) to each size and normalized by the model's deploy.yaml; RVM: "
              f"a {FRAMES}-frame clip panning {SHIFT} px a frame, zero states first, the states fed back, "
              f"downsample ratio {RATIO} (its figures: every output of every frame; alive: the last frame's alpha). "
              "Weights: `build_with_weights(spec, seed=N)` (BatchNorm statistics calibrated on the astronaut at the "
              "native size for the specs that ask for it). Program: the dynamic-shape deploy folder "
              "`export_deploy_folder` writes, run in Paddle Inference (`PaddleInferenceBackend`, 2 threads).", "",
              "Columns: alive = std > 0.01 and more than 0.1 % of pixels in (0.02, 0.98). Noise = max abs of the "
              "float32 dygraph model against the same model cast to float64. Bound (continuous models) = the "
              "converter's rule for an fp32 artefact, min(2.5e-3, max(1e-4, 4 x that noise)); pass = "
              "program-vs-dygraph and program-vs-fp64 both within it. (The sum of dygraph-vs-fp64 and "
              "program-vs-fp64 is not used: program-vs-dygraph can never exceed it.) Argmax models (humanmatting, "
              "ppmatting_hrnet_w18): bound = the zoo's stated float32 bound "
              "1e-3, pass = max abs within it or at most the stated share of pixels beyond it (shown, with the share "
              "float noise alone flips in the dygraph fp32-vs-fp64 comparison). Save/load: `paddle.save(state_dict)` "
              "-> `build_with_weights(spec, weights=path)`, outputs compared bit for bit. Result: ok when alive, "
              "program check passed and save/load identical. Times in seconds; the program's include "
              "creating its Paddle Inference predictor for that shape.", "",
              "| model | seed | size | alpha std | in (0.02, 0.98) | min / max | alive | dygraph fp32 vs fp64 | "
              "program vs fp64 | program vs dygraph | bound | share beyond bound | program check | save/load | "
              "result | time: dygraph fp32 / fp64 / program (s) | error |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(r) for r in report["records"]]
    lines += ["", "Per model and seed (seconds): build with calibration, save/load round trip (both sizes), export.",
              "",
              "| model | seed | build | save/load | export |", "|---|---|---|---|---|"]
    seen = set()
    for r in report["records"]:
        key = (r["model"], r["seed"])
        if key in seen or r.get("error"):
            continue
        seen.add(key)
        s = r["seconds"]
        lines.append(f"| {r['model']} | {r['seed']} | {fmt(s.get('build'), '.1f')} | "
                     f"{fmt(s.get('save_load_round_trip'), '.1f')} | {fmt(s.get('export'), '.1f')} |")
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def merge(report: dict, earlier: Optional[dict]) -> dict:
    """This run's rows replace the earlier report's rows of the same model/seed/size; the others are kept."""
    if not earlier:
        return dict(report, records=[rejudge(r) for r in report["records"]])
    keys = {(r["model"], r["seed"], r["size"]) for r in report["records"]}
    kept = [r for r in earlier.get("records", []) if (r["model"], r["seed"], r["size"]) not in keys]
    order = {name: i for i, name in enumerate(MODELS)}
    records = sorted([rejudge(r) for r in kept + report["records"]],
                     key=lambda r: (order.get(r["model"], 99), r["seed"], r["size"]))
    runs = [run for run in earlier.get("runs", []) if run not in report["runs"]] + report["runs"]
    notes = list(dict.fromkeys(earlier.get("notes", []) + report.get("notes", [])))
    return dict(report, records=records, runs=runs, notes=notes)


def write_results(report: dict, results_dir: Path) -> Tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_dir / f"{STEM}.json", results_dir / f"{STEM}.md"
    write_text_atomic(json_path, json.dumps(report, indent=1) + "\n")
    write_text_atomic(md_path, markdown(report))
    return json_path, md_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="MODEL",
                        help=f"zoo models (default: all: {' '.join(MODELS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 7], metavar="N", help="seeds (default: 1 7)")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(288, 480), (512, 512)], metavar="HxW",
                        help="input sizes (default: 288x480 512x512)")
    parser.add_argument("--results", metavar="DIR", default=str(RESULTS),
                        help="where zoo_seeds_sizes.json and .md go (default: benchmarks/results)")
    parser.add_argument("--note", action="append", default=[], help="a note for the report (repeatable)")
    parser.add_argument("--render-only", action="store_true",
                        help="run no model: rewrite the .md (and the verdicts in the .json) from the earlier .json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    results_dir = Path(args.results)
    json_path = results_dir / f"{STEM}.json"
    earlier = json.loads(json_path.read_text()) if json_path.exists() else None
    if args.render_only:
        if earlier is None:
            print(f"{json_path}: no earlier results to render", file=sys.stderr)
            return 1
        report = merge(dict(earlier, records=[], runs=[], notes=list(args.note)), earlier)
        print("wrote", *write_results(report, results_dir))
        return 0
    host = host_facts()
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    run = {"command": f"benchmarks/zoo_seeds_sizes.py {shown}".strip(), "date": host["date"],
           "commit": host["edgematte_commit"]}
    report = {"host": host, "runs": [run], "records": [], "notes": list(args.note)}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="zoo_seeds_sizes_") as tmp:
        for name in args.models:
            for seed in args.seeds:
                began = time.perf_counter()
                try:
                    records = run_seed(name, seed, args.sizes, Path(tmp))
                except Exception as e:  # noqa: BLE001 - recorded, the other models still run
                    traceback.print_exc()
                    records = [{"model": name, "seed": seed, "size": size_name(hw), "ok": False, "error": one_line(e),
                                "seconds": {}} for hw in args.sizes]
                for r in records:
                    r["seconds"]["model_seed_total"] = round(time.perf_counter() - began, 1)
                    failures += not r["ok"]
                    c = r.get("check", {})
                    print(f"{name} seed {seed} {r['size']}: {'ok' if r['ok'] else 'FAIL'} "
                          f"alive std {r.get('alive', {}).get('std', float('nan')):.3f}, noise "
                          f"{c.get('dygraph_fp32_vs_fp64', float('nan')):.2e}, program vs dygraph "
                          f"{c.get('program_vs_dygraph', float('nan')):.2e} (bound {c.get('bound', float('nan')):.2e})"
                          f"{' ' + r['error'] if r.get('error') else ''}", flush=True)
                report["records"] += records
                written = write_results(merge(report, earlier), results_dir)
    print(f"wrote {written[0]} and {written[1]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
