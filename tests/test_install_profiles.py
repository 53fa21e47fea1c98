"""The runtime install profile: no paddlepaddle, no tensorflow."""

import subprocess
import sys
import textwrap
from importlib import metadata


def _requirements(extra=None):
    reqs = metadata.requires("edgematte") or []
    marker = f'extra == "{extra}"' if extra else None
    out = []
    for r in reqs:
        name = r.split(";")[0].strip()
        is_extra = "extra ==" in r
        if (marker is None and not is_extra) or (marker and marker in r):
            out.append(name.split("[")[0].replace(">", " ").replace("=", " ").replace("<", " ").split()[0].lower())
    return out


def test_runtime_profile_pulls_neither_paddle_nor_tensorflow():
    base = _requirements()
    assert base, "no install_requires found: is edgematte installed (pip install -e .)?"
    assert {"numpy", "opencv-python", "click", "ai-edge-litert", "onnxruntime", "av"} <= set(base)
    for heavy in ("paddlepaddle", "paddlelite", "tensorflow", "tf-keras", "onnx2tf", "paddle2onnx"):
        assert heavy not in base


def test_convert_profile_has_the_toolchain():
    convert = set(_requirements("convert"))
    assert {"paddlepaddle", "paddlelite", "paddle2onnx", "onnx", "onnxsim", "onnx2tf"} <= convert


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split('.')[0] in ('paddle', 'paddlelite', 'tensorflow', 'tf_keras', 'keras'):
                raise ImportError('blocked for this test: ' + name)
    sys.meta_path.insert(0, Block())
    try:
        import paddle
    except ImportError:
        pass
    else:
        raise SystemExit('blocker failed')
    """
)


def test_runtime_imports_without_paddle_and_tensorflow():
    code = BLOCKER + textwrap.dedent(
        """
        import edgematte.runtime
        import edgematte.runtime.backends.base
        import edgematte.cli
        print('ok')
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
