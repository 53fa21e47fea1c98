"""Every artefact of a conversion against the plain tools, in one process: speed ratios, alpha error, GFLOP/s.

The peers, all on the same frozen Paddle model (OUT/reference) as the artefacts:

- ONNX Runtime on the PLAIN paddle2onnx model (no adaptive-pool repair, no normalization, no onnxsim);
- Paddle Inference with the fixed config (oneDNN, the broken fusion pass deleted): the checked reference;
- Paddle Inference with a fresh ``Config``'s defaults (oneDNN with every fusion pass): fast, and wrong on
  PP-MattingV2 (docs/toolchain.md, trap 8).

Rounds are interleaved (each round runs every entry once, in an order rotated per round) so that load
from other jobs on the host hits every entry alike; rounds during which other processes used the CPUs
are counted and left out when enough quiet ones ran (``--rounds`` quiet ones wanted, ``--max-rounds``
at most); figures are medians. After each run the next entry starts only once this process's threads have gone
idle: ONNX Runtime's pool spin-waits about 30 ms after a run and OpenMP's up to its block time, and on two cores
that stole the CPUs from whatever ran next (the fp32 TFLite entry, always after ``model.onnx``, measured 67 ms
instead of 46 ms on an AMD Zen 5 host). How long each entry's threads stayed busy is reported.
Each entry's max abs alpha error against the reference is measured on the bundled sample photos, so "fast but
wrong" shows.
Achieved GFLOP/s = model FLOPs (``edgematte zoo info``, multiply+add = 2) / median latency, against
the host's MEASURED peak (``peak_probe.py``: a C probe's fp32 FMA rate, and for int8 entries its int8
dot-product rate, on every physical core at once; never clock x an assumed width), with numpy's sgemm beside it.

    .venv/bin/python benchmarks/compare_runtimes.py OUT [--rounds 15] [--warmup 2] [--threads 2]
    .venv/bin/python benchmarks/compare_runtimes.py --model humanmatting --size 1024 --work /work/runs/hm1024

With ``--model``, ``--work`` is converted first (seeded weights, ``--seed 0``) unless it already holds a
conversion of that model and size. Writes benchmarks/results/<model>[_w<width>]_<size>_runtimes.md
(or ``--report``).
"""

import argparse
import gc
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from edgematte.converter.onnx import run_paddle2onnx
from edgematte.core.manifest import Manifest, read_manifest
from edgematte.core.samples import SAMPLE_PHOTOS, sample_photo
from edgematte.runtime.backends import open_backend
from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend
from edgematte.runtime.bench_runner import (
    REFERENCE,
    library_versions,
    machine_facts,
    open_matter,
    peak_rss_mb,
    percentiles,
)
from edgematte.runtime.matter import Matter

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.full_resolution_tail import RunsUpToTheTail, without_full_resolution_tail  # noqa: E402
from benchmarks.peak_probe import (  # noqa: E402
    cpu_facts,
    host_peak,
    peak_lines,
    peak_problems,
    physical_cpus,
    probe_peak,
    sgemm_ceiling,
)

RESULTS = Path(__file__).parent / "results"
PLAIN_ORT = "ONNX Runtime, plain paddle2onnx model"
FIXED_PI = "Paddle Inference, fixed config (reference)"
DEFAULT_PI = "Paddle Inference, default config"
PEERS = (PLAIN_ORT, FIXED_PI, DEFAULT_PI)
LITE_X86_INT8_WHY = (" Why (docs/toolchain.md, Paddle Lite): the x86 int8 .nb runs int8<->fp32 `calib` ops around "
                     "its quantized ops and keeps six convolutions float; Paddle Lite's int8 kernels are built for "
                     "ARM, where its int8 pays.")
QUIET_SHARE = 0.10  # a timed round counts as quiet when other processes used less than this share of the CPUs
IDLE_WINDOW_S = 0.005  # this process counts as idle when its threads used under a tenth of such a window
IDLE_LIMIT_S = 1.0  # longest wait for idle threads; beyond it the next entry is timed anyway and the report says so
# entries whose arithmetic is 8-bit integer (dynamic: int8 weights and activations)
INT8_PRECISIONS = ("int8", "dynamic")


@dataclass
class Entry:
    """One runtime configuration in the comparison: an artefact of OUT or a peer, opened by ``opener``."""

    label: str
    runtime: str
    precision: str
    opener: Optional[Callable[[], Matter]] = None
    matter: Optional[Matter] = None
    error: Optional[str] = None
    tensors: List[np.ndarray] = field(default_factory=list)  # one model input per check photo, in its layout
    samples: List[float] = field(default_factory=list)  # timed runs, seconds
    busy_after: List[float] = field(default_factory=list)  # per timed run: seconds its threads ran on after it
    tail_of: Optional["Entry"] = None  # a TFLite artefact's copy without its full-resolution tail: that artefact
    tail_ops: List[str] = field(default_factory=list)  # the ops of that tail
    max_abs: Optional[float] = None
    mean_abs: Optional[float] = None

    def load(self) -> None:
        """Open the runtime (an error is recorded, not raised: the other entries still run)."""
        if self.error is None and self.matter is None:
            try:
                self.matter = self.opener()
                backend = self.matter.backend
                self.runtime = self.runtime or backend.name + (
                    "" if backend.threads_effective else " (threads ignored)")
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}".splitlines()[0]

    def unload(self) -> None:
        """Drop the runtime and its buffers (a 2048x2048 model holds gigabytes of activations)."""
        self.matter, self.tensors = None, []
        gc.collect()


def model_gflop(manifest: Manifest) -> Optional[float]:
    """GFLOP of one inference at the conversion's input size (``edgematte zoo info``), or None outside the zoo."""
    match = re.match(r"zoo:(\S+)(?:.*width=([\d.]+))?", manifest.model.origin or "")
    if not match:
        return None
    h, w = manifest.model.input_hw
    argv = [sys.executable, "-m", "edgematte.cli", "zoo", "info", match.group(1), "--width", match.group(2) or "1.0",
            "--input-size", str(h), str(w), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"zoo info failed: {done.stderr.strip()}")
    return float(json.loads(done.stdout)["gflop"])


# ------------------------------------------------------------------------------------------ the entries
def plain_onnx_entry(manifest: Manifest, fed_like: Callable, threads: int, workdir: Path) -> Entry:
    """ONNX Runtime on paddle2onnx's own output for OUT/reference; probed in a child process first because
    an unrepaired adaptive pool with more bins than input cells kills ONNX Runtime with SIGFPE."""
    entry = Entry(PLAIN_ORT, "onnxruntime", "fp32")
    path = workdir / "plain_paddle2onnx.onnx"
    try:
        run_paddle2onnx(manifest.reference_dir(), path)
    except Exception as e:
        entry.error = f"paddle2onnx: {e}"
        return entry
    probe = ("import sys, numpy as np; from edgematte.runtime.backends import open_backend; "
             "b = open_backend('onnxruntime', sys.argv[1], threads=1); "
             "b.run(np.zeros([d if d > 0 else 1 for d in b.inputs[0].shape], np.float32))")
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=3600)
    if done.returncode < 0:
        entry.error = f"ONNX Runtime dies with {signal.Signals(-done.returncode).name} on this model"
    elif done.returncode != 0:
        entry.error = "ONNX Runtime fails: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    else:
        entry.opener = lambda: fed_like(open_backend("onnxruntime", path, threads=threads))
    return entry


def list_entries(manifest: Manifest, threads: int, workdir: Path, only: Optional[List[str]]) -> List[Entry]:
    """The three peers, then every host-runnable artefact of the manifest (or those named in ``only``); none
    opened yet (:meth:`Entry.load`)."""
    out = str(manifest.dir)
    template = open_matter(out, REFERENCE, threads)  # how the reference is fed: profile, NCHW, input size
    profile, layout, input_hw = template.profile, template.layout, template.input_hw
    del template

    def fed_like_reference(backend) -> Matter:
        return Matter(backend, profile, layout=layout, input_hw=input_hw)

    model_dir = manifest.reference_dir()
    entries = [plain_onnx_entry(manifest, fed_like_reference, threads, workdir),
               Entry(FIXED_PI, "paddle_inference", "fp32", opener=lambda: open_matter(out, REFERENCE, threads)),
               Entry(DEFAULT_PI, "paddle_inference", "fp32",
                     opener=lambda: fed_like_reference(PaddleInferenceBackend(model_dir, threads=threads,
                                                                              paddle_defaults=True)))]
    for artefact in manifest.select(only, among=manifest.host_artefacts()):
        entries.append(Entry(artefact.path, "", artefact.precision,
                             opener=lambda path=artefact.path: open_matter(out, path, threads)))
    return entries


def tail_entries(entries: List[Entry], manifest: Manifest, threads: int, workdir: Path) -> List[Entry]:
    """For each ``.tflite`` artefact with a full-resolution tail (:mod:`benchmarks.full_resolution_tail`), an entry
    running its copy without that tail; timed in the same rounds, the difference is the tail's time."""
    tails = []
    for e in entries:
        if e.label.endswith(".tflite") and e.error is None:
            cut = workdir / f"{Path(e.label).stem}_without_tail.tflite"
            ops = without_full_resolution_tail(manifest.file(manifest.find(e.label)), cut)
            if ops:
                tails.append(Entry(f"{e.label} up to its full-resolution tail", "litert", e.precision,
                                   opener=lambda cut=cut: RunsUpToTheTail(cut, threads), tail_of=e, tail_ops=ops))
    return tails


# ------------------------------------------------------------------------------------------ measuring
def alpha_of(output: np.ndarray) -> np.ndarray:
    """The model's [1, 1, H, W] or [1, H, W, 1] output as float32 H x W."""
    return np.squeeze(np.asarray(output, dtype=np.float32))


def reference_alphas(entries: List[Entry], photos: List[np.ndarray]) -> List[np.ndarray]:
    """The fixed Paddle Inference reference's alpha (model size, float32 H x W) for each photo."""
    reference = next(e for e in entries if e.label == FIXED_PI)
    was_loaded = reference.matter is not None
    reference.load()
    if reference.error:
        raise SystemExit(f"the reference does not run: {reference.error}")
    alphas = [alpha_of(reference.matter.run_tensor(reference.matter.model_input(photo)[0])) for photo in photos]
    if not was_loaded:
        reference.unload()
    return alphas


def check_errors(entry: Entry, photos: List[np.ndarray], expected: List[np.ndarray]) -> None:
    """Max and mean abs alpha difference of a loaded entry from the reference's; keeps its model inputs."""
    entry.tensors = [entry.matter.model_input(photo)[0] for photo in photos]
    diffs = [np.abs(alpha_of(entry.matter.run_tensor(t)) - want) for t, want in zip(entry.tensors, expected)]
    entry.max_abs = float(max(d.max() for d in diffs))
    entry.mean_abs = float(np.mean([d.mean() for d in diffs]))


def busy_cpu_seconds() -> float:
    """CPU seconds all processes of the host have spent busy since boot (/proc/stat, every CPU summed)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


def wait_until_threads_idle(limit: float = IDLE_LIMIT_S, window: float = IDLE_WINDOW_S) -> float:
    """Wait until no thread of this process uses the CPUs (spin-waiting runtime pools); returns the seconds waited,
    ``limit`` when they were still busy then.

    Idle means: less than a tenth of ``window`` of CPU time (every thread, ``time.process_time``) used during one
    ``window`` of sleep. A runtime that returned from its run but whose workers spin on would otherwise be timed into
    the next entry's run.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        cpu0 = time.process_time()
        time.sleep(window)
        if time.process_time() - cpu0 < 0.1 * window:
            return time.perf_counter() - started - window
    return limit


def interleaved_rounds(entries: List[Entry], rounds: int, warmup: int, max_rounds: int, log) -> dict:
    """Timed rounds of every entry until ``rounds`` of them were quiet, or ``max_rounds`` ran; round r starts at
    entry r (mod n), after ``warmup`` untimed rounds.

    A round is quiet when other processes used less than :data:`QUIET_SHARE` of the host's CPUs during it.
    Every run is followed by :func:`wait_until_threads_idle`, outside the timed span. Each entry keeps the samples
    of the quiet rounds when there are ``rounds`` of them, else of all rounds (the same rounds for every entry, so
    ratios stay like for like). Returns what was done, for the report.
    """
    live = [e for e in entries if e.matter is not None]
    cpus = os.cpu_count() or 1
    timed: Dict[str, List[float]] = {e.label: [] for e in live}
    shares: List[float] = []
    r = 0
    while r < warmup or (sum(share < QUIET_SHARE for share in shares) < rounds and len(shares) < max_rounds):
        order = live[r % len(live):] + live[:r % len(live)]
        wall0, busy0, own0 = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
        for e in order:
            t0 = time.perf_counter()
            e.matter.run_tensor(e.tensors[0])
            elapsed = time.perf_counter() - t0
            busy_after = wait_until_threads_idle()
            if r >= warmup:
                timed[e.label].append(elapsed)
                e.busy_after.append(busy_after)
        others = (busy_cpu_seconds() - busy0) - (own_cpu_seconds() - own0)
        if r >= warmup:
            shares.append(max(0.0, others) / ((time.perf_counter() - wall0) * cpus))
            log(f"round {len(shares)} (others' CPU share {shares[-1]:.0%}): "
                + ", ".join(f"{e.label} {1000 * timed[e.label][-1]:.0f}" for e in live))
        r += 1
    quiet = [i for i, share in enumerate(shares) if share < QUIET_SHARE]
    used = quiet if len(quiet) >= rounds else list(range(len(shares)))
    for e in live:
        e.samples = [timed[e.label][i] for i in used]
        e.busy_after = [e.busy_after[i] for i in used]
    return {"rounds_run": len(shares), "quiet_rounds": len(quiet), "used": "quiet" if used is quiet else "all",
            "others_share_median": float(np.median(shares)) if shares else 0.0}


# ------------------------------------------------------------------------------------------ the report
def _ratio(peer: Optional[Entry], entry: Entry, medians: Dict[str, float]) -> str:
    if peer is None or peer.label not in medians or entry.label not in medians:
        return "-"
    return f"{medians[peer.label] / medians[entry.label]:.2f}x"


def findings(entries: List[Entry], medians: Dict[str, float], tolerance: float) -> List[str]:
    """Plain-language lines with the figures: plain tools against ours, the Paddle trap, int8 against fp32.

    ``tolerance``: the max abs alpha error up to which an entry counts as computing the reference's result.
    """
    by_label = {e.label: e for e in entries}
    lines = []
    plain, ours = by_label.get(PLAIN_ORT), next((e for e in entries if e.label.endswith(".onnx") and e.samples), None)
    if plain is not None and plain.error:
        lines.append(f"- ONNX Runtime cannot run the plain paddle2onnx model ({plain.error})"
                     + (f"; ours (`{ours.label}`) runs, max abs alpha error {ours.max_abs:.1e}." if ours else "."))
    elif plain is not None and ours is not None:
        lines.append(f"- ONNX Runtime, same runtime and thread count: our `{ours.label}` takes "
                     f"{medians[ours.label] / medians[PLAIN_ORT]:.2f}x the plain model's median time; alpha error "
                     f"{ours.max_abs:.1e} (ours) against {plain.max_abs:.1e} (plain paddle2onnx, no pool repair).")
    fixed, trap = by_label.get(FIXED_PI), by_label.get(DEFAULT_PI)
    if fixed and trap and trap.samples:
        lines.append(f"- Paddle Inference's default config: alpha error {trap.max_abs:.2e} (mean {trap.mean_abs:.1e}) "
                     f"against the fixed config, at {medians[FIXED_PI] / medians[DEFAULT_PI]:.2f}x its speed (the "
                     f"fix, one oneDNN fusion pass deleted, changes the median time by "
                     f"{100 * (medians[FIXED_PI] / medians[DEFAULT_PI] - 1):+.0f}%).")
    float_entries = [e for e in entries if e.samples and e.precision == "fp32" and e.label not in PEERS]
    for e in entries:
        if e.samples and e.precision in INT8_PRECISIONS:
            base = next((f for f in float_entries if f.runtime == e.runtime), None)
            if base:
                speedup = medians[base.label] / medians[e.label]
                lines.append(f"- {e.runtime}: `{e.label}` ({e.precision}) is {speedup:.2f}x as fast as `{base.label}` "
                             f"(fp32){'' if speedup > 1 else ': SLOWER than fp32'}; alpha error {e.max_abs:.2e}."
                             + (LITE_X86_INT8_WHY if speedup <= 1 and e.runtime.startswith("paddle_lite") else ""))
    exact = [e for e in entries if e.samples and e.max_abs is not None and e.max_abs <= tolerance]
    if exact:
        best = min(exact, key=lambda e: medians[e.label])
        lines.append(f"- fastest entry within {tolerance:.1e} of the reference (float noise: twice the reference's own "
                     f"difference from Paddle's plain CPU kernels, at least 1e-3): `{best.label}` ({best.runtime}), "
                     f"{1000 * medians[best.label]:.1f} ms.")
    return lines


def busy_after_lines(entries: List[Entry]) -> List[str]:
    """How long each entry's threads kept the CPUs after its runs (the next entry waited for them): what another
    multi-threaded computation started right after such a run would have to share the cores with."""
    timed = [e for e in entries if e.busy_after]
    if not timed:
        return []
    busy = [e for e in timed if np.median(e.busy_after) >= 0.002]
    line = ("- Threads busy after a run (median; the next entry was started only once they were idle, "
            "outside its timing): "
            + ("; ".join(f"`{e.label}` {1000 * np.median(e.busy_after):.0f} ms" for e in busy) if busy else "none")
            + ("; the others under 2 ms." if busy and len(busy) < len(timed) else "."))
    lines = [line]
    for e in timed:
        if max(e.busy_after) >= IDLE_LIMIT_S:
            lines.append(f"- `{e.label}`: its threads were still busy {IDLE_LIMIT_S:.0f} s after a run; the entry "
                         f"after it was timed while they ran, so its figures are too slow.")
    return lines


def tail_lines(tails: List[Entry]) -> List[str]:
    """The full-resolution tail's time and share for each TFLite artefact that has one: whole model against its
    copy without the tail, medians of the same rounds. Where the copy was no faster than the whole model in a
    quarter of the rounds or more (paired by round), the difference is noise, not the tail: said so, no share."""
    timed = [t for t in tails if t.samples and t.tail_of.samples]
    if not timed:
        return []
    lines = ["", "## The full-resolution tail (TFLite artefacts)", "",
             "The trailing ops that work at the photo's resolution (`benchmarks/full_resolution_tail.py`), timed by "
             "difference: each artefact against a copy of it that stops before them, in the same interleaved rounds "
             "(LiteRT's Python API has no per-op profiler). The tail's time includes fetching the alpha. Paired: the "
             "quartiles of the per-round differences.", "",
             "| artefact | tail ops | model ms | without the tail ms | tail ms | paired, quartiles | tail's share |",
             "|---|---|---|---|---|---|---|"]
    for t in timed:
        whole, cut = float(np.median(t.tail_of.samples)), float(np.median(t.samples))
        low, high = np.percentile(np.array(t.tail_of.samples) - np.array(t.samples), [25, 75])
        share = (f"{100 * (whole - cut) / whole:.0f}%" if low > 0 else
                 "not resolved: the copy was no faster in a quarter of the rounds or more (more --rounds, a quieter "
                 "host)")
        lines.append(f"| {t.tail_of.label} | {' '.join(t.tail_ops)} | {1000 * whole:.1f} | {1000 * cut:.1f} | "
                     f"{1000 * (whole - cut):.1f} | {1000 * low:.1f} to {1000 * high:.1f} | {share} |")
    return lines


def timing_text(timing: List[tuple], wanted: int) -> str:
    """How the rounds went: interleaved (one group) or one entry at a time, quiet rounds used or not."""
    def how(t):
        return (f"{t['rounds_run']} timed rounds, {t['quiet_rounds']} quiet (median share of other processes "
                f"{t['others_share_median']:.0%}), figures from "
                + ("the quiet ones" if t["used"] == "quiet"
                   else f"ALL (fewer than {wanted} quiet: other jobs slowed them)"))

    quiet = f"A round is quiet when other processes used less than {QUIET_SHARE:.0%} of the CPUs during it."
    if len(timing) == 1:
        return f"Every entry loaded at once, interleaved rounds: {how(timing[0][1])}. {quiet}"
    return (f"One entry at a time (`--one-at-a-time`: the models do not fit in memory together), so other jobs' "
            f"load can differ between entries. {quiet} Timed rounds per entry (run / quiet / figures from): "
            + "; ".join(f"{group[0].label} {t['rounds_run']} / {t['quiet_rounds']} / {t['used']}"
                        for group, t in timing)
            + ".")


def report(manifest: Manifest, entries: List[Entry], args, gflop: Optional[float], peak: dict, facts: Dict[str, str],
           seconds: float, timing: List[tuple], tails: List[Entry] = ()) -> str:
    """The markdown report. ``peak``: :func:`host_peak` (measured GFLOP/s and GOP/s, None where not measured; the
    "% of peak" cells are "-" then, and also when :func:`peak_problems` finds the stated peak above the measured
    rate or sgemm above it); ``gflop``: the model's GFLOP per inference; ``seconds``: the run's duration; ``tails``:
    :func:`tail_entries`, timed."""
    model = manifest.model
    shape = model.input_shape
    stats = {e.label: percentiles(e.samples) for e in entries if e.samples}
    medians = {label: s["median"] for label, s in stats.items()}
    peers = {e.label: e for e in entries if e.label in PEERS}
    trusted = not peak_problems(peak)  # a peak the checks reject rates nothing: "-" in "% of peak"
    versions = library_versions()
    m = machine_facts()
    lines = [
        f"# Runtimes compared: {model.name} {shape[2]}x{shape[3]} ({model.origin})", "",
        f"Written by `benchmarks/compare_runtimes.py {args.out}` (rounds {args.rounds}, warmup {args.warmup}, "
        f"threads {args.threads}{', --one-at-a-time' if args.one_at_a_time else ''}) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{seconds / 60:.1f} min, peak RSS {peak_rss_mb():.0f} MB.", "",
        timing_text(timing, args.rounds), "",
        "## Machine", "",
        f"- CPU: {facts.get('Model name', m.get('cpu_model'))} (vendor {facts.get('vendor_id')}, family "
        f"{facts.get('cpu family')} model {facts.get('model')}), {peak['physical_cores']} cores x "
        f"{facts.get('Thread(s) per core', '?')} thread, {facts.get('Hypervisor vendor', 'no')} hypervisor, "
        f"governor {m.get('governor')}",
        f"- caches L1d {facts.get('L1d cache')}, L2 {facts.get('L2 cache')}, "
        f"L3 {facts.get('L3 cache')}",
        f"- SIMD flags: {', '.join(peak['flags'])}",
        f"- Python {platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "## Latency, ratios and alpha error", "",
        f"One {shape[2]}x{shape[3]} input (the sample photo '{SAMPLE_PHOTOS[0][0]}' through the artefact's profile), "
        f"model only (no pre/post), {args.threads} threads. Ratio = peer median / entry median: above 1 the entry "
        f"is faster. Alpha error: max (mean) abs difference from the fixed Paddle Inference reference over "
        f"{args.check_photos} sample photos; alpha is in [0, 1].", "",
        "| entry | runtime | precision | median ms | min | p90 | vs ORT plain | vs PI fixed | vs PI default | "
        "max abs alpha error | mean abs | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        if e.error:
            lines.append(f"| {e.label} | {e.runtime} | {e.precision} | failed: {e.error} |" + " |" * 9)
            continue
        s = stats[e.label]
        achieved = gflop / s["median"] if gflop else None
        ceiling = trusted and (peak["int8_gops"] if e.precision in INT8_PRECISIONS else peak["fp32_gflops"])
        lines.append(
            f"| {e.label} | {e.runtime} | {e.precision} | {1000 * s['median']:.1f} | {1000 * s['min']:.1f} | "
            f"{1000 * s['p90']:.1f} | {_ratio(peers.get(PLAIN_ORT), e, medians)} | "
            f"{_ratio(peers.get(FIXED_PI), e, medians)} | {_ratio(peers.get(DEFAULT_PI), e, medians)} | "
            f"{e.max_abs:.2e} | {e.mean_abs:.1e} | {'-' if achieved is None else f'{achieved:.1f}'} | "
            f"{'-' if achieved is None or not ceiling else f'{100 * achieved / ceiling:.0f}%'} |")
    reference_noise = manifest.reference.noise
    lines += ["", "## Findings", ""] + findings(entries, medians, max(1e-3, 2 * reference_noise))
    lines += busy_after_lines(entries)
    lines += tail_lines(tails)
    lines += ["", "## Compute efficiency", ""]
    if gflop:
        lines.append(f"- model: {gflop:.2f} GFLOP per inference at {shape[2]}x{shape[3]} (`edgematte zoo info`: "
                     f"paddle.flops multiply-accumulates x 2)")
    else:
        lines.append("- model FLOPs unknown (not a zoo model): no GFLOP/s figures")
    lines += peak_lines(peak)  # measured figures, and a PROBLEM line for a stated peak above them
    return "\n".join(lines) + "\n"


def resolve_conversion(args) -> Path:
    """OUT as given, or ``--work`` converted from ``--model`` at ``--size`` (seeded) unless already there."""
    if args.out:
        return Path(args.out)
    work = Path(args.work)
    if (work / "manifest.json").is_file():
        shape = read_manifest(work).model.input_shape
        if shape[2:] == [args.size, args.size]:
            return work
        raise SystemExit(f"{work}: holds a {shape[2]}x{shape[3]} conversion, not {args.size}x{args.size}")
    argv = [sys.executable, "-m", "edgematte.cli", "convert", args.model, "--seed", "0", "--input-shape", "1", "3",
            str(args.size), str(args.size), "-o", str(work)] + (["--int8"] if args.int8 else [])
    print("converting:", " ".join(argv[2:]), flush=True)
    if subprocess.run(argv).returncode != 0:
        raise SystemExit("conversion failed")
    return work


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="a conversion folder (edgematte convert ... -o OUT)")
    parser.add_argument("--model", help="instead of OUT: convert this zoo model (seed 0) into --work first")
    parser.add_argument("--size", type=int, help="with --model: square input size (e.g. 512, 2048)")
    parser.add_argument("--work", help="with --model: the conversion folder to write or reuse")
    parser.add_argument("--int8", action="store_true", help="with --model: also build the INT8 artefacts")
    parser.add_argument("--rounds", type=int, default=15, help="quiet timed rounds wanted (each runs every entry once)")
    parser.add_argument("--max-rounds", type=int, default=None,
                        help="stop after this many timed rounds (default 3x --rounds)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per entry first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="load, check and time one entry at a time (when the models do not fit in memory together, "
                             "e.g. PP-HumanMatting at 2048x2048: up to 7.5 GB each); not interleaved then")
    parser.add_argument("--check-photos", type=int, default=2, help="sample photos for the alpha error (1..6)")
    parser.add_argument("--artefacts", help="comma-separated artefact paths (default: every host-runnable one)")
    parser.add_argument("--report",
                        help="markdown file to write (default: benchmarks/results/<model>_<size>_runtimes.md)")
    args = parser.parse_args(argv)
    if bool(args.out) == bool(args.model) or (args.model and not (args.size and args.work)):
        parser.error("give OUT, or --model with --size and --work")
    started = time.perf_counter()
    out = resolve_conversion(args)
    args.out = str(out)
    manifest = read_manifest(out)
    facts = cpu_facts()
    probe = probe_peak(facts.get("flags", "").split(), physical_cpus())
    peak = host_peak(facts, probe, sgemm_ceiling())
    for problem in peak["problems"]:
        print(f"PEAK PROBLEM: {problem}", file=sys.stderr, flush=True)
    gflop = model_gflop(manifest)
    photos = [sample_photo(name) for name, _ in SAMPLE_PHOTOS[:max(1, args.check_photos)]]
    max_rounds = args.max_rounds or 3 * args.rounds
    with tempfile.TemporaryDirectory(prefix="compare-runtimes-") as tmp:
        entries = list_entries(manifest, args.threads, Path(tmp),
                               [a.strip() for a in args.artefacts.split(",")] if args.artefacts else None)
        expected = reference_alphas(entries, photos)
        tails = tail_entries(entries, manifest, args.threads, Path(tmp))
        # interleaved: every entry loaded at once, one run of each per round; one at a time: load, time, unload
        # (an artefact together with its copy without the full-resolution tail)
        groups = ([[e] + [t for t in tails if t.tail_of is e] for e in entries] if args.one_at_a_time
                  else [entries + tails])
        timing = []
        for group in groups:
            for e in group:
                e.load()
                print(f"{e.label}: {'failed: ' + e.error if e.error else 'loaded'}", flush=True)
            live = [e for e in group if e.matter is not None and (e.tail_of is None or e.tail_of.matter is not None)]
            for e in live:
                if e.tail_of is None:
                    check_errors(e, photos, expected)
            for e in live:
                if e.tail_of is not None:
                    e.tensors = e.tail_of.tensors  # fed what the artefact is fed
            if live:
                timing.append((live, interleaved_rounds(live, args.rounds, args.warmup, max_rounds,
                                                        lambda line: print(line, flush=True))))
            for e in live:
                e.unload()
    text = report(manifest, entries, args, gflop, peak, facts, time.perf_counter() - started, timing, tails)
    model = manifest.model
    width = re.search(r"width=([\d.]+)", model.origin or "")
    tag = f"_w{width.group(1)}" if width and float(width.group(1)) != 1.0 else ""
    path = Path(args.report) if args.report else RESULTS / f"{model.name}{tag}_{model.input_shape[2]}_runtimes.md"
    path.write_text(text)
    print(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
