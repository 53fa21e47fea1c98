"""Acceptance run for the eight deploy folders of PaddleSeg's Matting zoo, as PaddleSeg's own export writes them.

Per model (``tests/official_models.py`` rebuilds each folder with seed-0 weights):

1. ``edgematte convert DIR --input-shape 1 3 H W -o OUT`` (default targets: arm and x86 .nb, ONNX, TFLite fp32 and
   fp16 where it holds): exit code, wall time, the artefacts and each one's recorded parity from OUT/manifest.json
   (max abs, bound, verdict, decision-aware figures), and whether fp16 was kept;
2. at 512x512 with ``--paddleseg-outputs``: every host-runnable artefact (ONNX Runtime, LiteRT, Paddle Lite x86)
   and the shipped reference run on PaddleSeg's own model input from ``MODEL.seed0.512x512.npz`` and compared
   with PaddleSeg's own alpha, judged by the artefact's recorded bound. RVM runs the npz's 3-frame clip with
   states fed back (zeros first) by the runtime's ``Matter``, which must then give frame 0 again after ``reset()``;
   DIM gets the npz's trimap too; for argmax models (PP-HumanMatting, PP-Matting) the pixels whose reference
   decision is a near-tie are excused, by the conversion's recorded rule;
3. ``edgematte verify OUT --json`` and ``edgematte matte PHOTO --model OUT --artefact A`` for every host-runnable
   artefact (DIM: ``--trimap``; RVM: one frame from zero states).

Results: ``benchmarks/results/official_acceptance_HxW.json`` and ``.md``. A model that fails is recorded (one-line
error) and the others still run.

    .venv/bin/python benchmarks/official_acceptance.py --models modnet_mobilenetv2 rvm_mobilenetv3 --size 256x256
    .venv/bin/python benchmarks/official_acceptance.py --paddleseg-outputs DIR            # all eight at 512x512
"""

import argparse
import datetime
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ info lines would interleave with the progress
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edgematte.core.fsutil import write_text_atomic  # noqa: E402
from edgematte.core.manifest import Manifest, this_platform  # noqa: E402
from edgematte.core.samples import sample_photo  # noqa: E402
from edgematte.runtime.imageio import write_image  # noqa: E402
from edgematte.runtime.matter import Matter  # noqa: E402
from edgematte.runtime.model_io import FeedPlan, layout_to_onnx, onnx_to_layout, run_case  # noqa: E402
from edgematte.runtime.trimap import synthetic_trimap  # noqa: E402
from edgematte.runtime.verify_decisions import RecordedDecisions  # noqa: E402
from tests.official_models import MODELS, build_official_folder  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
NPZ_SIZE = (512, 512)  # the only size PaddleSeg's outputs were computed at
# (model, asked size) -> the size that model runs at instead
SIZE_OVERRIDES = {("humanmatting", (288, 480)): (384, 640)}
PHOTO = "coffee"  # the bundled sample `matte` runs on (600x400: not the model's size)
EDGEMATTE = [sys.executable, "-m", "edgematte.cli"]
THREADS = 2
NPZ_HELP = ("a folder holding PaddleSeg's own outputs, MODEL.seed0.512x512.npz per model: PaddleSeg's eval-mode "
            "forward pass with seed-0 weights on the astronaut photo at 512x512. Each holds 'x' (the model input, "
            "float32 NCHW [1,3,512,512], normalized by the model's deploy.yaml; when absent, as for ppmattingv2 and "
            "humanmatting, it is made from 'image' (uint8 RGB) as (image/255 - 0.5)/0.5) and 'alpha' (float32 "
            "[1,1,512,512]); DIM adds 'trimap' (float 0/128/255, [1,1,512,512]); RVM holds a 3-frame clip 'x_0'..'x_2' "
            "and 'alpha_0'..'alpha_2' (frame 0 from zero states, each next frame fed the states the previous "
            "returned) and 'downsample_ratio'. Compared only at 512x512; without it no such comparison runs")


# ------------------------------------------------------------------------------------------ small helpers
def parse_size(text: str) -> Tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"size '{text}': expected HxW, e.g. 512x512")
    return int(match.group(1)), int(match.group(2))


def one_line(error) -> str:
    text = str(error).strip().splitlines()
    return (f"{type(error).__name__}: " if isinstance(error, BaseException) else "") + (text[0] if text else "")


def cli_error(stderr: str) -> str:
    """The one-line error of a failed CLI run: its ``edgematte: error:`` line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("edgematte: error")]
    return (errors or lines or ["(no output)"])[-1][:500]


def run_cli(args: List, log: Path) -> Tuple[int, float, str, str]:
    """``edgematte ARGS`` as a subprocess: (exit code, seconds, stdout, stderr); both streams go to ``log``."""
    start = time.perf_counter()
    done = subprocess.run([*EDGEMATTE, *map(str, args)], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    log.write_text(f"$ edgematte {' '.join(map(str, args))}\n# exit {done.returncode} after {seconds:.1f} s\n"
                   f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    return done.returncode, seconds, done.stdout, done.stderr


def host_facts() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def git(*args) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"cpu": cpu, "cores": os.cpu_count(), "date": datetime.datetime.now().astimezone().isoformat("T", "seconds"),
            "edgematte_commit": (git("rev-parse", "HEAD") or "unknown") + (" (+ uncommitted changes)" if dirty else ""),
            "python": sys.version.split()[0], "threads": THREADS}


def shown_command(argv: List[str]) -> str:
    """The command line as the results quote it: the --paddleseg-outputs folder is the user's, not the project's,
    so it shows as DIR."""
    shown = []
    for arg in argv:
        if shown and shown[-1] == "--paddleseg-outputs":
            arg = "DIR"
        elif arg.startswith("--paddleseg-outputs="):
            arg = "--paddleseg-outputs=DIR"
        shown.append(arg)
    return " ".join(["benchmarks/official_acceptance.py", *shown])


def size_for(name: str, asked: Tuple[int, int]) -> Tuple[int, int]:
    return SIZE_OVERRIDES.get((name, asked), asked)


# ------------------------------------------------------------------------------------------ manifest figures
def recorded_parity(entry: dict) -> dict:
    """An artefact's parity as the conversion recorded it."""
    parity = entry.get("parity") or {}
    record = {key: parity.get(key) for key in ("max_abs", "bound", "within_bound", "runs_on_host", "compared_to")}
    if parity.get("reason"):
        record["reason"] = parity["reason"]
    decisions = parity.get("decisions") or parity.get("decision_aware")
    if isinstance(decisions, dict):
        record["decisions"] = {k: decisions.get(k) for k in ("max_abs_kept", "excused_share", "over_bound",
                                                             "over_bound_excused", "margin_tolerance")
                               if k in decisions}
    return record


def fp16_decision(data: dict) -> str:
    if any(a.get("precision") == "fp16" and a.get("format") == "tflite" for a in data.get("artefacts", [])):
        return "kept"
    note = data.get("fp16_skipped")
    return f"skipped: {note}" if note else "not written"


# ------------------------------------------------------------------------------------------ PaddleSeg's outputs
def paddleseg_case(npz, manifest: Manifest) -> Tuple[List[Dict[str, np.ndarray]], List[np.ndarray], List[str]]:
    """(steps fed by role, PaddleSeg's alpha per step, notes) from a ``MODEL.seed0.512x512.npz``."""
    roles = manifest.model.input_roles()
    image = next(r["name"] for r in roles if r["role"] == "image")
    trimap = next((r["name"] for r in roles if r["role"] == "trimap"), None)
    notes = []
    if manifest.model.recurrent:
        frames = sorted(int(k[2:]) for k in npz.files if re.fullmatch(r"x_\d+", k))
        steps = [{image: npz[f"x_{i}"].astype(np.float32)} for i in frames]
        references = [npz[f"alpha_{i}"] for i in frames]
        frozen = {r["name"]: r.get("value") for r in roles if r["role"] == "constant"}
        if "downsample_ratio" in npz.files:
            notes.append(f"{len(frames)} frames, states fed back from zeros; downsample_ratio PaddleSeg "
                         f"{float(npz['downsample_ratio'].ravel()[0])}, frozen in the artefacts {frozen}")
        return steps, references, notes
    if "x" in npz.files:
        x = npz["x"].astype(np.float32)
    else:
        x = ((npz["image"].astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()
        notes.append("x made from the npz's image as (image/255 - 0.5)/0.5 (the npz holds no x)")
    step = {image: x}
    if trimap is not None:
        step[trimap] = npz["trimap"].astype(np.float32)
    return [step], [npz["alpha"]], notes


def run_reference(manifest: Manifest, steps, rule: Optional[RecordedDecisions]):
    """The shipped reference on ``steps``: (NCHW alpha per step, near-tie mask per step or None). With the
    decision-aware rule the scores program runs (same alpha, plus the class scores)."""
    from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend

    scores = manifest.reference_scores_program() if rule is not None else None
    backend = PaddleInferenceBackend(scores or manifest.reference_dir(), threads=THREADS)
    plan = FeedPlan.for_reference(manifest.model, backend)
    names = [s.name for s in backend.outputs]
    alphas, masks = [], []
    for outputs in run_case(backend.run_feeds, plan, steps):
        alpha = np.asarray(outputs[plan.alpha_index])
        alphas.append(alpha)
        if scores is not None:
            masks.append(rule.near_ties(dict(zip(names, outputs)), tuple(alpha.shape[-2:])))
    return alphas, (masks if scores is not None else None)


def run_artefact(manifest: Manifest, entry, steps) -> Tuple[List[np.ndarray], Optional[bool]]:
    """One artefact on ``steps`` through the runtime's ``Matter``, which carries a recurrent model's states from
    step to step as ``edgematte matte`` does: (its NCHW alpha per step, whether ``reset()`` then gives step 0's
    alpha again bit for bit; ``None`` for a model without states)."""
    roles = manifest.model.input_roles()
    image = next(r["name"] for r in roles if r["role"] == "image")
    trimap = next((r["name"] for r in roles if r["role"] == "trimap"), None)
    matter = Matter.from_manifest(manifest, artefact=entry.path, threads=THREADS)
    plan = matter.plan

    def laid_out(name: str, array: np.ndarray) -> np.ndarray:
        if plan is None:
            return onnx_to_layout(array, matter.layout)
        index = next(i for i, r in enumerate(plan.inputs) if r["name"] == name)
        return onnx_to_layout(array, plan.input_layout(index))

    alpha_layout = plan.output_layout(plan.alpha_index) if plan is not None else matter.layout

    def run(step: Dict[str, np.ndarray]) -> np.ndarray:
        given = laid_out(trimap, step[trimap]) if trimap is not None else None
        return layout_to_onnx(np.asarray(matter.run_tensor(laid_out(image, step[image]), given)), alpha_layout)

    alphas = [run(step) for step in steps]
    again = None
    if matter.recurrent:
        matter.reset()
        again = bool(np.array_equal(run(steps[0]), alphas[0]))
    matter.backend = None  # free the interpreter before the next artefact loads
    gc.collect()
    return alphas, again


def judge(alphas, references, bound, rule: Optional[RecordedDecisions], masks) -> dict:
    """``alphas`` against PaddleSeg's: max abs (per step too) and the verdict by ``bound`` (decision-aware for
    argmax models: near-tie pixels excused, the rest held to the bound, capped share)."""
    diffs = []
    for alpha, reference in zip(alphas, references):
        if tuple(alpha.shape) != tuple(reference.shape):
            raise ValueError(f"alpha of shape {list(alpha.shape)}, PaddleSeg's {list(reference.shape)}")
        diffs.append(float(np.abs(alpha.astype(np.float64) - reference.astype(np.float64)).max()))
    result = {"max_abs": max(diffs), "per_step": diffs if len(diffs) > 1 else None, "bound": bound,
              "rule": "max abs"}
    if bound is None:
        result["pass"] = None
        return result
    if rule is None or masks is None:
        result["pass"] = result["max_abs"] <= bound
        return result
    figures = rule.compare([a[0, 0] for a in alphas], [r[0, 0] for r in references], masks, bound,
                           "PaddleSeg npz")
    result["rule"] = "decision-aware"
    result["pass"] = bool(rule.within(figures, bound))
    result["decisions"] = {"max_abs_kept": figures.max_abs_kept, "excused_share": figures.excused_share,
                           "over_bound": figures.over_bound, "over_bound_excused": figures.over_bound_excused,
                           "margin_tolerance": figures.margin_tolerance,
                           "max_excused_share": rule.max_excused_share}
    return result


def paddleseg_checks(out: Path, npz_path: Path) -> dict:
    """Every host-runnable artefact and the reference against PaddleSeg's own output: ``{path: figures}``,
    plus ``_notes``. An artefact that cannot run is recorded with its one-line error."""
    manifest = Manifest.read(out)
    with np.load(npz_path) as npz:
        steps, references, notes = paddleseg_case(npz, manifest)
    rule = RecordedDecisions.of(manifest)
    if rule is not None:
        notes.append(f"decision-aware rule: near-tie margin <= {rule.tolerance:.3g} (score noise {rule.noise:.3g}), "
                     f"at most {rule.max_excused_share:.0%} of pixels beyond the bound excused")
    results = {}
    masks = None
    try:
        ref_alphas, masks = run_reference(manifest, steps, rule)
        fp32 = next((a.parity.bound for a in manifest.artefacts if a.precision == "fp32" and a.parity.bound), None)
        results["reference"] = judge(ref_alphas, references, fp32, rule, masks)
        results["reference"]["bound_note"] = "the fp32 artefacts' bound"
    except Exception as error:  # noqa: BLE001 - recorded, the artefacts still run
        results["reference"] = {"error": one_line(error)}
    if rule is not None and masks is None:
        notes.append("the reference's scores could not be run: argmax models judged by plain max abs")
        rule = None
    for entry in manifest.artefacts:
        if not (entry.runs_on(this_platform()) and entry.runs_on_host):
            continue
        start = time.perf_counter()
        try:
            alphas, again = run_artefact(manifest, entry, steps)
            results[entry.path] = judge(alphas, references, entry.parity.bound, rule, masks)
            if again is not None:
                results[entry.path]["reset_gives_frame_0_again"] = again
                results[entry.path]["pass"] = bool(results[entry.path]["pass"]) and again
        except Exception as error:  # noqa: BLE001 - one artefact's failure is its row's
            results[entry.path] = {"error": one_line(error)}
        results[entry.path]["seconds"] = round(time.perf_counter() - start, 1)
    results["_notes"] = notes
    return results


# ------------------------------------------------------------------------------------------ verify, matte
def verify_check(out: Path, work: Path) -> dict:
    rc, seconds, stdout, stderr = run_cli(["verify", out, "--json", "--threads", THREADS], work / "verify.log")
    record = {"exit": rc, "seconds": round(seconds, 1), "artefacts": {}}
    try:
        report = json.loads(stdout[stdout.index("{"):])
        record["passed"] = report.get("passed")
        record["reference"] = (report.get("reference") or {}).get("description")
        for a in report.get("artefacts", []):
            record["artefacts"][a["path"]] = {"status": a.get("status"), "max_abs": a.get("max_abs"),
                                              "reason": a.get("reason"),
                                              "max_abs_kept": (a.get("decisions") or {}).get("max_abs_kept")}
    except (ValueError, KeyError, TypeError) as error:
        record["error"] = cli_error(stderr) if rc else f"unreadable --json output ({one_line(error)})"
    if rc and "error" not in record and not record["artefacts"]:
        record["error"] = cli_error(stderr)
    return record


def matte_inputs(work: Path, takes_trimap: bool) -> Tuple[Path, Optional[Path]]:
    """The bundled sample photo as a PNG, and a synthetic trimap of its size for a model that takes one."""
    rgb = sample_photo(PHOTO)
    photo = work / f"{PHOTO}.png"
    write_image(photo, rgb)
    if not takes_trimap:
        return photo, None
    trimap = work / f"{PHOTO}_trimap.png"
    write_image(trimap, synthetic_trimap(rgb.shape[:2])[0, 0].astype(np.uint8))
    return photo, trimap


def matte_checks(out: Path, work: Path) -> dict:
    """``edgematte matte`` on the sample photo with every host-runnable artefact: ``{path: {exit, ...}}``."""
    manifest = Manifest.read(out)
    takes_trimap = any(r["role"] == "trimap" for r in manifest.model.input_roles())
    photo, trimap = matte_inputs(work, takes_trimap)
    results = {}
    for entry in manifest.artefacts_for(this_platform()):
        target = work / "matte" / Path(entry.path).stem
        args = ["matte", photo, "--model", out, "--artefact", entry.path, "-o", target, "--threads", THREADS]
        rc, seconds, _, stderr = run_cli(args + (["--trimap", trimap] if trimap else []),
                                         work / f"matte_{Path(entry.path).stem}.log")
        written = sorted(p.name for p in target.rglob("*") if p.is_file()) if target.is_dir() else []
        results[entry.path] = {"exit": rc, "seconds": round(seconds, 1), "written": written}
        if rc:
            results[entry.path]["error"] = cli_error(stderr)
        elif not written:
            results[entry.path]["error"] = "exit 0 but no file written"
    return results


# ------------------------------------------------------------------------------------------ one model
def convert_step(folder: Path, out: Path, hw: Tuple[int, int], work: Path, record: dict) -> bool:
    """``edgematte convert``: records exit, time, artefacts (with recorded parity) and the fp16 decision."""
    rc, seconds, _, stderr = run_cli(["convert", folder, "--input-shape", 1, 3, *hw, "-o", out,
                                      "--threads", THREADS], work / "convert.log")
    record["convert"] = {"exit": rc, "seconds": round(seconds, 1)}
    if rc != 0:
        record["convert"]["error"] = cli_error(stderr)
        return False
    data = json.loads((out / "manifest.json").read_text())
    record["fp16"] = fp16_decision(data)
    recovered = [a["onnx2tf"]["recovered"] for a in data.get("artefacts", [])
                 if (a.get("onnx2tf") or {}).get("recovered")]
    if recovered:  # onnx2tf died after its SavedModel: which TFLite files were made how
        record["tflite_recovered"] = recovered[0]
    record["decision_aware"] = bool((data.get("reference", {}).get("decisions") or {}).get("wired"))
    record["artefacts"] = [{"path": a["path"], "format": a["format"], "target": a.get("target"),
                            "precision": a.get("precision"), "size_bytes": a.get("size_bytes"),
                            "parity": recorded_parity(a)} for a in data.get("artefacts", [])]
    return True


def run_model(name: str, hw: Tuple[int, int], args, root: Path) -> dict:
    """Build, convert and check one model; every step's outcome (or one-line error) in the record."""
    record = {"model": name, "size": f"{hw[0]}x{hw[1]}", "artefacts": [], "seconds": {}}
    work = root / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    folder, out = work / "deploy", work / "out"
    start = time.perf_counter()

    def lap(step: str, began: float) -> None:
        record["seconds"][step] = round(time.perf_counter() - began, 1)
        print(f"    {step}: {record['seconds'][step]:.1f} s", flush=True)

    try:
        t = time.perf_counter()
        build_official_folder(name, folder, seed=0)
        lap("build", t)
        t = time.perf_counter()
        converted = convert_step(folder, out, hw, work, record)
        lap("convert", t)
        print(f"    convert exit {record['convert']['exit']}"
              + (f": {record['convert'].get('error')}" if not converted else
                 f", {len(record['artefacts'])} artefacts, fp16 {record['fp16'].split(':')[0]}"), flush=True)
        if converted:
            npz = Path(args.paddleseg_outputs) / f"{name}.seed0.512x512.npz" if args.paddleseg_outputs else None
            if npz is not None and tuple(hw) == NPZ_SIZE:
                t = time.perf_counter()
                if npz.is_file():
                    record["paddleseg"] = paddleseg_checks(out, npz)
                else:
                    record["paddleseg"] = {"_notes": [f"no {npz.name} in --paddleseg-outputs"]}
                lap("paddleseg", t)
            t = time.perf_counter()
            record["verify"] = verify_check(out, work)
            lap("verify", t)
            t = time.perf_counter()
            record["matte"] = matte_checks(out, work)
            lap("matte", t)
    except Exception as error:  # noqa: BLE001 - a failed model must not stop the others
        record["error"] = one_line(error)
        (work / "error.txt").write_text(traceback.format_exc())
        print(f"    FAILED: {record['error']}", flush=True)
    record["seconds"]["total"] = round(time.perf_counter() - start, 1)
    record["ok"] = model_ok(record)
    return record


def model_ok(record: dict) -> bool:
    """Every step held: converted, each compared artefact within its bound, verify passed, every matte ran."""
    if record.get("error") or (record.get("convert") or {}).get("exit") != 0:
        return False
    paddleseg = {k: v for k, v in (record.get("paddleseg") or {}).items() if k not in ("_notes", "reference")}
    if any(v.get("pass") is not True for v in paddleseg.values()):
        return False
    if (record.get("verify") or {}).get("exit") != 0:
        return False
    return all(m.get("exit") == 0 and not m.get("error") for m in (record.get("matte") or {}).values())


# ------------------------------------------------------------------------------------------ report
def fmt(value, spec=".2e") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def paddleseg_cell(figures: Optional[dict]) -> str:
    if not figures:
        return "-"
    if "error" in figures:
        return f"**failed**: {figures['error']}"
    verdict = {True: "pass", False: "**FAIL**", None: "-"}[figures.get("pass")]
    cell = f"{fmt(figures['max_abs'])} / {fmt(figures.get('bound'))} / {verdict}"
    if figures.get("decisions"):
        d = figures["decisions"]
        cell += (f" (decision-aware: {fmt(d['max_abs_kept'])} off near-ties, {d['excused_share']:.2%} excused, "
                 f"{d['over_bound_excused']} px over bound excused)")
    if figures.get("per_step"):
        cell += " (frames: " + ", ".join(fmt(v) for v in figures["per_step"]) + ")"
    if "reset_gives_frame_0_again" in figures:
        cell += f"; after reset() frame 0 again: {fmt(figures['reset_gives_frame_0_again'])}"
    return cell


def artefact_row(record: dict, artefact: dict) -> str:
    path, parity = artefact["path"], artefact["parity"]
    recorded = f"{fmt(parity.get('max_abs'))} / {fmt(parity.get('bound'))}"
    recorded += "" if parity.get("within_bound") is not False else " **beyond**"
    if parity.get("runs_on_host") is False:
        recorded += " (twin's figures)"
    if parity.get("decisions"):
        recorded += f" ({fmt(parity['decisions'].get('max_abs_kept'))} off near-ties)"
    verify = (record.get("verify") or {}).get("artefacts", {}).get(path)
    matte = (record.get("matte") or {}).get(path)
    why = (verify or {}).get("reason") or ""
    verify_cell = "-" if verify is None else verify["status"] + (f" ({why.split(':')[0][:80]})" if why else "")
    matte_cell = "-" if matte is None else ("ok" if matte["exit"] == 0 and not matte.get("error")
                                            else f"**failed**: {matte.get('error')}")
    return (f"| {record['model']} | {path} | yes | {recorded} | "
            f"{paddleseg_cell((record.get('paddleseg') or {}).get(path))} | {verify_cell} | {matte_cell} |")


def markdown(report: dict) -> str:
    host = report["host"]
    runs = []
    for r in report["models"]:
        if r.get("run") and r["run"] not in runs:
            runs.append(r["run"])
    lines = [f"# Official PaddleSeg Matting zoo: acceptance at {report['size']}", "",
             "Runs (the `run` column numbers them):", ""]
    lines += [f"{i}. `{run['command']}` on {run['date']}, edgematte commit {run['commit']}"
              for i, run in enumerate(runs or [{"command": report["command"], "date": host["date"],
                                                "commit": host["edgematte_commit"]}], 1)]
    lines += ["", f"Host: {host['cpu']}, {host['cores']} cores, {host['threads']} threads per run; Python "
              f"{host['python']}. Seed-0 weights (tests/official_models.py).", "",
              "| model | run | size | result | convert (exit, s) | fp16 TFLite | reference vs PaddleSeg | verify | "
              "time: build / convert / PaddleSeg / verify / matte / total (s) | error |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        s = r["seconds"]
        convert = r.get("convert") or {}
        verify = r.get("verify") or {}
        error = r.get("error") or convert.get("error") or verify.get("error") or ""
        times = " / ".join(fmt(s.get(k), ".0f") for k in ("build", "convert", "paddleseg", "verify", "matte",
                                                           "total"))
        lines.append(f"| {r['model']} | {runs.index(r['run']) + 1 if r.get('run') in runs else 1} | {r['size']} | "
                     f"{'ok' if r['ok'] else '**FAIL**'} | "
                     f"{fmt(convert.get('exit'), 'd')}, {fmt(convert.get('seconds'), '.0f')} | "
                     f"{(r.get('fp16') or '-').split(':')[0]} | "
                     f"{paddleseg_cell((r.get('paddleseg') or {}).get('reference'))} | "
                     f"{fmt(verify.get('exit'), 'd')} | {times} | {error} |")
    lines += ["", "Per artefact. Parity vs reference: max abs / bound, as the conversion recorded it. vs PaddleSeg: "
              "max abs against PaddleSeg's own alpha / the artefact's bound / verdict (512x512 with "
              "--paddleseg-outputs only). Verify: `edgematte verify` status; matte: `edgematte matte` on the "
              f"bundled '{PHOTO}' photo with that artefact.", "",
              "| model | artefact | convert ok | parity vs reference | vs PaddleSeg npz | verify | matte |",
              "|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        if not r["artefacts"]:
            lines.append(f"| {r['model']} | - | **no** | - | - | - | - |")
        lines += [artefact_row(r, a) for a in r["artefacts"]]
    notes = [(r["model"], n) for r in report["models"] for n in (r.get("paddleseg") or {}).get("_notes", [])]
    notes += [(r["model"], f"fp16 {r['fp16']}") for r in report["models"] if (r.get("fp16") or "").startswith("s")]
    notes += [(r["model"], f"TFLite: {r['tflite_recovered']['onnx2tf']}; files made by "
               + ", ".join(f"{p}: {how}" for p, how in r["tflite_recovered"]["files"].items()))
              for r in report["models"] if r.get("tflite_recovered")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {model}: {note}" for model, note in notes]
    return "\n".join(lines) + "\n"


def merge_earlier(report: dict, earlier: Optional[dict]) -> dict:
    """``report`` with the rows of an ``earlier`` report at the same size for the models this run did not run
    (a run of a few models updates their rows and keeps the others), in :data:`MODELS` order. Each row says which
    run made it (``"run"``: command, date, commit; rows of an earlier report without one get that report's)."""
    if not earlier or earlier.get("size") != report["size"]:
        return report
    fallback = {"command": earlier.get("command"), "date": (earlier.get("host") or {}).get("date"),
                "commit": (earlier.get("host") or {}).get("edgematte_commit")}
    ran = {r["model"] for r in report["models"]}
    kept = [dict(r, run=r.get("run") or fallback) for r in earlier.get("models", []) if r.get("model") not in ran]
    order = {name: i for i, name in enumerate(MODELS)}
    models = sorted(report["models"] + kept, key=lambda r: order.get(r["model"], len(order)))
    return dict(report, models=models)


def read_earlier(results_dir: Path, size: str) -> Optional[dict]:
    """The results JSON of an earlier run at ``size`` in ``results_dir`` (None when there is none or it does not
    parse: it is then replaced)."""
    path = results_dir / f"official_acceptance_{size}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def write_results(report: dict, results_dir: Path) -> Tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / f"official_acceptance_{report['size']}"
    write_text_atomic(stem.with_suffix(".json"), json.dumps(report, indent=1, default=float) + "\n")
    write_text_atomic(stem.with_suffix(".md"), markdown(report))
    return stem.with_suffix(".json"), stem.with_suffix(".md")


# ------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Acceptance run for PaddleSeg's Matting zoo as PaddleSeg's own export writes it: per model, "
                    "rebuild the deploy folder (seed-0 weights), `edgematte convert` it (arm/x86 .nb, ONNX, "
                    "TFLite), check every host-runnable artefact against PaddleSeg's own output (512x512, "
                    "--paddleseg-outputs), run `edgematte verify` and `edgematte matte`. Writes "
                    "benchmarks/results/official_acceptance_HxW.{json,md}.",
        epilog="Exit status 1 if any model failed a step. Each model's work folder holds its logs (--keep).")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL",
                        help=f"models to run (default: all eight): {', '.join(MODELS)}")
    parser.add_argument("--size", type=parse_size, default=(512, 512), metavar="HxW",
                        help="input size (default 512x512); at 288x480 PP-HumanMatting runs at its own 384x640")
    parser.add_argument("--paddleseg-outputs", metavar="DIR", help=NPZ_HELP)
    parser.add_argument("--work", metavar="DIR", help="work folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each model's work folder (deploy folder, "
                                                            "conversion, logs)")
    parser.add_argument("--results", metavar="DIR", default=str(RESULTS),
                        help="where the .json and .md go (default: benchmarks/results)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.paddleseg_outputs and not Path(args.paddleseg_outputs).is_dir():
        raise SystemExit(f"--paddleseg-outputs {args.paddleseg_outputs}: not a folder")
    size = f"{args.size[0]}x{args.size[1]}"
    if args.paddleseg_outputs and tuple(args.size) != NPZ_SIZE:
        print(f"note: PaddleSeg's outputs are at 512x512 only; no comparison with them at {size}", flush=True)
    root = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edgematte_official_"))
    root.mkdir(parents=True, exist_ok=True)
    report = {"size": size, "command": shown_command(sys.argv[1:] if argv is None else argv),
              "host": host_facts(), "models": []}
    run = {"command": report["command"], "date": report["host"]["date"], "commit": report["host"]["edgematte_commit"]}
    earlier = read_earlier(Path(args.results), size)
    for index, name in enumerate(args.models, 1):
        hw = size_for(name, tuple(args.size))
        print(f"[{index}/{len(args.models)}] {name} at {hw[0]}x{hw[1]} (work {root / name})", flush=True)
        record = dict(run_model(name, hw, args, root), run=run)
        report["models"].append(record)
        print(f"    -> {'ok' if record['ok'] else 'FAIL'} in {record['seconds']['total']:.0f} s", flush=True)
        if not args.keep:
            shutil.rmtree(root / name, ignore_errors=True)
        # after each model, so an interrupted run keeps what it did (and the earlier rows of the other models)
        write_results(merge_earlier(report, earlier), Path(args.results))
    if not args.keep and not args.work:
        shutil.rmtree(root, ignore_errors=True)
    json_path, md_path = write_results(merge_earlier(report, earlier), Path(args.results))
    print(f"wrote {json_path} and {md_path}", flush=True)
    return 0 if all(r["ok"] for r in report["models"]) else 1


if __name__ == "__main__":
    sys.exit(main())
