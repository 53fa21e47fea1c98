"""Running a model in a child process, so a runtime that aborts or segfaults costs one line, not the caller.

Paddle Lite 2.13's x86 ``.nb`` aborts the whole process on programs it mis-handles (a 0-D ``fill_constant``:
"no valid out_shape"; a quantized depthwise conv without bias segfaults). Python cannot catch either. The
converter's parity runs of such artefacts go through :func:`run_isolated`: the model runs in a fresh
interpreter, inputs and outputs cross as ``.npz`` files (``allow_pickle=False``), and a child that dies by a
signal becomes an :class:`~edgematte.core.errors.EdgematteError` naming the file, the signal and the runtime's
last words.

The child is this module: ``python -m edgematte.runtime.isolated BACKEND MODEL INPUTS.npz OUTPUTS.npz THREADS``.
"""

import json
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..core.errors import EdgematteError
from ..core.tools import python_tool_env, run_tool

TIMEOUT_SECONDS = 1800  # PP-HumanMatting at 2048x2048 on 4 photos takes minutes on a 2-core host
_SPECS_KEY = "__tensor_specs__"


@dataclass
class IsolatedRun:
    """What the child returned: one output per input tensor, and the model's tensor specs as manifest entries."""

    outputs: List[np.ndarray]
    inputs: List[dict]
    output_specs: List[dict]


def run_isolated(backend: str, model, tensors: Sequence[np.ndarray], threads: Optional[int] = None) -> IsolatedRun:
    """Run ``backend`` on ``model`` for each of ``tensors`` in a child process; see the module docstring."""
    model = Path(model)
    with tempfile.TemporaryDirectory(prefix="edgematte-isolated-") as work:
        inputs, outputs = Path(work) / "inputs.npz", Path(work) / "outputs.npz"
        np.savez(inputs, *tensors)
        run = run_tool([sys.executable, "-m", __name__, backend, str(model), str(inputs), str(outputs),
                        str(threads or 0)], what=f"{model}: {backend}", timeout_s=TIMEOUT_SECONDS,
                       env=python_tool_env())
        if run.timed_out:
            raise EdgematteError(f"{model}: {backend} did not finish within {TIMEOUT_SECONDS} s")
        if run.returncode < 0:
            name = signal.Signals(-run.returncode).name
            raise EdgematteError(f"{model}: {backend} crashed ({name}) while running it: {run.error_line()}")
        if run.returncode != 0 or not outputs.is_file():
            raise EdgematteError(f"{model}: {backend} failed: {run.error_line()}")
        with np.load(outputs, allow_pickle=False) as data:
            specs = json.loads(str(data[_SPECS_KEY]))
            results = [data[f"arr_{i}"] for i in range(len(tensors))]
    return IsolatedRun(results, specs["inputs"], specs["outputs"])


def _child(argv: List[str]) -> int:
    from ..core.errors import EdgematteError as Error
    from .backends import open_backend
    from .backends.base import tensor_entries

    backend_name, model, inputs, outputs, threads = argv
    try:
        backend = open_backend(backend_name, model, threads=int(threads) or None)
        with np.load(inputs, allow_pickle=False) as data:
            results = [backend.run(data[f"arr_{i}"]) for i in range(len(data.files))]
    except Error as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    specs = json.dumps({"inputs": tensor_entries(backend.inputs), "outputs": tensor_entries(backend.outputs)})
    np.savez(outputs, *results, **{_SPECS_KEY: np.array(specs)})
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
