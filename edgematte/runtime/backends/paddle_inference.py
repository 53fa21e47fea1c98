"""Paddle Inference: the reference backend (only where paddlepaddle is installed).

Paddle Inference 2.6.2's default CPU config computes PP-MattingV2 wrongly: oneDNN's
``reshape_transpose_matmul_mkldnn_fuse_pass`` breaks the reshape+transpose+matmul patterns of the
pyramid-pooling attention (alpha off by up to 0.9). Deleting that pass restores float-exact results at
full oneDNN speed, so every config made here deletes it; ``tests/test_reference.py`` checks the
result against the dygraph model.

A second oneDNN problem: one predictor reused across input sizes (a dynamic-shape export) computes the
second size wrongly (0.04 off after a 512x512 run; cache capacity does not help). So this backend keeps
one predictor per input shape.
"""

from pathlib import Path
from typing import List, Optional

import numpy as np

from ...core.errors import EdgematteError
from .base import Backend, TensorSpec

BROKEN_ONEDNN_PASSES = ("reshape_transpose_matmul_mkldnn_fuse_pass",)


def _model_files(path):
    """``(pdmodel, pdiparams)`` from a model file, a prefix, a folder holding one model, or a ``(pdmodel,
    pdiparams)`` pair (a program that reads another program's params file: the reference with its scores)."""
    if isinstance(path, (tuple, list)):
        model, params = Path(path[0]), Path(path[1])
    else:
        path = Path(path)
        if path.is_dir():
            candidates = sorted(path.glob("*.pdmodel"))
            if len(candidates) != 1:
                raise EdgematteError(f"{path}: expected one .pdmodel in the folder, found {len(candidates)}")
            model = candidates[0]
        elif path.suffix == ".pdmodel":
            model = path
        else:
            model = path.with_name(path.name + ".pdmodel")
        params = model.with_suffix(".pdiparams")
    for f in (model, params):
        if not f.is_file():
            raise EdgematteError(f"{f}: missing (a Paddle inference model needs .pdmodel and .pdiparams)")
    return model, params


class PaddleInferenceBackend(Backend):
    """Run a legacy Paddle inference model on the CPU with oneDNN and the broken fusion pass removed.

    ``use_onednn=False`` runs the plain CPU kernels (also exact, about 4x slower). ``paddle_defaults=True``
    leaves a fresh ``Config`` as Paddle sets it up (oneDNN with every pass, what PaddleSeg's deploy
    script runs): the known-wrong configuration, for benchmarks that show what the fix costs and saves.
    ``optim_cache_dir``: a folder where each predictor also saves the program it runs after its passes
    (``_optimized.pdmodel``), which names the ops a profile of it times (:mod:`edgematte.runtime.op_profile`).
    """

    name = "paddle_inference"

    def __init__(self, path, threads: Optional[int] = None, use_onednn: bool = True, paddle_defaults: bool = False,
                 optim_cache_dir: Optional[str] = None):
        super().__init__(path, threads)
        self._optim_cache_dir = optim_cache_dir
        try:
            from paddle import inference
        except ImportError as e:
            raise EdgematteError(
                "the Paddle Inference backend needs paddlepaddle (pip install 'edgematte[convert]')") from e
        self._inference = inference
        self._files = _model_files(path)
        self.path = self._files[0]  # errors name the program (a pair shares another program's params)
        self._use_onednn = use_onednn
        self._paddle_defaults = paddle_defaults
        self._predictors = {}
        probe = self._predictor_for(None)
        self._input_names = probe.get_input_names()
        self._output_names = probe.get_output_names()

    def _predictor_for(self, shape):
        """One predictor per input shape (see the module docstring for why)."""
        if shape not in self._predictors:
            model, params = self._files
            config = self._inference.Config(str(model), str(params))
            config.disable_gpu()
            config.disable_glog_info()
            if self._use_onednn and not self._paddle_defaults:
                config.enable_mkldnn()
                for name in BROKEN_ONEDNN_PASSES:
                    config.delete_pass(name)
            elif not self._use_onednn:
                config.disable_mkldnn()
            config.set_cpu_math_library_num_threads(int(self.threads or 1))
            if self._optim_cache_dir is not None:
                config.enable_save_optim_model(True)
                config.set_optim_cache_dir(str(self._optim_cache_dir))
            self._predictors[shape] = self._inference.create_predictor(config)
        return self._predictors[shape]

    @property
    def inputs(self) -> List[TensorSpec]:
        probe = next(iter(self._predictors.values()))
        return [TensorSpec(n, tuple(probe.get_input_handle(n).shape()), "float32") for n in self._input_names]

    @property
    def outputs(self) -> List[TensorSpec]:
        return [TensorSpec(n, (), "float32") for n in self._output_names]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.run_feeds([x])[0]

    def run_feeds(self, feeds):
        self._check_feed_count(feeds)
        feeds = [np.ascontiguousarray(x, dtype=np.float32) for x in feeds]
        shapes = tuple(x.shape for x in feeds)
        if None in self._predictors and len(self._predictors) == 1:
            self._predictors[shapes] = self._predictors.pop(None)  # the probe serves the first shapes
        predictor = self._predictor_for(shapes)
        for name, x in zip(self._input_names, feeds):
            handle = predictor.get_input_handle(name)
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
        predictor.run()
        return [np.array(predictor.get_output_handle(n).copy_to_cpu(), copy=True) for n in self._output_names]
