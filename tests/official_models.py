"""Deploy folders exactly as PaddleSeg's ``Matting/tools/export.py`` wrote them, rebuilt with seeded weights.

``tests/data/official/MODEL/`` holds the program PaddleSeg wrote (``model.pdmodel``), its ``deploy.yaml`` and
``params.tsv`` (one line per parameter: program variable, state_dict key, shape). The weights are not shipped:
:func:`build_official_folder` writes ``model.pdiparams`` from the project's seeded-weight formula, with Paddle's
own parameter writer (``paddle.static.save_vars``), in the order the program declares them.
"""

import ast
import shutil
from pathlib import Path

import numpy as np

OFFICIAL = Path(__file__).parent / "data" / "official"


def build_official_folder(name: str, dst: Path, seed: int = 0) -> Path:
    """Copy the official deploy folder ``name`` to ``dst`` and write its seeded ``model.pdiparams``; returns ``dst``."""
    import paddle

    from edgematte.converter.program import read_program
    from edgematte.zoo.weights import seeded_array

    src = OFFICIAL / name
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for file in ("deploy.yaml", "model.pdmodel"):
        shutil.copyfile(src / file, dst / file)
    rows = {row[0]: row for row in (line.split("\t") for line in (src / "params.tsv").read_text().splitlines())
            if len(row) == 3}
    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        scope = paddle.static.Scope()
        program = paddle.static.Program()
        variables = []
        with paddle.static.scope_guard(scope):
            for spec in read_program(src / "model.pdmodel").parameters:
                _, key, shape = rows[spec.name]
                shape = ast.literal_eval(shape)
                variables.append(program.global_block().create_var(name=spec.name, shape=shape, dtype="float32",
                                                                    persistable=True))
                scope.var(spec.name).get_tensor().set(seeded_array(key, shape, seed).astype(np.float32),
                                                      paddle.CPUPlace())
            paddle.static.save_vars(paddle.static.Executor(paddle.CPUPlace()), str(dst), main_program=program,
                                    vars=variables, filename="model.pdiparams")
    finally:
        if was_dynamic:
            paddle.disable_static()
    return dst
