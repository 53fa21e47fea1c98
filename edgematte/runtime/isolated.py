"""Running a model in a child process, so a runtime that aborts or segfaults costs one line, not the caller.

Paddle Lite 2.13's x86 ``.nb`` aborts the whole process on programs it mis-handles (a 0-D ``fill_constant``:
"no valid out_shape"; a quantized depthwise conv without bias segfaults). Python cannot catch either. The
converter's parity runs of such artefacts go through :func:`run_isolated`: the model runs in a fresh
interpreter, inputs and outputs cross as ``.npz`` files (``allow_pickle=False``), and a child that dies by a
signal becomes an :class:`~edgematte.core.errors.EdgematteError` naming the file, the signal and the runtime's
last words.

The child is this module: ``python -m edgematte.runtime.isolated BACKEND MODEL INPUTS.npz OUTPUTS.npz THREADS``;
the inputs file carries the cases and the roles to feed them by (:mod:`edgematte.runtime.model_io`).
"""

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..core.errors import EdgematteError
from ..core.tools import python_tool_env, run_tool, signal_name

TIMEOUT_SECONDS = 1800  # PP-HumanMatting at 2048x2048 on 4 photos takes minutes on a 2-core host
_SPECS_KEY = "__tensor_specs__"
_PLAN_KEY = "__feed_plan__"


@dataclass
class IsolatedRun:
    """What the child returned: the alpha of every step of every case, and the model's tensor specs as
    manifest entries."""

    outputs: List[np.ndarray]
    inputs: List[dict]
    output_specs: List[dict]


def run_isolated(backend: str, model, tensors: Sequence[np.ndarray], threads: Optional[int] = None) -> IsolatedRun:
    """Run a one-input ``model`` on each of ``tensors`` in a child process; ``outputs`` holds its first output
    for each. See the module docstring."""
    return run_isolated_cases(backend, model, [[{"": x}] for x in tensors], None, None, "nchw", threads)


def run_isolated_cases(backend: str, model, cases, input_roles: Optional[List[dict]],
                       output_roles: Optional[List[dict]], layout: str, threads: Optional[int] = None) -> IsolatedRun:
    """Run ``model`` on ``cases`` (:mod:`edgematte.runtime.model_io`) in a child process, feeding it by the roles
    (None: one image input, the first output is the alpha); ``outputs`` holds every step's alpha."""
    model = Path(model)
    fed_names = sorted({name for steps in cases for step in steps for name in step})
    with tempfile.TemporaryDirectory(prefix="edgematte-isolated-") as work:
        inputs, outputs = Path(work) / "inputs.npz", Path(work) / "outputs.npz"
        arrays = {f"c{c}_s{s}_i{fed_names.index(name)}": x for c, steps in enumerate(cases)
                  for s, step in enumerate(steps) for name, x in step.items()}
        plan = {"inputs": input_roles, "outputs": output_roles, "layout": layout, "names": fed_names,
                "steps": [len(steps) for steps in cases]}
        np.savez(inputs, **arrays, **{_PLAN_KEY: np.array(json.dumps(plan))})
        run = run_tool([sys.executable, "-m", __name__, backend, str(model), str(inputs), str(outputs),
                        str(threads or 0)], what=f"{model}: {backend}", timeout_s=TIMEOUT_SECONDS,
                       env=python_tool_env())
        if run.timed_out:
            raise EdgematteError(f"{model}: {backend} did not finish within {TIMEOUT_SECONDS} s")
        name = signal_name(run.returncode)
        if name:
            raise EdgematteError(f"{model}: {backend} crashed ({name}) while running it: {run.error_line()}")
        if run.returncode != 0 or not outputs.is_file():
            raise EdgematteError(f"{model}: {backend} failed: {run.error_line()}")
        with np.load(outputs, allow_pickle=False) as data:
            specs = json.loads(str(data[_SPECS_KEY]))
            results = [data[f"arr_{i}"] for i in range(sum(plan["steps"]))]
    return IsolatedRun(results, specs["inputs"], specs["outputs"])


def _default_roles(backend) -> tuple:
    """One image input (the first), the first output the alpha: the contract of :func:`run_isolated`."""
    inputs = [{"name": "", "role": "image", "shape": list(backend.inputs[0].shape)}]
    outputs = [{"name": s.name, "role": "alpha" if i == 0 else "output"} for i, s in enumerate(backend.outputs)]
    return inputs, outputs


def _child(argv: List[str]) -> int:
    from ..core.errors import EdgematteError as Error
    from .backends import open_backend
    from .backends.base import tensor_entries
    from .model_io import FeedPlan, alphas

    backend_name, model, inputs, outputs, threads = argv
    try:
        backend = open_backend(backend_name, model, threads=int(threads) or None)
        with np.load(inputs, allow_pickle=False) as data:
            plan = json.loads(str(data[_PLAN_KEY]))
            cases = [[{name: data[f"c{c}_s{s}_i{i}"] for i, name in enumerate(plan["names"])
                       if f"c{c}_s{s}_i{i}" in data.files} for s in range(count)]
                     for c, count in enumerate(plan["steps"])]
        if plan["inputs"] is None:
            input_roles, output_roles = _default_roles(backend)
            feed_plan = FeedPlan(input_roles, output_roles, plan["layout"])
        else:
            feed_plan = FeedPlan.of(plan["inputs"], plan["outputs"], [s.name for s in backend.inputs],
                                    [s.name for s in backend.outputs], plan["layout"], str(model))
        results = alphas(feed_plan, backend.run_feeds, cases)
    except Error as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    specs = json.dumps({"inputs": tensor_entries(backend.inputs), "outputs": tensor_entries(backend.outputs)})
    np.savez(outputs, *results, **{_SPECS_KEY: np.array(specs)})
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
