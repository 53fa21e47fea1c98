"""Matter carries a recurrent model's states in the artefact's own layout: every output equals FeedPlan's
reference loop (``run_case``, states through NCHW) bit for bit, and a state whose output and input share a
layout is fed back as the very array that came out (no copy, no transpose)."""

import numpy as np
import pytest

from edgematte.runtime.backends.base import TensorSpec
from edgematte.runtime.golden_roles import (
    RECURRENT_ARTEFACTS,
    RECURRENT_INPUTS,
    RECURRENT_OUTPUTS,
    RECURRENT_STEPS,
    _recurrent_runner,
    recurrent_frame,
)
from edgematte.runtime.matter import Matter
from edgematte.runtime.model_io import FeedPlan, onnx_to_layout, run_case
from edgematte.runtime.profiles import get_profile


class StandIn:
    """The golden recurrent stand-in as a backend, named and laid out as one artefact of RECURRENT_ARTEFACTS."""

    def __init__(self, artefact: dict):
        self.path = "stand-in"
        self.inputs = [TensorSpec(name, (), "float32") for name in artefact["inputs"]]
        self.outputs = [TensorSpec(name, (), "float32") for name in artefact["outputs"]]
        self.plan = plan_of(artefact)
        self.run = _recurrent_runner(self.plan)
        self.fed = []

    def run_feeds(self, feeds):
        self.fed.append(list(feeds))
        return self.run(feeds)


def plan_of(artefact: dict) -> FeedPlan:
    return FeedPlan.of(RECURRENT_INPUTS, RECURRENT_OUTPUTS, artefact["inputs"], artefact["outputs"],
                       artefact["layout"], "stand-in", artefact["input_layouts"], artefact["output_layouts"])


@pytest.mark.parametrize("key", sorted(RECURRENT_ARTEFACTS))
def test_matter_carries_states_in_the_artefacts_layout_exactly(key):
    artefact = RECURRENT_ARTEFACTS[key]
    backend = StandIn(artefact)
    plan = backend.plan
    matter = Matter(backend, get_profile("android"), layout=artefact["layout"], plan=plan)
    image_layout = plan.input_layout(next(i for i, r in enumerate(plan.inputs) if r["role"] == "image"))
    steps = [{"src": recurrent_frame(k)} for k in range(RECURRENT_STEPS)]
    expected = run_case(backend.run, plan, steps)
    for rounds in range(2):  # reset() starts the clip again from zero states
        matter.reset()
        backend.fed.clear()
        got = [matter.run_outputs(onnx_to_layout(step["src"], image_layout)) for step in steps]
        for outputs, wanted in zip(got, expected):
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(outputs, wanted)), (key, rounds)
        # Each state fed at step k+1 came from step k's paired output; untouched where the layouts agree.
        for k in range(1, RECURRENT_STEPS):
            for j, role in enumerate(plan.outputs):
                if role["role"] != "state":
                    continue
                i = next(i for i, r in enumerate(plan.inputs) if r["name"] == role["pair"])
                same_layout = plan.output_layout(j) == plan.input_layout(i)
                assert (backend.fed[k][i] is got[k - 1][j]) == same_layout, (key, role["name"])
    assert all(not np.any(x) for x, r in zip(backend.fed[0], plan.inputs) if r["role"] == "state")
