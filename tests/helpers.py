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
