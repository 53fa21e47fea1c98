"""The host's compute peak, measured: fp32 FMA and int8 dot-product rates of every physical core at once.

Nothing here is derived from a clock or an assumed SIMD width: a small C probe (built with the host's C compiler,
one kernel per instruction set, chosen at run time from /proc/cpuinfo's flags) times independent chains of the
widest vector FMAs and int8 multiply-adds, alone and on every physical core at once; the stated peak is what all
cores did together. numpy's float32 matrix product (:func:`sgemm_ceiling`) is measured beside it, and
:func:`peak_problems` checks the two against each other. Used by ``compare_runtimes.py``.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

# Per kernel: the /proc/cpuinfo flags it needs and what one counted op is. Counting: fp32 FMA = 2 FLOP, one
# u8 x s8 multiply-add = 2 ops (the vpmaddwd by ones that widens maddubs' int16 pairs is not counted).
FP32_KERNELS = {
    "fma512": ({"avx512f"}, "vfmadd*ps, 512-bit (16 fp32 lanes)"),
    "fma256": ({"avx", "fma"}, "vfmadd*ps, 256-bit (8 fp32 lanes)"),
    "sse": ({"sse"}, "mulps + addps, 128-bit (4 fp32 lanes, no FMA)"),
}
INT8_KERNELS = {
    "vnni512": ({"avx512_vnni"}, "AVX-512 VNNI vpdpbusd, 512-bit (64 u8 x s8 multiply-adds)"),
    "avxvnni256": ({"avx_vnni"}, "AVX-VNNI vpdpbusd, 256-bit (32 u8 x s8 multiply-adds)"),
    "madd512": ({"avx512bw"}, "vpmaddubsw + vpmaddwd + vpaddd, 512-bit (64 u8 x s8 multiply-adds)"),
    "madd256": ({"avx2"}, "vpmaddubsw + vpmaddwd + vpaddd, 256-bit (32 u8 x s8 multiply-adds)"),
}
CHUNKS, CHUNK_MS = 40, 2.0  # per kernel: the best of 40 timings of ~2 ms: short, so that some fit in a time slice
SGEMM_N, SGEMM_REPEATS = 2048, 10
SGEMM_MARGIN = 0.10  # numpy's sgemm may beat the probe by timing noise only: beyond this share the probe is wrong

# Each kernel runs CHAINS independent dependency chains: an FMA's latency is 4-5 cycles on two pipes, so at least
# 10 chains must be in flight to keep both busy; 12 accumulators and 2 constants fit AVX2's 16 registers. (In the
# maddubs kernels only the add is chained, so a spilled accumulator there costs nothing.)
# Each x86 kernel carries its own target attribute, so one binary holds them all and the caller picks one by the
# CPU's flags (a kernel the CPU lacks would die with SIGILL). Timestamps are CLOCK_MONOTONIC, comparable across
# processes, so that the all-core run can keep only the timings during which every copy was running.
PEAK_PROBE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define X86 1
#if defined(__clang__) ? __clang_major__ >= 8 : __GNUC__ >= 9
#define HAVE_VNNI512 1
#endif
#if defined(__clang__) ? __clang_major__ >= 12 : __GNUC__ >= 11
#define HAVE_AVXVNNI 1
#endif
#endif
#define CHAINS 12  /* x0 .. x11 in KERNEL */
static volatile double sink;  /* every result lands here, so the compiler cannot drop the work */
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
/* CHAINS accumulators as plain variables (not an array), so that they stay in registers */
#define KERNEL(name, isa, type, setup, init, step, fold) __attribute__((target(isa))) \
static void name(long iters) { setup; \
    type x0 = init(0), x1 = init(1), x2 = init(2), x3 = init(3), x4 = init(4), x5 = init(5), \
         x6 = init(6), x7 = init(7), x8 = init(8), x9 = init(9), x10 = init(10), x11 = init(11); \
    for (long i = 0; i < iters; i++) { step(x0); step(x1); step(x2); step(x3); step(x4); step(x5); \
                                       step(x6); step(x7); step(x8); step(x9); step(x10); step(x11); } \
    sink += fold(x0) + fold(x1) + fold(x2) + fold(x3) + fold(x4) + fold(x5) + fold(x6) + fold(x7) + fold(x8) \
            + fold(x9) + fold(x10) + fold(x11); }
#ifdef X86
static void clock_chain(long iters) {  /* dependent imuls, 3 cycles each: a clock estimate, a note only */
    long x = 3;
    for (long i = 0; i < iters; i++)
        __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(x));
    sink += x;
}
#define F128_SETUP __m128 b = _mm_set1_ps(1.0000001f), c = _mm_set1_ps(1e-7f)
#define F256_SETUP __m256 b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f)
#define F512_SETUP __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f)
#define SSE_STEP(x) x = _mm_add_ps(_mm_mul_ps(x, b), c)  /* no FMA: a multiply and an add, 2 FLOP per lane */
#define F256_STEP(x) x = _mm256_fmadd_ps(x, b, c)
#define F512_STEP(x) x = _mm512_fmadd_ps(x, b, c)
#define F256_FOLD(x) _mm256_cvtss_f32(x)
KERNEL(sse, "sse2", __m128, F128_SETUP, _mm_set1_ps, SSE_STEP, _mm_cvtss_f32)
KERNEL(fma256, "avx,fma", __m256, F256_SETUP, _mm256_set1_ps, F256_STEP, F256_FOLD)
KERNEL(fma512, "avx512f", __m512, F512_SETUP, _mm512_set1_ps, F512_STEP, _mm512_reduce_add_ps)
/* maddubs' inputs do not depend on the chain: the empty asm makes b look new at every step, so that the compiler
   neither hoists nor shares the products (no instruction is emitted for it) */
#define M256_STEP(x) do { __asm__ volatile("" : "+x"(b)); \
    x = _mm256_add_epi32(x, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones)); } while (0)
#define M512_STEP(x) do { __asm__ volatile("" : "+v"(b)); \
    x = _mm512_add_epi32(x, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), ones)); } while (0)
#define I256_FOLD(x) _mm_cvtsi128_si32(_mm256_castsi256_si128(x))
#define I256_SETUP __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(5)
#define I512_SETUP __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5)
#define M256_SETUP I256_SETUP, ones = _mm256_set1_epi16(1)
#define M512_SETUP I512_SETUP, ones = _mm512_set1_epi16(1)
KERNEL(madd256, "avx2", __m256i, M256_SETUP, _mm256_set1_epi32, M256_STEP, I256_FOLD)
KERNEL(madd512, "avx512bw", __m512i, M512_SETUP, _mm512_set1_epi32, M512_STEP, _mm512_reduce_add_epi32)
#ifdef HAVE_VNNI512
#define V512_STEP(x) x = _mm512_dpbusd_epi32(x, a, b)
KERNEL(vnni512, "avx512f,avx512vnni", __m512i, I512_SETUP, _mm512_set1_epi32, V512_STEP,
       _mm512_reduce_add_epi32)
#endif
#ifdef HAVE_AVXVNNI
#define V256_STEP(x) x = _mm256_dpbusd_avx_epi32(x, a, b)
KERNEL(avxvnni256, "avx2,avxvnni", __m256i, I256_SETUP, _mm256_set1_epi32, V256_STEP, I256_FOLD)
#endif
#endif
struct kernel { const char *name; void (*run)(long); double ops; };  /* ops (FLOP, int8 ops, cycles) per iter */
static const struct kernel KERNELS[] = {
#ifdef X86
    {"clock", clock_chain, 12}, {"sse", sse, CHAINS * 4 * 2}, {"fma256", fma256, CHAINS * 8 * 2},
    {"fma512", fma512, CHAINS * 16 * 2}, {"madd256", madd256, CHAINS * 32 * 2}, {"madd512", madd512, CHAINS * 64 * 2},
#ifdef HAVE_VNNI512
    {"vnni512", vnni512, CHAINS * 64 * 2},
#endif
#ifdef HAVE_AVXVNNI
    {"avxvnni256", avxvnni256, CHAINS * 32 * 2},
#endif
#endif
    {NULL, NULL, 0}};
int main(int argc, char **argv) {
    const struct kernel *k = KERNELS;
    if (argc == 2 && !strcmp(argv[1], "list")) { for (; k->name; k++) puts(k->name); return 0; }
    if (argc != 5) { fprintf(stderr, "usage: probe list | probe KERNEL CHUNKS CHUNK_MS wait|go\n"); return 2; }
    while (k->name && strcmp(k->name, argv[1])) k++;
    if (!k->name) { fprintf(stderr, "no kernel %s in this build\n", argv[1]); return 3; }
    int chunks = atoi(argv[2]);
    double chunk_s = atof(argv[3]) / 1000, t;
    if (!strcmp(argv[4], "wait")) getchar();  /* the all-core run: every copy starts on the same line */
    long iters = 256;  /* doubled until a run takes 1 ms, then scaled to one chunk */
    for (;;) { double t0 = now(); k->run(iters); t = now() - t0; if (t > 1e-3) break; iters *= 2; }
    iters = (long)(iters * chunk_s / t) + 1;
    printf("kernel %s\nops %.0f\n", k->name, k->ops * iters);
    for (int r = 0; r < chunks; r++) { double t0 = now(); k->run(iters); printf("chunk %.9f %.9f\n", t0, now()); }
    printf("sink %g\n", sink);
    return 0;
}
"""


def cpu_facts() -> Dict[str, str]:
    """``lscpu`` fields plus ``cpu MHz`` and ``flags`` from /proc/cpuinfo (first CPU)."""
    facts = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            key, _, value = line.partition(":")
            facts[key.strip()] = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu MHz", "flags", "cpu family", "model", "vendor_id") and key not in facts:
                facts[key] = value.strip()
            if not line.strip():
                break
    return facts


def physical_cpus() -> List[int]:
    """One logical CPU per physical core this process may run on (SMT siblings share their core's FMA units)."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen, seen = [], set()
    for cpu in allowed:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            siblings = str(cpu)
        if siblings not in seen:
            seen.add(siblings)
            chosen.append(cpu)
    return chosen


def kernels_for(flags: Sequence[str], built: Sequence[str]) -> Dict[str, List[str]]:
    """The kernels to run on a CPU with these /proc/cpuinfo ``flags``, among those ``built`` into the probe:
    ``{"fp32": [...], "int8": [...]}``, widest first. "sse" only where no FMA kernel applies."""
    have = set(flags)
    fp32 = [name for name, (needs, _) in FP32_KERNELS.items() if needs <= have and name in built]
    if len(fp32) > 1 and "sse" in fp32:  # slower than any FMA kernel: not worth its run
        fp32.remove("sse")
    int8 = [name for name, (needs, _) in INT8_KERNELS.items() if needs <= have and name in built]
    return {"fp32": fp32, "int8": int8}


def parse_probe(stdout: str) -> dict:
    """One probe run's output: ``{"kernel": name, "ops": ops per chunk, "chunks": [(start, end) seconds]}``."""
    run = {"chunks": []}
    for line in stdout.splitlines():
        key, *values = line.split() or [""]
        if key == "kernel":
            run["kernel"] = values[0]
        elif key == "ops":
            run["ops"] = float(values[0])
        elif key == "chunk":
            run["chunks"].append((float(values[0]), float(values[1])))
    if "ops" not in run or not run["chunks"]:
        raise ValueError(f"not a probe run: {stdout[:200]!r}")
    return run


def best_rate(run: dict, window: Optional[tuple] = None) -> float:
    """Giga-ops per second of a run's fastest chunk (only chunks inside ``window``, (start, end) s, if any are)."""
    chunks = [c for c in run["chunks"] if window and window[0] <= c[0] and c[1] <= window[1]] or run["chunks"]
    return run["ops"] / min(end - start for start, end in chunks) / 1e9


def together_rates(runs: List[dict]) -> List[float]:
    """Per copy of an all-core run, its best rate (giga-ops/s) while every copy was running: a copy's chunks
    before the last copy started or after the first one stopped had a core less competing with them."""
    window = (max(r["chunks"][0][0] for r in runs), min(r["chunks"][-1][1] for r in runs))
    return [best_rate(r, window) for r in runs]


PROBE_ERRORS = (RuntimeError, ValueError, OSError, subprocess.SubprocessError)


def _run(binary: Path, kernel: str, cpus: List[int], chunks: int, chunk_ms: float) -> List[dict]:
    """``kernel`` run by one copy per CPU of ``cpus`` at once, each pinned to its CPU; their parsed outputs.
    Raises one of :data:`PROBE_ERRORS` when a copy fails (e.g. SIGILL: the flags promised an instruction)."""
    argv = [str(binary), kernel, str(chunks), str(chunk_ms), "wait"]
    procs = []
    try:
        for cpu in cpus:
            procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu})))
        for p in procs:  # every copy waits for this line, so that they start together
            p.stdin.write("\n")
            p.stdin.flush()
        runs = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"`{kernel}` exited {p.returncode}: {err.strip()[:200]}")
            runs.append(parse_probe(out))
        return runs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _measure(binary: Path, names: List[str], wanted: Dict[str, List[str]], cpus: List[int], chunks: int,
             chunk_ms: float) -> dict:
    """:func:`probe_peak`'s measurements with a built probe; a kernel that fails is left out, said in ``failed``."""
    result = {"cpus": cpus, "chunks": chunks, "chunk_ms": chunk_ms, "alone": {}, "fp32": None, "int8": None,
              "clock_ghz": None, "failed": {}}
    try:
        if "clock" in names:
            result["clock_ghz"] = best_rate(_run(binary, "clock", cpus[:1], chunks, chunk_ms)[0])
    except PROBE_ERRORS as e:
        result["failed"]["clock"] = str(e)
    for kind in ("fp32", "int8"):
        for kernel in wanted[kind]:
            try:
                result["alone"][kernel] = best_rate(_run(binary, kernel, cpus[:1], chunks, chunk_ms)[0])
            except PROBE_ERRORS as e:
                result["failed"][kernel] = str(e)
        ran = [kernel for kernel in wanted[kind] if kernel in result["alone"]]
        if not ran:
            continue
        kernel = max(ran, key=result["alone"].__getitem__)  # the fastest alone: the widest that pays here
        try:
            per_copy = together_rates(_run(binary, kernel, cpus, chunks, chunk_ms))
        except PROBE_ERRORS as e:
            result["failed"][f"{kernel} on all cores"] = str(e)
            continue
        result[kind] = {"kernel": kernel, "alone": result["alone"][kernel], "per_copy": per_copy,
                        "all_cores": sum(per_copy)}
    return result


def probe_peak(flags: Sequence[str], cpus: Optional[List[int]] = None, chunks: int = CHUNKS,
               chunk_ms: float = CHUNK_MS) -> dict:
    """Measured rates, GFLOP/s (fp32) and GOP/s (int8), of the probe kernels that apply to ``flags``.

    Every applicable kernel runs alone on one core (``alone``: {kernel: rate}); the fastest of each kind then
    runs on every CPU of ``cpus`` (default: one per physical core) at once (``fp32``/``int8``: kernel, alone,
    per_copy rates, all_cores = their sum; None where no kernel applies). ``clock_ghz``: an imul-chain estimate,
    a note only. ``error`` says why there is no fp32 figure (no C compiler, the build failed, no kernel ran).
    """
    cpus = cpus or physical_cpus()
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return {"error": "no C compiler (cc, gcc or clang) on this host", "cpus": cpus}
    with tempfile.TemporaryDirectory(prefix="peak-probe-") as tmp:
        source, binary = Path(tmp) / "probe.c", Path(tmp) / "probe"
        source.write_text(PEAK_PROBE_C)
        # no -march=native: each kernel's target attribute says what it may use, so the plain SSE one stays SSE
        built = subprocess.run([compiler, "-O3", "-o", str(binary), str(source)], capture_output=True, text=True)
        if built.returncode != 0:
            return {"error": f"the probe did not build with {compiler}: {built.stderr.strip()[:300]}", "cpus": cpus}
        try:
            names = subprocess.run([str(binary), "list"], capture_output=True, text=True, check=True).stdout.split()
        except PROBE_ERRORS as e:
            return {"error": f"the probe does not run: {e}", "cpus": cpus}
        result = dict(_measure(binary, names, kernels_for(flags, names), cpus, chunks, chunk_ms), compiler=compiler)
    failures = "; ".join(f"{kernel}: {why}" for kernel, why in result["failed"].items())
    if result["fp32"] is None:
        result["error"] = (f"no fp32 probe kernel ran ({failures})" if failures
                           else "no fp32 probe kernel applies to this CPU (not x86?)")
    return result


def sgemm_ceiling(n: int = SGEMM_N, repeats: int = SGEMM_REPEATS) -> float:
    """Measured GFLOP/s of numpy's float32 matrix product (its BLAS, all cores; best of ``repeats``): a practical
    ceiling."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times) / 1e9


def check_peak(stated: Optional[float], measured: Optional[float], what: str = "fp32 peak",
               unit: str = "GFLOP/s") -> Optional[str]:
    """A problem (text) when a ``stated`` peak exceeds the ``measured`` all-core rate (both in ``unit``), or is
    stated with nothing measured; None when it is fine."""
    if stated is None:
        return None
    if not measured:
        return f"{what}: {stated:.0f} {unit} stated, but nothing was measured"
    if stated > measured * (1 + 1e-9):
        return (f"{what}: {stated:.0f} {unit} stated, above the {measured:.0f} {unit} measured on all cores "
                f"({stated / measured:.1f}x): a peak must be measured, not assumed")
    return None


def check_sgemm(sgemm_gflops: Optional[float], fp32_gflops: Optional[float],
                margin: float = SGEMM_MARGIN) -> Optional[str]:
    """A problem (text) when numpy's sgemm (GFLOP/s) beats the measured all-core FMA rate (GFLOP/s) by more than
    ``margin``: no program can, so the probe undercounts; None when it is fine or either is missing."""
    if sgemm_gflops and fp32_gflops and sgemm_gflops > (1 + margin) * fp32_gflops:
        return (f"numpy's sgemm {sgemm_gflops:.0f} GFLOP/s exceeds the measured fp32 FMA peak {fp32_gflops:.0f} "
                f"GFLOP/s by {100 * (sgemm_gflops / fp32_gflops - 1):.0f}% (more than {margin:.0%}): the probe is "
                f"wrong, the % of peak figures are too high")
    return None


def host_peak(facts: Dict[str, str], probe: dict, sgemm_gflops: Optional[float] = None, sgemm_n: int = SGEMM_N,
              sgemm_repeats: int = SGEMM_REPEATS) -> dict:
    """The peak this host's report states: the probe's all-core fp32 rate (GFLOP/s) and int8 rate (GOP/s), None
    where not measured, beside numpy's sgemm (GFLOP/s, of ``sgemm_n`` squared matrices, best of ``sgemm_repeats``);
    ``problems`` from :func:`peak_problems`."""
    flags = set(facts.get("flags", "").split())
    threads_per_core = int(facts.get("Thread(s) per core") or 1)
    measured = "error" not in probe
    peak = {"physical_cores": len(probe.get("cpus") or []) or (os.cpu_count() or 1) // threads_per_core,
            "measured": measured, "probe": probe, "sgemm_gflops": sgemm_gflops, "sgemm_how": (sgemm_n, sgemm_repeats),
            "fp32_gflops": probe["fp32"]["all_cores"] if measured else None,
            "int8_gops": probe["int8"]["all_cores"] if measured and probe["int8"] else None,
            "clock_ghz": probe.get("clock_ghz"),
            "nominal_ghz": float(facts.get("CPU max MHz") or facts.get("cpu MHz") or 0) / 1000,
            "flags": sorted(flags & {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                     "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8"})}
    peak["problems"] = peak_problems(peak)
    return peak


def peak_problems(peak: dict) -> List[str]:
    """What is wrong with a :func:`host_peak` result: a stated peak above what the probe measured, or numpy's
    sgemm above the measured FMA peak."""
    probe = peak.get("probe") or {}
    fp32, int8 = probe.get("fp32") or {}, probe.get("int8") or {}
    problems = [check_peak(peak.get("fp32_gflops"), sum(fp32.get("per_copy", [])), "fp32 peak", "GFLOP/s"),
                check_peak(peak.get("int8_gops"), sum(int8.get("per_copy", [])), "int8 peak", "GOP/s"),
                check_sgemm(peak.get("sgemm_gflops"), sum(fp32.get("per_copy", [])))]
    return [p for p in problems if p]


def _rate_line(peak: dict, kind: str) -> str:
    """The report's line on the measured ``kind`` ("fp32" or "int8") peak: all cores, per core, alone, how."""
    probe, run = peak["probe"], peak["probe"][kind]
    kernels, unit = (FP32_KERNELS, "GFLOP/s") if kind == "fp32" else (INT8_KERNELS, "GOP/s")
    if run is None:
        failed = [k for k in probe.get("failed", {}) if k.split()[0] in kernels]
        return (f"- peak {kind}: NOT MEASURED, the probe failed ({', '.join(failed)}), so no % of peak for {kind} "
                f"entries" if failed else f"- peak {kind}: no {kind} probe applies on this CPU (no AVX2, AVX-512 BW "
                f"or VNNI), so no % of peak for {kind} entries")
    counted = ("2 ops per u8 x s8 multiply-add (int8 and dynamic-range entries are rated against it)"
               if kind == "int8" else "2 FLOP per FMA")
    others = [f"`{k}` {rate:.0f}" for k, rate in probe["alone"].items() if k in kernels and k != run["kernel"]]
    return (f"- peak {kind}, measured: {run['all_cores']:.0f} {unit} on all cores (per core: "
            + ", ".join(f"{rate:.0f}" for rate in run["per_copy"])
            + f"; one core alone {run['alone']:.0f}) with `{run['kernel']}`, {kernels[run['kernel']][1]}, {counted}; "
            f"best of {probe['chunks']} timings of ~{probe['chunk_ms']:g} ms, 12 independent chains, one copy pinned "
            f"to each of {len(probe['cpus'])} physical cores at once"
            + (f". Other kernels, one core alone: {', '.join(others)} {unit}" if others else ""))


def peak_lines(peak: dict) -> List[str]:
    """The report's markdown lines on the peak (:func:`host_peak`): what was measured and how, per core and on all
    cores, numpy's sgemm beside it, the clock as a note; a PROBLEM line for each fault :func:`peak_problems` finds."""
    probe, sgemm, fp32 = peak["probe"], peak.get("sgemm_gflops"), peak.get("fp32_gflops")
    if fp32 is None:
        lines = [f"- peak: NOT MEASURED ({probe.get('error', 'no probe ran')}), so no % of peak figures; none is "
                 f"assumed from a clock or a SIMD width"]
    else:
        lines = [_rate_line(peak, "fp32"), _rate_line(peak, "int8")]
    if sgemm:
        share = f" = {100 * sgemm / fp32:.0f}% of the measured fp32 peak" if fp32 else ""
        n, repeats = peak.get("sgemm_how", (SGEMM_N, SGEMM_REPEATS))
        lines.append(f"- measured ceiling: numpy float32 matrix product {n}x{n} (its BLAS, all cores) "
                     f"{sgemm:.0f} GFLOP/s (best of {repeats}){share}")
    clock = (f"~{peak['clock_ghz']:.2f} GHz from a dependent imul chain (3-cycle latency assumed); "
             if peak.get("clock_ghz") else "")
    lines.append(f"- clock, a note only (no figure is derived from it): {clock}/proc/cpuinfo says "
                 f"{peak['nominal_ghz']:.3f} GHz")
    if probe.get("failed"):
        lines.append("- probe kernels that failed: " + "; ".join(f"`{k}` {why}" for k, why in probe["failed"].items()))
    problems = peak_problems(peak)
    lines += [f"- PROBLEM: {problem}" for problem in problems]
    if problems:
        lines.append("- so the table's % of peak cells are left empty (-)")
    return lines
