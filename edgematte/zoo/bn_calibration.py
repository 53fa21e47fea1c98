"""Calibrated BatchNorm statistics: what keeps a seeded HRNet / ResNet / MobileNet model alive.

With the seeded-weight formula alone the deeper backbones saturate (MODNet-HRNet_W18 gives alpha 0 everywhere),
because every BatchNorm's running statistics are the formula's and have nothing to do with the activations that
reach it. The rule that fixes it, and that the reference outputs of these models were made with: one eval forward
pass over one photo, where just before each BatchNorm runs, its running mean and variance are set to the
per-channel mean and (biased) variance of its own input. Later layers thus see the activations of the already
calibrated earlier ones, and each BatchNorm then normalizes its input on that photo to zero mean, unit variance
(before its affine scale and shift).

:func:`calibrate_batchnorm` applies the rule to a built model; :func:`calibration_input` is the model input the
zoo calibrates with: the spec's photo at its size, normalized as the model's ``deploy.yaml`` says.

A recurrent model (RVM) has a clip for reference, not a photo: :func:`pan_clip` makes it (the photo panned by a
few pixels a frame), and the statistics were calibrated on that clip's first frame, from zero states, at the
model's default downsample ratio (its forward pass with the image alone).
"""

from typing import Dict, List, Tuple

import numpy as np

from ..core.errors import EdgematteError


def calibration_input(photo: np.ndarray, hw: Tuple[int, int], transforms) -> np.ndarray:
    """float32 ``[1, 3, H, W]``: RGB uint8 ``photo`` resized to ``hw`` (OpenCV INTER_AREA when it shrinks, else
    linear) and normalized by the ``Normalize`` transform of ``transforms`` (PaddleSeg's default mean and std
    0.5 when it gives none: ``(x / 255 - mean) / std``)."""
    import cv2

    height, width = hw
    if photo.shape[:2] != (height, width):
        shrink = photo.shape[0] > height or photo.shape[1] > width
        photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    normalize = next((t for t in transforms if t.get("type") == "Normalize"), None)
    if normalize is None:
        raise EdgematteError("the model's transforms have no Normalize: no calibration input can be made")
    mean = np.asarray(normalize.get("mean", [0.5, 0.5, 0.5]), np.float32)
    std = np.asarray(normalize.get("std", [0.5, 0.5, 0.5]), np.float32)
    x = (photo.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def pan_clip(photo: np.ndarray, hw: Tuple[int, int], frames: int, shift: int) -> List[np.ndarray]:
    """``frames`` RGB uint8 frames of size ``hw`` panning diagonally across ``photo``: the photo resized (OpenCV
    INTER_AREA) to ``hw`` plus ``frames * shift`` pixels each way, frame k cropped at ``(k * shift, k * shift)``.

    This is how RVM's seed-0 reference clip was made (3 frames, 6 pixels a frame, at 512x512: the astronaut at
    530x530): its frames equal these bit for bit."""
    import cv2

    height, width = hw
    if frames < 1 or shift < 0:
        raise EdgematteError(f"a clip needs at least one frame and a non-negative shift, got {frames}, {shift}")
    canvas = cv2.resize(photo, (width + frames * shift, height + frames * shift), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(canvas[k * shift:k * shift + height, k * shift:k * shift + width])
            for k in range(frames)]


def calibrate_batchnorm(model, x: np.ndarray) -> Dict[str, np.ndarray]:
    """Set, in place, every BatchNorm's running mean and biased variance of ``model`` (a ``paddle.nn.Layer``,
    put in eval mode) to those of its own input in one forward pass over ``x`` (float32 ``[1, 3, H, W]``), each
    BatchNorm calibrated before the layers after it run. Returns the new values by state_dict key
    (``..._mean`` / ``..._variance``, float32); a BatchNorm the eval forward pass never reaches (MODNet's
    training-only detail head) keeps its values and is not listed, as in the references' statistics.

    The statistics are Paddle's own float32 reductions (``paddle.mean``, ``paddle.var`` biased), which is how
    the seed-0 references were made: they reproduce its statistics bit for bit, while a float64 reduction
    differs by up to 1e-4 relative already at the first layer (float32 sums over 65,536 values), and these
    seeded nets amplify that to 0.03 in alpha (MODNet-MobileNetV2 at 512x512)."""
    import paddle
    from paddle.nn.layer.norm import _BatchNormBase

    model.eval()
    names = {id(layer): name for name, layer in model.named_sublayers() if isinstance(layer, _BatchNormBase)}
    if not names:
        raise EdgematteError(f"{type(model).__name__} has no BatchNorm layer to calibrate")
    calibrated: Dict[str, np.ndarray] = {}

    def set_statistics(layer, inputs):
        axes = [i for i in range(len(inputs[0].shape)) if i != 1]  # NCHW: per channel
        mean = paddle.mean(inputs[0], axis=axes).numpy()
        variance = paddle.var(inputs[0], axis=axes, unbiased=False).numpy()
        layer._mean.set_value(mean.astype(np.float32))
        layer._variance.set_value(variance.astype(np.float32))
        prefix = names[id(layer)]
        calibrated[f"{prefix}._mean"] = mean.astype(np.float32)
        calibrated[f"{prefix}._variance"] = variance.astype(np.float32)

    hooks = [layer.register_forward_pre_hook(set_statistics) for _, layer in model.named_sublayers()
             if isinstance(layer, _BatchNormBase)]
    try:
        with paddle.no_grad():
            model(paddle.to_tensor(np.asarray(x, np.float32)))
    finally:
        for hook in hooks:
            hook.remove()
    return calibrated
