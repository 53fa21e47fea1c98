"""The small runtime: pre/post-processing profiles and inference backends (no paddle, no tensorflow).

    from edgematte.runtime import Matter, read_image, composite_with_profile
    matter = Matter.from_manifest("out/ppmattingv2")       # the preferred artefact this machine runs
    alpha = matter(read_image("photo.jpg"))                  # float32 H x W in [0, 1] at the photo's size
    picture = composite_with_profile(rgb, alpha, (0, 177, 64))

The public names are re-exported here; the rest is reachable through the submodules. Importing this package
loads numpy and OpenCV only: a backend's runtime (LiteRT, ONNX Runtime, Paddle Lite) loads when a model opens.
"""

from ..core.manifest import Manifest, read_manifest
from .backends import open_backend
from .imageio import read_image, write_image
from .matter import Matter, composite_with_profile, select_artefact
from .profiles import get_profile, profile_for_model

__all__ = ["Manifest", "Matter", "composite_with_profile", "get_profile", "open_backend", "profile_for_model",
           "read_image", "read_manifest", "select_artefact", "write_image"]
