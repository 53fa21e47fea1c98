"""Hostile deploy folders and weights: configs and checkpoints crafted to hang, exhaust memory, escape the
folder or run code are refused in one line naming the file, quickly and before anything is built.

Part of the hostile-input suite (``tests/test_hostile_*.py``).
"""

import os
import pickle
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edgematte.core.errors import EdgematteError
from edgematte.zoo.source import extract_archive, open_model_source, read_deploy_folder
from edgematte.zoo.weights import read_pdparams
from tests.conftest import run_cli

GOOD_DEPLOY = """Deploy:
  input_shape: [-1, 3, -1, -1]
  model: model.pdmodel
  params: model.pdiparams
  transforms:
  - type: LoadImages
  - type: Normalize
ModelName: PPMattingV2
"""

# Nine lists of nine aliases to the one before: 9**9 strings once expanded (the manifest copies every alias).
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + "Deploy:\n  transforms: [{type: Normalize, lol: *i}]\n"


def _refused(fn, *args) -> str:
    """The message of the EdgematteError ``fn(*args)`` raises; it must be one line."""
    with pytest.raises(EdgematteError) as e:
        fn(*args)
    message = str(e.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def _within(seconds: float, fn, *args):
    """Run ``fn(*args)`` in a thread: fail (instead of hanging the suite) when it is not done in ``seconds``.

    Returns what it returned or the exception it raised.
    """
    result = {}

    def run():
        try:
            result["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in (Path(a) for a in args if isinstance(a, (str, Path)) and Path(a).is_fifo()):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # free the stuck reader
        pytest.fail(f"{fn.__name__} blocked for more than {seconds} s")
    return result.get("error", result.get("value"))


def _deploy(folder: Path, yaml_text=GOOD_DEPLOY, files=("model.pdmodel", "model.pdiparams")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes(b"x" * 16)
    if yaml_text is not None:
        (folder / "deploy.yaml").write_text(yaml_text)
    return folder


# ----------------------------------------------------------------------------- deploy.yaml contents
BAD_CONFIGS = {
    "alias bomb": (ALIAS_BOMB, "YAML aliases and anchors are not allowed (line 1)"),
    "one alias": ("Deploy:\n  model: &m model.pdmodel\n  params: *m\n",
                  "YAML aliases and anchors are not allowed (line 2)"),
    "merge key": ("base: &b {type: Normalize}\nDeploy:\n  transforms: [{<<: *b}]\n",
                  "YAML aliases and anchors are not allowed (line 1)"),
    "deep nesting": ("Deploy: {transforms: " + "[" * 40 + "]" * 40 + "}\n", "nested deeper than 20 levels (line 1)"),
    "syntax": ("Deploy:\n  model: a: b\n",
               "not valid YAML: mapping values are not allowed in this context (line 2, column 11)"),
    "unclosed quote": ("Deploy:\n  model: 'model.pdmodel\n",
                       "not valid YAML: while scanning a quoted scalar, found unexpected end of stream "
                       "(line 3, column 1)"),
    "python tag": ("Deploy: !!python/object/apply:os.system [touch pwned]\n",
                   "not valid YAML: could not determine a constructor for the tag "
                   "'tag:yaml.org,2002:python/object/apply:os.system' (line 1, column 9)"),
    "two documents": ("Deploy: {}\n---\nDeploy: {}\n",
                      "not valid YAML: expected a single document in the stream, but found another document "
                      "(line 2, column 1)"),
    "NUL byte": ("Deploy:\n  model: a\x00\n", "not valid YAML: unacceptable character #x0000: "
                 "control characters are not allowed (character 19)"),
    "top level list": ("- Deploy\n- model\n", "the top level is a list, not a mapping"),
    "Deploy a string": ("Deploy: model.pdmodel\n", "Deploy is a string, not a mapping"),
    "float dim": ("Deploy:\n  input_shape: [1, 3, 512.5, 512]\n",
                  "Deploy.input_shape[2] is 512.5 (a float), not a positive integer, -1 or null"),
    "float that looks whole": ("Deploy:\n  input_shape: [1, 3, 512.9, 512]\n",
                               "Deploy.input_shape[2] is 512.9 (a float), not a positive integer, -1 or null"),
    "boolean dim": ("Deploy:\n  input_shape: [true, 3, 512, 512]\n",
                    "Deploy.input_shape[0] is True (a boolean), not a positive integer, -1 or null"),
    "string dim": ("Deploy:\n  input_shape: [1, '3', 512, 512]\n",
                   "Deploy.input_shape[1] is '3' (a string), not a positive integer, -1 or null"),
    "zero dim": ("Deploy:\n  input_shape: [1, 3, 0, 512]\n",
                 "Deploy.input_shape[2] is 0 (an integer), not a positive integer, -1 or null"),
    "huge dim": ("Deploy:\n  input_shape: [1, 3, 99999999999999999999, 512]\n",
                 "Deploy.input_shape[2] is 99999999999999999999 (an integer), not a positive integer, -1 or null"),
    "shape string": ("Deploy:\n  input_shape: 1x3x512x512\n", "Deploy.input_shape is a string, not a list"),
    "three dims": ("Deploy:\n  input_shape: [3, 512, 512]\n", "Deploy.input_shape has 3 entries, not 4 (N, C, H, W)"),
    "transforms a string": ("Deploy:\n  transforms: notalist\n", "Deploy.transforms is a string, not a list"),
    "transforms a mapping": ("Deploy:\n  transforms: {type: Normalize}\n",
                             "Deploy.transforms is a mapping, not a list"),
    "transform a string": ("Deploy:\n  transforms: [Normalize]\n", "Deploy.transforms[0] is a string, not a mapping"),
    "transform without type": ("Deploy:\n  transforms: [{type: LoadImages}, {max_short: 512}]\n",
                               "Deploy.transforms[1] has no string 'type'"),
    "transform type a number": ("Deploy:\n  transforms: [{type: 3}]\n", "Deploy.transforms[0] has no string 'type'"),
    "transform date": ("Deploy:\n  transforms: [{type: Normalize, when: 2001-12-14}]\n",
                       "Deploy.transforms[0].when is a date, not a string, number, list or mapping"),
    "transform binary": ("Deploy:\n  transforms: [{type: Normalize, raw: !!binary aGk=}]\n",
                         "Deploy.transforms[0].raw is a bytes, not a string, number, list or mapping"),
    "ModelName a list": ("ModelName: [PPMattingV2]\n", "ModelName is a list, not a string"),
    "model absolute": ("Deploy:\n  model: /etc/passwd\n",
                       "Deploy.model '/etc/passwd' is an absolute path, not a file in the deploy folder"),
    "model parent": ("Deploy:\n  model: ../x.pdmodel\n",
                     "Deploy.model '../x.pdmodel' leads out of the deploy folder ('..')"),
    "params parent inside": ("Deploy:\n  params: sub/../../x.pdiparams\n",
                             "Deploy.params 'sub/../../x.pdiparams' leads out of the deploy folder ('..')"),
    "model a number": ("Deploy:\n  model: 12\n", "Deploy.model is an integer, not a file name"),
    "model empty": ("Deploy:\n  model: ''\n", "Deploy.model is an empty string, not a file name"),
    "model newline": ('Deploy:\n  model: "/x\\ny"\n',
                      "Deploy.model '/x\\ny' is an absolute path, not a file in the deploy folder"),
}


@pytest.mark.parametrize("yaml_text, problem", BAD_CONFIGS.values(), ids=list(BAD_CONFIGS))
def test_bad_deploy_yaml_is_one_line(tmp_path, yaml_text, problem):
    folder = _deploy(tmp_path / "d", yaml_text)
    assert _refused(read_deploy_folder, folder) == f"{folder / 'deploy.yaml'}: {problem}"
    assert not (tmp_path / "pwned").exists()


def test_alias_bomb_refused_fast_and_small(tmp_path):
    folder = _deploy(tmp_path / "d", ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = _refused(read_deploy_folder, folder)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "YAML aliases and anchors are not allowed" in message
    assert seconds < 0.5, seconds
    assert peak < 2 << 20, peak  # expanded, the 9**9 strings would need gigabytes


def test_good_config_still_reads(tmp_path):
    src = read_deploy_folder(_deploy(tmp_path / "d"))
    assert src.input_shape == [None, 3, None, None]
    assert [t["type"] for t in src.transforms] == ["LoadImages", "Normalize"]


# ----------------------------------------------------------------------------- deploy folder files
def test_deploy_yaml_fifo_does_not_block(tmp_path):
    folder = _deploy(tmp_path / "d", None)
    os.mkfifo(folder / "deploy.yaml")
    error = _within(5, read_deploy_folder, folder)
    assert isinstance(error, EdgematteError) and "\n" not in str(error)
    assert str(error) == f"{folder / 'deploy.yaml'}: is a FIFO, not a regular config file"


def test_deploy_yaml_folder_and_huge_file(tmp_path):
    folder = _deploy(tmp_path / "d", None)
    (folder / "deploy.yaml").mkdir()
    assert _refused(read_deploy_folder, folder) == f"{folder / 'deploy.yaml'}: is a folder, not a regular config file"
    big = _deploy(tmp_path / "big", None)
    with open(big / "deploy.yaml", "wb") as f:
        f.write(b"Deploy:\n  transforms: []\n# " + b"x" * (10 << 20))
    start = time.perf_counter()
    message = _refused(read_deploy_folder, big)
    assert time.perf_counter() - start < 0.5
    size = (big / "deploy.yaml").stat().st_size
    assert message == f"{big / 'deploy.yaml'}: {size} bytes, more than the 1 MiB limit for a config file"


def test_model_files_must_be_regular(tmp_path):
    folder = _deploy(tmp_path / "d", files=("model.pdiparams",))
    os.mkfifo(folder / "model.pdmodel")
    error = _within(5, read_deploy_folder, folder)
    assert str(error) == f"{folder / 'model.pdmodel'}: is a FIFO, not a regular model file"
    empty = _deploy(tmp_path / "e", files=("model.pdmodel",))
    (empty / "model.pdiparams").write_bytes(b"")
    assert _refused(read_deploy_folder, empty) == f"{empty / 'model.pdiparams'}: empty file"
    missing = _deploy(tmp_path / "m", files=("model.pdmodel",))
    assert _refused(read_deploy_folder, missing) == f"{missing / 'model.pdiparams'}: missing from the deploy folder"


def test_symlinks_out_of_the_folder_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.pdmodel").write_bytes(b"y" * 16)
    # the default name, a link to a file outside
    linked = _deploy(tmp_path / "l", files=("model.pdiparams",))
    (linked / "model.pdmodel").symlink_to(outside / "model.pdmodel")
    assert _refused(read_deploy_folder, linked) == (
        f"{linked / 'model.pdmodel'}: a symbolic link to {outside / 'model.pdmodel'}, outside the deploy folder")
    # a declared path through a linked folder
    through = _deploy(tmp_path / "t", GOOD_DEPLOY.replace("model: model.pdmodel", "model: sub/model.pdmodel"))
    (through / "sub").symlink_to(outside)
    assert _refused(read_deploy_folder, through) == (
        f"{through / 'sub/model.pdmodel'}: a symbolic link to {outside / 'model.pdmodel'}, outside the deploy folder")
    # the config itself
    (outside / "deploy.yaml").write_text(GOOD_DEPLOY)
    config = _deploy(tmp_path / "c", None)
    (config / "deploy.yaml").symlink_to(outside / "deploy.yaml")
    assert _refused(read_deploy_folder, config) == (
        f"{config / 'deploy.yaml'}: a symbolic link to {outside / 'deploy.yaml'}, outside the deploy folder")
    # links that stay inside are fine
    inside = _deploy(tmp_path / "i", GOOD_DEPLOY.replace("model: model.pdmodel", "model: alias.pdmodel"))
    (inside / "alias.pdmodel").symlink_to("model.pdmodel")
    assert read_deploy_folder(inside).pdmodel == inside / "alias.pdmodel"


def test_archive_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "model.tar.gz"
    os.mkfifo(fifo)
    for fn, args in ((open_model_source, (str(fifo), tmp_path / "work")), (extract_archive, (fifo, tmp_path / "x"))):
        error = _within(5, fn, *args)
        assert str(error) == f"{fifo}: is a FIFO, not a regular archive file", error


def test_archive_deploy_yaml_cannot_point_outside(tmp_path):
    import zipfile

    (tmp_path / "secret.pdmodel").write_bytes(b"s" * 16)
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pp/deploy.yaml", GOOD_DEPLOY.replace("model: model.pdmodel", "model: ../../../secret.pdmodel"))
        zf.writestr("pp/model.pdiparams", "y" * 16)
    message = _refused(open_model_source, str(archive), tmp_path / "work")
    assert message == (f"{tmp_path / 'work/source/pp/deploy.yaml'}: Deploy.model '../../../secret.pdmodel' leads "
                       "out of the deploy folder ('..')")


# ----------------------------------------------------------------------------- .pdparams
def _paddle_file(path: Path, protocol: int):
    """A state dict saved by paddle.save; for protocols paddle.save refuses (0, 1, 5), what it would write:
    pickle.dump of paddle's own saved form of the dict."""
    import paddle
    from paddle.framework.io import _build_saved_state_dict

    state = {
        "conv.weight": paddle.to_tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7),
        "conv.bias": paddle.to_tensor(np.array([-1.5, 2.25], dtype=np.float32)),
        "bn._variance": paddle.to_tensor(np.array([3.0], dtype=np.float32)),
        "scale": paddle.to_tensor(np.array(0.5, dtype=np.float32)),  # 0-d
    }
    try:
        paddle.save(state, str(path), protocol=protocol)
    except ValueError:  # paddle 2.6: "Expected 1<'protocol'<5"
        with open(path, "wb") as f:
            pickle.dump(_build_saved_state_dict(state), f, protocol=protocol)
    return {k: v.numpy() for k, v in state.items()}


@pytest.mark.parametrize("protocol", range(6))
def test_pdparams_every_pickle_protocol(tmp_path, protocol):
    path = tmp_path / f"p{protocol}.pdparams"
    saved = _paddle_file(path, protocol)
    header = path.read_bytes()[:2]
    if protocol >= 2:
        assert header == bytes([0x80, protocol])
    else:  # protocols 0 and 1 have no PROTO opcode
        assert header[0] != 0x80
    weights = read_pdparams(path)
    assert list(weights) == list(saved)
    for key, value in saved.items():
        assert weights[key].dtype == value.dtype and weights[key].shape == value.shape, key
        assert np.array_equal(weights[key], value), key


def test_truncated_pdparams(tmp_path):
    path = tmp_path / "t.pdparams"
    _paddle_file(path, 4)
    path.write_bytes(path.read_bytes()[:200])
    message = _refused(read_pdparams, path)
    assert message == f"{path}: not a readable .pdparams file (UnpicklingError: pickle data was truncated)"


def test_weights_fifo_and_devices(tmp_path):
    fifo = tmp_path / "w.pdparams"
    os.mkfifo(fifo)
    error = _within(5, read_pdparams, fifo)
    assert str(error) == f"{fifo}: is a FIFO, not a regular weights file"
    assert _refused(read_pdparams, Path("/dev/zero")) == "/dev/zero: is a character device, not a regular weights file"
    assert _refused(read_pdparams, tmp_path) == f"{tmp_path}: is a folder, not a regular weights file"


def _in_dict(value: bytes) -> bytes:
    """A protocol-0 pickle of ``{"w": <value>}`` where ``value`` is protocol-0 opcodes that push one object."""
    return b"(dVw\n" + value + b"s."


def _call(module: str, name: str, *args: bytes) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + b"".join(args) + b"tR"


EVIL_PICKLES = {
    "os.system": (_call("os", "system", b"Vtouch MARKER\n"), "refusing to load global 'os.system'"),
    "builtins.eval": (_call("builtins", "eval", b"V__import__('os').system('touch MARKER')\n"),
                      "refusing to load global 'builtins.eval'"),
    "__builtin__.eval": (_call("__builtin__", "eval", b"V1\n"), "refusing to load global '__builtin__.eval'"),
    "copyreg._reconstructor": (_call("copyreg", "_reconstructor", b"cos\nsystem\n", b"cbuiltins\nobject\n", b"N"),
                               "refusing to load global 'copyreg._reconstructor'"),
    "numpy scalar": (_call("numpy.core.multiarray", "scalar", b"V\n"),
                     "refusing to load global 'numpy.core.multiarray.scalar'"),
    "codecs rot13": (_call("_codecs", "encode", b"Vgbhpu\n", b"Vrot13\n"),
                     "refusing _codecs.encode(str, 'rot13'): only (text, 'latin1') rebuilds bytes"),
    "codecs hex": (_call("_codecs", "encode", b"Vab\n", b"Vhex\n"),
                   "refusing _codecs.encode(str, 'hex'): only (text, 'latin1') rebuilds bytes"),
    "bytes of a size": (_call("__builtin__", "bytes", b"I100000000000\n"), "refusing builtins.bytes with arguments"),
    "object dtype": (_call("numpy", "dtype", b"VO\n", b"I00\n", b"I01\n"),
                     "refusing numpy dtype 'O' (only numeric dtypes)"),
    "structured dtype": (_call("numpy", "dtype", b"Vf4,f4\n", b"I00\n", b"I01\n"),
                         "refusing numpy dtype 'f4,f4' (only numeric dtypes)"),
    "ndarray called": (_call("numpy", "ndarray", b"(I100000\nI100000\nt"), "refusing to call numpy.ndarray"),
    "huge reconstruct": (_call("numpy.core.multiarray", "_reconstruct", b"cnumpy\nndarray\n", b"(I1000000000\nt",
                               b"Vb\n"),
                         "refusing numpy _reconstruct(numpy.ndarray, (1000000000,), 'b')"),
    "reconstruct other type": (_call("numpy.core.multiarray", "_reconstruct", b"cnumpy\ndtype\n", b"(I0\nt", b"Vb\n"),
                               "refusing numpy _reconstruct(_safe_dtype, (0,), 'b')"),
    "frombuffer wrong arguments": (_call("numpy.core.numeric", "_frombuffer", b"Vab\n", b"N", b"(t", b"VC\n"),
                                   "refusing numpy _frombuffer with str, None, (), 'C'"),
}


@pytest.mark.parametrize("payload, problem", EVIL_PICKLES.values(), ids=list(EVIL_PICKLES))
def test_pickle_abuse_is_refused_and_runs_nothing(tmp_path, monkeypatch, payload, problem):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pdparams"
    path.write_bytes(_in_dict(payload))
    message = _refused(read_pdparams, path)
    assert message.startswith(f"{path}: not a safe .pdparams state_dict ({problem}"), message
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("state, attribute", [(b"(dVx\nI1\ns", "__dict__"), (b"(N(dV__defaults__\n(Vrot13\ntst",
                                                                                 "__defaults__")])
def test_pickle_cannot_modify_the_allowed_globals(tmp_path, state, attribute):
    """BUILD on an allowed global would set attributes on it for every later load: refused."""
    from edgematte.zoo.weights import _SAFE_GLOBALS

    path = tmp_path / "build.pdparams"
    path.write_bytes(_in_dict(b"c_codecs\nencode\n" + state + b"b"))
    message = _refused(read_pdparams, path)
    assert message == (f"{path}: not a readable .pdparams file (AttributeError: '__safe_codecs_encode' object has "
                       f"no attribute '{attribute}')")
    encode = _SAFE_GLOBALS[("_codecs", "encode")]
    assert not hasattr(encode, "x") and not hasattr(encode, "__defaults__")
    _paddle_file(path, 2)  # and a genuine file that needs it still loads
    assert list(read_pdparams(path)) == ["conv.weight", "conv.bias", "bn._variance", "scale"]


def test_the_evil_pickles_are_well_formed(tmp_path):
    """The crafted pickles do what they claim when loaded without restrictions (harmless calls only)."""
    assert pickle.loads(_in_dict(_call("_codecs", "encode", b"Vgbhpu\n", b"Vrot13\n"))) == {"w": "touch"}
    assert pickle.loads(_in_dict(_call("__builtin__", "eval", b"V1+1\n"))) == {"w": 2}
    assert pickle.loads(_in_dict(_call("numpy", "dtype", b"VO\n", b"I00\n", b"I01\n"))) == {"w": np.dtype("O")}


# ----------------------------------------------------------------------------- through the command line
def test_cli_bad_deploy_yaml_and_fifo_weights(tmp_path):
    folder = _deploy(tmp_path / "d", GOOD_DEPLOY.replace("[-1, 3, -1, -1]", "[1, 3, 512.5, 512]"))
    r = run_cli("convert", folder, "-o", tmp_path / "out", timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == (f"edgematte: error: {folder / 'deploy.yaml'}: Deploy.input_shape[2] is 512.5 (a float), "
                        "not a positive integer, -1 or null\n")
    assert not (tmp_path / "out").exists()
    fifo = tmp_path / "w.pdparams"
    os.mkfifo(fifo)
    r = run_cli("zoo", "check-weights", "ppmattingv2", fifo, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == f"edgematte: error: {fifo}: is a FIFO, not a regular weights file\n"
