"""The conversion manifest (``OUT/manifest.json``): the one contract between converter, runtime, benchmarks,
device verification and the Android app (``android_demo/core/.../Manifest.java`` reads the same file).

Every layer reads and writes it through the types here; nothing else indexes the JSON. The JSON stays what
edgematte 0.1 wrote (schema ``edgematte.manifest/1``): fields this module does not name are kept in ``extra``
and written back unchanged, so old manifests load and round-trip. ``schema_version`` is written from 1.1 on
(1.2 adds ``model.inputs`` / ``model.outputs``: every input and output with its role); readers accept any
``edgematte.manifest/1`` document.

Stable minimum scripts may rely on: ``model`` (``name``, ``source_sha256``, ``input_shape``) and ``artefacts``,
each with ``path`` (relative to the manifest), ``format`` (nb | onnx | tflite), ``target`` (arm | x86 | opencl |
any), ``precision``, ``size_bytes``, ``sha256`` and ``parity`` = ``{max_abs, mean_abs, frac_over_1_255,
compared_to, runs_on_host}``.

Which artefact runs where is decided here and only here (:meth:`Artefact.runs_on`), mirroring
``Manifest.Artefact.runsOnAndroid()`` in the Java core.
"""

import datetime
import json
import platform as _platform
import re
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import __version__
from .errors import EdgematteError
from .fsutil import read_json_document, sha256_file, write_text_atomic
from .versions import TOOLCHAIN, installed_versions

SCHEMA = "edgematte.manifest/1"
SCHEMA_VERSION = "1.2"
MANIFEST_NAME = "manifest.json"
FORMATS = ("nb", "onnx", "tflite")
REFERENCE = "reference"  # the name benchmarks and verification give the shipped Paddle reference model

# Where an artefact runs, by its format and target. "x86" and "arm" are Linux CPUs (this host, a board);
# "android" is the demo app (LiteRT and Paddle Lite's Java API); "litert" is any LiteRT-only runtime (the
# emulated arm64 root file system has nothing else).
PLATFORMS = ("x86", "arm", "android", "litert")


def _runs_on(fmt: str, target: str, platform: str) -> bool:
    if platform == "android":
        return fmt == "tflite" or (fmt == "nb" and target in ("arm", "opencl"))
    if platform == "litert":
        return fmt == "tflite"
    if platform in ("x86", "arm"):
        return fmt in ("tflite", "onnx") or (fmt == "nb" and target == platform)
    raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")


def this_platform() -> str:
    """The platform of this machine: "arm" on aarch64, else "x86"."""
    return "arm" if _platform.machine().lower() in ("aarch64", "arm64") else "x86"


def _split(cls, data: dict) -> dict:
    """``data``'s keys that are fields of dataclass ``cls`` as kwargs, the rest under ``extra``."""
    names = {f.name for f in fields(cls)} - {"extra"}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs["extra"] = {k: v for k, v in data.items() if k not in names}
    return kwargs


def _join(obj, skip_none: Sequence[str] = ()) -> dict:
    """The JSON dict of a dataclass with ``extra``: named fields first (``skip_none`` ones only when set)."""
    out = {}
    for f in fields(obj):
        if f.name == "extra":
            continue
        value = getattr(obj, f.name)
        if value is None and f.name in skip_none:
            continue
        out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
    out.update(obj.extra)
    return out


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _relative_path(value, what: str) -> str:
    """A path the manifest gives relative to its folder: plain, relative, never leaving the folder."""
    _require(isinstance(value, str) and value.strip() != "", f"{what} is not a path ({value!r})")
    pure = PurePosixPath(value)
    _require(not pure.is_absolute() and "\\" not in value and "\0" not in value,
             f"{what} '{value}' is absolute; manifest paths are relative to the manifest's folder")
    _require(".." not in pure.parts, f"{what} '{value}' leaves the conversion folder")
    return value


def _inside(folder, relative: str, what: str) -> Path:
    """``folder / relative``, refused (one line) when symbolic links take it out of ``folder``."""
    folder = Path(folder)
    path = folder / _relative_path(relative, what)
    root = folder.resolve()
    if root != path.resolve() and root not in path.resolve().parents:
        raise EdgematteError(f"{path}: {what} leads out of the conversion folder {folder} (a symbolic link)")
    return path


_checked_hashes: Dict[Tuple[str, int, int, int], str] = {}


def _verified(path: Path, digest: str, what: str) -> Path:
    """``path`` when it is a regular file whose sha256 is ``digest``; a one-line error naming it otherwise.
    Hashes are remembered per (file, inode, size, mtime), so a process checks each file once."""
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise EdgematteError(f"{path}: the manifest records no sha256 for this {what}, so it cannot be trusted")
    try:
        info = path.stat()
    except OSError:
        raise EdgematteError(f"{path}: {what} listed in the manifest is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise EdgematteError(f"{path}: {what} listed in the manifest is not a regular file")
    key = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _checked_hashes:
        _checked_hashes[key] = sha256_file(path)
    if _checked_hashes[key] != digest:
        raise EdgematteError(f"{path}: changed since conversion (its sha256 differs from the manifest's); "
                             "restore it or convert again")
    return path


class _Record:
    """A manifest section: its named fields, and ``extra`` for every key it does not name (kept as read).
    ``SKIP_NONE`` lists the optional fields written only when set."""

    SKIP_NONE: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, data: dict):
        return cls(**_split(cls, data))

    def to_dict(self) -> dict:
        return _join(self, skip_none=self.SKIP_NONE)


@dataclass
class TensorSpec(_Record):
    """One model input or output: ``shape`` as the artefact declares it, numpy ``dtype`` name, ``quant``
    = ``[scale, zero_point]`` for int8/uint8 tensors, ``layout`` (nchw/nhwc) where the converter knows it."""

    name: str
    shape: List[int]
    dtype: str
    quant: Optional[List[float]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ParityRecord(_Record):
    """An artefact's alpha difference from the reference on the parity photos (see :mod:`.parity`), with the
    bound it was judged by and the verdict; ``runs_on_host`` False means figures inherited from a twin."""

    max_abs: Optional[float]
    mean_abs: Optional[float]
    frac_over_1_255: Optional[float]
    compared_to: str
    runs_on_host: bool = True
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> Optional[str]:
        return self.extra.get("reason")

    @property
    def bound(self) -> Optional[float]:
        return self.extra.get("bound")

    @property
    def within_bound(self) -> Optional[bool]:
        return self.extra.get("within_bound")


@dataclass
class Artefact:
    """One converted model file. ``extra`` holds the per-format details (``opt``, ``onnx``, ``onnx2tf``,
    ``quantization``, ``numerics``, ``kernels``, ...)."""

    path: str
    format: str
    target: str
    precision: str
    size_bytes: int
    sha256: str
    parity: ParityRecord
    runtime: Optional[str] = None
    layout: Optional[str] = None
    inputs: List[TensorSpec] = field(default_factory=list)
    outputs: List[TensorSpec] = field(default_factory=list)
    profile: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "Artefact":
        _require(isinstance(data, dict), f"an artefact entry is {type(data).__name__}, not an object")
        kwargs = _split(cls, data)
        for key in ("path", "format", "parity"):
            if key not in kwargs:
                raise ValueError(f"an artefact entry has no '{key}'")
        path = _relative_path(kwargs["path"], "artefact path")
        _require(kwargs["format"] in FORMATS, f"artefact {path}: format {kwargs['format']!r} is not one of "
                                              f"{', '.join(FORMATS)}")
        _require(isinstance(kwargs["parity"], dict), f"artefact {path}: parity is not an object")
        for key in ("inputs", "outputs"):
            _require(isinstance(kwargs.get(key) or [], list), f"artefact {path}: {key} is not a list")
        kwargs["parity"] = ParityRecord.from_dict(kwargs["parity"])
        kwargs["inputs"] = [TensorSpec.from_dict(t) for t in kwargs.get("inputs") or []]
        kwargs["outputs"] = [TensorSpec.from_dict(t) for t in kwargs.get("outputs") or []]
        kwargs.setdefault("target", "any")
        kwargs.setdefault("precision", "?")
        kwargs.setdefault("size_bytes", 0)
        kwargs.setdefault("sha256", "")
        return cls(**kwargs)

    @classmethod
    def of_file(cls, out_dir, path, *, parity: dict, inputs: Sequence[dict] = (), outputs: Sequence[dict] = (),
                extra: Optional[dict] = None, **entry) -> "Artefact":
        """An artefact for the file ``path`` inside ``out_dir``: its relative path, size and sha256 are read."""
        path = Path(path)
        return cls(path=str(path.relative_to(out_dir)), size_bytes=path.stat().st_size, sha256=sha256_file(path),
                   parity=ParityRecord.from_dict(parity), inputs=[TensorSpec.from_dict(t) for t in inputs],
                   outputs=[TensorSpec.from_dict(t) for t in outputs], extra=dict(extra or {}), **entry)

    def to_dict(self) -> dict:
        out = _join(self)
        out["inputs"] = [t.to_dict() for t in self.inputs]
        out["outputs"] = [t.to_dict() for t in self.outputs]
        return out

    @property
    def name(self) -> str:
        """The file name (``model_fp32.tflite``)."""
        return Path(self.path).name

    def matches(self, name: str) -> bool:
        """Whether ``name`` is this artefact's path or file name."""
        return name in (self.path, self.name)

    def runs_on(self, platform: str) -> bool:
        """Whether a ``platform`` (:data:`PLATFORMS`) can run this file."""
        return _runs_on(self.format, self.target, platform)

    @property
    def runs_on_host(self) -> bool:
        """Whether the converting host ran it (an arm/opencl .nb carries its x86 twin's figures)."""
        return bool(self.parity.runs_on_host)

    @property
    def numerics(self) -> Optional[dict]:
        """INT8 artefacts: the matting metrics against fp32 on held-out photos and the budget verdict."""
        return self.extra.get("numerics")


@dataclass
class ModelInfo(_Record):
    """What was converted: ``name`` (zoo name or file stem), ``origin`` (folder, archive or ``zoo:...``),
    ``source_sha256``, the fixed ``input_shape`` [N, C, H, W], deploy.yaml's ``transforms``."""

    name: str
    input_shape: List[int]
    origin: Optional[str] = None
    source_sha256: Optional[str] = None
    declared_input_shape: Optional[list] = None
    transforms: Optional[list] = None
    input_name: Optional[str] = None
    output_name: Optional[str] = None
    inputs: Optional[List[dict]] = None
    outputs: Optional[List[dict]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    SKIP_NONE: ClassVar[Tuple[str, ...]] = ("input_name", "output_name", "inputs", "outputs")

    @property
    def input_hw(self):
        return int(self.input_shape[2]), int(self.input_shape[3])

    def input_roles(self) -> List[dict]:
        """Every input of the converted model, ``{name, role, shape, dtype[, pair][, value]}`` in feed order
        (roles: image, trimap, state, constant; a ``state``'s ``pair`` is its output, a ``constant``'s ``value``
        is frozen into the artefacts). A manifest without roles (before 1.2) had one image input."""
        if self.inputs:
            return [dict(entry) for entry in self.inputs]
        return [{"name": self.input_name or "x", "role": "image", "shape": list(self.input_shape),
                 "dtype": "float32"}]

    def output_roles(self) -> List[dict]:
        """Every output, ``{name, role[, pair]}`` in fetch order (roles: alpha, foreground, state, output)."""
        if self.outputs:
            return [dict(entry) for entry in self.outputs]
        return [{"name": self.output_name or "alpha", "role": "alpha"}]

    @property
    def recurrent(self) -> bool:
        return any(entry["role"] == "state" for entry in self.input_roles())


_INPUT_ROLES = ("image", "trimap", "state", "constant")
_OUTPUT_ROLES = ("alpha", "foreground", "state", "output")


def _check_roles(entries, what: str, roles: Sequence[str]) -> None:
    """``model.inputs`` / ``model.outputs``: a list of ``{name, role, ...}`` with known roles, states paired."""
    if entries is None:
        return
    _require(isinstance(entries, list) and entries, f"model.{what} is not a non-empty list")
    for entry in entries:
        _require(isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"],
                 f"model.{what}: an entry is not an object with a name ({entry!r})")
        _require(entry.get("role") in roles, f"model.{what} '{entry['name']}': role {entry.get('role')!r} is not "
                                             f"one of {', '.join(roles)}")
        _require(entry["role"] != "state" or isinstance(entry.get("pair"), str),
                 f"model.{what} '{entry['name']}': a state without its pair")
        shape = entry.get("shape", [])
        _require(isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                 for d in shape),
                 f"model.{what} '{entry['name']}': shape {shape!r} is not a list of positive integers")
    # Every model has exactly one image in and one alpha out; the runtime feeds and reads them by role.
    sole = roles[0]
    count = sum(entry["role"] == sole for entry in entries)
    _require(count == 1, f"model.{what}: exactly one {sole} is needed, found {count}")


@dataclass
class ReferenceInfo(_Record):
    """The checked reference: ``model_dir`` (the fixed-shape Paddle model in OUT), the ``checks`` it passed,
    ``files`` (name -> sha256 of the reference's files, when recorded)."""

    backend: str = "paddle_inference"
    description: str = ""
    checks: List[dict] = field(default_factory=list)
    model_dir: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    SKIP_NONE: ClassVar[Tuple[str, ...]] = ("model_dir",)

    @property
    def files(self) -> Dict[str, str]:
        """File name in :attr:`model_dir` -> sha256, as recorded at conversion (empty in 0.1 manifests)."""
        return self.extra.get("files") or {}

    def record_files(self, folder) -> None:
        """Record the sha256 of every file in ``folder`` (the reference model), so a changed one is named."""
        self.extra["files"] = {p.name: sha256_file(p) for p in sorted(Path(folder).iterdir())
                               if p.is_file() and not p.name.startswith(".")}

    @property
    def noise(self) -> float:
        """The largest difference the reference showed against an independent kernel set."""
        return max([c.get("max_abs") or 0.0 for c in self.checks] or [0.0])


@dataclass
class Manifest:
    """A whole manifest. ``dir`` is the folder it was read from or will be written to (not serialized)."""

    model: ModelInfo
    reference: ReferenceInfo = field(default_factory=ReferenceInfo)
    artefacts: List[Artefact] = field(default_factory=list)
    tools: Dict[str, Optional[str]] = field(default_factory=dict)
    steps: List[dict] = field(default_factory=list)
    repairs: List[dict] = field(default_factory=list)
    created: str = ""
    schema: str = SCHEMA
    schema_version: str = SCHEMA_VERSION
    dir: Optional[Path] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, model: ModelInfo, reference: ReferenceInfo, out_dir=None) -> "Manifest":
        """A fresh manifest stamped with the time and the installed toolchain."""
        tools = dict(installed_versions(TOOLCHAIN), edgematte=__version__)
        return cls(model=model, reference=reference, tools=tools, dir=None if out_dir is None else Path(out_dir),
                   created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    # -- JSON ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, directory=None) -> "Manifest":
        kwargs = _split(cls, data)
        kwargs.pop("dir", None)
        _require(isinstance(kwargs.get("artefacts", []), list), "'artefacts' is not a list")
        model = kwargs.get("model")
        _require(isinstance(model, dict), "it has no 'model' object")
        shape = model.get("input_shape")
        _require(isinstance(shape, list) and len(shape) == 4
                 and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape),
                 f"model.input_shape {shape!r} is not four positive integers [N, C, H, W]")
        _require(isinstance(model.get("transforms") or [], list), "model.transforms is not a list")
        _check_roles(model.get("inputs"), "inputs", _INPUT_ROLES)
        _check_roles(model.get("outputs"), "outputs", _OUTPUT_ROLES)
        reference = kwargs.get("reference") or {}
        _require(isinstance(reference, dict), "reference is not an object")
        if reference.get("model_dir") is not None:
            _relative_path(reference["model_dir"], "reference.model_dir")
        files = reference.get("files") or {}
        _require(isinstance(files, dict) and all(_SHA256.match(str(v)) for v in files.values()),
                 "reference.files is not a map of file names to sha256 digests")
        for name in files:
            _require("/" not in _relative_path(name, "reference file"), f"reference file '{name}' is not a file name")
        kwargs["model"] = ModelInfo.from_dict(model)
        kwargs["reference"] = ReferenceInfo.from_dict(reference)
        kwargs["artefacts"] = [Artefact.from_dict(a) for a in kwargs.get("artefacts", [])]
        kwargs.setdefault("schema_version", "1.0")  # what edgematte 0.1 wrote, without saying so
        return cls(dir=None if directory is None else Path(directory), **kwargs)

    def to_dict(self) -> dict:
        out = {"schema": self.schema, "schema_version": self.schema_version, "created": self.created,
               "model": self.model.to_dict(), "reference": self.reference.to_dict(), "tools": self.tools,
               "steps": self.steps, "repairs": self.repairs, "artefacts": [a.to_dict() for a in self.artefacts]}
        out.update(self.extra)
        return out

    def write(self, out_dir=None) -> Path:
        """Write ``manifest.json`` atomically into ``out_dir`` (default: :attr:`dir`); returns its path."""
        folder = Path(out_dir if out_dir is not None else self.dir)
        path = folder / MANIFEST_NAME
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path_or_dir) -> "Manifest":
        """Load a manifest from its file or its folder (bounded read, schema checked)."""
        path = Path(path_or_dir)
        if path.is_dir():
            path = path / MANIFEST_NAME
        data = read_json_document(path, SCHEMA, "manifest", hint=" (run 'edgematte convert' first)")
        if "artefacts" not in data:
            raise EdgematteError(f"{path}: not a valid edgematte manifest (it has no 'artefacts' list)")
        try:
            return cls.from_dict(data, directory=path.parent)
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            raise EdgematteError(f"{path}: not a valid edgematte manifest ({e})") from e

    # -- choosing artefacts ------------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        """How errors name this manifest: its folder, else "manifest"."""
        return str(self.dir) if self.dir is not None else "manifest"

    def artefacts_for(self, platform: str) -> List[Artefact]:
        """The artefacts ``platform`` (:data:`PLATFORMS`) can run, in manifest order."""
        return [a for a in self.artefacts if a.runs_on(platform)]

    def host_artefacts(self) -> List[Artefact]:
        """The artefacts the converting host ran and measured (what verify and local benchmarks take)."""
        return [a for a in self.artefacts if a.runs_on_host]

    def find(self, name: str) -> Artefact:
        """The artefact whose path or file name is ``name``; a one-line error lists the known ones."""
        for artefact in self.artefacts:
            if artefact.matches(name):
                return artefact
        raise EdgematteError(f"{self.origin}: no artefact '{name}' (has: {', '.join(a.path for a in self.artefacts)})")

    def select(self, names: Optional[Iterable[str]], among: Optional[Sequence[Artefact]] = None) -> List[Artefact]:
        """The artefacts ``names`` (paths or file names, each must exist), or all of ``among`` when none given."""
        if not names:
            return list(self.artefacts if among is None else among)
        return [self.find(n) for n in names]

    def file(self, artefact: Artefact, check: bool = True) -> Path:
        """Where ``artefact``'s file is: always inside the manifest's folder. ``check``: also that it is the
        file the conversion wrote (regular, same sha256); every consumer that loads or ships it wants that.
        Errors are one line naming the file."""
        path = _inside(self.dir, artefact.path, "artefact path")
        return _verified(path, artefact.sha256, "artefact") if check else path

    def reference_dir(self, check: bool = True) -> Optional[Path]:
        """The shipped reference model's folder, when the conversion kept one. ``check``: every reference file
        the manifest hashes must be unchanged (a changed one is named)."""
        if not self.reference.model_dir:
            return None
        folder = _inside(self.dir, self.reference.model_dir, "reference.model_dir")
        if check:
            if not folder.is_dir():
                raise EdgematteError(f"{folder}: the manifest's reference.model_dir is missing")
            for name, digest in self.reference.files.items():
                _verified(_inside(folder, name, "reference file"), digest, "reference file")
        return folder


    def reference_scores_program(self) -> Optional[Tuple[Path, Path]]:
        """``(program, params)`` of the reference with its decision scores fetched (``reference.scores_program``,
        written for models with hard decisions), each inside the reference folder and with the sha256 the
        manifest records; ``None`` when the conversion wrote none."""
        record = self.reference.extra.get("scores_program")
        folder = self.reference_dir() if record is not None else None
        if folder is None:
            return None
        if not (isinstance(record, dict) and isinstance(record.get("path"), str)
                and record.get("params") in self.reference.files):
            raise EdgematteError(f"{self.origin}: reference.scores_program: expected {{path, params, sha256}} with "
                                 f"params one of the reference's files")
        program = _verified(_inside(folder, record["path"], "reference.scores_program.path"), record.get("sha256"),
                            "reference scores program")
        return program, _inside(folder, record["params"], "reference.scores_program.params")


def is_conversion_folder(folder) -> bool:
    """Whether ``folder`` holds a manifest of ours: how a conversion folder written before outputs were marked
    (edgematte 0.1) is recognised, so converting into it again may replace it."""
    try:
        read_json_document(Path(folder) / MANIFEST_NAME, SCHEMA, "manifest")
        return True
    except EdgematteError:
        return False


def read_manifest(path_or_dir) -> Manifest:
    """:meth:`Manifest.read`."""
    return Manifest.read(path_or_dir)
