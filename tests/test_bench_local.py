"""`edgematte bench --target local` on the tiny conversion: reports, schema, partial results on failure, and
nothing written (a previous report kept) when every configuration fails."""

import json
import os

from .conftest import run_cli


def test_local_bench_writes_json_md_png(tiny_conversion, tmp_path):
    out = tmp_path / "bench"
    r = run_cli("bench", tiny_conversion, "--threads", "1", "--runs", "2", "--warmup", "1", "--size", "320x240",
                "--artefacts", "model_fp32.tflite,model.onnx,reference", "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["schema"] == "edgematte.bench/1" and doc["target"] == "local" and doc["emulated"] is False
    assert [(x["artefact"], x["backend"]) for x in doc["results"]] == [
        ("model_fp32.tflite", "litert"), ("model.onnx", "onnxruntime"), ("reference", "paddle_inference")]
    for x in doc["results"]:
        m = x["model_s"]
        assert 0 < m["min"] <= m["median"] <= m["p90"] <= m["max"] and m["n"] == 2
        assert x["end_to_end_s"]["median"] > x["pre_s"]["median"] > 0
        assert x["peak_rss_mb"] > 50 and x["load_s"] > 0 and x["first_inference_s"] > 0
        assert x["input_size"] == [320, 240]
    assert doc["results"][0]["versions"]["ai-edge-litert"]
    assert "| model_fp32.tflite | litert | 1 |" in (out / "bench.md").read_text()
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.stderr.splitlines()[-1] == f"wrote {out}/bench.json, {out}/bench.md, {out}/bench.png"


def test_a_failing_configuration_keeps_the_others(tiny_conversion, tmp_path):
    out = tmp_path / "bench"
    r = run_cli("bench", tiny_conversion, "--threads", "1", "--runs", "2", "--warmup", "0", "--size", "160x120",
                "--artefacts", "model_arm.nb,model_fp32.tflite", "-o", out)
    assert r.returncode == 1
    errors = [msg for msg in r.stderr.splitlines() if msg.startswith("edgematte: error:")]
    assert len(errors) == 1 and "1 of 2 configurations failed" in errors[0] and "model_arm.nb" in errors[0]
    assert errors[0].endswith(f"; partial results in {out} (bench.json, bench.md, bench.png)")
    doc = json.loads((out / "bench.json").read_text())
    assert "error" in doc["results"][0] and "model_s" in doc["results"][1]
    assert "## Failed configurations" in (out / "bench.md").read_text()


def test_unknown_artefact_and_unbuilt_target(tiny_conversion, tmp_path):
    r = run_cli("bench", tiny_conversion, "--artefacts", "nope.tflite", "-o", tmp_path / "b")
    assert r.returncode == 1 and "nope.tflite" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("bench", tiny_conversion, "--target", "ftp://x", "-o", tmp_path / "b")
    assert r.returncode == 1 and "--target ftp://x" in r.stderr


def test_when_every_configuration_fails_the_previous_report_is_untouched(tiny_conversion, tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    previous = {"bench.json": b'{"schema": "edgematte.bench/1"}\n', "bench.md": b"# an earlier good report\n",
                "bench.png": b"\x89PNG an earlier plot"}
    for name, data in previous.items():
        (out / name).write_bytes(data)
        os.utime(out / name, ns=(1_000_000_000, 1_000_000_000))
    r = run_cli("bench", tiny_conversion, "--threads", "1,2", "--runs", "2", "--warmup", "0", "--size", "160x120",
                "--artefacts", "model_arm.nb", "-o", out, "--json")
    assert r.returncode == 1 and r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgematte: error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"edgematte: error: {out}: 2 of 2 configurations failed on local, so no report was "
                                "written (the previous report there is untouched): model_arm.nb x 1, 2 threads: ")
    assert "optimized for arm" in errors[0] and "; and" not in errors[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(previous)
    for name, data in previous.items():
        assert (out / name).read_bytes() == data and (out / name).stat().st_mtime_ns == 1_000_000_000


def test_a_report_inside_the_conversion_folder_leaves_it_replaceable(tiny_conversion, tmp_path):
    """bench's default report folder is OUT/bench/local: its files are recorded as edgematte's, so converting into
    OUT again is allowed, while a user's file put beside them still is not."""
    import shutil

    from edgematte.core.fsutil import OUTPUT_MARKER, foreign_entries

    conversion = tmp_path / "conversion"
    shutil.copytree(tiny_conversion, conversion)
    r = run_cli("bench", conversion, "--threads", "1", "--runs", "1", "--warmup", "0", "--size", "160x120",
                "--artefacts", "model.onnx")
    assert r.returncode == 0, r.stderr
    report = conversion / "bench" / "local"
    assert json.loads((report / OUTPUT_MARKER).read_text())["entries"] == ["bench.json", "bench.md", "bench.png"]
    assert foreign_entries(conversion) == []
    (report / "notes.txt").write_text("mine")
    assert foreign_entries(conversion) == ["bench/local/notes.txt"]
