"""Where a model comes from: a deploy folder, an archive of one, or a zoo name with weights or a seed.

:func:`open_model_source` turns any of these into a :class:`ModelSource`: the paths of one legacy
Paddle inference model (``.pdmodel`` + ``.pdiparams``), its deploy config and the source's sha256.
Nothing the user gave is modified; archives are extracted (safely) into a work folder.
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

from ..core.errors import EdgematteError
from ..core.fsutil import sha256_file
from .registry import MODELS, ModelSpec

# Layouts of a deploy folder: (config file, default model file, default params file)
DEPLOY_LAYOUTS = (
    ("deploy.yaml", "model.pdmodel", "model.pdiparams"),  # PaddleSeg tools/export.py
    ("inference.yml", "inference.pdmodel", "inference.pdiparams"),  # FastDeploy (export --for_fd)
)
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 8 << 30  # 8 GiB uncompressed: PP-HumanMatting's folder is about 250 MB


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


def _dims(value) -> Optional[List[Optional[int]]]:
    """deploy.yaml ``input_shape``: PaddleSeg writes nulls or -1 for dynamic dimensions."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"input_shape must be a list, got {value!r}")
    return [None if (d is None or int(d) < 0) else int(d) for d in value]


def _spec_for_class(name) -> Optional[ModelSpec]:
    for spec in MODELS.values():
        if name and str(name).lower() in (spec.paddleseg_class.lower(), spec.name):
            return spec
    return None


def read_deploy_folder(folder, origin: Optional[str] = None, sha256: Optional[str] = None) -> ModelSource:
    """Read a PaddleSeg (``deploy.yaml``) or FastDeploy (``inference.yml``) deploy folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgematteError(f"{folder}: not a folder")
    for config_name, model_name, params_name in DEPLOY_LAYOUTS:
        config_file = folder / config_name
        if config_file.is_file():
            try:
                config = yaml.safe_load(config_file.read_text()) or {}
                deploy = config.get("Deploy") or {}
                transforms = list(deploy.get("transforms") or [])
                input_shape = _dims(deploy.get("input_shape"))
            except (yaml.YAMLError, ValueError, TypeError, AttributeError) as e:
                raise EdgematteError(f"{config_file}: not a valid deploy config ({e})") from e
            pdmodel = folder / str(deploy.get("model") or model_name)
            pdiparams = folder / str(deploy.get("params") or params_name)
            spec = _spec_for_class(config.get("ModelName"))
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
        if not f.is_file():
            raise EdgematteError(f"{f}: missing from the deploy folder")
        if f.stat().st_size == 0:
            raise EdgematteError(f"{f}: empty file")
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


def open_model_source(
    model: str,
    workdir,
    weights=None,
    seed: Optional[int] = None,
    width: float = 1.0,
    input_shape=None,
) -> ModelSource:
    """Resolve ``model`` (deploy folder, archive, or zoo name + ``weights``/``seed``) to a ModelSource.

    Zoo models are exported into ``workdir`` (dynamic feed unless ``input_shape``); archives are
    extracted there. ``workdir`` is the caller's scratch folder.
    """
    path = Path(model)
    workdir = Path(workdir)
    if path.exists():
        if weights is not None or seed is not None:
            raise EdgematteError(
                f"{model}: --weights/--seed apply to zoo model names, not to a deploy folder or archive")
        if path.is_dir():
            return read_deploy_folder(path)
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
    folder = export_deploy_folder(
        spec.name, workdir / "source", weights=weights, seed=seed, width=width, input_shape=input_shape
    )
    source = read_deploy_folder(folder, origin=f"zoo:{spec.name}")
    if weights is not None:
        source.origin += f" weights={weights}"
        source.sha256 = sha256_file(weights)
    else:
        source.origin += f" seed={seed} width={width}"
    return source
