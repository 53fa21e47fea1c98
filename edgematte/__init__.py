"""edgematte: PaddleSeg portrait matting models on phones and ARM boards, with measured proof.

The public API is deliberately tiny; see :mod:`edgematte.runtime` for ``Matter``.
"""

# Loading the system zlib before paddle matters: paddle's bundled one otherwise wins, and OpenCV then
# fails on PNGs ("libpng error: bad parameters to zlib") while Pillow segfaults.
import zlib  # noqa: F401

__version__ = "0.1.0"
