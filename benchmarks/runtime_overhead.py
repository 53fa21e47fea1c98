"""Runtime overhead: pre/post-processing time against model time at 1920x1080, per profile, and the
frames/s of `edgematte matte` on a synthetic 10-second 720p clip. Side by side in one process.

    .venv/bin/python benchmarks/runtime_overhead.py OUT [--artefact model_fp32.tflite] [--runs 20]

OUT is a conversion folder (`edgematte convert ... -o OUT`). Writes benchmarks/results/runtime_overhead.md.
"""

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgematte.bench.runner import machine_facts, synthetic_photo
from edgematte.runtime.matter import Matter

PROFILES = ("android", "fastdeploy", "paddleseg-android")


def median_ms(samples):
    return 1000 * float(np.median(samples))


def profile_overhead(out, artefact, runs):
    photo = synthetic_photo(1920, 1080)
    rows = []
    for name in PROFILES:
        matter = Matter.from_manifest(out, artefact=artefact, threads=2, profile=name)
        pre, model, post = [], [], []
        for i in range(runs + 2):
            matter(photo)
            if i >= 2:  # warm-up
                pre.append(matter.timings["pre_s"])
                model.append(matter.timings["model_s"])
                post.append(matter.timings["post_s"])
        rows.append((name, median_ms(pre), median_ms(model), median_ms(post)))
    return rows


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--artefact", default="model_fp32.tflite")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rows = profile_overhead(args.out, args.artefact, args.runs)
    frames, wall = clip_fps(args.out, args.artefact)
    facts = machine_facts()
    lines = [f"# Runtime overhead: {args.artefact} of {args.out}", "",
             f"Machine: {facts.get('cpu_model')} ({facts.get('cpu_count')} CPUs), Python {platform.python_version()}; "
             f"2 threads; medians of {args.runs} runs on a synthetic 1920x1080 photo.", "",
             "| profile | pre ms | model ms | post ms | (pre+post) / model |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {p:.1f} | {m:.1f} | {q:.1f} | {(p + q) / m:.0%} |" for n, p, m, q in rows]
    lines += ["", f"`edgematte matte` on a synthetic 10 s 720p clip ({frames} frames, alpha video): "
                  f"{frames / wall:.1f} frames/s including start-up ({wall:.1f} s wall).", ""]
    path = Path(__file__).parent / "results" / "runtime_overhead.md"
    path.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
