"""The TFLite repairs are kept only when LiteRT proves them exact: a rewrite that changes any output bit leaves the
file as the tool wrote it, and says so; a repaired file records them in its own metadata, and the manifest lists
what each file carries from there."""

import json

import numpy as np

from edgematte.converter.repairs.tflite import concatenation_fan_in
from edgematte.converter.tflite_repairs import repair_tflite_file, repairs_in_file
from tests.tflite_patterns import build_pattern_models


def test_a_rewrite_that_changes_the_outputs_is_not_kept(tmp_path, monkeypatch, capsys):
    path = build_pattern_models("wide_concatenations", tmp_path)["float32"]  # no one-channel maps: only the fan-in
    written = path.read_bytes()
    honest = concatenation_fan_in.split_wide_concatenations

    def swapped(edit, *args, **kwargs):  # the right rewrite, then the outer concatenation's parts swapped
        records = honest(edit, *args, **kwargs)
        for op in edit.graph.operators:
            if edit.op_name(op) == "CONCATENATION" and any(
                    concatenation_fan_in.PART_NAME in edit.graph.tensors[i].name.decode() for i in op.inputs):
                op.inputs = np.array(list(op.inputs)[::-1], np.int32)
        return records

    monkeypatch.setattr(concatenation_fan_in, "split_wide_concatenations", swapped)
    assert repair_tflite_file(path, where="wide.tflite") == []
    assert path.read_bytes() == written
    assert repairs_in_file(path) == []
    err = capsys.readouterr().err
    assert "wide.tflite: the TFLite repairs were not kept (output " in err and "differs after the rewrite" in err
    assert not list(tmp_path.glob("*.repaired.tflite"))  # the candidate is removed


def test_a_rewrite_that_fails_on_a_file_leaves_it_as_written(tmp_path, monkeypatch, capsys):
    path = build_pattern_models("wide_concatenations", tmp_path)["float32"]
    written = path.read_bytes()

    def broken(edit, *args, **kwargs):
        raise IndexError("tensor 99 out of range")

    monkeypatch.setattr(concatenation_fan_in, "split_wide_concatenations", broken)
    assert repair_tflite_file(path, where="wide.tflite") == []
    assert path.read_bytes() == written
    assert ("wide.tflite: the TFLite repairs were not applied (IndexError: tensor 99 out of range)"
            in capsys.readouterr().err)


def test_the_converted_tflite_files_record_their_repairs(tiny_conversion):
    """The tiny PP-MattingV2 conversion: its fp32 and fp16 TFLite carry both repairs, and the manifest says so per
    file, with the counts read from the file."""
    manifest = json.loads((tiny_conversion / "manifest.json").read_text())
    for name in ("model_fp32.tflite", "model_fp16.tflite"):
        found = {(r["name"], r["matched"]) for r in manifest["repairs"] if r["artefact"] == name and
                 r["kind"] == "tflite"}
        # the fusion blocks resize 7 inputs to the size they have; four concatenate 6 one-channel maps and one 4
        # (stacked; the stacks of 6 then split in two); five attention maps are cut into 3 one-channel pieces
        assert found == {("identity_resize", 7), ("single_channel_concatenation", 5), ("concatenation_fan_in", 4),
                         ("channel_slices_as_split", 5)}, name
        assert found == {(r["name"], r["matched"]) for r in repairs_in_file(tiny_conversion / name)}


def test_a_file_repaired_twice_keeps_the_records_of_both(tmp_path, monkeypatch):
    from edgematte.converter.repairs import registry

    path = build_pattern_models("single_channel_maps", tmp_path)["float32"]
    with monkeypatch.context() as patch:
        patch.setitem(registry.ORDER, "tflite", ("tflite.single_channel_concatenation",))
        repair_tflite_file(path)
    assert [(r["name"], r["changed"]) for r in repairs_in_file(path)] == [("single_channel_concatenation", 2)]
    repair_tflite_file(path)  # now the 6-map stack is split for XNNPACK too
    assert [(r["name"], r["changed"]) for r in repairs_in_file(path)] == [("single_channel_concatenation", 2),
                                                                          ("concatenation_fan_in", 1)]
