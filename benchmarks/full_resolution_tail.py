"""The full-resolution tail of a ``.tflite`` model, and a copy of the model that stops before it.

A matting model ends in ops that work at the photo's own resolution (PP-MattingV2: the resize of the decoder's
16 channels to H x W, the concatenation with the image, three convolutions and the sigmoid). Their cost grows with
the output size, and LiteRT's Python API has no per-op profiler, so compare_runtimes times the tail by difference:
the whole model, and beside it in the same interleaved rounds a copy whose last op is the one before the tail
(:func:`without_full_resolution_tail`). XNNPACK partitions the copy like the original up to that point, so the
difference is the tail's own time, plus fetching the alpha (and dequantizing it, for an integer-output model).

The tail is the longest run of trailing ops every output of which is a 4-D tensor with the input image's height and
at most its width (NHWC, as every ``.tflite`` edgematte writes): the maps at the photo's size, and the same maps
as the ``pixel_pair_convolutions`` repair writes them (``[1, H, W/2, 2C]``, and the border strips ``[1, H, 4L, C]``).
A model whose last op is not at full resolution (RVM, whose recurrent states are written last) has no tail.
"""

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgematte.quant.tflite.ops import tflite_ops
from edgematte.runtime.tflite_flatbuffer import parse_model, submodel


def model_inputs(path: Path) -> Dict[int, Tuple[int, ...]]:
    """The model's inputs: tensor index -> shape."""
    from edgematte.runtime.backends.litert import _import_interpreter

    interpreter_class, _, _ = _import_interpreter()
    return {int(d["index"]): tuple(int(n) for n in d["shape"])
            for d in interpreter_class(model_path=str(path)).get_input_details()}


def full_resolution_size(inputs: Dict[int, Tuple[int, ...]]) -> Optional[Tuple[int, int]]:
    """Height and width of the largest 4-D NHWC input (the photo), None if the model has none."""
    images = [shape for shape in inputs.values() if len(shape) == 4]
    if not images:
        return None
    biggest = max(images, key=lambda shape: shape[1] * shape[2])
    return biggest[1], biggest[2]


def full_resolution_tail(ops: List[dict], size: Optional[Tuple[int, int]]) -> int:
    """Index of the tail's first op (``len(ops)``: no tail); ``ops`` from :func:`tflite_ops`, ``size`` the photo's
    height and width."""
    start = len(ops)
    while size and start > 0 and all(len(t["shape"]) == 4 and t["shape"][1] == size[0] and t["shape"][2] <= size[1]
                                     for t in ops[start - 1]["outputs"]):
        start -= 1
    return start if start > 0 else len(ops)


def without_full_resolution_tail(path: Path, out: Path) -> Optional[List[str]]:
    """Write to ``out`` a copy of the model at ``path`` whose ops end before the full-resolution tail (and without
    the ops that only fed the tail); its outputs are the tensors the tail reads from the ops before it. Returns the
    tail's op names, None (nothing written) when the model has no tail."""
    ops, inputs = tflite_ops(path), model_inputs(path)
    start = full_resolution_tail(ops, full_resolution_size(inputs))
    if start == len(ops):
        return None
    # activations: what the model inputs flow into (not weights an fp16 model's DEQUANTIZE ops make from constants)
    activations = set(inputs)
    for op in ops[:start]:
        if any(t["index"] in activations for t in op["inputs"]):
            activations.update(t["index"] for t in op["outputs"])
    outputs = sorted({t["index"] for op in ops[start:] for t in op["inputs"]
                      if t["index"] in activations and t["index"] not in inputs})
    # ops before the tail that only fed it (an fp16 model's weight DEQUANTIZEs) go too: XNNPACK refuses dead ends
    needed, kept = set(outputs), []
    for index in range(start - 1, -1, -1):
        if any(t["index"] in needed for t in ops[index]["outputs"]):
            kept.append(index)
            needed.update(t["index"] for t in ops[index]["inputs"])
    Path(out).write_bytes(submodel(parse_model(Path(path).read_bytes()), sorted(kept), outputs))
    return [op["op"] for op in ops[start:]]


class RunsUpToTheTail:
    """The copy without the tail, fed like the artefact's :class:`~edgematte.runtime.matter.Matter` feeds it (an
    integer input quantized first); its outputs are left in the interpreter (fetching them is no part of the model)."""

    def __init__(self, path: Path, threads: int):
        from edgematte.runtime.backends.litert import LiteRTBackend

        self.backend = LiteRTBackend(path, threads=threads)
        self.input_spec = self.backend.inputs[0]

    def run_tensor(self, tensor: np.ndarray) -> None:
        from edgematte.runtime.backends.litert import quantize

        # the backend's invoke without run()'s copy of the first output: the artefact's alpha is fetched, the
        # decoder's features need not be
        self.backend._invoke([quantize(tensor, self.input_spec) if self.input_spec.quant is not None else tensor])
