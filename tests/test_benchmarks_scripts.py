"""The benchmark scripts in benchmarks/ run on a small conversion and report what they claim.

Timings are not asserted (speed lives in benchmarks/results, not in tests); the alpha errors are: the
plain tools' known faults must show, and the converter's artefacts must equal the reference.
"""

import re
import subprocess
import sys

from .conftest import REPO


def rows(markdown: str) -> dict:
    """The results table of compare_runtimes' report: entry name -> cells."""
    table = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith(("| entry", "|---")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            table[cells[0]] = cells
    return table


def test_compare_runtimes_shows_the_plain_tools_faults_and_ours_correct(tiny_conversion, tmp_path):
    report = tmp_path / "runtimes.md"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare_runtimes.py"), str(tiny_conversion),
                        "--rounds", "1", "--max-rounds", "1", "--warmup", "0", "--check-photos", "1",
                        "--report", str(report)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    table = rows(report.read_text())
    error = {name: float(cells[9]) for name, cells in table.items() if re.fullmatch(r"[0-9.e+-]+", cells[9] or "x")}
    assert error["Paddle Inference, fixed config (reference)"] == 0.0
    assert error["Paddle Inference, default config"] > 1e-2  # the oneDNN fusion pass that miscomputes PP-MattingV2
    for name in ("model_x86.nb", "model.onnx", "model_fp32.tflite"):
        assert error[name] <= 1e-4, (name, error[name])
    # The plain paddle2onnx model either runs wrong (uneven adaptive pools) or cannot run at all.
    plain = table["ONNX Runtime, plain paddle2onnx model"]
    assert plain[3].startswith("failed:") or float(plain[9]) > 1e-2, plain
    assert "GFLOP/s" in report.read_text() and "% of peak" in report.read_text()
