"""Stage 2: Paddle Lite ``.nb`` per target (``opt``), the x86 one run and compared here.

The x86 ``.nb`` runs in a child process (:mod:`edgematte.runtime.isolated`): Paddle Lite aborts the process on
programs it mis-handles, and that must end as one line naming the file, not as the converter's death.
An arm or opencl ``.nb`` cannot run on this x86 host: it carries the figures of the x86 ``.nb`` that opt
built from the same program (``runs_on_host: false``). The x86 twin is always built, and dropped again when
it was not asked for.
"""

from typing import List

from ...core import parity as parity_lib
from ...core.manifest import Artefact
from ..context import Context

NAME = "lite"
TARGET_ORDER = ("x86", "arm", "opencl")
OPT_SUMMARY_KEYS = ("relu6_patched", "kernel_targets", "opt_seconds")


def applies(ctx: Context) -> bool:
    return "lite" in ctx.formats


def run(ctx: Context) -> List[Artefact]:
    from ...converter.paddle_lite import optimize
    from ...runtime.isolated import run_isolated_cases

    recorded, x86_parity, io = [], None, None
    targets = sorted(set(ctx.options.lite_targets), key=TARGET_ORDER.index)
    host_only = "x86" not in targets
    if host_only:
        targets.insert(0, "x86")  # the host-runnable twin every arm/opencl .nb is judged by
    bound = ctx.bounds["fp32"]
    for target in targets:
        path = ctx.out / f"model_{target}.nb"
        with ctx.step(f"Paddle Lite opt -> {path.name}"):
            info = optimize(ctx.frozen.files.model.parent, path, target)
        summary = info.as_dict()
        ctx.add_repairs(summary.get("applied_repairs"), path.name)
        common = dict(format="nb", target=target, precision="fp32", runtime="paddle_lite", layout="nchw",
                      profile=ctx.profile.name,
                      extra={"opt": {k: summary[k] for k in OPT_SUMMARY_KEYS if k in summary}})
        if target == "x86":
            with ctx.step(f"parity {path.name} (Paddle Lite x86)"):
                # In a child process: a .nb Lite mis-handles aborts the process (SIGABRT), which here is one line.
                model = ctx.manifest.model
                run = run_isolated_cases("paddle_lite", path, ctx.cases, model.input_roles(), model.output_roles(),
                                         "nchw", ctx.options.threads)
                outputs = run.outputs
                x86_parity = ctx.compare(outputs)
                io = dict(inputs=run.inputs, outputs=run.output_specs)
            if host_only:
                path.unlink()
                continue
            recorded.append(ctx.record(path, outputs, x86_parity, bound=bound, **io, **common))
        else:
            inherited = parity_lib.inherited(
                x86_parity, f"an {target} .nb cannot run on this x86 host: figures are those of the x86 .nb "
                "optimized by opt from the same program"
            )
            recorded.append(ctx.record(path, None, inherited, bound=None, **io, **common))
    return recorded
