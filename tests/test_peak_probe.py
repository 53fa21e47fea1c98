"""The host peak compare_runtimes.py states is measured, never clock x an assumed SIMD width (issue #19).

Unit tests feed the parsing and the sanity rules injected numbers, among them the figures of the Intel Xeon run
that stated 2.9 TFLOP/s from a 22.6 GHz "clock" while its own FMA probe measured 233 GFLOP/s per core. One real
run of the probe on this host (a few seconds) checks the measured rates against physical bounds and numpy's sgemm.
"""

import shutil
from types import SimpleNamespace

import pytest

from .conftest import load_benchmark

# What any x86 core can do at most: two 512-bit FMA units (16 fp32 lanes, 2 FLOP each) or two 512-bit vpdpbusd
# pipes (64 u8 x s8 multiply-adds, 2 ops each) per cycle, at no more than 6 GHz.
MAX_FP32_GFLOPS_PER_CORE = 2 * 16 * 2 * 6.0
MAX_INT8_GOPS_PER_CORE = 2 * 64 * 2 * 6.0


peak_probe = load_benchmark("peak_probe")

SAPPHIRE_RAPIDS_FLAGS = ("fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw "
                         "avx512vl avx_vnni avx512_bf16 avx512_vnni avx512_fp16 amx_tile amx_int8").split()
HASWELL_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2".split()
ALL_BUILT = ["clock", "sse", "fma256", "fma512", "madd256", "madd512", "vnni512", "avxvnni256"]


def fake_probe(fp32_per_copy=(233.0, 233.0), int8_per_copy=(900.0, 900.0), clock_ghz=22.6) -> dict:
    """A probe_peak result with injected rates (GFLOP/s, GOP/s): the Intel Xeon run of issue #19 by default."""
    return {"compiler": "cc", "cpus": [0, 1], "chunks": 40, "chunk_ms": 2.0, "clock_ghz": clock_ghz, "failed": {},
            "alone": {"fma512": fp32_per_copy[0], "fma256": fp32_per_copy[0] / 2,
                      **({"vnni512": int8_per_copy[0], "madd512": int8_per_copy[0] / 3} if int8_per_copy else {})},
            "fp32": {"kernel": "fma512", "alone": fp32_per_copy[0], "per_copy": list(fp32_per_copy),
                     "all_cores": sum(fp32_per_copy)},
            "int8": {"kernel": "vnni512", "alone": int8_per_copy[0], "per_copy": list(int8_per_copy),
                     "all_cores": sum(int8_per_copy)} if int8_per_copy else None}


FACTS = {"flags": " ".join(SAPPHIRE_RAPIDS_FLAGS), "cpu MHz": "2000.000", "Thread(s) per core": "1"}


# ------------------------------------------------------------------------------------------ parsing
def test_parse_probe_reads_ops_per_chunk_and_the_timings():
    out = "kernel fma512\nops 384000000\nchunk 10.000 10.002\nchunk 10.002 10.0035\nchunk 10.0035 10.006\nsink 1\n"
    run = peak_probe.parse_probe(out)
    assert run["kernel"] == "fma512" and run["ops"] == 384e6 and len(run["chunks"]) == 3
    # the fastest chunk: 384e6 ops in 1.5 ms = 256 giga-ops/s
    assert peak_probe.best_rate(run) == pytest.approx(256.0)
    with pytest.raises(ValueError):
        peak_probe.parse_probe("no kernel fma512 in this build\n")


def test_all_core_rates_count_only_timings_while_every_copy_ran():
    # copy 0 ran a fast chunk before copy 1 started (a core less busy): it must not count
    early = {"ops": 1e9, "chunks": [(0.0, 0.004), (0.010, 0.018), (0.018, 0.026)]}
    late = {"ops": 1e9, "chunks": [(0.009, 0.017), (0.017, 0.025), (0.025, 0.034)]}
    assert peak_probe.together_rates([early, late]) == pytest.approx([125.0, 125.0])


def test_kernels_are_chosen_by_the_cpuinfo_flags_and_the_build():
    assert peak_probe.kernels_for(SAPPHIRE_RAPIDS_FLAGS, ALL_BUILT) == {
        "fp32": ["fma512", "fma256"], "int8": ["vnni512", "avxvnni256", "madd512", "madd256"]}
    assert peak_probe.kernels_for(HASWELL_FLAGS, ALL_BUILT) == {"fp32": ["fma256"], "int8": ["madd256"]}
    assert peak_probe.kernels_for(["sse", "sse2"], ALL_BUILT) == {"fp32": ["sse"], "int8": []}
    # a compiler too old for AVX-VNNI leaves that kernel out of the build: it is not asked for
    older = [k for k in ALL_BUILT if k != "avxvnni256"]
    assert peak_probe.kernels_for(SAPPHIRE_RAPIDS_FLAGS, older)["int8"] == ["vnni512", "madd512", "madd256"]
    assert peak_probe.kernels_for(SAPPHIRE_RAPIDS_FLAGS, []) == {"fp32": [], "int8": []}  # not x86: nothing built


# ------------------------------------------------------------------------------------------ the sanity rules
def test_a_stated_peak_above_the_measured_rate_fails():
    old_formula = 2 * 2 * 16 * 2 * 22.6  # cores x FMA units x lanes x 2 x the 22.6 GHz "clock": 2893 GFLOP/s
    problem = peak_probe.check_peak(old_formula, 466.0)
    assert problem and "2893" in problem and "466" in problem and "6.2x" in problem
    assert peak_probe.check_peak(466.0, 466.0) is None  # the measured rate itself
    assert peak_probe.check_peak(300.0, 466.0) is None
    assert "nothing was measured" in peak_probe.check_peak(466.0, None)
    assert peak_probe.check_peak(None, 466.0) is None  # no peak stated: nothing to check


def test_sgemm_above_the_measured_fma_peak_by_more_than_ten_percent_means_the_probe_is_wrong():
    problem = peak_probe.check_sgemm(600.0, 466.0)
    assert problem and "the probe is wrong" in problem and "29%" in problem
    assert peak_probe.check_sgemm(1.09 * 466.0, 466.0) is None  # within the 10 % of timing noise
    assert peak_probe.check_sgemm(380.0, 466.0) is None
    assert peak_probe.check_sgemm(380.0, None) is None and peak_probe.check_sgemm(None, 466.0) is None


def test_the_stated_peak_is_the_measured_all_core_rate_whatever_the_clock():
    for clock in (22.6, 3.6, None):
        peak = peak_probe.host_peak(FACTS, fake_probe(clock_ghz=clock), sgemm_gflops=380.0)
        assert peak["fp32_gflops"] == 466.0 and peak["int8_gops"] == 1800.0
        assert peak["physical_cores"] == 2 and peak["problems"] == []
    text = "\n".join(peak_probe.peak_lines(peak))
    assert "peak fp32, measured: 466 GFLOP/s on all cores (per core: 233, 233; one core alone 233)" in text
    assert "peak int8, measured: 1800 GOP/s on all cores" in text and "vpdpbusd" in text
    assert "380 GFLOP/s (best of 10) = 82% of the measured fp32 peak" in text
    assert "PROBLEM" not in text


def test_a_wrong_too_high_stated_peak_is_reported_as_a_problem_and_rates_nothing():
    compare = load_benchmark("compare_runtimes")
    peak = peak_probe.host_peak(FACTS, fake_probe(), sgemm_gflops=380.0)
    assert "| 67% |" in _report(compare, peak)  # 10 GFLOP in 32 ms = 312 GFLOP/s of the measured 466
    peak["fp32_gflops"] = 2893.0  # what clock x assumed width said
    text = _report(compare, peak)
    assert "- PROBLEM: fp32 peak: 2893 GFLOP/s stated, above the 466 GFLOP/s measured on all cores" in text
    assert _row(text, "model.onnx")[-1] == "-"


def test_sgemm_beating_the_probe_is_reported():
    peak = peak_probe.host_peak(FACTS, fake_probe(fp32_per_copy=(100.0, 100.0)), sgemm_gflops=380.0)
    assert len(peak["problems"]) == 1 and "the probe is wrong" in peak["problems"][0]
    assert any(line.startswith("- PROBLEM: numpy's sgemm 380") for line in peak_probe.peak_lines(peak))


def test_without_a_c_compiler_the_peak_is_not_measured_and_no_percentage_is_shown(monkeypatch):
    monkeypatch.setattr(peak_probe.shutil, "which", lambda name: None)
    probe = peak_probe.probe_peak(SAPPHIRE_RAPIDS_FLAGS, cpus=[0])
    assert "no C compiler" in probe["error"]
    monkeypatch.undo()
    peak = peak_probe.host_peak(FACTS, probe, sgemm_gflops=380.0)
    assert peak["fp32_gflops"] is None and peak["int8_gops"] is None and peak["problems"] == []
    text = _report(load_benchmark("compare_runtimes"), peak)
    assert "- peak: NOT MEASURED (no C compiler" in text and "none is assumed from a clock" in text
    assert _row(text, "model.onnx")[-1] == "-" and _row(text, "model_int8.tflite")[-1] == "-"


def test_no_int8_probe_is_said_plainly():
    peak = peak_probe.host_peak(FACTS, fake_probe(int8_per_copy=()), sgemm_gflops=None)
    assert peak["int8_gops"] is None
    assert any("no int8 probe applies on this CPU" in line for line in peak_probe.peak_lines(peak))


def _report(compare, peak: dict) -> str:
    """compare_runtimes' report for two entries timed at 32 ms, a 10-GFLOP model, and ``peak``."""
    entries = [compare.Entry("model.onnx", "onnxruntime", "fp32", samples=[0.032], max_abs=0.0, mean_abs=0.0),
               compare.Entry("model_int8.tflite", "litert", "int8", samples=[0.016], max_abs=1e-2, mean_abs=1e-3)]
    model = SimpleNamespace(name="ppmattingv2", input_shape=[1, 3, 256, 320], origin="zoo:ppmattingv2")
    manifest = SimpleNamespace(model=model, reference=SimpleNamespace(noise=1e-6))
    args = SimpleNamespace(out="OUT", rounds=1, warmup=0, threads=2, one_at_a_time=False, check_photos=1)
    timing = [(entries, {"rounds_run": 1, "quiet_rounds": 1, "used": "quiet", "others_share_median": 0.0})]
    return compare.report(manifest, entries, args, 10.0, peak, FACTS, 60.0, timing)


def _row(markdown: str, label: str) -> list:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


# ------------------------------------------------------------------------------------------ a real run here
@pytest.fixture(scope="module")
def measured():
    """The probe and numpy's sgemm on this host: (facts, probe, sgemm GFLOP/s)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None and shutil.which("clang") is None:
        pytest.skip("no C compiler on this host")
    facts = peak_probe.cpu_facts()
    probe = peak_probe.probe_peak(facts.get("flags", "").split())
    return facts, probe, peak_probe.sgemm_ceiling(1024, 5)


def test_the_probe_measures_this_hosts_fp32_fma_rate_on_every_physical_core(measured):
    facts, probe, _ = measured
    assert "error" not in probe, probe.get("error")
    fp32 = probe["fp32"]
    assert len(fp32["per_copy"]) == len(peak_probe.physical_cpus()) == len(probe["cpus"])
    assert fp32["all_cores"] == pytest.approx(sum(fp32["per_copy"]))
    flags = set(facts["flags"].split())
    assert fp32["kernel"] in (["fma512", "fma256"] if "avx512f" in flags else ["fma256"] if "fma" in flags else ["sse"])
    for rate in [fp32["alone"], *fp32["per_copy"]]:
        assert 1.0 < rate <= MAX_FP32_GFLOPS_PER_CORE, rate
    # separate physical cores: each copy keeps a fair share of the lone rate (other jobs share this host)
    assert min(fp32["per_copy"]) > 0.3 * fp32["alone"], fp32
    # no x86 core does more than 64 fp32 FLOP per cycle (two 512-bit FMA units); the clock is only an estimate
    assert fp32["alone"] / probe["clock_ghz"] < 1.5 * 64, (fp32["alone"], probe["clock_ghz"])


def test_the_probe_measures_this_hosts_int8_dot_product_rate(measured):
    facts, probe, _ = measured
    flags = set(facts["flags"].split())
    int8 = probe["int8"]
    if not flags & {"avx2", "avx512bw", "avx512_vnni", "avx_vnni"}:
        assert int8 is None
        return
    if flags & {"avx512_vnni", "avx_vnni"}:  # vpdpbusd does in one instruction what maddubs + maddwd + add do in 3
        assert int8["kernel"] in ("vnni512", "avxvnni256"), probe["alone"]
    assert int8["all_cores"] == pytest.approx(sum(int8["per_copy"]))
    for rate in [int8["alone"], *int8["per_copy"]]:
        assert 1.0 < rate <= MAX_INT8_GOPS_PER_CORE, rate


def test_sgemm_stays_under_the_measured_fma_peak_and_the_report_says_it_is_measured(measured):
    facts, probe, sgemm = measured
    peak = peak_probe.host_peak(facts, probe, sgemm, 1024, 5)
    assert 0 < sgemm <= (1 + peak_probe.SGEMM_MARGIN) * peak["fp32_gflops"], (sgemm, peak["fp32_gflops"])
    assert peak["problems"] == []
    text = "\n".join(peak_probe.peak_lines(peak))
    assert f"- peak fp32, measured: {peak['fp32_gflops']:.0f} GFLOP/s on all cores (per core: " in text
    assert (f"product 1024x1024 (its BLAS, all cores) {sgemm:.0f} GFLOP/s (best of 5) = "
            f"{100 * sgemm / peak['fp32_gflops']:.0f}% of the measured fp32 peak") in text
    assert "no figure is derived from it" in text and "PROBLEM" not in text
    print("\n" + text)
