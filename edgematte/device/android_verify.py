"""``edgematte device verify``: the Android app's verification mode on a phone, compared with the Python runtime.

The device side is ``android_demo``'s ``VerificationActivity`` (android_demo/README.md, "Verification
mode"). The host side, step by step:

1. resolve the manifest and the artefact (named, else the first one a phone runs: ``.tflite``, or a
   ``.nb`` built for ``arm``/``opencl``: the app's own rule, :meth:`Manifest.artefacts_for` ``("android")``);
2. select the device (:mod:`edgematte.device.adb`: no device, unknown serial, unauthorized... are one
   line each) and check the app is installed;
3. convert the photos to what the activity reads exactly, RGB uint8 H x W x 3 ``.npy`` (no decoder on
   either side), named ``NNN_<name>`` (``NNN`` their position, zero-padded) so they stay unique and ordered;
   with ``--sequence`` the photos are one clip's numbered frames
   (:func:`edgematte.runtime.verify.load_sequence_frames`: by the number in the file name, no gap, one size);
4. clear ``verify/`` under the app's storage, push ``manifest.json`` + the artefact and the images,
   start the activity with ``am start -W`` and the extras (input, output, models, model,
   accelerator, threads, warmup, repeats, profile, sequence), poll for ``DONE`` / ``FAILED`` until ``timeout``;
5. pull the output folder (golden-vector format, read by
   :func:`edgematte.runtime.vectors.read_golden_vectors`) and remove ``verify/`` from the device;
6. run the Python runtime through the same profile and compare, per image, with the code of
   ``edgematte verify`` (:mod:`edgematte.runtime.verify`): the device's ``post_alpha`` against the
   reference (Paddle Inference on the frozen model, else the manifest's stand-in), its max/mean abs
   difference and SAD, pooled over the images and held to the artefact's own threshold (its parity
   bound, or its int8 budget); the device's ``pre_tensor_<layout>`` against the Python profile's
   (the Java core must reproduce it within :data:`PRE_TENSOR_TOLERANCE`); and, when the artefact
   runs on this host, the device's alpha against the same artefact run here (for information: ARM
   against x86 kernels). Photos are each a recurrent model's first frame on both sides; a sequence is run as one
   clip on both sides (reset once, states carried: the app's ``Verification`` and
   :func:`edgematte.runtime.verify.matte_sequence`), and every frame is compared;
7. write ``report.json`` and ``report.md`` (with the device's per-stage latencies from its
   ``timings_ms``) and the pulled output (``device-output/``) into the report folder, atomically.
"""

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..core import console
from ..core import parity as parity_lib
from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from ..core.manifest import MANIFEST_NAME, Artefact, Manifest, read_manifest
from .adb import Adb, Device, device_shell_quote

PACKAGE = "org.edgematte.demo"
ACTIVITY = f"{PACKAGE}/.VerificationActivity"
APP_FILES = f"/sdcard/Android/data/{PACKAGE}/files"  # getExternalFilesDir(null): adb and the app both reach it
VERIFY_DIR = f"{APP_FILES}/verify"
DONE_MARKER, FAILED_MARKER = "DONE", "FAILED"  # org.edgematte.core.GoldenWriter
SCHEMA = "edgematte.device-verify/1"
PRE_TENSOR_TOLERANCE = 1e-6
"""Largest accepted difference of the device's model input from the Python profile's: the float32
tolerance the Java core is held to on the host (android_demo/README.md; measured there: 0)."""
DEFAULT_TIMEOUT_S = 600.0
STAGES = ("decode", "preprocess", "quantize", "inference", "dequantize", "postprocess", "alpha8", "composite")


def device_artefact(manifest: Manifest, artefact: Optional[str] = None) -> Artefact:
    """The artefact to run on the phone: ``artefact`` (path or file name), else the first one a phone runs."""
    if artefact is not None:
        entry = manifest.find(artefact)
        if not entry.runs_on("android"):
            raise EdgematteError(f"--artefact {artefact}: a {entry.format} artefact for {entry.target} does not "
                                 "run in the Android app (it runs .tflite and arm/opencl .nb)")
        return entry
    phone = manifest.artefacts_for("android")
    if not phone:
        raise EdgematteError(f"{manifest.origin}: no artefact for a phone (convert with --to tflite or "
                             "--lite-targets arm)")
    return phone[0]


def device_image_names(names: List[str]) -> Dict[str, str]:
    """``{device name: image name}``: ``NNN_<name with every unsafe character as _>``, ``NNN`` the position from 0
    zero-padded to one width (at least 3) so that name order on the device is the order given (unique)."""
    width = max(3, len(str(len(names) - 1)))
    return {f"{index:0{width}d}_{re.sub(r'[^A-Za-z0-9_-]+', '_', str(Path(name).with_suffix('')))}": name
            for index, name in enumerate(names)}


@dataclass
class ImageResult:
    """One image: device alpha against the reference (and the same artefact on this host), model input
    difference, and the device's stage timings in ms."""

    image: str
    device_name: str
    size: Tuple[int, int]
    max_abs: float
    mean_abs: float
    sad: float
    pre_tensor_max_abs: float
    vs_host_artefact: Optional[dict] = None
    timings_ms: Dict[str, object] = field(default_factory=dict)


@dataclass
class DeviceVerifyReport:
    """Everything one ``device verify`` run found; ``exit_code`` 1 when any check failed."""

    serial: str
    manifest: str
    artefact: str
    precision: str
    settings: dict
    device: dict
    reference: dict
    threshold: dict
    threshold_source: str
    images: List[ImageResult] = field(default_factory=list)
    skipped_images: List[Tuple[str, str]] = field(default_factory=list)
    pooled: dict = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)
    report_dir: Optional[str] = None

    @property
    def passed(self) -> bool:
        return bool(self.images) and not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def stage_medians_ms(self) -> Dict[str, float]:
        """Median over the images of each stage the device timed."""
        medians = {}
        for stage in STAGES:
            values = [r.timings_ms[stage] for r in self.images if isinstance(r.timings_ms.get(stage), (int, float))]
            if values:
                medians[stage] = float(np.median(values))
        return medians

    def as_dict(self) -> dict:
        record = {k: v for k, v in asdict(self).items() if k not in ("images", "skipped_images", "report_dir")}
        return {"schema": SCHEMA, **record, "passed": self.passed,
                "images": [asdict(r) for r in self.images],
                "skipped_images": [{"image": n, "reason": r} for n, r in self.skipped_images],
                "stage_medians_ms": self.stage_medians_ms()}

    def summary_lines(self) -> List[str]:
        p = self.pooled
        what = "frames of one clip" if self.settings.get("sequence") else "images"
        lines = [f"{self.artefact} on {self.serial} ({self.device.get('model', '?')}), {len(self.images)} {what}, "
                 f"against {self.reference['description']}",
                 f"  max abs {p['max_abs']:.2e}  mean abs {p['mean_abs']:.2e}  SAD {p['sad_mean']:.3g}  "
                 f"(limit: {self.threshold_source})" if p else "  no figures"]
        medians = self.stage_medians_ms()
        if medians:
            lines.append("  device ms (median): " + "  ".join(f"{k} {v:.1f}" for k, v in medians.items()))
        lines += [f"  FAIL: {reason}" for reason in self.failures]
        where = f": report in {self.report_dir}" if self.report_dir else ""
        lines.append(("PASS" if self.passed else "FAIL") + where)
        return lines

    def markdown(self) -> str:
        s = self.settings
        lines = [f"# edgematte device verify: {self.artefact} on {self.serial}", "",
                 f"- verdict: **{'PASS' if self.passed else 'FAIL'}**" + "".join(f"; {r}" for r in self.failures),
                 f"- device: {json.dumps(self.device, sort_keys=True)}",
                 f"- manifest: {self.manifest}; artefact {self.artefact} ({self.precision}), profile {s['profile']}, "
                 f"accelerator {s['accelerator']}, threads {s['threads']}, warmup {s['warmup']}, "
                 f"repeats {s['repeats']}"
                 + ("; the images are one clip's frames, in order, states carried" if s.get("sequence") else ""),
                 f"- reference: {self.reference['description']}",
                 f"- limit: {self.threshold_source}; model input (Java vs Python) within {PRE_TENSOR_TOLERANCE:g}", "",
                 "## Alpha: device against the reference", "",
                 "| image | size | max abs | mean abs | SAD | model input max abs "
                 "| vs this host's run of the artefact (max / mean abs) |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.images:
            host = (f"{r.vs_host_artefact['max_abs']:.2e} / {r.vs_host_artefact['mean_abs']:.2e}"
                    if r.vs_host_artefact else "not run here")
            lines.append(f"| {r.image} | {r.size[1]}x{r.size[0]} | {r.max_abs:.2e} | {r.mean_abs:.2e} | {r.sad:.3g} | "
                         f"{r.pre_tensor_max_abs:.2e} | {host} |")
        if self.pooled:
            p = self.pooled
            lines.append(f"| **all** | | {p['max_abs']:.2e} | {p['mean_abs']:.2e} | {p['sad_mean']:.3g} (mean) | | |")
        lines += ["", "## Device latency per stage (ms; inference = median of the repeats)", "",
                  "| image | " + " | ".join(STAGES) + " |", "|---|" + "---|" * len(STAGES)]
        for r in self.images:
            cells = [f"{r.timings_ms[k]:.1f}" if isinstance(r.timings_ms.get(k), (int, float)) else "" for k in STAGES]
            lines.append(f"| {r.image} | " + " | ".join(cells) + " |")
        medians = self.stage_medians_ms()
        lines.append("| **median** | " + " | ".join(f"{medians[k]:.1f}" if k in medians else "" for k in STAGES) + " |")
        if self.skipped_images:
            lines += ["", "## Skipped images", ""] + [f"- {n}: {r}" for n, r in self.skipped_images]
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Device steps
# ----------------------------------------------------------------------------------------------


def activity_extras(entry: Artefact, profile: str, accelerator: str, threads: int, warmup: int,
                    repeats: int, sequence: bool = False) -> dict:
    """The ``am start`` extras of ``VerificationActivity`` for one run (in the README's order)."""
    return {"input": f"{VERIFY_DIR}/in", "output": f"{VERIFY_DIR}/out", "models": f"{VERIFY_DIR}/models",
            "model": entry.path, "accelerator": accelerator, "threads": int(threads), "warmup": int(warmup),
            "repeats": int(repeats), "profile": profile, "sequence": bool(sequence)}


def marker_script(out_dir: str) -> str:
    """A device shell line printing DONE, FAILED or WAIT for the output folder ``out_dir``."""
    out = device_shell_quote(out_dir)
    return (f"if [ -e {out}/{DONE_MARKER} ]; then echo {DONE_MARKER}; elif [ -e {out}/{FAILED_MARKER} ]; "
            f"then echo {FAILED_MARKER}; else echo WAIT; fi")


def wait_for_marker(device: Device, out_dir: str, timeout: float, interval: float = 1.0) -> None:
    """Poll until ``out_dir`` holds DONE; FAILED (its message) and the timeout are one-line errors."""
    deadline = time.monotonic() + timeout
    while True:
        state = device.shell(marker_script(out_dir)).output.strip()
        if state == DONE_MARKER:
            return
        if state == FAILED_MARKER:
            message = device.read_text(f"{out_dir}/{FAILED_MARKER}").strip().splitlines()
            raise EdgematteError(f"{device.serial}: the verification run failed on the device: "
                                 f"{message[0] if message else 'no message'} (adb logcat -s edgematte-verify)")
        if time.monotonic() >= deadline:
            raise EdgematteError(f"{device.serial}: no {DONE_MARKER} marker in {out_dir} within {timeout:g} s "
                                 "(still running, or killed: adb logcat -s edgematte-verify; raise --timeout)")
        time.sleep(interval)


def push_inputs(device: Device, manifest: Manifest, entry: Artefact, npy_dir: Path) -> None:
    """Clear ``verify/`` and push the manifest, the artefact and the images into it."""
    device.remove(VERIFY_DIR)
    for folder in ("models", "in"):
        device.make_dirs(f"{VERIFY_DIR}/{folder}")
    device.push(Path(manifest.dir) / MANIFEST_NAME, f"{VERIFY_DIR}/models/{MANIFEST_NAME}")
    device.push(manifest.file(entry), f"{VERIFY_DIR}/models/{entry.path}")
    device.push(f"{npy_dir}/.", f"{VERIFY_DIR}/in/")


def run_on_device(device: Device, manifest: Manifest, entry: Artefact, images: Dict[str, np.ndarray],
                  extras: dict, local_out: Path, timeout: float, poll_interval: float = 1.0) -> Dict[str, str]:
    """Steps 3-5 of the module doc; returns ``{device name: image name}``, the output pulled into ``local_out``."""
    names = device_image_names(list(images))
    with tempfile.TemporaryDirectory(prefix="edgematte-device-in-") as npy_dir:
        for device_name, name in names.items():
            np.save(Path(npy_dir) / f"{device_name}.npy", np.ascontiguousarray(images[name], dtype=np.uint8))
        console.info(f"pushing {entry.path} and {len(names)} images to {device.serial}")
        push_inputs(device, manifest, entry, Path(npy_dir))
    try:
        console.info(f"running {ACTIVITY} on {device.serial}")
        device.start_activity(ACTIVITY, extras)
        wait_for_marker(device, extras["output"], timeout, poll_interval)
        device.pull(extras["output"], local_out)
    finally:
        try:
            device.remove(VERIFY_DIR)
        except EdgematteError as error:  # the result matters more than the tidy-up
            console.warn(f"could not remove {VERIFY_DIR} from {device.serial}: {error}")
    return names


def device_facts(device: Device, from_app: dict) -> dict:
    """What the app reported (manufacturer, model, SDK, ABIs, cores) plus the Android release and SoC."""
    props = device.properties(["ro.build.version.release", "ro.soc.model", "ro.board.platform"])
    facts = dict(from_app)
    facts.setdefault("model", device.entry.properties.get("model"))
    facts["android"] = props["ro.build.version.release"]
    facts["soc"] = props["ro.soc.model"] or props["ro.board.platform"]
    return facts


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------


def zoo_share(manifest: Manifest) -> float:
    """The zoo's boundary-pixel share for the model (manifests that do not record theirs); 0 outside the zoo."""
    from ..zoo.registry import get_model_spec

    try:
        return get_model_spec(manifest.model.name).boundary_pixel_share
    except EdgematteError:  # a model from outside the zoo: continuous unless the manifest says otherwise
        return 0.0


def compare_device_output(manifest: Manifest, entry: Artefact, images: Dict[str, np.ndarray],
                          names: Dict[str, str], device_dir: Path, profile: str, threads: Optional[int],
                          sequence: bool = False):
    """Per-image results, pooled figures, threshold and failures for a pulled device output folder. ``sequence``:
    the images are one clip's frames, in order; the host runs carry the states as the device did.

    Returns ``(results, pooled, reference, threshold, threshold_source, failures, index)``.
    """
    from ..runtime.matter import Matter
    from ..runtime.profiles import profile_for_model
    from ..runtime.vectors import read_golden_vectors
    from ..runtime.verify import (
        Reference,
        boundary_pixel_share,
        compare_alpha,
        matte_one,
        matte_sequence,
        threshold_for,
    )

    vectors = read_golden_vectors(device_dir)
    cases = {case["image"]: case for case in vectors.cases}
    missing = [n for n in names if n not in cases]
    if missing:
        raise EdgematteError(f"{device_dir}: the device wrote no result for {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''}")
    reference = Reference(manifest, images, threads, sequence=sequence)
    threshold, source = threshold_for(entry, None, reference.slack, boundary_pixel_share(manifest, zoo_share(manifest)))
    reference_alphas = dict(zip(images, reference.alphas(profile)))
    python_profile = profile_for_model(profile, manifest.model.transforms)
    layout = entry.layout or "nchw"
    host_alphas = None
    if entry.runs_on_host:
        try:
            host = Matter.from_manifest(manifest.dir, artefact=entry.path, threads=threads, profile=profile)
            # As the device ran them: one clip with its states carried, or each photo a first frame.
            host_alphas = dict(zip(images, matte_sequence(host, images.values()) if sequence
                                   else [matte_one(host, rgb) for rgb in images.values()]))
        except EdgematteError as error:  # only the informational ARM-vs-x86 column is lost
            console.warn(f"{entry.path} does not run on this host, so it is compared with the reference only: "
                         f"{error}")
    results, device_alphas, failures = [], [], []
    for device_name, name in names.items():
        case = cases[device_name]
        alpha = vectors.array(case, "post_alpha").astype(np.float32)
        tensor, _ = python_profile.preprocess(images[name], manifest.model.input_hw, layout=layout)
        device_tensor = vectors.array(case, f"pre_tensor_{layout}")
        if device_tensor.shape != tensor.shape:
            raise EdgematteError(f"{device_dir}: {device_name}: the device's model input is "
                                 f"{list(device_tensor.shape)}, the Python profile's {list(tensor.shape)} "
                                 "(different profile or app version?)")
        comparison = compare_alpha(name, alpha, reference_alphas[name])
        vs_host = None
        if host_alphas is not None:
            host = compare_alpha(name, alpha, host_alphas[name])
            vs_host = {"max_abs": host.max_abs, "mean_abs": host.mean_abs, "sad": host.sad}
        pre_difference = float(np.abs(device_tensor.astype(np.float64) - tensor.astype(np.float64)).max())
        if pre_difference > PRE_TENSOR_TOLERANCE:
            failures.append(f"{name}: the device's model input differs from the Python profile's by "
                            f"{pre_difference:.3g} > {PRE_TENSOR_TOLERANCE:g}")
        results.append(ImageResult(image=name, device_name=device_name, size=comparison.size,
                                   max_abs=comparison.max_abs, mean_abs=comparison.mean_abs, sad=comparison.sad,
                                   pre_tensor_max_abs=pre_difference, vs_host_artefact=vs_host,
                                   timings_ms=dict(case.get("timings_ms", {}))))
        device_alphas.append(alpha)
    parity = parity_lib.compare(device_alphas, [reference_alphas[n] for n in names.values()], reference.path,
                                bound=threshold.max_abs)
    pooled = {"max_abs": parity.max_abs, "mean_abs": parity.mean_abs, "frac_over_bound": parity.frac_over_bound,
              "sad_mean": float(np.mean([r.sad for r in results]))}
    over = threshold.exceeded(parity)
    if over:
        failures.insert(0, f"device alpha against the reference: {over}")
    return results, pooled, reference, threshold, source, failures, vectors.index


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def default_report_dir(manifest: Manifest, serial: str, entry: Artefact) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{serial}-{entry.path}")
    return Path(manifest.dir) / "device-verify" / safe


def write_device_report(report: DeviceVerifyReport, report_dir: Path, device_output: Path) -> Path:
    """report.json, report.md and device-output/ into ``report_dir``, replaced only when complete."""
    with atomic_dir(report_dir) as tmp:
        (tmp / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        (tmp / "report.md").write_text(report.markdown())
        device_output.rename(tmp / "device-output")
    return report_dir


def verify_on_device(manifest_path, images_dir=None, serial: Optional[str] = None, out_dir=None,
                     artefact: Optional[str] = None, accelerator: str = "cpu", threads: int = 4, warmup: int = 1,
                     repeats: int = 3, timeout: float = DEFAULT_TIMEOUT_S, adb: Optional[Adb] = None,
                     poll_interval: float = 1.0, sequence_dir=None) -> DeviceVerifyReport:
    """Run the app's verification mode on a phone and compare it with the Python runtime (module doc).

    ``manifest_path``: ``OUT/manifest.json`` or ``OUT``. ``images_dir``: a folder (recursive) or one
    image; default the bundled parity photos. ``sequence_dir`` instead: a folder of one clip's numbered frames
    (:func:`edgematte.runtime.verify.load_sequence_frames`), run in order with a recurrent model's states carried
    from frame to frame on the device and on this host. ``serial``: the device (default: the only attached
    one). ``out_dir``: the report folder (default ``OUT/device-verify/SERIAL-ARTEFACT``).
    ``threads`` goes to the app and to this host's runs. ``timeout``: seconds to wait for the DONE
    marker. Raises :class:`EdgematteError` (one line) for every problem before a comparison exists;
    figures beyond the thresholds are in the report (``exit_code`` 1), which is written either way.
    """
    from ..runtime.verify import load_sequence_frames, load_verify_images

    if accelerator not in ("cpu", "gpu"):
        raise EdgematteError(f"--accelerator {accelerator}: expected cpu or gpu")
    if images_dir is not None and sequence_dir is not None:
        raise EdgematteError(f"--images {images_dir} and --sequence {sequence_dir}: give photos or one clip's "
                             "frames, not both")
    sequence = sequence_dir is not None
    manifest = read_manifest(manifest_path)
    entry = device_artefact(manifest, artefact)
    profile = entry.profile or "android"
    # The frames are checked (numbering, sizes) before any device is needed.
    images, skipped = (load_sequence_frames(sequence_dir), []) if sequence else load_verify_images(images_dir)
    device = (adb or Adb()).device(serial)
    if not device.package_installed(PACKAGE):
        raise EdgematteError(f"{device.serial}: the app {PACKAGE} is not installed (build android_demo and run "
                             "'./gradlew :app:installDebug', see android_demo/README.md)")
    extras = activity_extras(entry, profile, accelerator, threads, warmup, repeats, sequence)
    report_dir = Path(out_dir) if out_dir else default_report_dir(manifest, device.serial, entry)
    with tempfile.TemporaryDirectory(prefix="edgematte-device-out-") as work:
        device_output = Path(work) / "out"
        names = run_on_device(device, manifest, entry, images, extras, device_output, timeout, poll_interval)
        console.info(f"comparing {len(names)} device results with the Python runtime ({profile} profile"
                     f"{', one clip' if sequence else ''})")
        results, pooled, reference, threshold, source, failures, index = compare_device_output(
            manifest, entry, images, names, device_output, profile, threads, sequence)
        report = DeviceVerifyReport(
            serial=device.serial, manifest=str(Path(manifest.dir) / MANIFEST_NAME), artefact=entry.path,
            precision=entry.precision, device=device_facts(device, index.get("device", {})),
            settings={"profile": profile, "accelerator": accelerator, "threads": threads, "warmup": warmup,
                      "repeats": repeats, "sequence": sequence, "app_model": index.get("model", {})},
            reference=reference.as_dict(), threshold=asdict(threshold), threshold_source=source, images=results,
            skipped_images=skipped, pooled=pooled, failures=failures)
        report.report_dir = str(write_device_report(report, report_dir, device_output))
    return report
