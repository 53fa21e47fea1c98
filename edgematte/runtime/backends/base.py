"""The contract every inference backend follows: one model file in, arrays in and out.

A backend knows nothing of images; a profile (``edgematte.runtime.profiles``) knows nothing of
runtimes. ``Matter`` joins one of each.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ...core.errors import EdgematteError
from ...core.threads import resolve_threads


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the backend sees it.

    ``shape`` uses -1 for dynamic dimensions. ``quant`` is ``(scale, zero_point)`` for an integer
    tensor whose real value is ``scale * (q - zero_point)``, else ``None``.
    """

    name: str
    shape: Tuple[int, ...]
    dtype: str
    quant: Optional[Tuple[float, int]] = None


def tensor_entries(specs) -> List[dict]:
    """Tensor specs as the manifest records them: ``{"name", "shape", "dtype", "quant"}`` each."""
    return [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "quant": list(s.quant) if s.quant else None}
            for s in specs]


class Backend:
    """Base class: subclasses load ``path`` in ``__init__`` and implement :meth:`run`.

    ``threads`` passes :func:`edgematte.core.threads.resolve_threads` here, for every backend: below 1 is an
    error, above this machine's cores is clamped (with one warning); subclasses read :attr:`threads`.
    """

    name = "base"
    threads_effective = True  # False where the runtime's API cannot honour ``threads``

    def __init__(self, path, threads: Optional[int] = None):
        self.path = path
        self.threads = resolve_threads(threads, "threads")

    @property
    def inputs(self) -> List[TensorSpec]:
        raise NotImplementedError

    @property
    def outputs(self) -> List[TensorSpec]:
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the model on its single input ``x`` and return its first output.

        ``x`` has the model's own dtype and layout; the result is an array the caller owns (never a
        view into a buffer the next call overwrites).
        """
        raise NotImplementedError

    def run_feeds(self, feeds: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Run on one array per input (in :attr:`inputs` order); return every output, in :attr:`outputs` order.

        The models with several inputs (a trimap, recurrent states) run through this; the manifest's roles say
        which input is which (``ModelInfo.input_roles``).
        """
        raise NotImplementedError

    def run_many(self, xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [self.run(x) for x in xs]

    def _check_feed_count(self, feeds: Sequence[np.ndarray]) -> None:
        if len(feeds) != len(self.inputs):
            raise EdgematteError(f"{self.path}: the model has {len(self.inputs)} inputs "
                                 f"{[s.name for s in self.inputs]}, got {len(feeds)} arrays")
