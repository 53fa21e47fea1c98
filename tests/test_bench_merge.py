"""`edgematte bench-merge`: reports from several targets in one comparison table, emulated timings kept apart.

Most reports here are small synthetic bench.json files written by the test (known figures, so every
number in the merged table can be checked); one is a real `edgematte bench` run of a tiny ONNX-only
conversion.
"""

import json
import os

import pytest

from .conftest import run_cli

X86 = {"machine": "x86_64", "system": "Linux", "python": "3.10.12", "cpu_count": 2, "cpu_model": "AMD EPYC",
       "governor": None}
ARM = {"machine": "aarch64", "system": "Linux", "python": "3.11.2", "cpu_count": 4, "cpu_model": "Cortex-A72",
       "governor": "ondemand"}
MODEL = {"name": "ppmattingv2", "source_sha256": "ab" * 32, "input_shape": [1, 3, 512, 512]}


def timing(median_s: float) -> dict:
    """Percentiles around ``median_s``: min 0.9x, p90 1.1x, max 1.2x (seconds)."""
    return {"min": 0.9 * median_s, "median": median_s, "p90": 1.1 * median_s, "max": 1.2 * median_s, "n": 5}


def result(artefact: str, backend: str, threads: int, median_s: float, machine: dict) -> dict:
    return {"artefact": artefact, "backend": backend, "threads": threads, "threads_effective": True,
            "input_size": [640, 480], "load_s": 0.2, "first_inference_s": 1.5 * median_s,
            "model_s": timing(median_s), "end_to_end_s": timing(median_s + 0.03), "pre_s": timing(0.01),
            "post_s": timing(0.02), "peak_rss_mb": 300.0, "versions": {"ai-edge-litert": "2.1.0"}, "machine": machine}


def write_report(folder, target: str, emulated: bool, results, model=MODEL):
    folder.mkdir(parents=True)
    doc = {"schema": "edgematte.bench/1", "target": target, "emulated": emulated, "model": model,
           "settings": {"runs": 5, "warmup": 1, "size": [640, 480], "threads": [1]}, "results": results}
    (folder / "bench.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture
def three_targets(tmp_path):
    """local (x86, real), ssh (ARM board, real, one failed configuration) and qemu (emulated) reports."""
    local = write_report(tmp_path / "local", "local", False, [
        result("model_fp32.tflite", "litert", 1, 0.100, X86), result("model.onnx", "onnxruntime", 1, 0.130, X86)])
    board = write_report(tmp_path / "pi", "ssh://pi@board", False, [
        result("model_fp32.tflite", "litert", 1, 0.450, ARM),
        {"artefact": "model.onnx", "threads": 1, "error": "ModuleNotFoundError: No module named 'onnxruntime'"}])
    qemu = write_report(tmp_path / "qemu", "qemu:cortex-a72", True, [
        result("model_fp32.tflite", "litert", 1, 9.000, ARM)])
    return local, board, qemu


def table_rows(markdown: str, section_title=None):
    """The table rows (cells without padding) of the first table after ``section_title`` (or the first table)."""
    lines = markdown.splitlines()
    start = lines.index(section_title) if section_title else 0
    rows, in_table = [], False
    for line in lines[start:]:
        if line.startswith("|"):
            in_table = True
            if not line.startswith("|---"):
                rows.append([c.strip() for c in line.strip("|").split("|")])
        elif in_table:
            break
    return rows[0], rows[1:]


def test_merge_puts_targets_side_by_side_and_emulated_apart(three_targets, tmp_path):
    out = tmp_path / "merged"
    r = run_cli("bench-merge", *three_targets, "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["schema"] == "edgematte.bench/1" and doc["emulated"] is False
    assert [s["target"] for s in doc["sources"]] == ["local", "ssh://pi@board", "qemu:cortex-a72"]
    assert [s["report"] for s in doc["sources"]] == [str(p) for p in three_targets]
    # ordered by artefact, then target, so one artefact's figures on every target stand together
    assert [(x["target"], x["artefact"], x["emulated"]) for x in doc["results"]] == [
        ("local", "model_fp32.tflite", False), ("ssh://pi@board", "model_fp32.tflite", False),
        ("qemu:cortex-a72", "model_fp32.tflite", True), ("local", "model.onnx", False),
        ("ssh://pi@board", "model.onnx", False)]

    md = (out / "bench.md").read_text()
    assert md.splitlines()[0] == ("# edgematte benchmark: ppmattingv2 [1, 3, 512, 512] on local, ssh://pi@board, "
                                  "qemu:cortex-a72")
    head, real = table_rows(md)
    assert head[:3] == ["target", "artefact", "backend"] and head[5] == "model median"
    # medians 100, 450 and 130 ms; min is 0.9x, p90 1.1x (the synthetic timing above)
    assert [(row[0], row[1], row[4], row[5], row[6]) for row in real] == [
        ("local", "model_fp32.tflite", "90.0", "100.0", "110.0"),
        ("ssh://pi@board", "model_fp32.tflite", "405.0", "450.0", "495.0"),
        ("local", "model.onnx", "117.0", "130.0", "143.0")]
    emulated_title = next(line for line in md.splitlines() if line.startswith("## Emulated targets"))
    assert "timings are not real" in emulated_title
    _, emulated = table_rows(md, emulated_title)
    assert [(row[0], row[1], row[5]) for row in emulated] == [("qemu:cortex-a72", "model_fp32.tflite", "9000.0")]
    assert "- ssh://pi@board: model.onnx x 1 threads: ModuleNotFoundError: No module named 'onnxruntime'" in md
    assert "- qemu:cortex-a72 (EMULATED): Cortex-A72 (aarch64, 4 CPUs, governor ondemand)" in md
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.stderr.splitlines()[-1] == f"wrote {out}/bench.json, {out}/bench.md, {out}/bench.png (3 reports, 5 rows)"


def without_matplotlib(tmp_path) -> dict:
    """An environment in which ``import matplotlib`` fails, as in the runtime install profile."""
    blocker = tmp_path / "no-matplotlib" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named matplotlib (hidden by the test)')\n")
    return dict(os.environ, PYTHONPATH=str(blocker.parent))


def test_without_matplotlib_the_message_says_no_plot_and_an_old_plot_goes(three_targets, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "bench.png").write_bytes(b"the plot of an earlier report")
    r = run_cli("bench-merge", *three_targets, "-o", out, env=without_matplotlib(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"wrote {out}/bench.json, {out}/bench.md; no bench.png: matplotlib is not installed (pip install matplotlib); "
        "the bench.png of an earlier report there was removed (3 reports, 5 rows)"]
    assert sorted(p.name for p in out.iterdir()) == [".edgematte-output.json", "bench.json", "bench.md"]
    assert len(json.loads((out / "bench.json").read_text())["results"]) == 5
    # the same merge with matplotlib draws the plot again
    r = run_cli("bench-merge", *three_targets, "-o", out)
    assert r.returncode == 0 and (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reports_with_nothing_to_plot_write_no_plot_and_say_so(tmp_path):
    failed = write_report(tmp_path / "pi", "ssh://pi@board", False, [
        {"artefact": "model.onnx", "threads": 1, "error": "ModuleNotFoundError: No module named 'onnxruntime'"}])
    out = tmp_path / "merged"
    r = run_cli("bench-merge", failed, "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"wrote {out}/bench.json, {out}/bench.md; no bench.png: no configuration ran, "
                                     "so there is nothing to plot (1 reports, 1 rows)"]
    assert sorted(p.name for p in out.iterdir()) == [".edgematte-output.json", "bench.json", "bench.md"]
    assert "## Failed configurations" in (out / "bench.md").read_text()


def test_same_target_name_from_two_hosts_is_told_apart_and_merged_reports_merge_again(three_targets, tmp_path):
    local, board, qemu = three_targets
    other_host = write_report(tmp_path / "laptop", "local", False,
                              [result("model_fp32.tflite", "litert", 1, 0.080, X86)])
    first = tmp_path / "first"
    assert run_cli("bench-merge", local, board, "-o", first).returncode == 0
    out = tmp_path / "again"
    r = run_cli("bench-merge", first, other_host, qemu, "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert [s["target"] for s in doc["sources"]] == [f"local [{first}]", "ssh://pi@board", f"local [{other_host}]",
                                                     "qemu:cortex-a72"]
    fp32 = {x["target"]: x["model_s"]["median"] for x in doc["results"] if x["artefact"] == "model_fp32.tflite"}
    assert fp32 == {f"local [{first}]": 0.100, "ssh://pi@board": 0.450, f"local [{other_host}]": 0.080,
                    "qemu:cortex-a72": 9.000}


def test_reports_of_different_models_or_missing_reports_fail_in_one_line(three_targets, tmp_path):
    local = three_targets[0]
    other = write_report(tmp_path / "hm", "local", False, [result("model.onnx", "onnxruntime", 1, 2.0, X86)],
                         model={**MODEL, "name": "humanmatting", "input_shape": [1, 3, 2048, 2048]})
    r = run_cli("bench-merge", local, other, "-o", tmp_path / "m")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert str(other) in r.stderr and "humanmatting" in r.stderr and "only reports of one model merge" in r.stderr
    assert not (tmp_path / "m").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("bench-merge", local, empty, "-o", tmp_path / "m")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and f"{empty}/bench.json: no bench report here" in r.stderr


def test_a_real_local_run_merges_with_an_emulated_one(tmp_path):
    conversion = tmp_path / "tiny"
    r = run_cli("-q", "convert", "ppmattingv2", "--seed", "0", "--width", "0.25", "--input-shape", 1, 3, 128, 160,
                "--to", "onnx", "-o", conversion)
    assert r.returncode == 0, r.stderr
    real = tmp_path / "local"
    r = run_cli("bench", conversion, "--threads", "1", "--runs", "3", "--warmup", "1", "--size", "160x120",
                "--artefacts", "model.onnx", "-o", real)
    assert r.returncode == 0, r.stderr
    measured = json.loads((real / "bench.json").read_text())
    qemu = write_report(tmp_path / "qemu", "qemu:cortex-a72", True, [result("model.onnx", "onnxruntime", 1, 3.0, ARM)],
                        model=measured["model"])
    out = tmp_path / "merged"
    r = run_cli("bench-merge", real, qemu / "bench.json", "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["model"]["input_shape"] == [1, 3, 128, 160]
    assert doc["results"][0]["model_s"] == measured["results"][0]["model_s"]
    assert doc["results"][0]["target"] == "local" and doc["results"][0]["emulated"] is False
    md = (out / "bench.md").read_text()
    _, rows = table_rows(md)
    assert [(row[0], row[1], row[5]) for row in rows] == [
        ("local", "model.onnx", f"{1000 * measured['results'][0]['model_s']['median']:.1f}")]
    assert "qemu:cortex-a72" not in "\n".join("|".join(row) for row in rows)
