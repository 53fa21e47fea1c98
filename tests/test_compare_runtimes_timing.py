"""compare_runtimes times an entry only once the previous entry's threads have gone idle (issue #19).

ONNX Runtime's pool spin-waits about 30 ms after a run; interleaved with it, the fp32 TFLite entry measured
67 ms instead of 46 ms on an AMD Zen 5 host. Here a fake runtime leaves a worker spinning 60 ms after returning,
like that pool, and the entry after it must start only once the worker has stopped.
"""

import threading
import time

import numpy as np

from .conftest import load_benchmark

compare = load_benchmark("compare_runtimes")
SPIN_S = 0.06


class SpinsAfterReturning:
    """Returns at once and leaves a worker thread busy for ``spin_s`` (a spin-waiting thread pool)."""

    def __init__(self, events, spin_s):
        self.events, self.spin_s = events, spin_s

    def run_tensor(self, tensor):
        def spin():
            end = time.perf_counter() + self.spin_s
            while time.perf_counter() < end:
                pass
            self.events.append(("spin ended", time.perf_counter()))

        threading.Thread(target=spin, daemon=True).start()


class RecordsItsStart:
    def __init__(self, events):
        self.events = events

    def run_tensor(self, tensor):
        self.events.append(("quick started", time.perf_counter()))


def _entries(events, spin_s=SPIN_S):
    spinner = compare.Entry("spinner", "fake", "fp32", matter=SpinsAfterReturning(events, spin_s),
                            tensors=[np.zeros(1)])
    quick = compare.Entry("quick", "fake", "fp32", matter=RecordsItsStart(events), tensors=[np.zeros(1)])
    return [spinner, quick]


def test_the_entry_after_a_spinning_runtime_starts_only_once_its_threads_are_idle():
    events = []
    entries = _entries(events)
    entries[0].matter.run_tensor = _marking(entries[0].matter.run_tensor, events)
    compare.interleaved_rounds(entries, rounds=4, warmup=1, max_rounds=4, log=lambda line: None)
    assert _pending_spin_before_each_quick_start(events) == [False] * 5  # 1 warm-up and 4 timed rounds
    spinner, quick = entries
    assert 0.8 * SPIN_S <= float(np.median(spinner.busy_after)) < 0.5, spinner.busy_after
    assert float(np.median(quick.busy_after)) < 0.02, quick.busy_after
    lines = compare.busy_after_lines(entries)
    assert lines[0].startswith("- Threads busy after a run (median; the next entry was started only once they were "
                               "idle, outside its timing): `spinner` ")
    assert lines[0].endswith("ms; the others under 2 ms.") and len(lines) == 1


def test_without_the_wait_the_entry_after_it_would_run_beside_the_spinning_worker(monkeypatch):
    """The control: the event check above can fail (a longer spin, so that no stall of a loaded host hides it)."""
    events = []
    entries = _entries(events, spin_s=0.3)
    entries[0].matter.run_tensor = _marking(entries[0].matter.run_tensor, events)
    monkeypatch.setattr(compare, "wait_until_threads_idle", lambda: 0.0)
    compare.interleaved_rounds(entries, rounds=4, warmup=1, max_rounds=4, log=lambda line: None)
    assert _pending_spin_before_each_quick_start(events) == [True] * 5
    time.sleep(0.4)  # the last worker


def test_threads_that_never_go_idle_are_reported_as_slowing_the_next_entry():
    stuck = compare.Entry("stuck", "fake", "fp32", busy_after=[compare.IDLE_LIMIT_S, 0.2])
    lines = compare.busy_after_lines([stuck])
    assert lines[1] == ("- `stuck`: its threads were still busy 1 s after a run; the entry after it was timed while "
                        "they ran, so its figures are too slow.")


def test_waiting_for_idle_threads_returns_at_once_when_nothing_runs():
    assert compare.wait_until_threads_idle() < 0.02


def _marking(run, events):
    def run_and_mark(tensor):
        events.append(("spin started", time.perf_counter()))
        run(tensor)
    return run_and_mark


def _pending_spin_before_each_quick_start(events) -> list:
    """For each start of the quick entry: was a spinner's worker still running then?"""
    pending, answers = 0, []
    for what, _ in sorted(events, key=lambda event: event[1]):
        if what == "spin started":
            pending += 1
        elif what == "spin ended":
            pending -= 1
        else:
            answers.append(pending > 0)
    return answers
