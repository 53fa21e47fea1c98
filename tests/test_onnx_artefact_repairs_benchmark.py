"""benchmarks/onnx_artefact_repairs.py's report: one row per model, the parity verdict as the conversion judged it
(a model with hard decisions shows the pixels its decision-aware rule excused, not a bare max abs of 1.0)."""

from edgematte.core.manifest import ParityRecord

from .conftest import load_benchmark

bench = load_benchmark("onnx_artefact_repairs")


def _parity(**extra):
    return ParityRecord.from_dict(dict({"max_abs": 1.3e-6, "mean_abs": 1e-8, "frac_over_1_255": 0.0,
                                        "compared_to": "reference", "bound": 1e-4, "within_bound": True}, **extra))


def test_parity_text_gives_the_verdict_and_the_excused_decision_pixels():
    assert bench.parity_text(_parity()) == "1.3e-06 / 1.0e-04, within"
    assert bench.parity_text(_parity(max_abs=2e-3, within_bound=False)) == "2.0e-03 / 1.0e-04, BEYOND"
    decided = _parity(max_abs=1.0, bound=1.4e-3, decisions={"max_abs_kept": 6.1e-4, "over_bound_excused": 186})
    assert bench.parity_text(decided) == ("6.1e-04 / 1.4e-03, within (186 pixels where a hard decision flips "
                                          "excused, max abs 1.0e+00 there)")
    no_flip = _parity(max_abs=3.4e-4, bound=1.2e-3, decisions={"max_abs_kept": 3.4e-4, "over_bound_excused": 0})
    assert bench.parity_text(no_flip) == "3.4e-04 / 1.2e-03, within"


def test_the_report_has_one_row_per_model_with_what_each_repair_rewrote():
    result = {"stats": {"before": [69.3, 69.7, 70.4], "model.onnx": [60.8, 61.6, 62.0]}, "paired": [1.10, 1.13, 1.15],
              "difference": 4.8e-7, "parity": "1.3e-06 / 1.0e-04, within", "rounds": 20, "run": 21,
              "split": [{"onnx_node": "Conv.95", "parts": [16, 3], "action": "split"}],
              "reductions": [{"shape": [1, c, 8, 8], "action": action} for c, action in (
                  (32, "rewritten"), (32, "rewritten"), (96, "rewritten"), (3, "left"))],
              "products": [{"action": "rewritten"}, {"action": "rewritten"}]}
    text = bench.report({"ppmattingv2": result, "other": dict(result, split=[], reductions=[], products=[])}, 512, 2,
                        ["--work", "W"])
    assert text.splitlines()[0] == ("# ONNX Runtime: the published model.onnx against the graph before its "
                                    "`onnx_artefact` repairs (512x512)")
    assert "`benchmarks/onnx_artefact_repairs.py --work W`" in text and "2 threads" in text and "family" in text
    rows = [line for line in text.splitlines() if line.startswith("| ppmattingv2") or line.startswith("| other")]
    assert rows == [
        "| ppmattingv2 | Conv.95 19 -> 16+3 | 3 of 4 (96, 32 channels) | 2 of 2 | 69.7 (69.3-70.4) | "
        "61.6 (60.8-62.0) | 1.13x (1.10-1.15) | 4.8e-07 | 1.3e-06 / 1.0e-04, within | 20 of 21 |",
        "| other | nothing | 0 of 0 | 0 of 0 | 69.7 (69.3-70.4) | 61.6 (60.8-62.0) | 1.13x (1.10-1.15) | 4.8e-07 | "
        "1.3e-06 / 1.0e-04, within | 20 of 21 |"]
