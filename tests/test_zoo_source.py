"""Model sources: deploy folders (PaddleSeg / FastDeploy layouts) and safe archive extraction."""

import io
import tarfile
import zipfile

import pytest

from edgematte.core.errors import EdgematteError
from edgematte.zoo.source import extract_archive, open_model_source, read_deploy_folder


def _fake_deploy(folder, yaml_text, names=("model.pdmodel", "model.pdiparams"), config="deploy.yaml"):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x" * 16)
    if yaml_text is not None:
        (folder / config).write_text(yaml_text)
    return folder


PADDLESEG_YAML = """Deploy:
  input_shape: [-1, 3, -1, -1]
  model: model.pdmodel
  params: model.pdiparams
  transforms:
  - type: LoadImages
  - max_short: 512
    type: LimitShort
  - mult_int: 32
    type: ResizeToIntMult
  - type: Normalize
ModelName: PPMattingV2
"""


def test_paddleseg_layout_dynamic_minus_one(tmp_path):
    src = read_deploy_folder(_fake_deploy(tmp_path / "d", PADDLESEG_YAML))
    assert src.input_shape == [None, 3, None, None]
    assert src.spec.name == "ppmattingv2"
    assert [t["type"] for t in src.transforms] == ["LoadImages", "LimitShort", "ResizeToIntMult", "Normalize"]
    assert len(src.sha256) == 64


def test_paddleseg_layout_nulls_and_fixed(tmp_path):
    nulls = read_deploy_folder(_fake_deploy(tmp_path / "n",
                                            PADDLESEG_YAML.replace("[-1, 3, -1, -1]", "[null, 3, null, null]")))
    assert nulls.input_shape == [None, 3, None, None]
    fixed = read_deploy_folder(_fake_deploy(tmp_path / "f",
                                            PADDLESEG_YAML.replace("[-1, 3, -1, -1]", "[1, 3, 480, 640]")))
    assert fixed.input_shape == [1, 3, 480, 640]


def test_fastdeploy_layout(tmp_path):
    folder = _fake_deploy(
        tmp_path / "fd",
        "Deploy:\n  input_shape: [1, 3, 2048, 2048]\n  transforms: []\nModelName: HumanMatting\n",
        names=("inference.pdmodel", "inference.pdiparams"),
        config="inference.yml",
    )
    src = read_deploy_folder(folder)
    assert src.pdmodel.name == "inference.pdmodel" and src.spec.name == "humanmatting"


def test_missing_params_names_the_file(tmp_path):
    folder = _fake_deploy(tmp_path / "m", PADDLESEG_YAML, names=("model.pdmodel",))
    with pytest.raises(EdgematteError, match=r"model\.pdiparams: missing"):
        read_deploy_folder(folder)


def test_bad_yaml(tmp_path):
    folder = _fake_deploy(tmp_path / "y", "Deploy: [unclosed")
    with pytest.raises(EdgematteError) as e:
        read_deploy_folder(folder)
    assert str(e.value) == (f"{folder / 'deploy.yaml'}: not valid YAML: while parsing a flow sequence, "
                            "did not find expected ',' or ']' (line 2, column 1)")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def test_zip_with_top_folder(tmp_path):
    archive = _zip(tmp_path / "m.zip",
                   [("pp/deploy.yaml", PADDLESEG_YAML), ("pp/model.pdmodel", "x"), ("pp/model.pdiparams", "y")])
    src = open_model_source(str(archive), tmp_path / "work")
    assert src.pdmodel.read_text() == "x" and src.origin == str(archive)


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/escape.txt", "a/../../escape.txt"])
def test_zip_path_escape_refused(tmp_path, evil):
    archive = _zip(tmp_path / "e.zip", [(evil, "boom")])
    with pytest.raises(EdgematteError, match="refusing member"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_tar_symlink_refused(tmp_path):
    archive = tmp_path / "l.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(EdgematteError, match="links and devices are not allowed"):
        extract_archive(archive, tmp_path / "out")


def test_truncated_tar_gz(tmp_path):
    good = tmp_path / "g.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        data = bytes(range(256)) * 4096
        info = tarfile.TarInfo("pp/model.pdiparams")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(EdgematteError, match="bad.tar.gz: (truncated or corrupt|not a zip or tar)"):
        open_model_source(str(bad), tmp_path / "work")


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(EdgematteError, match="not a zoo model name"):
        open_model_source("no/such/folder", tmp_path)


def test_config_forms_that_stay_valid(tmp_path):
    # an empty config and a null Deploy mean the layout's defaults
    assert read_deploy_folder(_fake_deploy(tmp_path / "e", "")).pdmodel.name == "model.pdmodel"
    src = read_deploy_folder(_fake_deploy(tmp_path / "n", "Deploy:\nModelName: null\n"))
    assert (src.transforms, src.input_shape, src.spec) == ([], None, None)
    # model files in a subfolder, transform parameters of every plain type, a null input_shape
    (tmp_path / "s" / "sub").mkdir(parents=True)
    folder = _fake_deploy(tmp_path / "s", "Deploy:\n  model: sub/m.pdmodel\n  params: sub/m.pdiparams\n"
                          "  input_shape: null\n  transforms:\n  - {type: Normalize, mean: [0.5, 0.5, 0.5], "
                          "std: [0.5, 0.5, 0.5], keep: true, note: null, extra: {n: 1}}\n",
                          names=("sub/m.pdmodel", "sub/m.pdiparams"))
    src = read_deploy_folder(folder)
    assert src.pdmodel == folder / "sub" / "m.pdmodel" and src.input_shape is None
    assert src.transforms == [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3, "keep": True, "note": None,
                               "extra": {"n": 1}}]


def test_no_config_single_pdmodel_is_checked_too(tmp_path):
    folder = _fake_deploy(tmp_path / "p", None, names=("net.pdmodel",))
    (tmp_path / "elsewhere.pdiparams").write_bytes(b"y" * 16)
    (folder / "net.pdiparams").symlink_to(tmp_path / "elsewhere.pdiparams")
    with pytest.raises(EdgematteError) as e:
        read_deploy_folder(folder)
    assert str(e.value) == (f"{folder / 'net.pdiparams'}: a symbolic link to {tmp_path / 'elsewhere.pdiparams'}, "
                            "outside the deploy folder")
