"""The official PaddleSeg matting files edgematte can fetch: for each zoo model, its checkpoint and deploy zip.

PaddleSeg's Matting documentation links them under :data:`BASE_URL`. Each :class:`OfficialFile` is a path below
that base (``EDGEMATTE_MODEL_MIRROR`` replaces the base and keeps the path) and an optional pinned sha256: a
published digest. edgematte knows none for these files, so none is pinned here (the mechanism is in :mod:`.fetch`:
a pinned digest that differs from the download is refused); the first fetch's digest is recorded in the cache's
lock file instead.

A checkpoint is kept only when it passes the exact official layout check of the zoo model it belongs to (width
1), so only files whose architecture the zoo builds are listed; DIM (``dim-vgg16``) is named in
:data:`NOT_FETCHABLE` with the reason.
"""

from dataclasses import dataclass
from typing import Dict, Optional

from ..core.errors import EdgematteError
from .registry import MODELS, get_model_spec

BASE_URL = "https://paddleseg.bj.bcebos.com/matting/models/"


@dataclass(frozen=True)
class OfficialFile:
    """One published file: ``path`` below :data:`BASE_URL`, ``model`` the zoo model whose official layout (or
    deploy folder) it must match, ``kind`` "checkpoint" (``.pdparams``) or "deploy" (a deploy-folder ``.zip``),
    ``sha256`` a published digest to pin ("" when none is known)."""

    path: str
    model: str
    kind: str
    sha256: str = ""

    @property
    def name(self) -> str:
        """The file name without its extension (``ppmattingv2-stdc1-human_512``)."""
        return self.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _checkpoint(model: str, stem: str) -> OfficialFile:
    return OfficialFile(path=f"{stem}.pdparams", model=model, kind="checkpoint")


def _deploy(model: str, stem: str) -> OfficialFile:
    return OfficialFile(path=f"deploy/{stem}.zip", model=model, kind="deploy")


# Zoo model -> its checkpoint (what --pretrained uses). ModelSpec.config is the file stem for every one.
CHECKPOINTS: Dict[str, OfficialFile] = {name: _checkpoint(name, spec.config) for name, spec in MODELS.items()}

# Other checkpoints of a zoo architecture, fetchable by their own name: PP-Matting trained at 1024 (same layout
# as the 512 one, which stays the default for ppmatting_hrnet_w18).
EXTRA_CHECKPOINTS: Dict[str, OfficialFile] = {
    "ppmatting-hrnet_w18-human_1024": _checkpoint("ppmatting_hrnet_w18", "ppmatting-hrnet_w18-human_1024"),
}

# Zoo model -> its deploy zip, for the models whose zip PaddleSeg's documentation links.
DEPLOY_ZIPS: Dict[str, OfficialFile] = {
    "ppmattingv2": _deploy("ppmattingv2", "ppmattingv2-stdc1-human_512"),
    "humanmatting": _deploy("humanmatting", "pp-humanmatting-resnet34_vd"),
    "modnet_mobilenetv2": _deploy("modnet_mobilenetv2", "modnet-mobilenetv2"),
    "ppmatting_hrnet_w18": _deploy("ppmatting_hrnet_w18", "ppmatting-hrnet_w18-human_512"),
}

# Published files edgematte does not fetch, and why (a fetch names the reason in one line).
_DIM_REASON = ("DIM is not a zoo architecture here, so its checkpoint cannot pass an official layout check before "
               "it is kept; convert a DIM deploy folder exported by PaddleSeg instead ('edgematte convert FOLDER -o "
               "OUT')")
NOT_FETCHABLE: Dict[str, str] = {"dim-vgg16": _DIM_REASON, "dim": _DIM_REASON}


def fetch_command(official: OfficialFile) -> str:
    """The command that fetches ``official`` (for messages)."""
    if official.kind == "deploy":
        return f"edgematte zoo fetch {official.model} --deploy"
    return f"edgematte zoo fetch {official.name if official.name in EXTRA_CHECKPOINTS else official.model}"


def official_file(name: str, deploy: bool = False) -> OfficialFile:
    """The official file for ``name``: a zoo model name or alias (its checkpoint, or its deploy zip with
    ``deploy``), or the stem of another published checkpoint (:data:`EXTRA_CHECKPOINTS`).

    Raises :class:`EdgematteError` (one line) for a file that cannot be fetched and checked, or a name nobody
    publishes."""
    wanted = name.strip().lower()
    if wanted in NOT_FETCHABLE:
        raise EdgematteError(f"{name}: {NOT_FETCHABLE[wanted]}")
    if wanted in EXTRA_CHECKPOINTS:
        if deploy:
            raise EdgematteError(f"{name}: no official deploy zip is known for this checkpoint; fetch it without "
                                 "--deploy")
        return EXTRA_CHECKPOINTS[wanted]
    try:
        spec = get_model_spec(wanted)
    except EdgematteError:
        known = ", ".join([*MODELS, *EXTRA_CHECKPOINTS])
        raise EdgematteError(f"{name}: no official file of that name (known: {known})") from None
    if not deploy:
        return CHECKPOINTS[spec.name]
    found: Optional[OfficialFile] = DEPLOY_ZIPS.get(spec.name)
    if found is None:
        raise EdgematteError(
            f"{name}: no official deploy zip is known for {spec.name} (known for {', '.join(DEPLOY_ZIPS)}); fetch "
            f"its checkpoint ('edgematte zoo fetch {spec.name}') and export one ('edgematte export {spec.name} "
            "--pretrained -o DIR')")
    return found
