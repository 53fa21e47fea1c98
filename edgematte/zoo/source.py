"""Where a model comes from: a deploy folder, an archive of one, or a zoo name with weights or a seed.

:func:`open_model_source` turns any of these into a :class:`ModelSource`: the paths of one legacy
Paddle inference model (``.pdmodel`` + ``.pdiparams``), its deploy config and the source's sha256.
Nothing the user gave is modified; archives are extracted (safely) into a work folder.

The deploy config is untrusted input: it is read as a regular file within the config size limit, parsed with
YAML anchors and aliases refused (a 551-byte alias bomb expands to hundreds of MB) and nesting bounded, and every
field it declares is type-checked; ``model``/``params`` must name regular files inside the deploy folder (no
absolute paths, ``..`` or symbolic links leading out). Every problem is one line naming the file.
"""

import hashlib
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import List, Optional

import yaml

from ..core.errors import EdgematteError, shown_value
from ..core.fsutil import sha256_file
from ..core.userfiles import check_user_file, read_user_text
from .registry import MODELS, ModelSpec

# Layouts of a deploy folder: (config file, default model file, default params file)
DEPLOY_LAYOUTS = (
    ("deploy.yaml", "model.pdmodel", "model.pdiparams"),  # PaddleSeg tools/export.py
    ("inference.yml", "inference.pdmodel", "inference.pdiparams"),  # FastDeploy (export --for_fd)
)
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 8 << 30  # 8 GiB uncompressed: PP-HumanMatting's folder is about 250 MB
MAX_YAML_DEPTH = 20  # a deploy.yaml nests 4 levels (Deploy > transforms > item > value)
MAX_DIM = 2**31 - 1
# libyaml when PyYAML has it (4x faster on a 1 MiB config); the pure-Python classes otherwise.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class ModelSource:
    """One Paddle inference model ready to convert.

    ``input_shape`` is the deploy config's declared shape with ``None`` for dynamic dimensions (or
    ``None`` when the config does not say). ``spec`` is the zoo entry when the architecture is known.
    """

    pdmodel: Path
    pdiparams: Path
    origin: str
    sha256: str
    transforms: List[dict] = field(default_factory=list)
    input_shape: Optional[List[Optional[int]]] = None
    spec: Optional[ModelSpec] = None
    config_file: Optional[Path] = None

    @property
    def folder(self) -> Path:
        return self.pdmodel.parent


# ----------------------------------------------------------------------------- the deploy config
def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_error(config_file: Path, e: yaml.YAMLError) -> EdgematteError:
    """PyYAML's multi-line message as one line: the problem, its context and where."""
    if isinstance(e, yaml.MarkedYAMLError):
        problem = ", ".join(" ".join(str(part).split())[:200] for part in (e.context, e.problem) if part)
        problem = problem or "syntax error"
        mark = e.problem_mark or e.context_mark
        return EdgematteError(f"{config_file}: not valid YAML: {problem}" + (f" ({_where(mark)})" if mark else ""))
    if isinstance(e, yaml.reader.ReaderError):
        code = e.character if isinstance(e.character, int) else ord(e.character)
        return EdgematteError(f"{config_file}: not valid YAML: unacceptable character #x{code:04x}: {e.reason} "
                              f"(character {e.position + 1})")
    return EdgematteError(f"{config_file}: not valid YAML: {' '.join(str(e).split())}")


def _check_yaml_events(config_file: Path, text: str) -> None:
    """Refuse anchors, aliases and deep nesting by streaming the parser's events, before anything is built.

    An alias makes the loader share one node many times, and everything downstream (type checks, the JSON
    manifest) copies it each time: nested aliases grow exponentially. A real deploy.yaml uses none.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise EdgematteError(f"{config_file}: YAML aliases and anchors are not allowed "
                                 f"(line {event.start_mark.line + 1})")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise EdgematteError(f"{config_file}: nested deeper than {MAX_YAML_DEPTH} levels "
                                     f"(line {event.start_mark.line + 1})")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _load_config(config_file: Path) -> dict:
    """The deploy config as a mapping (empty when the file is): bounded read, no aliases, one-line errors."""
    text = read_user_text(config_file, "config")
    try:
        _check_yaml_events(config_file, text)
        config = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as e:
        raise _yaml_error(config_file, e) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise EdgematteError(f"{config_file}: the top level is {_type(config)}, not a mapping")
    return config


def _type(value) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a float", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _check_plain(config_file: Path, where: str, value) -> None:
    """Transform parameters end up in the JSON manifest: strings, numbers, booleans, null, lists, mappings."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EdgematteError(f"{config_file}: {where} has key {shown_value(k)}, not a string")
            _check_plain(config_file, f"{where}.{k}" if k.isidentifier() else f"{where}[{shown_value(k)}]", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(config_file, f"{where}[{i}]", v)
    elif not isinstance(value, (str, int, float, bool, type(None))):
        raise EdgematteError(f"{config_file}: {where} is {_type(value)}, not a string, number, list or mapping")


def _transforms(config_file: Path, value) -> List[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise EdgematteError(f"{config_file}: Deploy.transforms is {_type(value)}, not a list")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise EdgematteError(f"{config_file}: Deploy.transforms[{i}] is {_type(item)}, not a mapping")
        if not isinstance(item.get("type"), str) or not item["type"]:
            raise EdgematteError(f"{config_file}: Deploy.transforms[{i}] has no string 'type'")
        _check_plain(config_file, f"Deploy.transforms[{i}]", item)
    return value


def _dims(config_file: Path, value) -> Optional[List[Optional[int]]]:
    """deploy.yaml ``input_shape``: 4 integers, PaddleSeg writes nulls or -1 for dynamic dimensions."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise EdgematteError(f"{config_file}: Deploy.input_shape is {_type(value)}, not a list")
    if len(value) != 4:
        raise EdgematteError(f"{config_file}: Deploy.input_shape has {len(value)} entries, not 4 (N, C, H, W)")
    dims = []
    for i, d in enumerate(value):
        if d is None or (type(d) is int and d == -1):
            dims.append(None)
        elif type(d) is int and 0 < d <= MAX_DIM:
            dims.append(d)
        else:
            raise EdgematteError(f"{config_file}: Deploy.input_shape[{i}] is {shown_value(d)} ({_type(d)}), "
                                 "not a positive integer, -1 or null")
    return dims


def _relative_file(config_file: Path, key: str, value, default: str) -> str:
    """``Deploy.model``/``Deploy.params``: a relative path that stays inside the deploy folder."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise EdgematteError(f"{config_file}: Deploy.{key} is {_type(value)}, not a file name")
    if not value.strip():
        raise EdgematteError(f"{config_file}: Deploy.{key} is an empty string, not a file name")
    if "\0" in value:
        raise EdgematteError(f"{config_file}: Deploy.{key} contains a NUL character")
    if value.startswith("/"):
        raise EdgematteError(f"{config_file}: Deploy.{key} {shown_value(value)} is an absolute path, not a file in the "
                             "deploy folder")
    if ".." in PurePosixPath(value).parts:
        raise EdgematteError(f"{config_file}: Deploy.{key} {shown_value(value)} leads out of the deploy folder ('..')")
    return value


def _spec_for_class(name) -> Optional[ModelSpec]:
    for spec in MODELS.values():
        if name and str(name).lower() in (spec.paddleseg_class.lower(), spec.name):
            return spec
    return None


def _check_inside(folder: Path, f: Path) -> None:
    """``f`` stays inside ``folder`` once symbolic links are followed (a file named by an archive's deploy.yaml
    must come from the archive, which the manifest records as the source)."""
    if not os.path.lexists(f):
        return
    try:
        target, root = f.resolve(), folder.resolve()
    except (OSError, RuntimeError) as e:  # a symbolic link loop
        raise EdgematteError(f"{f}: cannot follow its symbolic link ({e})") from None
    if target != root and root not in target.parents:
        raise EdgematteError(f"{f}: a symbolic link to {target}, outside the deploy folder")


def _check_model_file(folder: Path, f: Path) -> None:
    """A model file of the deploy folder: inside it, a regular file (not a FIFO or device), not empty."""
    _check_inside(folder, f)
    if not f.exists():
        raise EdgematteError(f"{f}: missing from the deploy folder")
    if check_user_file(f, "model").stat().st_size == 0:
        raise EdgematteError(f"{f}: empty file")


def _read_config(folder: Path, config_file: Path, model_name: str, params_name: str):
    """``(transforms, input_shape, pdmodel, pdiparams, spec)`` declared by a deploy config, each type-checked."""
    _check_inside(folder, config_file)
    config = _load_config(config_file)
    deploy = config.get("Deploy")
    if deploy is None:
        deploy = {}
    elif not isinstance(deploy, dict):
        raise EdgematteError(f"{config_file}: Deploy is {_type(deploy)}, not a mapping")
    transforms = _transforms(config_file, deploy.get("transforms"))
    input_shape = _dims(config_file, deploy.get("input_shape"))
    pdmodel = folder / _relative_file(config_file, "model", deploy.get("model"), model_name)
    pdiparams = folder / _relative_file(config_file, "params", deploy.get("params"), params_name)
    model_class = config.get("ModelName")
    if model_class is not None and not isinstance(model_class, str):
        raise EdgematteError(f"{config_file}: ModelName is {_type(model_class)}, not a string")
    return transforms, input_shape, pdmodel, pdiparams, _spec_for_class(model_class)


def read_deploy_folder(folder, origin: Optional[str] = None, sha256: Optional[str] = None) -> ModelSource:
    """Read a PaddleSeg (``deploy.yaml``) or FastDeploy (``inference.yml``) deploy folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgematteError(f"{folder}: not a folder")
    for config_name, model_name, params_name in DEPLOY_LAYOUTS:
        config_file = folder / config_name
        if os.path.lexists(config_file):  # a FIFO, a folder or a dangling link is refused, not skipped
            transforms, input_shape, pdmodel, pdiparams, spec = _read_config(folder, config_file, model_name,
                                                                             params_name)
            break
    else:
        models = sorted(folder.glob("*.pdmodel"))
        if len(models) != 1:
            raise EdgematteError(
                f"{folder}: not a deploy folder (no deploy.yaml or inference.yml, and {len(models)} .pdmodel files)"
            )
        config_file, transforms, input_shape, spec = None, [], None, None
        pdmodel, pdiparams = models[0], models[0].with_suffix(".pdiparams")
    for f in (pdmodel, pdiparams):
        _check_model_file(folder, f)
    if sha256 is None:
        h = hashlib.sha256()
        for f in (pdmodel, pdiparams):
            h.update(bytes.fromhex(sha256_file(f)))
        sha256 = h.hexdigest()
    return ModelSource(
        pdmodel=pdmodel,
        pdiparams=pdiparams,
        origin=origin or str(folder),
        sha256=sha256,
        transforms=transforms,
        input_shape=input_shape,
        spec=spec,
        config_file=config_file,
    )


# ----------------------------------------------------------------------------- archives
def _safe_member_path(dest: Path, name: str, archive: Path) -> Path:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith("/") or any(p == ".." for p in parts) or ":" in parts[0]:
        raise EdgematteError(f"{archive}: refusing member '{name}' (absolute path or path escape)")
    target = dest.joinpath(*[p for p in parts if p not in ("", ".")])
    if os.path.commonpath([dest.resolve(), target.resolve()]) != str(dest.resolve()):
        raise EdgematteError(f"{archive}: refusing member '{name}' (escapes the extraction folder)")
    return target


def _check_totals(archive: Path, count: int, total: int):
    if count > MAX_ARCHIVE_MEMBERS:
        raise EdgematteError(f"{archive}: {count} members, more than the limit of {MAX_ARCHIVE_MEMBERS}")
    if total > MAX_ARCHIVE_BYTES:
        raise EdgematteError(f"{archive}: unpacks to {total} bytes, more than the limit of {MAX_ARCHIVE_BYTES}")


def _extract_zip(archive: Path, dest: Path):
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_totals(archive, len(infos), sum(i.file_size for i in infos))
        for info in infos:
            target = _safe_member_path(dest, info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise EdgematteError(f"{archive}: refusing symbolic link member '{info.filename}'")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                written = 0
                for block in iter(lambda: src.read(1 << 20), b""):
                    written += len(block)
                    if written > info.file_size:  # a lying header: stop a zip bomb early
                        raise EdgematteError(f"{archive}: member '{info.filename}' is larger than declared")
                    dst.write(block)


def _extract_tar(archive: Path, dest: Path):
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        _check_totals(archive, len(members), sum(m.size for m in members if m.isfile()))
        for m in members:
            target = _safe_member_path(dest, m.name, archive)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                with src, open(target, "wb") as dst:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        dst.write(block)
            else:
                raise EdgematteError(f"{archive}: refusing member '{m.name}' (links and devices are not allowed)")


def extract_archive(archive, dest) -> Path:
    """Extract a ``.zip`` / ``.tar`` / ``.tar.gz`` / ``.tgz`` into ``dest`` with no path escapes or links.

    Returns the deploy folder inside: ``dest`` itself or its single top-level folder.
    """
    archive, dest = Path(archive), Path(dest)
    check_user_file(archive, "archive")  # a FIFO would block zipfile/tarfile, /dev/zero would never end
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest)
        else:
            raise EdgematteError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise EdgematteError(f"{archive}: truncated or corrupt archive ({type(e).__name__}: {e})") from e
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def is_archive(path) -> bool:
    name = Path(path).name.lower()
    return name.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def check_weight_sources(pretrained: bool, weights, seed) -> None:
    """``--pretrained``, ``--weights`` and ``--seed`` each name where a zoo model's weights come from: at most one
    may be given (a one-line error naming them otherwise)."""
    given = [name for name, value in (("--pretrained", pretrained or None), ("--weights", weights), ("--seed", seed))
             if value is not None]
    if len(given) > 1:
        raise EdgematteError(f"{' and '.join(given)}: give only one source of weights (the official checkpoint, a "
                             ".pdparams file or seeded weights)")


def pretrained_weights(model: str, width: float = 1.0):
    """The official checkpoint of zoo ``model`` (:class:`~.fetch.Fetched`: cached path, URL, sha256), fetched into
    the cache when missing. The official weights are the full-width model: another ``width`` is refused."""
    from .fetch import pretrained_checkpoint
    from .registry import get_model_spec

    spec = get_model_spec(model)
    if float(width) != 1.0:
        raise EdgematteError(f"--pretrained --width {width:g}: the official {spec.name} weights are width 1; drop "
                             "--width")
    return pretrained_checkpoint(spec.name)


def open_model_source(
    model: str,
    workdir,
    weights=None,
    seed: Optional[int] = None,
    width: float = 1.0,
    input_shape=None,
    pretrained: bool = False,
) -> ModelSource:
    """Resolve ``model`` (deploy folder, archive, or zoo name + ``weights``/``seed``/``pretrained``) to a
    ModelSource.

    Zoo models are exported into ``workdir`` (dynamic feed unless ``input_shape``); archives are
    extracted there. ``workdir`` is the caller's scratch folder. With ``pretrained`` the official checkpoint
    comes from the cache (fetched when missing) and the origin names its URL, ``sha256`` its digest.
    """
    path = Path(model)
    workdir = Path(workdir)
    check_weight_sources(pretrained, weights, seed)
    if path.exists():
        if weights is not None or seed is not None or pretrained:
            raise EdgematteError(
                f"{model}: --weights/--seed/--pretrained apply to zoo model names, not to a deploy folder or archive")
        if path.is_dir():
            return read_deploy_folder(path)
        check_user_file(path, "archive")  # before zipfile/tarfile open it: a FIFO must not block
        if is_archive(path) or zipfile.is_zipfile(path) or tarfile.is_tarfile(path):
            folder = extract_archive(path, workdir / "source")
            return read_deploy_folder(folder, origin=str(path), sha256=sha256_file(path))
        raise EdgematteError(f"{model}: not a deploy folder, a .zip/.tar.gz archive of one, or a zoo model name")
    from .export import export_deploy_folder
    from .registry import get_model_spec

    try:
        spec = get_model_spec(model)
    except EdgematteError:
        raise EdgematteError(
            f"{model}: no such file or folder, and not a zoo model name (known: {', '.join(MODELS)})"
        ) from None
    official = pretrained_weights(spec.name, width) if pretrained else None
    if official is not None:
        weights = official.path
    folder = export_deploy_folder(
        spec.name, workdir / "source", weights=weights, seed=seed, width=width, input_shape=input_shape
    )
    source = read_deploy_folder(folder, origin=f"zoo:{spec.name}")
    if official is not None:
        source.origin += f" pretrained={official.url}"
        source.sha256 = official.sha256
    elif weights is not None:
        source.origin += f" weights={weights}"
        source.sha256 = sha256_file(weights)
    else:
        source.origin += f" seed={seed} width={width}"
    return source
