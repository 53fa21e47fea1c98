"""The raw output of one artefact on one given input tensor, saved for a cross-machine comparison.

Runs on a bench target (shipped with the runtime code) as well as on the host, so that an ARM
build of a runtime can be compared with the x86 one on exactly the same input bytes::

    python -m edgematte.runtime.raw_outputs --manifest OUT --artefact model_int8.tflite \\
        --input input.npy --out outputs.npz [--kernels default|builtin|reference] [--trace]

``--input``: float32 model-input tensor in the artefact's layout (NHWC ``[1, H, W, 3]`` for a
default TFLite model), normalized as the profile does; without it the tensor is
:func:`deterministic_input` (the runner's synthetic photo at the model's size, pre-processed here,
so it depends on this machine's OpenCV: give ``--input`` for a comparison). Integer-I/O models get
it quantized with the tensor's own ``(scale, zero point)``.

``--kernels`` (TFLite only): ``default`` is what an app runs (LiteRT with its XNNPACK delegate);
``builtin`` LiteRT's own optimized kernels without any delegate; ``reference`` its portable
reference kernels (plain C++, the same arithmetic on every CPU). ``--trace`` (``builtin`` or
``reference``) also saves every op's output tensor, to find the first op where two machines differ.

``outputs.npz`` holds ``output`` (float32, dequantized for integer-I/O models), ``raw_output`` (the
model's own dtype: int8 for integer-I/O models; a recurrent model's alphas of :data:`RECURRENT_FRAMES` frames,
stacked), ``output_quant`` (``[scale, zero_point]``, or
empty) and with ``--trace`` one ``op/NNNN/OPNAME/TENSOR`` array per op output. One line
``EDGEMATTE_OUTPUTS {json}`` on stdout says where, what and on which machine; exit status 3 (with
``"error"`` in the JSON) when the artefact cannot run.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict

import numpy as np

from .bench_runner import library_versions, machine_facts, open_matter, synthetic_photo

RESULT_PREFIX = "EDGEMATTE_OUTPUTS "
RECURRENT_FRAMES = 3
"""A recurrent model (RVM) runs the input as this many frames from zero states, its states fed back: the outputs
are the alphas of every frame, so the comparison covers the state feedback."""
KERNELS = ("default", "builtin", "reference")
TRACE_PREFIX = "op/"


def deterministic_input(matter) -> np.ndarray:
    """float32 model-input tensor (the matter's layout) of the runner's synthetic photo at the model size."""
    height, width = matter.input_hw
    tensor, _ = matter.model_input(synthetic_photo(width, height))
    return np.ascontiguousarray(tensor, dtype=np.float32)


def _run_litert_kernels(path: Path, x: np.ndarray, threads: int, kernels: str, trace: bool):
    """(first output, {trace key: tensor}) of a .tflite model run with LiteRT's ``kernels`` and no delegate."""
    from .backends.litert import _import_interpreter

    interpreter_class, resolver, module = _import_interpreter()
    if resolver is None:
        raise RuntimeError(f"{module} cannot choose its kernels (--kernels {kernels})")
    choice = resolver.BUILTIN_REF if kernels == "reference" else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = interpreter_class(model_path=str(path), num_threads=threads, experimental_op_resolver_type=choice,
                                    experimental_preserve_all_tensors=trace)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    traced: Dict[str, np.ndarray] = {}
    if trace:
        for op in interpreter._get_ops_details():  # the only op-level view LiteRT's Python API has
            for tensor_index in op["outputs"]:
                key = f"{TRACE_PREFIX}{op['index']:04d}/{op['op_name']}/{tensor_index}"
                traced[key] = interpreter.get_tensor(tensor_index)
    return output, traced


def model_outputs(manifest_dir: str, artefact: str, tensor: np.ndarray, threads: int = 1,
                  kernels: str = "default", trace: bool = False) -> Dict[str, np.ndarray]:
    """``{"output", "raw_output", "output_quant"}`` (+ trace arrays) of ``artefact`` on the float input ``tensor``."""
    from .backends.litert import dequantize, quantize

    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, not {kernels!r}")
    if trace and kernels == "default":
        raise ValueError("trace needs kernels 'builtin' or 'reference' (the XNNPACK delegate hides its tensors)")
    matter = open_matter(manifest_dir, artefact, threads)
    model_input = quantize(tensor, matter.input_spec) if matter.input_spec.quant is not None else tensor
    traced = {}
    if matter.recurrent:
        if kernels != "default":
            raise ValueError(f"--kernels {kernels}: a recurrent model runs with the default kernels only")
        matter.reset()  # zero states, then each frame's states fed to the next, as an app runs a clip
        raw = np.stack([np.asarray(matter.run_tensor(model_input)) for _ in range(RECURRENT_FRAMES)])
    elif kernels == "default":
        raw = np.asarray(matter.backend.run(model_input))
    else:
        path = Path(matter.backend.path)
        if path.suffix != ".tflite":
            raise ValueError(f"--kernels {kernels} applies to .tflite artefacts only, not {path.name}")
        raw, traced = _run_litert_kernels(path, model_input, threads, kernels, trace)
    quant = matter.output_spec.quant
    output = dequantize(raw, matter.output_spec) if quant is not None else raw.astype(np.float32)
    return {"output": output, "raw_output": raw,
            "output_quant": np.asarray(quant if quant is not None else [], dtype=np.float64), **traced}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--artefact", required=True, help="artefact path in the manifest")
    parser.add_argument("--input", default=None, help="float32 .npy model-input tensor (default: deterministic_input)")
    parser.add_argument("--out", required=True, help=".npz file to write")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernels", choices=KERNELS, default="default")
    parser.add_argument("--trace", action="store_true", help="also save every op's output (builtin/reference kernels)")
    args = parser.parse_args(argv)
    summary = {"artefact": args.artefact, "threads": args.threads, "kernels": args.kernels}
    try:
        if args.input:
            tensor = np.load(args.input)
        else:
            tensor = deterministic_input(open_matter(args.manifest, args.artefact, args.threads))
        arrays = model_outputs(args.manifest, args.artefact, tensor, args.threads, args.kernels, args.trace)
        with open(args.out, "wb") as f:
            np.savez(f, **arrays)
        summary.update(out=args.out, dtype=arrays["raw_output"].dtype.name, shape=list(arrays["raw_output"].shape),
                       machine=machine_facts(), versions=library_versions())
    except Exception as e:  # reported as data, as the runner does
        summary["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    sys.stdout.write(RESULT_PREFIX + json.dumps(summary) + "\n")
    return 0 if "error" not in summary else 3


if __name__ == "__main__":
    sys.exit(main())
