"""edgematte: PaddleSeg portrait matting models on phones and ARM boards, with measured proof.

The public API is deliberately tiny; see :mod:`edgematte.runtime` for ``Matter``.
"""

__version__ = "0.1.0"
