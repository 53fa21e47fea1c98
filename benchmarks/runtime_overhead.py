"""Runtime overhead: pre/post-processing time against model time at 1920x1080, per profile, and the
frames/s of `edgematte matte` on a synthetic 10-second 720p clip. Side by side in one process.

    .venv/bin/python benchmarks/runtime_overhead.py OUT [--artefact model_fp32.tflite] [--runs 30] [--no-clip]

OUT is a conversion folder (`edgematte convert ... -o OUT`). Writes benchmarks/results/runtime_overhead.md:

- per profile at 1920x1080, through `Matter` (what a user gets): medians of pre, model and post;
- per profile and step: the median time of each edgematte.runtime.profiles function the step calls, found by wrapping
  those functions while the profile runs (what is left, e.g. a crop or a clamp, is "other");
- pre + post alone at other image sizes (small, portrait), with the model output of one real run;
- the 8-bit alpha and composite costs at 1920x1080 (what `edgematte matte` adds per frame).
"""

import argparse
import contextlib
import importlib
import os
import pkgutil
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from edgematte.runtime import profiles
from edgematte.runtime.bench_runner import machine_facts, synthetic_photo
from edgematte.runtime.matter import Matter

PROFILES = ("android", "fastdeploy", "paddleseg-android")
MAIN_SIZE = (1920, 1080)  # width, height
OTHER_SIZES = ((640, 480), (1080, 1920))
# The step functions the profiles call through the module (so wrapping the module's name reaches them).
STEP_FUNCTIONS = ("resize_uint8_fixed", "resize_opencv_linear", "normalize", "pad_bottom_right", "to_layout",
                  "alpha_plane", "stretch_to_uint8", "resize_float32_bilinear")
WARM_UP = 2


def median_ms(samples):
    return 1000 * float(np.median(samples))


@contextlib.contextmanager
def timed_step_functions(record):
    """Wrap profiles.STEP_FUNCTIONS so each call appends its seconds to ``record[name]``."""
    originals = {name: getattr(profiles, name) for name in STEP_FUNCTIONS}
    # The profiles package's modules call each function by the name they imported it under.
    modules = [profiles] + [importlib.import_module(f"{profiles.__name__}.{m.name}")
                            for m in pkgutil.iter_modules(profiles.__path__)]
    bound = [(module, name) for module in modules for name in STEP_FUNCTIONS
             if getattr(module, name, None) is originals[name]]

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                record[name].append(time.perf_counter() - start)
        return wrapper

    try:
        for module, name in bound:
            setattr(module, name, timed(name, originals[name]))
        yield
    finally:
        for module, name in bound:
            setattr(module, name, originals[name])


def step_ms(run, calls):
    """{function: median ms per call of ``run``, "other": the rest of ``run``} with the functions wrapped."""
    record, totals = defaultdict(list), []
    with timed_step_functions(record):
        for _ in range(calls):
            start = time.perf_counter()
            run()
            totals.append(time.perf_counter() - start)
    # A function may run several times in one call of ``run``: its seconds are summed per call.
    per_call = {name: np.asarray(times).reshape(calls, -1).sum(axis=1) for name, times in record.items()}
    per_call["other"] = np.asarray(totals) - sum(per_call.values())
    return {name: median_ms(seconds) for name, seconds in per_call.items()}


def profile_overhead(out, artefact, runs):
    """Per profile at MAIN_SIZE: (medians of pre/model/post ms, per-step ms of pre and of post, matter)."""
    photo = synthetic_photo(*MAIN_SIZE)
    results = {}
    for name in PROFILES:
        matter = Matter.from_manifest(out, artefact=artefact, threads=2, profile=name)
        samples = defaultdict(list)
        for i in range(runs + WARM_UP):
            matter(photo)
            if i >= WARM_UP:
                for key in ("pre_s", "model_s", "post_s"):
                    samples[key].append(matter.timings[key])
        tensor, state = matter.model_input(photo)
        output = matter.run_tensor(tensor)
        pre_steps = step_ms(lambda: matter.profile.preprocess(photo, matter.input_hw, layout=matter.layout), runs)
        post_steps = step_ms(lambda: matter.profile.postprocess(output, state), runs)
        results[name] = ({key: median_ms(values) for key, values in samples.items()}, pre_steps, post_steps, matter)
    return results


def time_ms(function, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return median_ms(samples)


def other_sizes(results, runs):
    """{(profile, (w, h)): (pre ms, post ms)} for OTHER_SIZES, with one real model output per size."""
    rows = {}
    for name, (_, _, _, matter) in results.items():
        for width, height in OTHER_SIZES:
            photo = synthetic_photo(width, height)
            tensor, state = matter.model_input(photo)
            output = matter.run_tensor(tensor)
            profile = matter.profile
            pre = time_ms(lambda: profile.preprocess(photo, matter.input_hw, layout=matter.layout), runs)
            post = time_ms(lambda: profile.postprocess(output, state), runs)
            rows[(name, (width, height))] = (pre, post)
    return rows


def matte_extras(matter, runs):
    """ms at MAIN_SIZE of the android profile's 8-bit alpha and composites (colour, image, blur)."""
    photo = synthetic_photo(*MAIN_SIZE)
    alpha = matter(photo)
    image = synthetic_photo(1280, 720)
    profile = matter.profile
    return {"alpha_to_uint8": time_ms(lambda: profile.alpha_to_uint8(alpha), runs),
            "composite over a colour": time_ms(lambda: profile.composite(photo, alpha, (0, 177, 64)), runs),
            "composite over a 1280x720 image": time_ms(lambda: profile.composite(photo, alpha, image), runs),
            "composite over blur": time_ms(lambda: profile.composite(photo, alpha, "blur"), runs)}


def clip_fps(out, artefact, seconds=10, fps=25):
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1280, 720))
        base = synthetic_photo(1280 + 2 * seconds * fps, 720)
        for i in range(seconds * fps):
            writer.write(cv2.cvtColor(np.ascontiguousarray(base[:, 2 * i:2 * i + 1280]), cv2.COLOR_RGB2BGR))
        writer.release()
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "edgematte.cli", "-q", "matte", str(clip), "--model", str(out),
                            "--artefact", artefact, "-o", str(Path(tmp) / "out")], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            raise SystemExit(f"matte failed: {r.stderr.strip()}")
        return seconds * fps, wall


def step_cell(steps):
    return ", ".join(f"{name} {ms:.2f}" for name, ms in steps.items())


def report(args, results, sizes, extras, clip, load_before):
    facts = machine_facts()
    width, height = MAIN_SIZE
    lines = [f"# Runtime overhead: {args.artefact} of {args.out}", "",
             f"Machine: {facts.get('cpu_model')} ({facts.get('cpu_count')} CPUs), Python {platform.python_version()}; "
             f"2 threads; medians of {args.runs} runs (after {WARM_UP} warm-up runs) on a synthetic "
             f"{width}x{height} photo; 1-minute load average just before the run {load_before:.1f} (other jobs "
             "on the 2 cores make every figure noisy).", "",
             "| profile | pre ms | model ms | post ms | (pre+post) / model |", "|---|---|---|---|---|"]
    for name, (main, _, _, _) in results.items():
        pre, model, post = main["pre_s"], main["model_s"], main["post_s"]
        lines.append(f"| {name} | {pre:.1f} | {model:.1f} | {post:.1f} | {(pre + post) / model:.0%} |")
    lines += ["", f"Per step at {width}x{height} (ms, medians of {args.runs} more pre/post calls with the "
                  "profile step functions timed; \"other\" = the rest: crops, clamps, state, timing):", "",
              "| profile | pre steps | post steps |", "|---|---|---|"]
    for name, (_, pre_steps, post_steps, _) in results.items():
        lines.append(f"| {name} | {step_cell(pre_steps)} | {step_cell(post_steps)} |")
    model = {name: main["model_s"] for name, (main, _, _, _) in results.items()}
    lines += ["", f"Pre + post at other sizes (ms; the ratio is to the {width}x{height} model time, the model "
                  "input being fixed):", "",
              "| profile | image | pre ms | post ms | (pre+post) / model |", "|---|---|---|---|---|"]
    for (name, (w, h)), (pre, post) in sizes.items():
        lines.append(f"| {name} | {w}x{h} | {pre:.1f} | {post:.1f} | {(pre + post) / model[name]:.0%} |")
    lines += ["", f"`edgematte matte` extras at {width}x{height}, android profile (ms): "
              + ", ".join(f"{name} {ms:.1f}" for name, ms in extras.items()) + "."]
    if clip is not None:
        frames, wall = clip
        lines += ["", f"`edgematte matte` on a synthetic 10 s 720p clip ({frames} frames, alpha video): "
                      f"{frames / wall:.1f} frames/s including start-up ({wall:.1f} s wall)."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--artefact", default="model_fp32.tflite")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-clip", action="store_true", help="skip the 720p clip (frames/s) run")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = profile_overhead(args.out, args.artefact, args.runs)
    sizes = other_sizes(results, args.runs)
    extras = matte_extras(results["android"][3], max(5, args.runs // 3))
    clip = None if args.no_clip else clip_fps(args.out, args.artefact)
    text = report(args, results, sizes, extras, clip, load_before)
    path = Path(__file__).parent / "results" / "runtime_overhead.md"
    path.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
