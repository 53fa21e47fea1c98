"""Video at 720p: per-frame PP-MattingV2 and MODNet against recurrent RVM, fp32 and INT8 (issue #17).

The clip is synthetic and carries its true alpha (:func:`synthetic_clip`): a camera pans and zooms over a
1600x900 scene, 10 s at 30 frames/s, 1280x720. The scene is the bundled astronaut photo, cut out by a soft
head-and-shoulders silhouette (the true alpha), over a seeded texture. Scene and alpha move together by the same
affine map per frame, so the true alpha of every frame is exact; the clip is stored as an mp4v MP4, so the
models see compressed frames as they would from a camera file.

Per conversion artefact (TFLite fp32 and every INT8 TFLite the conversion kept), two passes:

1. **Speed**: ``edgematte.runtime.video.matte_video`` on the MP4 with one ``Matter`` (2 threads), writing a
   composite over a flat colour: decode, pre-process, model, post-process, composite and encode, end to end, as
   ``edgematte matte clip.mp4 --background COLOR`` does. Frames/s and the milliseconds per frame of each stage.
   Recurrent RVM carries its states from frame to frame (starting from zeros).
2. **Numbers** (untimed, the first ``--numbers-frames`` frames, default 60): the decoded frames again through the
   artefact; MAD, dtSSD and MESSDdt
   (:mod:`edgematte.core.temporal_metrics`, every pixel, unscaled) against the true alpha; for an INT8 artefact
   also against its own fp32 TFLite artefact run in step (what quantization costs in time).

The weights are seeded (no trained weights can be fetched here): the per-frame models and RVM are not trained to
find a person, so MAD against the true alpha says nothing about quality; dtSSD and MESSDdt still say how much each
output flickers beyond the motion of the scene. The speed figures do not depend on the weights.

Conversions (made once, reused): ``edgematte convert NAME --seed 0 --input-shape 1 3 H W --to onnx,tflite
--no-fp16 --int8`` with the per-frame models at 288x512 (16:9, the short side PaddleSeg's video demos use) and RVM
at the full 720x1280 with its downsample ratio 0.25 (its encoder sees 180x320), once as exported and once with
``--alpha-only`` (its foreground pruned). A run of some ``--models`` replaces their rows in the results and keeps
the others (each row says when it was measured).

    .venv/bin/python benchmarks/video_720p.py --work /work/v720            # converts what is missing, then runs
    .venv/bin/python benchmarks/video_720p.py --work /work/v720 --seconds 2  # a short clip, a quick look

Results: ``benchmarks/results/video_720p.{md,json}``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("GLOG_minloglevel", "2")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.official_acceptance import host_facts  # noqa: E402
from edgematte.core.fsutil import write_text_atomic  # noqa: E402
from edgematte.core.manifest import read_manifest  # noqa: E402
from edgematte.core.metrics import alpha_difference_stats  # noqa: E402
from edgematte.core.samples import sample_photo  # noqa: E402
from edgematte.core.temporal_metrics import TemporalAccumulator  # noqa: E402
from edgematte.runtime.batch import FrameRenderer  # noqa: E402
from edgematte.runtime.matter import Matter  # noqa: E402
from edgematte.runtime.video import matte_video, open_video, read_frames  # noqa: E402

FRAME_WH = (1280, 720)
SCENE_WH = (1600, 900)
FPS = 30.0
MODELS = {  # row name: (zoo model, model input H x W, extra convert options)
    "ppmattingv2": ("ppmattingv2", (288, 512), ()),
    "modnet_mobilenetv2": ("modnet_mobilenetv2", (288, 512), ()),
    "rvm_mobilenetv3": ("rvm_mobilenetv3", (720, 1280), ()),
    # the foreground pruned: what a deployment that composites with the alpha runs
    "rvm_mobilenetv3_alpha_only": ("rvm_mobilenetv3", (720, 1280), ("--alpha-only",)),
}
THREADS = 2
BACKGROUND = (0, 177, 64)  # a green screen colour for the composite
FP32 = "model_fp32.tflite"


# ---------------------------------------------------------------------------------------------- the clip
def silhouette(scene_hw, seed: int = 0) -> np.ndarray:
    """float32 H x W in [0, 1]: a head (ellipse) on shoulders (a rounded trapezoid), edges softened over ~9 px
    and frayed by seeded noise (hair-like soft regions), standing in the middle of the scene."""
    h, w = scene_hw
    mask = np.zeros((h, w), np.uint8)
    cx = w // 2
    cv2.ellipse(mask, (cx, int(h * 0.36)), (int(h * 0.13), int(h * 0.17)), 0, 0, 360, 255, -1)
    shoulders = np.array([[cx - int(h * 0.34), h], [cx - int(h * 0.24), int(h * 0.6)],
                          [cx + int(h * 0.24), int(h * 0.6)], [cx + int(h * 0.34), h]], np.int32)
    cv2.fillPoly(mask, [shoulders], 255)
    cv2.rectangle(mask, (cx - int(h * 0.06), int(h * 0.48)), (cx + int(h * 0.06), int(h * 0.62)), 255, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 3.0)
    noise = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w), np.float32), (0, 0), 2.0)
    edge = (alpha > 0.02) & (alpha < 0.98)
    alpha[edge] = np.clip(alpha[edge] + (noise[edge] - 0.5) * 0.6, 0, 1)
    return alpha


def scene(seed: int = 0):
    """(RGB uint8 scene SCENE_WH, float32 true alpha): the astronaut cut out over a seeded texture."""
    w, h = SCENE_WH
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 256, (h // 40, w // 40, 3), dtype=np.uint8), (w, h),
                         interpolation=cv2.INTER_CUBIC)
    stripes = ((np.arange(w)[None, :, None] // 50) % 2 * 40).astype(np.int16)
    background = np.clip(texture.astype(np.int16) + stripes - 20, 0, 255).astype(np.uint8)
    person = cv2.resize(sample_photo("astronaut"), (h, h), interpolation=cv2.INTER_CUBIC)
    foreground = background.copy()
    # The astronaut's face sits near (0.40, 0.25) of the photo: put it in the silhouette's head (w / 2, 0.36 h).
    x0, y0 = w // 2 - int(0.40 * h), int(0.11 * h)
    foreground[y0:, x0:x0 + h] = person[:h - y0]
    alpha = silhouette((h, w), seed)
    image = foreground * alpha[..., None] + background * (1 - alpha[..., None])
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), alpha


def camera(index: int, frames: int) -> np.ndarray:
    """2 x 3 affine map from the scene to frame ``index``: the view pans 120 px right over the scene and zooms in
    from 1.1 to 1.4 x the whole-scene view (smoothly: a half cosine) while its centre rises 30 px; it never
    leaves the scene."""
    t = 0.5 - 0.5 * np.cos(np.pi * index / max(frames - 1, 1))
    zoom = (FRAME_WH[0] / SCENE_WH[0]) * 1.1 * (1.4 / 1.1) ** t
    centre = (SCENE_WH[0] / 2 - 60 + 120 * t, SCENE_WH[1] / 2 - 30 * t)
    return np.array([[zoom, 0, FRAME_WH[0] / 2 - zoom * centre[0]],
                     [0, zoom, FRAME_WH[1] / 2 - zoom * centre[1]]], np.float64)


def true_alphas(alpha: np.ndarray, frames: int):
    for index in range(frames):
        yield cv2.warpAffine(alpha, camera(index, frames), FRAME_WH, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)


def synthetic_clip(path: Path, seconds: float) -> int:
    """Write the clip as mp4v MP4; returns its frame count."""
    image, _ = scene()
    frames = int(round(seconds * FPS))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, FRAME_WH)
    for index in range(frames):
        frame = cv2.warpAffine(image, camera(index, frames), FRAME_WH, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return frames


# ---------------------------------------------------------------------------------------------- runs
def convert(name: str, work: Path) -> Path:
    out = work / name
    if (out / "manifest.json").is_file():
        return out
    model, (h, w), extra = MODELS[name]
    command = [str(REPO / ".venv" / "bin" / "edgematte"), "convert", model, "--seed", "0", "--input-shape", "1", "3",
               str(h), str(w), "--to", "onnx,tflite", "--no-fp16", "--int8", *extra, "-o", str(out)]
    print("converting:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return out


def artefacts(conversion: Path) -> List[dict]:
    """The TFLite fp32 artefact and every INT8 TFLite one (full integer, int8 I/O, dynamic range)."""
    manifest = read_manifest(conversion)
    chosen = []
    for entry in manifest.artefacts:
        if entry.format != "tflite" or entry.precision not in ("fp32", "int8", "dynamic"):
            continue
        chosen.append({"path": entry.path, "precision": entry.precision, "size_mb": entry.size_bytes / 1e6})
    return sorted(chosen, key=lambda a: (a["path"] != FP32, a["path"]))


def speed(clip: Path, conversion: Path, artefact: str, out_dir: Path) -> dict:
    matter = Matter.from_manifest(conversion, artefact=artefact, threads=THREADS)
    render = FrameRenderer(matter.profile, ("composite",), BACKGROUND)
    result = matte_video(clip, out_dir / Path(artefact).stem, matter, render, kinds=("composite",))
    per_frame = {k: 1000 * v / max(result.frames, 1) for k, v in result.timings.items()}
    return {"frames": result.frames, "seconds": result.seconds, "frames_per_second": result.frames_per_second,
            "ms_per_frame": per_frame}


def numbers(clip: Path, conversion: Path, artefact: str, true_alpha: np.ndarray, frames: int, limit: int) -> dict:
    """The figures over the clip's first ``limit`` frames: over all 300 frames this pass took more than 0.8 s a
    frame for PP-MattingV2 fp32 at 720p on the 2-core host (mostly the Farneback flow MESSDdt needs; an INT8 row
    needs two)."""
    matter = Matter.from_manifest(conversion, artefact=artefact, threads=THREADS)
    fp32 = Matter.from_manifest(conversion, artefact=FP32, threads=THREADS) if artefact != FP32 else None
    against_truth, against_fp32 = TemporalAccumulator(), TemporalAccumulator()
    mads, mads_fp32 = [], []
    capture, _ = open_video(clip)
    for index, (rgb, truth) in enumerate(zip(read_frames(capture), true_alphas(true_alpha, frames))):
        if index == limit:
            break
        alpha = matter(rgb)
        against_truth.add(alpha, truth)
        mads.append(alpha_difference_stats(alpha, truth)["mad"])
        if fp32 is not None:
            reference = fp32(rgb)
            against_fp32.add(alpha, reference)
            mads_fp32.append(alpha_difference_stats(alpha, reference)["mad"])
    truth_figures = against_truth.result()
    record = {"vs_truth": {"mad": float(np.mean(mads)), "dtssd": truth_figures["dtssd"],
                           "messddt": truth_figures["messddt"]}}
    if fp32 is not None:
        fp32_figures = against_fp32.result()
        record["vs_fp32"] = {"mad": float(np.mean(mads_fp32)), "dtssd": fp32_figures["dtssd"],
                             "messddt": fp32_figures["messddt"]}
    return record


def merged_rows(previous: Path, rows: List[dict], frames: int) -> List[dict]:
    """``rows`` (dated today) after the earlier results' rows of the models this run did not measure, when those came
    from a clip of the same length (a run of some models adds to the table instead of replacing it)."""
    today = time.strftime("%Y-%m-%d")
    rows = [dict(row, date=today) for row in rows]
    earlier = json.loads(previous.read_text()) if previous.is_file() else {}
    if earlier.get("frames") != frames:
        return rows
    ran = {row["model"] for row in rows}
    return [dict(row, date=row.get("date", earlier.get("date"))) for row in earlier.get("rows", [])
            if row["model"] not in ran] + rows


def _cell(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(doc: dict) -> str:
    facts = doc["host"]
    lines = ["# Video at 720p: per-frame models against RVM, fp32 and INT8", "",
             f"- host: {facts.get('cpu')} ({facts.get('cores')} CPUs), {THREADS} threads per run; "
             f"{doc['frames']} frames of 1280x720 at {FPS:g} frames/s ({doc['frames'] / FPS:g} s), synthetic clip "
             "with a true alpha (benchmarks/video_720p.py)",
             "- end to end: decode, pre-process, model, post-process, composite over a colour, encode (mp4v); "
             "LiteRT TFLite artefacts; ms per frame by stage",
             f"- figures (untimed) over the first {doc['numbers_frames']} frames, every pixel, unscaled (dtSSD, "
             "MESSDdt: Erofeev et al. 2015); seeded weights, so MAD against the true alpha says nothing of quality",
             "",
             "| model | input | artefact | frames/s | read | pre | model | post | write | dtSSD vs truth | "
             "MESSDdt vs truth | MAD vs truth | dtSSD vs fp32 | MAD vs fp32 | measured |",
             "|" + "---|" * 15]
    for row in doc["rows"]:
        if "error" in row:
            lines.append(f"| {row['model']} | | {row['artefact']} | failed: {row['error']} |" + " |" * 10
                         + f" {row.get('date', '')} |")
            continue
        ms, truth, fp32 = row["ms_per_frame"], row["vs_truth"], row.get("vs_fp32", {})
        lines.append(
            f"| {row['model']} | {row['input'][0]}x{row['input'][1]} | {row['artefact']} | "
            f"{row['frames_per_second']:.1f} | {ms['read_s']:.1f} | {ms['pre_s']:.1f} | {ms['model_s']:.1f} | "
            f"{ms['post_s']:.1f} | {ms['write_s']:.1f} | {_cell(truth['dtssd'])} | {_cell(truth['messddt'], 6)} | "
            f"{_cell(truth['mad'])} | {_cell(fp32.get('dtssd'))} | {_cell(fp32.get('mad'))} | {row.get('date', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="conversions and the clip (kept for reruns)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--numbers-frames", type=int, default=60,
                        help="frames (from the first) the untimed accuracy and temporal figures cover")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    clip = args.work / f"clip_{args.seconds:g}s.mp4"
    frames = synthetic_clip(clip, args.seconds)
    _, true_alpha = scene()
    rows = []
    for name in args.models:
        conversion = convert(name, args.work)
        for artefact in artefacts(conversion):
            row = {"model": name, "input": list(read_manifest(conversion).model.input_hw), "artefact": artefact["path"],
                   **artefact}
            print(f"{name} {artefact['path']}: speed...", flush=True)
            try:
                row.update(speed(clip, conversion, artefact["path"], args.work / "out" / name))
                row.update(numbers(clip, conversion, artefact["path"], true_alpha, frames, args.numbers_frames))
            except Exception as error:  # noqa: BLE001 - one failed row is a result, the others still run
                row["error"] = str(error).splitlines()[0]
            shown = {k: v for k, v in row.items() if k in ("frames_per_second", "vs_truth", "error")}
            print(f"    {json.dumps(shown)}", flush=True)
            rows.append(row)
    doc = {"frames": frames, "numbers_frames": min(frames, args.numbers_frames), "seconds": args.seconds,
           "host": host_facts(), "rows": merged_rows(args.results / "video_720p.json", rows, frames),
           "date": time.strftime("%Y-%m-%d")}
    write_text_atomic(args.results / "video_720p.json", json.dumps(doc, indent=1) + "\n")
    write_text_atomic(args.results / "video_720p.md", markdown(doc))
    print(markdown(doc))
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
