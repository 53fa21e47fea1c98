"""Export a zoo model to a PaddleSeg-style deploy folder, as PaddleSeg's ``tools/export.py`` writes it.

The folder holds ``model.pdmodel`` + ``model.pdiparams`` (legacy inference format, feed ``img``) and
``deploy.yaml`` with ``Deploy.transforms``, ``model``, ``params``, ``input_shape`` and ``ModelName``.
"""

from pathlib import Path
from typing import Optional, Sequence

import yaml

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from .registry import ModelSpec, get_model_spec
from .weights import check_layout, read_pdparams, seeded_state_dict

FEED_NAME = "img"


def validate_input_shape(spec: ModelSpec, shape: Sequence[int], option: str = "--input-shape") -> list:
    """Check an ``N C H W`` shape for ``spec``; return it as a list of ints.

    The network's strides need H and W to be multiples of ``spec.size_multiple`` (32 for
    PP-MattingV2: its deepest feature is 1/32 scale and the pyramid pools at 1/64).
    """
    dims = [int(d) for d in shape]
    if len(dims) != 4:
        raise EdgematteError(f"{option}: expected 4 numbers N C H W, got {len(dims)}")
    n, c, h, w = dims
    if n < 1 or c != 3 or h < 1 or w < 1:
        raise EdgematteError(f"{option} {' '.join(map(str, dims))}: expected N>=1, C=3 (RGB) and positive H, W")
    # the network needs at least one cell at its deepest (1/64) scale
    minimum = max(spec.size_multiple, 64)
    if h % spec.size_multiple or w % spec.size_multiple or h < minimum or w < minimum:
        raise EdgematteError(
            f"{option} {' '.join(map(str, dims))}: {spec.name} needs H and W to be multiples of "
            f"{spec.size_multiple} and at least {minimum}"
        )
    return dims


def build_with_weights(spec: ModelSpec, weights=None, seed: Optional[int] = None, width: float = 1.0):
    """Build ``spec`` in eval mode with an official checkpoint (read safely) or seeded weights."""
    if (weights is None) == (seed is None):
        raise EdgematteError(f"{spec.name}: give exactly one of --weights FILE.pdparams or --seed N")
    model = spec.build(width=width)
    layout = spec.definition().layout(width=width)
    if weights is not None:
        state = read_pdparams(weights)
        check = check_layout(layout, state)
        if not check.ok:
            raise EdgematteError(
                f"{weights}: does not fit {spec.name} (width {width}): {check.summary()} "
                f"(see 'edgematte zoo check-weights {spec.name} {weights}')"
            )
    else:
        state = seeded_state_dict(layout, seed)
    model.set_state_dict(state)
    model.eval()
    return model


def deploy_yaml_text(spec: ModelSpec, input_shape) -> str:
    """The ``deploy.yaml`` PaddleSeg's matting export writes (``input_shape`` null entries when dynamic)."""
    data = {
        "Deploy": {
            "transforms": spec.transforms,
            "model": "model.pdmodel",
            "params": "model.pdiparams",
            "input_shape": list(input_shape),
        },
        "ModelName": spec.paddleseg_class,
    }
    return yaml.safe_dump(data, sort_keys=True)


def export_deploy_folder(
    model: str,
    out,
    weights=None,
    seed: Optional[int] = None,
    width: float = 1.0,
    input_shape: Optional[Sequence[int]] = None,
) -> Path:
    """Write a deploy folder for zoo ``model`` to ``out`` atomically and return its path.

    ``input_shape`` fixes the feed (``[N, 3, H, W]``); ``None`` exports ``[None, 3, None, None]``.
    """
    import paddle

    spec = get_model_spec(model)
    shape = validate_input_shape(spec, input_shape) if input_shape else [None, 3, None, None]
    out = Path(out)
    with atomic_dir(out, inputs=[weights] if weights is not None else [], what="deploy folder") as tmp:
        net = build_with_weights(spec, weights=weights, seed=seed, width=width)
        paddle.jit.save(
            net,
            str(tmp / "model"),
            input_spec=[paddle.static.InputSpec(shape, "float32", FEED_NAME)],
        )
        (tmp / "model.pdiparams.info").unlink(missing_ok=True)  # training metadata, not part of a deploy folder
        (tmp / "deploy.yaml").write_text(deploy_yaml_text(spec, shape))
    return out
