"""What runs on a benchmark target: one artefact, one thread count, timings and memory as one JSON line.

Self-contained on purpose: it imports only ``edgematte.core`` and ``edgematte.runtime`` (plus numpy, OpenCV
and the artefact's runtime library), so the ``ssh`` and ``qemu`` bench targets ship just those two packages
to the board (:mod:`edgematte.device.runtime_code`).

    python -m edgematte.runtime.bench_runner --manifest OUT --artefact model_fp32.tflite --threads 2 \\
        --runs 20 --warmup 3 --size 1920x1080
"""

import argparse
import json
import os
import platform
import resource
import sys
import time
from typing import Optional

import numpy as np

from ..core.manifest import REFERENCE
from ..core.versions import RUNTIME, installed_versions

RESULT_PREFIX = "EDGEMATTE_BENCH "


def percentiles(samples) -> dict:
    """min / median / p90 / max (seconds) of a list of durations."""
    a = np.asarray(samples, dtype=np.float64)
    return {"min": float(a.min()), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "max": float(a.max()), "n": int(a.size)}


def synthetic_photo(width: int, height: int) -> np.ndarray:
    """A deterministic photo-like RGB uint8 image (smooth gradients + texture); content does not change timing."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(x / 97.0) * np.cos(y / 131.0)
    g = 127 + 100 * np.cos((x + y) / 173.0)
    b = 127 + 60 * np.sin(x / 23.0) + 40 * np.cos(y / 17.0)
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)


def machine_facts() -> dict:
    facts = {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version(),
             "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":")[0].strip().lower()
                if key in ("model name", "hardware", "cpu part") and "cpu_model" not in facts:
                    facts["cpu_model"] = line.split(":", 1)[1].strip()
                if key == "flags" and "avx512_vnni" in line:
                    facts["avx512_vnni"] = True
    except OSError:
        pass
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            facts["governor"] = f.read().strip()
    except OSError:
        facts["governor"] = None
    return facts


def library_versions() -> dict:
    """The installed runtime libraries (:data:`edgematte.core.versions.RUNTIME`) and their versions."""
    return {name: version for name, version in installed_versions(RUNTIME).items() if version is not None}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def open_matter(manifest_dir: str, artefact: str, threads: int):
    """A Matter for a manifest artefact, or for the Paddle reference model (``artefact == "reference"``)."""
    from .matter import Matter

    if artefact != REFERENCE:
        return Matter.from_manifest(manifest_dir, artefact=artefact, threads=threads)
    from ..core.errors import EdgematteError
    from ..core.manifest import read_manifest
    from .backends import open_backend
    from .model_io import FeedPlan
    from .profiles import profile_for_model

    manifest = read_manifest(manifest_dir)
    folder = manifest.reference_dir()
    if folder is None:
        raise EdgematteError(f"{manifest.origin}: the conversion kept no reference model")
    profile = (manifest.artefacts[0].profile if manifest.artefacts else None) or "android"
    backend = open_backend("paddle_inference", str(folder), threads=threads)
    return Matter(backend, profile_for_model(profile, manifest.model.transforms), layout="nchw",
                  input_hw=manifest.model.input_hw, plan=FeedPlan.for_artefact(manifest.model, backend, "nchw"))


def measure_states(matter, runs: int) -> Optional[dict]:
    """A recurrent model's state I/O per frame, or ``None`` for a model without states.

    ``bytes``: the states fed plus the states fetched each frame. ``copy_s``: the time to copy them in and out
    once each, as the runtimes' Python APIs do (LiteRT's ``set_tensor`` / ``get_tensor``, Paddle Lite's
    ``from_numpy`` / ``numpy``, ONNX Runtime's feeds and fetches: one copy each way). It is part of the model
    figure, measured alone here so it can be told apart; the backends expose no finer timing.
    """
    if not matter.recurrent:
        return None
    arrays = list(matter.states.values())
    targets = [np.empty_like(a) for a in arrays]
    seconds = []
    for _ in range(max(runs, 5)):
        t0 = time.perf_counter()
        for array, target in zip(arrays, targets):
            np.copyto(target, array)  # in: into the runtime's input buffer
            target.copy()  # out: a fresh array from its output buffer
        seconds.append(time.perf_counter() - t0)
    return {"count": len(arrays), "bytes": 2 * sum(a.nbytes for a in arrays), "copy_s": percentiles(seconds)}


def synthetic_inputs(matter, size):
    """(photo, trimap or None) of ``size``: the synthetic photo, and the synthetic trimap for a model that takes
    one (:func:`.trimap.synthetic_trimap`)."""
    from .trimap import synthetic_trimap

    photo = synthetic_photo(*size)
    trimap = synthetic_trimap(photo.shape[:2])[0, 0].astype(np.uint8) if matter.takes_trimap else None
    return photo, trimap


def model_call(matter, photo, trimap=None):
    """The zero-argument call that runs the model alone once on ``photo`` (and ``trimap``), as the timed runs do
    (a recurrent model carries its states from call to call)."""
    tensor, _ = matter.model_input(photo)
    trimap_in = matter.trimap_input(trimap, photo.shape[:2]) if trimap is not None else None
    return lambda: matter.run_tensor(tensor, trimap_in)


def measure(manifest_dir: str, artefact: str, threads: int, runs: int, warmup: int, size) -> dict:
    """Load time, first inference, model-only and end-to-end latencies, peak memory for one configuration.

    A recurrent model carries its states from run to run (the steady per-frame latency); a model that takes a
    trimap gets the synthetic one (:func:`.trimap.synthetic_trimap`)."""
    t0 = time.perf_counter()
    matter = open_matter(manifest_dir, artefact, threads)
    load_s = time.perf_counter() - t0
    photo, trimap = synthetic_inputs(matter, size)
    run_model = model_call(matter, photo, trimap)
    t0 = time.perf_counter()
    run_model()
    first_s = time.perf_counter() - t0
    for _ in range(warmup):
        run_model()
    model = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run_model()
        model.append(time.perf_counter() - t0)
    states = measure_states(matter, runs)
    e2e, pre, post = [], [], []
    for _ in range(max(3, runs // 2)):
        t0 = time.perf_counter()
        matter(photo, trimap)
        e2e.append(time.perf_counter() - t0)
        pre.append(matter.timings["pre_s"])
        post.append(matter.timings["post_s"])
    return {
        "artefact": artefact,
        "backend": matter.backend.name,
        "threads": threads,
        "threads_effective": matter.backend.threads_effective,
        "input_size": list(size),
        "load_s": load_s,
        "first_inference_s": first_s,
        "model_s": percentiles(model),
        "end_to_end_s": percentiles(e2e),
        "pre_s": percentiles(pre),
        "post_s": percentiles(post),
        "peak_rss_mb": peak_rss_mb(),
        **({"states": states} if states else {}),
        "versions": library_versions(),
        "machine": machine_facts(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--artefact", required=True, help=f"artefact path in the manifest, or '{REFERENCE}'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", default="1920x1080", help="end-to-end input image size WxH")
    parser.add_argument("--profile", action="store_true",
                        help="profile the model per op instead of timing it (edgematte.runtime.op_profile)")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    try:
        if args.profile:
            from .op_profile import profile_artefact

            result = profile_artefact(args.manifest, args.artefact, args.threads, args.runs, args.warmup,
                                      lambda matter: model_call(matter, *synthetic_inputs(matter, size)))
        else:
            result = measure(args.manifest, args.artefact, args.threads, args.runs, args.warmup, size)
    except Exception as e:  # reported as data: the caller keeps the other configurations
        result = {"artefact": args.artefact, "threads": args.threads,
                  "error": f"{type(e).__name__}: {e}".splitlines()[0]}
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    return 0 if "error" not in result else 3


if __name__ == "__main__":
    sys.exit(main())
