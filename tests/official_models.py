"""Deploy folders exactly as PaddleSeg's ``Matting/tools/export.py`` wrote them, rebuilt with seeded weights.

``tests/data/official/MODEL/`` holds the program PaddleSeg wrote (``model.pdmodel``), its ``deploy.yaml`` and
``params.tsv`` (one line per parameter: program variable, state_dict key, shape). The weights are not shipped:
:func:`build_official_folder` writes ``model.pdiparams`` from the project's seeded-weight formula, with Paddle's
own parameter writer (``paddle.static.save_vars``), in the order the program declares them.

Seed 0 of the HRNet / ResNet / MobileNet / VGG models is the formula plus calibrated BatchNorm statistics
(``bn_stats.npz``: state_dict key -> the running mean or variance, measured on the astronaut photo at 512x512;
without them these nets saturate). RVM's two persistables that are no parameters (``backbone.mean``/``.std``,
the ImageNet normalization inside the model) come from ``constants.npz``.
"""

import ast
import shutil
from pathlib import Path

import numpy as np

OFFICIAL = Path(__file__).parent / "data" / "official"
MODELS = ("ppmattingv2", "humanmatting", "modnet_mobilenetv2", "modnet_resnet50_vd", "modnet_hrnet_w18",
          "ppmatting_hrnet_w18", "rvm_mobilenetv3", "dim_vgg16")


def _fixed_values(src: Path, seed: int) -> dict:
    """state_dict key -> value that replaces the formula: calibrated BatchNorm statistics (seed 0 only) and
    model constants."""
    fixed = {}
    if seed == 0 and (src / "bn_stats.npz").is_file():
        with np.load(src / "bn_stats.npz") as stats:
            fixed.update({k: stats[k] for k in stats.files})
    if (src / "constants.npz").is_file():
        with np.load(src / "constants.npz") as constants:
            fixed.update({k: constants[k] for k in constants.files})
    return fixed


def build_official_folder(name: str, dst: Path, seed: int = 0) -> Path:
    """Copy the official deploy folder ``name`` to ``dst`` and write its seeded ``model.pdiparams``; returns ``dst``."""
    import paddle

    from edgematte.converter.program import read_program, static_mode
    from edgematte.zoo.weights import seeded_array

    src = OFFICIAL / name
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for file in ("deploy.yaml", "model.pdmodel"):
        shutil.copyfile(src / file, dst / file)
    fixed = _fixed_values(src, seed)
    rows = {row[0]: row for row in (line.split("\t") for line in (src / "params.tsv").read_text().splitlines())
            if len(row) == 3}
    with static_mode():
        scope = paddle.static.Scope()
        program = paddle.static.Program()
        variables = []
        with paddle.static.scope_guard(scope):
            for spec in read_program(src / "model.pdmodel").parameters:
                _, key, shape = rows[spec.name]
                # "?": a constant of the model, not a parameter (RVM's backbone.mean / .std): the program's shape
                shape = list(spec.shape) if shape == "?" else ast.literal_eval(shape)
                value = fixed[key] if key in fixed else seeded_array(key, shape, seed)
                value = np.asarray(value, np.float32).reshape(shape)
                variables.append(program.global_block().create_var(name=spec.name, shape=shape, dtype="float32",
                                                                    persistable=True))
                scope.var(spec.name).get_tensor().set(value, paddle.CPUPlace())
            paddle.static.save_vars(paddle.static.Executor(paddle.CPUPlace()), str(dst), main_program=program,
                                    vars=variables, filename="model.pdiparams")
    return dst
