"""Per-op profiles printed by the phones' benchmark tools, read into the rows of :mod:`edgematte.runtime.op_profile`.

- TFLite ``benchmark_model --enable_op_profiling=true`` (:func:`parse_benchmark_model_profile`): after the run, the
  block ``Operator-wise Profiling Info for Regular Benchmark Runs:`` (``ProfilingListener::OnBenchmarkEnd`` in
  ``tensorflow/lite/tools/benchmark/profiling_listener.cc``) holds the tables of TensorFlow's ``StatsCalculator``
  (``tensorflow/core/util/stats_calculator.cc``, now ``xla/tsl/util/stats_calculator.cc``): ``Run Order`` and
  ``Top by Computation Time`` with the columns ``[node type] [first] [avg ms] [%] [cdf%] [mem KB] [times called]
  [Name]`` (releases before the move to tsl also print ``[start]`` after the node type), then ``Number of nodes
  executed: N`` and ``Summary by node type`` (``[Node type] [count] [avg ms] [avg %] [cdf %] [mem KB] [times
  called]``), then ``Timings (microseconds): count=N ...``. Each field is a tab and a right-aligned number.
  A node's name is ``[its output tensors]:its index`` for a builtin op (the names the converter gave the
  tensors); ops that XNNPACK runs are named by XNNPACK (``Delegate/Convolution (NHWC, F32) GEMM:3``).
- Paddle Lite ``benchmark_bin`` built with ``--with_profile=ON`` (:func:`parse_paddle_lite_profile`): after each
  run, and when the predictor goes, ``RuntimeProgram`` logs ``Profiler::Summary`` (``lite/core/profile/
  profiler.cc``): ``===== Detailed Dispatch Profiler Summary: NAME, Exclude 1 warm-ups =====`` then one line per
  kernel in program order, ``OperatorType KerneAttr(Place) KernelFuncName Remark InDim FilterDim OutDim Avg(ms)
  Min(ms) Max(ms) Last(ms) Avg(%) GOPs GOPS`` (``N/A`` for a field a kernel does not fill; OpenCL builds add
  ``clAvg(ms)``...). It names kernels, not layers: a row is its op type, its place in the program and its output
  dimensions. A build without the profiler prints no such table (``None``).

The tools' averages cover every run they profiled: benchmark_model leaves its warm-up runs out; Paddle Lite's
profiler leaves out only the first run of the predictor, so benchmark_bin's other warm-up runs count.
"""

import re
from typing import List, Optional

from ..runtime.op_profile import summarize

REGULAR_RUNS = "Operator-wise Profiling Info for Regular Benchmark Runs:"
TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_NUMBER = r"-?\d+(?:\.\d+)?"
_PERCENT = r"[-+\w.]+%"  # nan% when a total is 0
_NODE_ROW = (r"^\s*(?P<type>\S.*?)\s+{start}(?P<first>{n})\s+(?P<avg>{n})\s+(?P<pct>{p})\s+(?P<cdf>{p})\s+"
             r"(?P<mem>{n})\s+(?P<called>\d+)\s+(?P<name>.*\S)\s*$")
NODE_ROW = re.compile(_NODE_ROW.format(start="", n=_NUMBER, p=_PERCENT))
NODE_ROW_WITH_START = re.compile(_NODE_ROW.format(start=rf"(?P<start>{_NUMBER})\s+", n=_NUMBER, p=_PERCENT))
TYPE_ROW = re.compile(rf"^\s*(?P<type>\S.*?)\s+(?P<count>\d+)\s+(?P<ms>{_NUMBER})\s+(?P<pct>{_PERCENT})\s+"
                      rf"(?P<cdf>{_PERCENT})\s+(?P<mem>{_NUMBER})\s+(?P<called>\d+)\s*$")
BUILTIN_NAME = re.compile(r"^\[(?P<tensors>.*)\]:(?P<index>\d+)$")
LITE_DETAILED = "===== Detailed Dispatch Profiler Summary"
LITE_TAIL_FIELDS = 4  # Avg(ms) Min(ms) Max(ms) Last(ms) before Avg(%)
LITE_HEAD_FIELDS = 7  # OperatorType KerneAttr KernelFuncName Remark InDim FilterDim OutDim


def _log_lines(text: str) -> List[str]:
    """The lines of a tool's output without TFLite's ``INFO: `` log prefix."""
    return [line[len("INFO: "):] if line.startswith("INFO: ") else line for line in text.splitlines()]


def _tables(lines: List[str]) -> dict:
    """``{title: (header line, [row lines])}`` of the StatsCalculator tables in ``lines`` (the first of each
    title: the primary graph's), a table's rows ending at a blank line."""
    tables, index = {}, 0
    while index < len(lines):
        title = TABLE_TITLE.match(lines[index].strip())
        if title is None:
            index += 1
            continue
        header, rows = lines[index + 1] if index + 1 < len(lines) else "", []
        index += 2
        while index < len(lines) and lines[index].strip():
            rows.append(lines[index])
            index += 1
        tables.setdefault(title.group(1), (header, rows))
    return tables


def _node_row(line: str, with_start: bool) -> Optional[dict]:
    found = (NODE_ROW_WITH_START if with_start else NODE_ROW).match(line)
    if found is None:
        return None
    called = int(found.group("called"))
    name = found.group("name")
    builtin = BUILTIN_NAME.match(name)
    return {"layer": builtin.group("tensors") if builtin else name, "op_type": found.group("type").strip(),
            "ms": float(found.group("avg")) * max(called, 1),
            "node": f"node {builtin.group('index')}" if builtin else None,
            "kernel": name, "calls": called, "first_ms": float(found.group("first"))}


def parse_benchmark_model_profile(text: str) -> dict:
    """The op profile of ``benchmark_model --enable_op_profiling=true``'s output (see the module doc).

    Rows from the ``Run Order`` table (else ``Top by Computation Time``, then only its top nodes), ``ms`` the node's
    time per run (its ``avg ms`` per call x its calls per run); ``by_type`` from ``Summary by node type`` when
    printed; ``runs`` and ``run_ms`` from the ``Timings (microseconds)`` line. Only the primary graph is read (a
    ``Delegate internal:`` or subgraph block after it is not). Raises ``ValueError`` without the block.
    """
    start = text.find(REGULAR_RUNS)
    if start < 0:
        raise ValueError(f"no '{REGULAR_RUNS}' block (was --enable_op_profiling=true passed?)")
    lines = _log_lines(text[start + len(REGULAR_RUNS):])
    end = next((i for i, line in enumerate(lines) if line.startswith("Timings (microseconds):")), len(lines))
    tables = _tables(lines[:end])
    title = "Run Order" if "Run Order" in tables else "Top by Computation Time"
    if title not in tables:
        raise ValueError(f"the '{REGULAR_RUNS}' block has no Run Order table")
    header, lines_of_rows = tables[title]
    with_start = "[start]" in header
    rows = [row for row in (_node_row(line, with_start) for line in lines_of_rows) if row is not None]
    if not rows:
        raise ValueError(f"the {title} table has no row in benchmark_model's format")
    profile = {**summarize(rows), "table": title}
    types = [TYPE_ROW.match(line) for line in tables.get("Summary by node type", ("", []))[1]]
    types = [t for t in types if t is not None]
    if types:
        total = sum(float(t.group("ms")) for t in types)
        profile["by_type"] = [{"op_type": t.group("type").strip(), "count": int(t.group("count")),
                               "ms": float(t.group("ms")), "share": float(t.group("ms")) / total if total else 0.0,
                               "calls": int(t.group("called"))} for t in types]
    executed = re.search(r"Number of nodes executed: (\d+)", "\n".join(lines[:end]))
    if executed:
        profile["nodes_executed"] = int(executed.group(1))
    timings = re.search(rf"count=(\d+).*?avg=({_NUMBER})", lines[end] if end < len(lines) else "")
    if timings:
        profile["runs"], profile["run_ms"] = int(timings.group(1)), float(timings.group(2)) / 1000.0
    return profile


def _lite_row(line: str, index: int) -> Optional[dict]:
    tokens = line.split()
    percent = next((i for i, token in enumerate(tokens) if token.endswith("%")), None)
    if percent is None or percent < LITE_HEAD_FIELDS + LITE_TAIL_FIELDS:
        return None
    try:
        avg, minimum, maximum, last = (float(t) for t in tokens[percent - LITE_TAIL_FIELDS: percent])
    except ValueError:
        return None
    head = tokens[: percent - LITE_TAIL_FIELDS]
    op_type, place, function = head[0], head[1], head[2]
    out_dim = head[-1]
    return {"layer": f"{op_type} #{index} ({out_dim})", "op_type": op_type, "ms": avg, "node": f"kernel {index}",
            "kernel": f"{place} {function}", "remark": " ".join(head[3:-3]), "in_dim": head[-3],
            "filter_dim": head[-2], "out_dim": out_dim, "min_ms": minimum, "max_ms": maximum, "last_ms": last}


def parse_paddle_lite_profile(text: str) -> Optional[dict]:
    """The op profile in Paddle Lite's last ``Detailed Dispatch Profiler Summary`` table (see the module doc), or
    ``None`` when the output holds none (a benchmark_bin built without ``--with_profile=ON``).

    Raises ``ValueError`` when the table is there but no row reads."""
    start = text.rfind(LITE_DETAILED)
    if start < 0:
        return None
    lines = text[start:].splitlines()
    warmups = re.search(r"Exclude (\d+) warm-ups", lines[0])
    rows = []
    for line in lines[2:]:
        if not line.strip() or line.lstrip().startswith(("=====", "[", "Timing cycle")):
            break
        row = _lite_row(line, len(rows))
        if row is not None:
            rows.append(row)
    if not rows:
        raise ValueError("Paddle Lite's Detailed Dispatch Profiler Summary has no row in its format")
    return {**summarize(rows), "excluded_warmups": int(warmups.group(1)) if warmups else None}
