"""The one shape every graph repair has.

A repair works around one bug of one tool by rewriting the model that tool reads or wrote, and says so:
``matches`` (what it looks for), ``changes`` (what it does to each match), ``why`` (the tool bug and what it
costs unrepaired, measured). Its entry point has one signature for every kind::

    apply(model, context) -> [Match(changed, record), ...]   # one per place it matched, model edited in place

``model`` is, per kind (``applies_to``): a parsed Paddle ``ProgramDesc`` (``"paddle_program"``, what Paddle
Lite's opt reads), an ``onnx.ModelProto`` (``"onnx"``, what paddle2onnx wrote), the ``onnx.ModelProto`` of
the private copy onnx2tf reads (``"onnx2tf_input"``; the ONNX artefact itself stays as it is), the
``onnx.ModelProto`` of the published ONNX artefact alone, for ONNX Runtime (``"onnx_artefact"``; onnx2tf and the
int8 quantizer read the graph before) or a :class:`~edgematte.runtime.tflite_flatbuffer.TFLiteModelEdit` of a
``.tflite`` onnx2tf or TensorFlow's quantizer wrote (``"tflite"``: what LiteRT and its XNNPACK delegate run).
A repair that finds nothing returns ``[]`` and leaves the model as it was.

``preserves_outputs`` says whether the repaired model must compute exactly what the model before did
(a normalization: it only moves data, and the converter proves that in ONNX Runtime) or computes what the
source framework computes where the tool got it wrong (a correction: the model before is the broken one). In the
``onnx2tf_input`` and ``onnx_artefact`` kinds, ``False`` marks a rewrite that re-associates float arithmetic: proven
within rounding, not bit for bit.
"""

from dataclasses import dataclass
from typing import Any, Callable, List, Optional

PADDLE_PROGRAM = "paddle_program"
ONNX = "onnx"
ONNX2TF_INPUT = "onnx2tf_input"
ONNX_ARTEFACT = "onnx_artefact"
TFLITE = "tflite"
KINDS = (PADDLE_PROGRAM, ONNX, ONNX2TF_INPUT, ONNX_ARTEFACT, TFLITE)


@dataclass(frozen=True)
class Match:
    """One place a repair matched: whether it changed the model there, and the repair's own record of it."""

    changed: bool
    record: dict


@dataclass
class RepairContext:
    """What a repair may need besides the model.

    ``where`` names the model in errors; ``paddle_program`` is the parsed Paddle ``ProgramDesc`` an ONNX
    graph was converted from (what Paddle asked for, where the ONNX graph alone cannot tell).
    """

    where: str = "model"
    paddle_program: Optional[Any] = None


@dataclass(frozen=True)
class Repair:
    """One registered repair (see the module docstring); ``name`` is also its module's name."""

    name: str
    applies_to: str
    matches: str
    changes: str
    why: str
    preserves_outputs: bool
    apply: Callable[[Any, RepairContext], List[Match]]

    def __post_init__(self):
        if self.applies_to not in KINDS:
            raise ValueError(f"repair {self.name}: applies_to must be one of {KINDS}, got {self.applies_to!r}")
        for field in ("name", "matches", "changes", "why"):
            if not getattr(self, field).strip():
                raise ValueError(f"repair {self.name or '?'}: '{field}' must say something")
