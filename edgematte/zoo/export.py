"""Export a zoo model to a PaddleSeg-style deploy folder, as PaddleSeg's ``tools/export.py`` writes it.

The folder holds ``model.pdmodel`` + ``model.pdiparams`` (legacy inference format, feed ``img``; a recurrent
model feeds ``img``, its states and a downsample ratio, as PaddleSeg's export does) and ``deploy.yaml`` with
``Deploy.transforms``, ``model``, ``params``, ``input_shape`` (the image's) and ``ModelName``.
"""

import math
from pathlib import Path
from typing import Optional, Sequence

import yaml

from ..core.errors import EdgematteError
from ..core.fsutil import atomic_dir
from ..core.samples import sample_photo
from .bn_calibration import calibrate_batchnorm, calibration_input, pan_clip
from .registry import ModelSpec, get_model_spec
from .weights import check_layout, read_pdparams, seeded_state_dict

FEED_NAME = "img"


MAX_WIDTH = 2.0
"""Largest channel width multiplier: twice the official channels is about four times the weights and the
work (PP-HumanMatting at width 2: 255 M parameters, 1 GB of float32 weights; at width 4: 1.0 G parameters).
1 is the official model, below 1 tiny test variants."""

MAX_INPUT_PIXELS = 4096 * 4096
"""Largest N x H x W of a fixed input shape (16.8 megapixels). PP-HumanMatting at its native 2048x2048
(4.2 megapixels) already peaks at 15 GB while converting; past this bound a single float32 feature map no
longer fits in memory."""

# The message's yardstick: one float32 map of this many channels at the input size (PP-MattingV2's stem is 32
# channels wide).
_FEATURE_MAP_CHANNELS = 32


def validate_width(width, option: str = "--width") -> float:
    """``width`` as a float when it is a finite number above 0 and at most :data:`MAX_WIDTH`; a one-line
    :class:`EdgematteError` naming ``option`` otherwise (``nan``, ``inf``, 0 and negative numbers too)."""
    try:
        value = float(width)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_WIDTH):
        shown = f"{width:g}" if isinstance(width, float) else width
        raise EdgematteError(f"{option} {shown}: the channel width multiplier must be a number above 0 and at "
                             f"most {MAX_WIDTH:g} (1 is the official model, 0.25 a tiny test variant)")
    return value


def check_input_shape(shape: Sequence[int], option: str = "--input-shape", shown: Optional[str] = None) -> list:
    """An ``N C H W`` shape of any model as a list of ints: four numbers, N >= 1, C = 3, positive H and W, and
    N x H x W at most :data:`MAX_INPUT_PIXELS` (the message says what one feature map would need).

    Messages start with ``option`` and ``shown`` (what the user typed; default: the four numbers)."""
    dims = [int(d) for d in shape]
    shown = " ".join(map(str, dims)) if shown is None else shown
    if len(dims) != 4:
        raise EdgematteError(f"{option} {shown}: expected 4 numbers N C H W, got {len(dims)}")
    n, c, h, w = dims
    if n < 1 or c != 3 or h < 1 or w < 1:
        raise EdgematteError(f"{option} {shown}: expected N>=1, C=3 (RGB) and positive H, W")
    pixels = n * h * w
    if pixels > MAX_INPUT_PIXELS:
        feature_map = pixels * _FEATURE_MAP_CHANNELS * 4 / 2 ** 30
        raise EdgematteError(
            f"{option} {shown}: N x H x W is {pixels / 1e6:.1f} megapixels, above the limit of "
            f"{MAX_INPUT_PIXELS / 1e6:.1f} (4096 x 4096): a single {_FEATURE_MAP_CHANNELS}-channel float32 feature "
            f"map at that size would need {feature_map:,.0f} GiB of memory")
    return dims


def validate_input_shape(spec: ModelSpec, shape: Sequence[int], option: str = "--input-shape",
                         shown: Optional[str] = None) -> list:
    """Check an ``N C H W`` shape for ``spec`` (and :func:`check_input_shape`); return it as a list of ints.

    The network's strides need H and W to be multiples of ``spec.size_multiple`` (32 for
    PP-MattingV2: its deepest feature is 1/32 scale and the pyramid pools at 1/64; 1 for RVM, which crops).
    """
    dims = check_input_shape(shape, option, shown)
    shown = " ".join(map(str, dims)) if shown is None else shown
    n, c, h, w = dims
    # the network needs at least one cell at its deepest (1/64) scale
    minimum = max(spec.size_multiple, 64)
    if h % spec.size_multiple or w % spec.size_multiple or h < minimum or w < minimum:
        multiples = f"multiples of {spec.size_multiple} and " if spec.size_multiple > 1 else ""
        raise EdgematteError(f"{option} {shown}: {spec.name} needs H and W to be {multiples}at least {minimum}")
    return dims


def build_with_weights(spec: ModelSpec, weights=None, seed: Optional[int] = None, width: float = 1.0):
    """Build ``spec`` in eval mode with an official checkpoint (read safely) or seeded weights (the formula, then,
    for a spec with a ``seed_calibration_photo``, BatchNorm statistics calibrated on that photo at its native
    size: seed 0 so reproduces the seed-0 reference outputs PaddleSeg's own code gives)."""
    if (weights is None) == (seed is None):
        raise EdgematteError(f"{spec.name}: give exactly one of --pretrained (the official checkpoint), --weights "
                             "FILE.pdparams or --seed N")
    model = spec.build(width=width)
    layout = spec.layout(width=width)
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
    if seed is not None and spec.seed_calibration_photo:
        calibrate_batchnorm(model, seed_calibration_input(spec))
    return model


def seed_calibration_input(spec: ModelSpec):
    """The model input ``--seed`` calibrates ``spec``'s BatchNorm statistics on: its photo at its native size
    (a recurrent model: the first frame of its reference clip), normalized by its transforms."""
    photo = sample_photo(spec.seed_calibration_photo)
    if spec.seed_calibration_clip:
        photo = pan_clip(photo, spec.native_hw, *spec.seed_calibration_clip)[0]
    return calibration_input(photo, spec.native_hw, spec.transforms)


def export_inputs(spec: ModelSpec, net, shape) -> list:
    """The feeds of the exported program: ``img`` of ``shape`` alone, unless the model's definition names more
    (``export_inputs(net, shape)``: RVM's recurrent states and downsample ratio, in PaddleSeg's order)."""
    import paddle

    definition = spec.definition()
    if hasattr(definition, "export_inputs"):
        return definition.export_inputs(net, shape)
    return [paddle.static.InputSpec(shape, "float32", FEED_NAME)]


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
    spec = get_model_spec(model)
    width = validate_width(width)
    shape = validate_input_shape(spec, input_shape) if input_shape else [None, 3, None, None]
    import paddle  # after the option checks: a wrong option is refused at once
    out = Path(out)
    with atomic_dir(out, inputs=[weights] if weights is not None else [], what="deploy folder") as tmp:
        net = build_with_weights(spec, weights=weights, seed=seed, width=width)
        paddle.jit.save(net, str(tmp / "model"), input_spec=export_inputs(spec, net, shape))
        (tmp / "model.pdiparams.info").unlink(missing_ok=True)  # training metadata, not part of a deploy folder
        (tmp / "deploy.yaml").write_text(deploy_yaml_text(spec, shape))
    return out
