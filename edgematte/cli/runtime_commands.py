"""``edgematte matte``, ``verify`` and ``runtime ...``: the runtime on photos, videos and golden vectors."""

import sys

import click

from ..core import console
from ..core.errors import EdgematteError
from .app import cli, print_report_and_exit, threads_option


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-o", "--out", required=True, type=click.Path(file_okay=False),
    help="Output folder (keeps the inputs' relative paths).",
)
@click.option(
    "--model", required=True, type=click.Path(exists=True),
    help="A conversion's folder or its manifest.json.",
)
@click.option(
    "--artefact", default=None,
    help="Artefact path in the manifest (default: the preferred host-runnable one).",
)
@click.option(
    "--background", default=None,
    help="Composite over an image file, a colour (#00b140, 0,177,64, green) or 'blur'.",
)
@click.option(
    "--save", default=None,
    help="Comma-separated: alpha, rgba, composite (default: alpha, plus composite with --background).",
)
@click.option(
    "--fg-estimate", is_flag=True,
    help="Estimate foreground colours (pymatting's multilevel method) for rgba/composite.",
)
@click.option(
    "--trimap", default=None, type=click.Path(exists=True, dir_okay=False),
    help="For a model that takes a trimap (DIM): grey image of the photo's size, 0 background / 128 unknown / "
         "255 foreground; with one image input.",
)
@click.option(
    "--no-audio", is_flag=True,
    help="Videos: write the outputs without the input's audio (by default every audio track is kept).",
)
@threads_option()
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def matte(inputs, out, model, artefact, background, save, fg_estimate, trimap, no_audio, threads, as_json):
    """Matte images, folders (recursive) or videos with a converted model: alpha, RGBA or composite.

    A recurrent model (RVM) carries its state through each video and mattes each photo as a first frame.
    Videos give MP4 files (alpha, composite; RGBA as a PNG sequence) at the input's size and frame rate,
    with the input's audio tracks (unless --no-audio). A video that decodes short of its declared frames
    fails. A bad file is reported and skipped; the exit status is 1 if any input failed.
    """
    from ..runtime.batch import matte_inputs, parse_background, parse_save
    from ..runtime.matter import Matter

    chosen_background = parse_background(background) if background is not None else None
    kinds = parse_save(save) if save is not None else None
    matter = Matter.from_manifest(model, artefact=artefact, threads=threads)
    report = matte_inputs(list(inputs), out, matter, background=chosen_background, save=kinds,
                          fg_estimate=fg_estimate, trimap=trimap, keep_audio=not no_audio)
    if as_json:
        console.emit_json(report.as_dict())
    console.info(report.summary())
    if report.exit_code:
        sys.exit(report.exit_code)


def _zoo_boundary_share(manifest) -> float:
    """For manifests written before the converter recorded it: the zoo's boundary-pixel share of the model."""
    from ..zoo.registry import get_model_spec

    try:
        return get_model_spec(manifest.model.name).boundary_pixel_share
    except EdgematteError:  # a model from outside the zoo: continuous unless the manifest says otherwise
        return 0.0


@cli.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option(
    "--images", type=click.Path(exists=True), default=None,
    help="Photos to check on (default: the bundled samples).",
)
@click.option(
    "--sequence", type=click.Path(exists=True), default=None,
    help="Instead of photos, one clip: a video file, or a folder of frames ordered by the number in their file "
         "names (no gaps, one size). Run in order, a recurrent model's states carried; adds dtSSD and MESSDdt.",
)
@threads_option()
@click.option("--json", "as_json", is_flag=True, help="Print the verification report as JSON.")
def verify(manifest, images, sequence, threads, as_json):
    """Run every artefact this host can run through its profile and compare it with the reference.

    Exits 1 if any artefact is beyond its threshold (its manifest parity bound, or its INT8 budget), on any
    photo or, with --sequence, on any frame of the clip.
    """
    from ..core.manifest import Manifest
    from ..runtime.verify import verify_manifest

    read = Manifest.read(manifest)
    report = verify_manifest(read, images_dir=images, threads=threads, default_boundary_share=_zoo_boundary_share(read),
                             sequence=sequence)
    print_report_and_exit(report, as_json)


@cli.group()
def runtime():
    """Runtime tools: golden vectors shared with the Android app."""


@runtime.command("samples")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder to write the photos to.")
def runtime_samples(out):
    """Write the bundled sample photos (public-domain, from scikit-image) as PNG files."""
    from pathlib import Path

    from ..core.samples import sample_photos
    from ..runtime.imageio import write_image

    for name, rgb in sample_photos().items():
        write_image(Path(out) / f"{name}.png", rgb)
    console.info(f"wrote {len(sample_photos())} photos to {out}")


@runtime.command("vectors")
@click.option(
    "-o", "--out", required=True, type=click.Path(file_okay=False),
    help="Folder for index.json and the .npy files.",
)
@click.option(
    "--model", default=None,
    help="Model file, converter folder or manifest.json (default: a documented stand-in model).",
)
@click.option(
    "--profile", "profiles", multiple=True,
    help="Profiles to cover (repeatable; default: android, paddleseg-android).",
)
@click.option(
    "--input-size", nargs=2, type=int, default=None, metavar="H W",
    help="Model input size (default: the model's, or 256 256).",
)
def runtime_vectors(out, model, profiles, input_size):
    """Write each profile's intermediate tensors for the shipped images (golden vectors shared with Java)."""
    from ..runtime.vectors import DEFAULT_PROFILES, write_golden_vectors
    from ..zoo.registry import get_model_spec

    index = write_golden_vectors(out, tuple(profiles) or DEFAULT_PROFILES, model,
                                 tuple(input_size) if input_size else None,
                                 transforms=get_model_spec("ppmattingv2").transforms)
    console.info(f"wrote golden vectors to {index.parent}")
