"""Small helpers the zoo and export tests share."""

import numpy as np
import paddle

from edgematte.runtime.backends.paddle_inference import PaddleInferenceBackend


def normalize(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 H x W x 3 -> the models' input, float32 [1, 3, H, W] = (rgb / 255 - 0.5) / 0.5."""
    return ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()


def run_dygraph(model, x: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def run_paddle_inference(prefix, x: np.ndarray) -> np.ndarray:
    """The project's reference backend (oneDNN with the trap-8 pass removed, one predictor per shape)."""
    return PaddleInferenceBackend(str(prefix) + ".pdmodel", threads=2).run(x)


# BatchNorm statistics recomputed by the seed rule against the references' bn_stats.npz, per tensor, as
# max |ours - theirs| / max |theirs|: 0 (bit for bit) on the AMD Zen 4 and Intel Xeon hosts of earlier sessions; on an
# AMD EPYC Zen 5 (family 26) host, whose kernels round otherwise, up to 2.6e-5 (median 1.5e-6) for MODNet's three
# backbones. A statistic off by 1e-3 of its scale (what a wrong photo size, rule or weight gives, and more) is beyond
# this bound.
STATISTICS_NOISE = 1e-4


def assert_statistics_reproduced(calibrated: dict, official_npz) -> None:
    """Every statistic of ``official_npz`` (a ``bn_stats.npz``) recomputed in ``calibrated`` within float noise, and
    a statistic off by 1e-3 of itself caught by the same check."""
    with np.load(official_npz) as npz:
        official = {k: npz[k] for k in npz.files}
    assert sorted(calibrated) == sorted(official)
    differ = statistics_beyond_noise(calibrated, official)
    exact = all(np.array_equal(calibrated[k], v) for k, v in official.items())
    print(f"{len(official)} statistics, bit for bit: {exact}")
    first = sorted(official)[0]
    assert first in statistics_beyond_noise(calibrated, {**official, first: official[first] * np.float32(1 + 1e-3)})
    assert not differ, f"{len(differ)} statistics beyond float noise, first {differ[0]}"


def statistics_beyond_noise(calibrated: dict, official) -> list:
    """Keys of ``official`` (a dict of BatchNorm statistics) whose recomputed value in ``calibrated`` is beyond
    :data:`STATISTICS_NOISE` of the tensor's scale."""
    beyond = []
    for key in official:
        theirs = np.asarray(official[key], np.float64)
        scale = float(np.max(np.abs(theirs))) or 1.0
        if float(np.max(np.abs(np.asarray(calibrated[key], np.float64) - theirs))) > STATISTICS_NOISE * scale:
            beyond.append(key)
    return beyond
