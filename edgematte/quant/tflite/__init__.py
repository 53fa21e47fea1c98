"""Full-integer quantization of onnx2tf's SavedModel with TensorFlow's converter, in a subprocess.

:func:`edgematte.converter.tflite.convert_to_tflite` can keep onnx2tf's TensorFlow SavedModel
(``saved_model_dir``); :func:`quantize_int8` turns it into a full-integer model from a calibration
array with ``tf.lite.TFLiteConverter`` (the same numbers onnx2tf's ``-oiqt`` gives, docs/toolchain.md, TFLite INT8),
in a subprocess so TensorFlow never loads into the calling process.

TensorFlow's converter quantizes in two stages: calibration (the float model runs on the
calibration data and records every activation's min/max) and quantization (MLIR turns the
calibrated model into an int8 one). Calibration is the slow part (about 30 s for PP-MattingV2 at
512x512 with 32 images); quantization takes about a second. The stages are run separately here
so that one calibration serves many variants (float/int8 I/O, layers kept float):
``tf.lite.TFLiteConverter`` with ``_experimental_calibrate_only`` gives the calibrated model
(:mod:`.calibration`), ``tensorflow.lite.python.convert.mlir_quantize`` quantizes it exactly as
``converter.convert()`` does (same MAD, bit for bit on the tiny test net; :mod:`.quantize`) and takes
``denylisted_nodes`` / ``denylisted_ops``, the mechanism behind
``tf.lite.experimental.QuantizationDebugOptions``. What TF 2.19 does with them (verified on
PP-MattingV2): a denylisted node is named by its op's output tensor name, the full fused name
(``model/tf.nn.relu_5/Relu;model/tf.math.add_9/Add;...``, a part of it matches nothing); an op type
is the builtin name in capitals (``BATCH_MATMUL``; ``tfl.batch_matmul`` matches nothing). Neither is
reported when it matches nothing, so every written model is checked (:mod:`.ops`): each kept node
and op must compute in float. Denylisting happens after scales are assigned, so a kept op does not
untie the shared scale of its neighbours (e.g. the inputs of a CONCATENATION keep the
concatenation's scale).

Before quantizing, narrow concatenation inputs get their own scale (:mod:`.untie`) and activation
ranges are chosen by histogram MSE instead of min/max (:mod:`.ranges`): on PP-MattingV2 (512x512)
plain full int8 goes from MAD 0.0179 to 0.0086 with the untying and to 0.0072 with both.

Modules: :mod:`.jobs` (what to make: typed jobs and the worker's plan), :mod:`.runner` (runs jobs in
a worker subprocess and checks and publishes what it wrote), :mod:`.worker` (the subprocess entry
point; it and the modules it runs import TensorFlow), :mod:`.calibration`, :mod:`.ranges`,
:mod:`.untie`, :mod:`.quantize`, :mod:`.layer_errors`, :mod:`.ops`, :mod:`.float_weights` (dynamic-range layers kept
float, in this process).
"""

from .jobs import INT8_IO_DTYPES, DynamicRangeJob, FloatTwinJob, FullIntegerJob, Int8Job, LayerErrorsJob
from .ops import check_kept_float, tflite_ops
from .ranges import ACTIVATION_RANGES, DEFAULT_ACTIVATION_RANGES, RANGE_HISTOGRAM_BINS, RANGE_HISTOGRAM_IMAGES
from .runner import QUANTIZE_TIMEOUT_S, quantize_int8, run_int8_jobs
from .untie import DEFAULT_UNTIE_RATIO, UNTIE_SUFFIX

__all__ = [
    "ACTIVATION_RANGES", "DEFAULT_ACTIVATION_RANGES", "DEFAULT_UNTIE_RATIO", "INT8_IO_DTYPES", "QUANTIZE_TIMEOUT_S",
    "RANGE_HISTOGRAM_BINS", "RANGE_HISTOGRAM_IMAGES", "UNTIE_SUFFIX", "DynamicRangeJob", "FloatTwinJob",
    "FullIntegerJob",
    "Int8Job", "LayerErrorsJob", "check_kept_float", "quantize_int8", "run_int8_jobs", "tflite_ops",
]
