"""``edgematte quant eval``: an artefact's matting metrics on a dataset."""

import click

from ..core import console
from .app import cli, threads_option


@cli.group()
def quant():
    """INT8 accuracy tools: evaluate any artefact in the matting metrics (SAD, MSE, Grad, Conn)."""


@quant.command("eval")
@click.argument("manifest", type=click.Path(exists=True))
@click.option(
    "--artefact", default=None,
    help="Artefact path in the manifest (default: the preferred host-runnable one).",
)
@click.option(
    "--data", required=True, type=click.Path(exists=True),
    help="Folder of images (recursive), or a video file (one clip).",
)
@click.option(
    "--gt", type=click.Path(exists=True, file_okay=False), default=None,
    help="Folder of ground-truth alpha mattes, same relative paths as --data.",
)
@click.option(
    "--sequence", is_flag=True,
    help="The images in --data are the frames of one clip, ordered by the number in their file names (no gaps, "
         "one size): a recurrent model's states pass from frame to frame, and the temporal figures dtSSD and "
         "MESSDdt are added (a video always is a clip).",
)
@threads_option()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def quant_eval(manifest, artefact, data, gt, sequence, threads, as_json):
    """MAD, max, share off by > 8/255, SAD, MSE, Grad, Conn of an artefact against fp32 (and ground truth).

    For a clip also the temporal figures of Erofeev et al. (2015), over every pixel and unscaled: dtSSD, the
    root mean square of the difference between the artefact's and the reference's change from frame to frame
    (flicker), and MESSDdt, the mean change of the squared error along the reference's optical flow (an error
    that moves with the subject costs nothing)."""
    from ..quant.evaluate import evaluate_artefact

    result = evaluate_artefact(manifest, artefact, data, gt, threads=threads, sequence=sequence)
    if as_json:
        console.emit_json(result)
        return
    what = "frames of one clip" if result["sequence"] else "images"
    click.echo(f"{result['artefact']} ({result['precision']}) on {result['images']} {what}")
    for key, label in (("vs_fp32", f"vs {result['vs_fp32']['reference']}"), ("vs_ground_truth", "vs ground truth")):
        if key in result:
            n = result[key]
            temporal = result.get(f"temporal_{key}")
            shown = ("" if not temporal or temporal["dtssd"] is None else
                     f"  dtSSD {temporal['dtssd']:.4f}  MESSDdt {temporal['messddt']:.5f}")
            click.echo(f"  {label}: MAD {n['mad']:.4f}  max {n['max_abs']:.3f}  >8/255 {n['frac_over_8_255']:.2%}  "
                       f"SAD {n['sad']:.2f}  MSE {n['mse']:.5f}  Grad {n['grad']:.2f}  Conn {n['conn']:.2f}{shown}")
