"""``edgematte zoo ...`` and ``edgematte export``: the official architectures, their layouts, official weights and
deploy folders."""

import click

from ..core import console
from ..core.errors import EdgematteError
from .app import cli


@cli.group()
def zoo():
    """List the built-in official architectures, inspect their layouts, fetch their official weights."""


@zoo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def zoo_list(as_json):
    """List the models edgematte can build."""
    from ..zoo.registry import MODELS

    rows = [
        {"name": s.name, "config": s.config, "native_input": list(s.native_hw), "description": s.description}
        for s in MODELS.values()
    ]
    if as_json:
        console.emit_json(rows)
        return
    sizes = [f"{h}x{w}" for h, w in (r["native_input"] for r in rows)]
    widths = [max(len(r[key]) for r in rows) for key in ("name", "config")] + [max(map(len, sizes))]
    for r, size in zip(rows, sizes):
        click.echo(f"{r['name']:<{widths[0]}}  {r['config']:<{widths[1]}}  {size:<{widths[2]}}  {r['description']}")


@zoo.command("info")
@click.argument("name")
@click.option(
    "--width", type=float, default=1.0, show_default=True,
    help="Channel width multiplier (<1: tiny test variants).",
)
@click.option(
    "--state-dict", "state_dict", is_flag=True,
    help="Print the checkpoint layout as key<TAB>shape<TAB>dtype lines.",
)
@click.option(
    "--input-size", nargs=2, type=int, default=None, metavar="H W",
    help="Size for the FLOPs count (default: native).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def zoo_info(name, width, state_dict, input_size, as_json):
    """Input size, transforms, parameter count, FLOPs and outputs of model NAME."""
    from ..zoo import info as zoo_info_lib
    from ..zoo.export import validate_input_shape, validate_width
    from ..zoo.registry import get_model_spec
    from ..zoo.weights import format_layout

    spec = get_model_spec(name)
    width = validate_width(width)
    if input_size:
        h, w = input_size
        validate_input_shape(spec, (1, 3, h, w), "--input-size", shown=f"{h} {w}")
    if state_dict:
        click.echo(format_layout(zoo_info_lib.model_layout(spec, width)), nl=False)
        return
    facts = zoo_info_lib.describe(spec, width=width, input_hw=tuple(input_size) if input_size else None)
    if as_json:
        console.emit_json(facts)
        return
    click.echo(zoo_info_lib.format_facts(facts))


@zoo.command("check-weights")
@click.argument("name")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width multiplier of the model.")
def zoo_check_weights(name, weights, width):
    """Report missing, unexpected and mis-shaped keys of WEIGHTS (.pdparams) for model NAME."""
    from ..zoo import info as zoo_info_lib
    from ..zoo.export import validate_width
    from ..zoo.registry import get_model_spec
    from ..zoo.weights import check_layout, read_pdparams

    spec = get_model_spec(name)
    width = validate_width(width)
    state = read_pdparams(weights)
    check = check_layout(zoo_info_lib.model_layout(spec, width), state)
    for key in check.missing:
        click.echo(f"missing\t{key}")
    for key in check.unexpected:
        click.echo(f"unexpected\t{key}")
    for key, want, got in check.misshaped:
        click.echo(f"mis-shaped\t{key}\texpects {list(want)}\tfile has {list(got)}")
    if not check.ok:
        raise EdgematteError(f"{weights}: {check.summary()}")
    console.info(f"{weights}: {check.summary()}")


@zoo.command("fetch")
@click.argument("name")
@click.option("--deploy", is_flag=True, help="The official deploy folder (.zip) instead of the .pdparams checkpoint.")
def zoo_fetch(name, deploy):
    """Fetch NAME's official checkpoint (or deploy zip) into the cache, checked; print its path.

    NAME is a zoo model (see `zoo list`) or ppmatting-hrnet_w18-human_1024. A file already cached is checked
    against the lock file and reused. Cache, lock file, EDGEMATTE_MODEL_MIRROR and EDGEMATTE_OFFLINE:
    docs/weights.md.
    """
    from ..zoo.fetch import fetch_by_name

    fetched = fetch_by_name(name, deploy=deploy)
    if not fetched.downloaded:
        console.info(f"cached: {fetched.path} (sha256 {fetched.sha256}, from {fetched.url})")
    click.echo(str(fetched.path))


# ------------------------------------------------------------------------------------------ export
@cli.command()
@click.argument("model")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Deploy folder to write.")
@click.option(
    "--weights", type=click.Path(dir_okay=False),
    help="Official .pdparams checkpoint (read safely, no code runs).",
)
@click.option("--seed", type=int, default=None, help="Seeded weights (the project-wide formula) instead of --weights.")
@click.option(
    "--pretrained", is_flag=True,
    help="The official checkpoint from the cache, fetched first if missing (see `zoo fetch`).",
)
@click.option(
    "--width", type=float, default=1.0, show_default=True,
    help="Channel width multiplier (<1: tiny test variants).",
)
@click.option(
    "--input-shape", nargs=4, type=int, default=None, metavar="N C H W",
    help="Fix the input shape (default: dynamic [None,3,None,None]).",
)
def export(model, out, weights, seed, pretrained, width, input_shape):
    """Export a zoo MODEL to a PaddleSeg-style deploy folder (model.pdmodel, model.pdiparams, deploy.yaml)."""
    from ..zoo.export import export_deploy_folder
    from ..zoo.source import check_weight_sources, pretrained_weights

    check_weight_sources(pretrained, weights, seed)
    if pretrained:
        weights = pretrained_weights(model, width).path
    folder = export_deploy_folder(model, out, weights=weights, seed=seed, width=width, input_shape=input_shape)
    console.info(f"wrote {folder}")


# ------------------------------------------------------------------------------------------ not yet built
