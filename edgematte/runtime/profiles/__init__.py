"""Pre- and post-processing profiles: an RGB photo in, the model's input tensor out, and back to alpha.

A profile reproduces, number for number, what one deployment does around the model. It knows nothing
of runtimes: ``Matter`` joins a profile to a backend. Four profiles exist (see ``PROFILES``):

``paddleseg``
    PaddleSeg's Python deploy (``deploy.yaml`` transforms: LimitShort / ResizeByShort /
    ResizeToIntMult / Normalize). Every resize is ``cv2.resize(..., INTER_LINEAR)`` on the uint8
    image; the alpha returns through each recorded size in reverse order, one step at a time.
    The input size varies with the image, so a fixed-size model fits only when the sizes agree.
``fastdeploy``
    FastDeploy's PPMatting with a fixed input shape: aspect-preserving resize bounded by the input
    size, Normalize, pad bottom/right with 0 *after* normalization; post crops the top-left region
    and resizes it linearly to the original size.
``android``
    This project's Android app. Every step is integer or single-rounding float32 arithmetic so the
    pure-Java twin reproduces it bit for bit; every constant lives in ``ANDROID_CONSTANTS``.
``paddleseg-android``
    The legacy PaddleSeg Android demo: fixed-size scaling ignoring aspect, min-max stretch of the
    output to 0..255 (not a clamp), bilinear scaling back.

Every profile takes its normalization from the model's deploy.yaml transforms (``get_profile(name,
transforms)``, ``profile_for_model``; a manifest's ``model.transforms``). ``paddleseg`` and
``fastdeploy`` are built from the whole list and have no default. ``android`` and ``paddleseg-android``
keep their own geometry and take only the Normalize step (mean/std; a list without one: raw 0..255;
no transforms: 0.5/0.5), with a rule Java reproduces bit for bit
(:func:`~.normalization.fixed_step_rule`); padding stays 0.0 after normalization.

Arrays: images are ``uint8`` H x W x 3 in RGB order; alphas are ``float32`` H x W in [0, 1];
tensors are ``float32`` [1, 3, h, w] ("nchw") or [1, h, w, 3] ("nhwc").

Modules and their twins in the pure-Java core (android_demo/core, ``org.edgematte.core``):

=========================  ===========================  ==============================================
module                     Java                         what
=========================  ===========================  ==============================================
``constants``              ``AndroidConstants``         every number of the ``android`` profile
``sizes``                  ``Size``                     ``HW`` and the size rules of each deployment
``fixed_point_resize``     ``FixedPointResize``         exact integer bilinear (+ box), float32 bilinear
``opencv_resize``          (none)                       ``cv2.resize`` INTER_LINEAR (PaddleSeg, FastDeploy)
``normalization``          ``Normalization``            per-value tables; a model's Normalize (mean/std)
``layout``                 ``Layout``                   "nchw" / "nhwc"
``tensors``                ``Tensors``                  padding, layout conversion, the output's alpha plane
``background``             ``Background``               image / colour / "blur" backgrounds
``compositing``            ``Compositing``              8-bit alpha, composite
``state``                  ``PreprocessState``          the sizes post-processing needs
``base``                   ``Profile``                  the profile interface
``transforms``             (none)                       deploy.yaml transforms parser + their profiles' base
``paddleseg``              (none)                       profile ``paddleseg``
``fastdeploy``             (none)                       profile ``fastdeploy``
``android``                ``AndroidProfile``           profile ``android``
``paddleseg_android``      ``PaddleSegAndroidProfile``  profile ``paddleseg-android``
``registry``               ``Profiles``                 ``PROFILES``, ``get_profile``, ``profile_for_model``
=========================  ===========================  ==============================================
"""

from .android import AndroidProfile
from .background import Background, background_image, blurred_background
from .base import Profile
from .compositing import alpha_to_uint8_round_half_up, composite
from .constants import ANDROID_CONSTANTS, AndroidConstants
from .fastdeploy import FastDeployProfile
from .fixed_point_resize import (
    bilinear_taps,
    box_factor,
    box_sums,
    resize_float32_bilinear,
    resize_uint8_fixed,
)
from .layout import LAYOUTS
from .normalization import (
    DEFAULT_NORMALIZATION,
    RAW_NORMALIZATION,
    ModelNormalization,
    exact_in_float32,
    model_normalization,
    normalization_table,
    normalize,
)
from .opencv_resize import resize_opencv_linear
from .paddleseg import PaddleSegProfile
from .paddleseg_android import PaddleSegAndroidProfile, stretch_to_uint8
from .registry import PROFILES, get_profile, profile_class, profile_for_model, reads_transforms
from .sizes import (
    HW,
    c_round,
    fastdeploy_crop_size,
    fastdeploy_scale,
    int_mult_size,
    letterbox_size,
    limit_short_size,
    resize_short_size,
)
from .state import PreprocessState
from .tensors import alpha_plane, pad_bottom_right, to_layout
from .transforms import parse_transforms

__all__ = [
    "ANDROID_CONSTANTS", "DEFAULT_NORMALIZATION", "HW", "LAYOUTS", "PROFILES", "RAW_NORMALIZATION",
    "AndroidConstants", "AndroidProfile", "Background", "FastDeployProfile", "ModelNormalization",
    "PaddleSegAndroidProfile", "PaddleSegProfile", "PreprocessState", "Profile", "alpha_plane",
    "alpha_to_uint8_round_half_up", "background_image", "bilinear_taps", "blurred_background", "box_factor",
    "box_sums", "c_round", "composite", "exact_in_float32", "fastdeploy_crop_size", "fastdeploy_scale",
    "get_profile", "int_mult_size", "letterbox_size", "limit_short_size", "model_normalization",
    "normalization_table", "normalize", "pad_bottom_right", "parse_transforms", "profile_class",
    "profile_for_model", "reads_transforms", "resize_float32_bilinear", "resize_opencv_linear", "resize_short_size",
    "resize_uint8_fixed", "stretch_to_uint8", "to_layout",
]
