"""The root command group, the option parsers the commands share, and the entry point that turns failures
into one-line messages and exit codes.

Errors the user can fix (:class:`edgematte.core.errors.EdgematteError`) print one line and exit non-zero;
usage mistakes exit 2; anything else is a bug and prints a traceback only with ``--debug``.
"""

import os
import sys

import click

from .. import __version__
from ..core import console
from ..core.errors import EdgematteError
from ..core.native_output import show_native_output
from ..core.signals import install_signal_policy, received_signal

_debug = {"on": False}


def print_report_and_exit(report, as_json: bool) -> None:
    """A verification report (``as_dict``, ``summary_lines``, ``exit_code``) to stdout; exit with its code."""
    if as_json:
        console.emit_json(report.as_dict())
    else:
        for line in report.summary_lines():
            click.echo(line)
    if report.exit_code:
        sys.exit(report.exit_code)




@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110, "terminal_width": 110})
@click.version_option(__version__, "--version", prog_name="edgematte")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and requested output.")
def cli(debug, quiet):
    """edgematte: PaddleSeg portrait matting models on phones and ARM boards, with measured proof.

    Typical flow: `edgematte convert ppmattingv2 --seed 0 --int8 -o out/` then
    `edgematte matte photo.jpg --model out/ -o mattes/` and `edgematte bench out/`.
    """
    _debug["on"] = debug
    show_native_output(debug)
    console.set_quiet(quiet)


# ------------------------------------------------------------------------------------------ zoo


def csv_choices(choices):
    def parse(ctx, param, value):
        items = [v.strip().lower() for v in value.split(",") if v.strip()] if value else []
        bad = [v for v in items if v not in choices]
        if bad:
            raise click.BadParameter(f"{', '.join(bad)} (choose from {', '.join(choices)})")
        return items

    return parse


def size_wxh(ctx, param, value):
    try:
        w, h = (int(v) for v in value.lower().split("x"))
        assert w > 0 and h > 0
        return w, h
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{value!r} is not WxH (e.g. 1920x1080)") from None


def positive_ints(ctx, param, value):
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
        assert items and min(items) > 0
        return items
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{value!r} is not a list of positive integers (e.g. 1,2,4)") from None


def thread_count(ctx, param, value):
    """``--threads`` of a command that runs here: refused below 1 (one line), clamped to this machine's cores
    with one warning (:func:`edgematte.core.threads.resolve_threads`); the library gets the clamped count."""
    from ..core.threads import resolve_threads

    return resolve_threads(value, "--threads")


def threads_option(default: int = 2, help: str = "CPU threads (at most this machine's cores)."):
    """The ``--threads N`` option of every local runtime command (matte, verify, quant eval, convert), parsed
    by :func:`thread_count`. Not bench's: its counts may be a remote board's."""
    return click.option("--threads", type=int, default=default, show_default=True, callback=thread_count, help=help)


def _exit_interrupted():
    """Ctrl-C, SIGTERM or SIGHUP: the atomic outputs have removed their temporary files by now."""
    terminated = received_signal()
    if terminated is not None:
        click.echo(f"edgematte: stopped by {terminated}; unfinished outputs were removed", err=True)
        sys.exit(terminated.exit_code)
    click.echo("edgematte: interrupted; unfinished outputs were removed", err=True)
    sys.exit(130)


def main(argv=None):
    """Console entry point: run the CLI and turn failures into one-line messages and exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" not in args:
        os.environ.setdefault("GLOG_minloglevel", "2")  # paddle's C++ logging, read when paddle loads
        os.environ.setdefault("TQDM_DISABLE", "1")  # paddle's PTQ bars; our steps report progress
    install_signal_policy()
    try:
        cli.main(args=args, prog_name="edgematte", standalone_mode=False)
    except click.exceptions.UsageError as e:
        if e.ctx and " " in e.ctx.command_path:
            where = f" (see 'edgematte {e.ctx.command_path.split(' ', 1)[1]} --help')"
        else:
            where = " (see 'edgematte --help')"
        click.echo(f"edgematte: error: {e.format_message().rstrip('.')}{where}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:  # click turns KeyboardInterrupt (and so Terminated) into Abort
        _exit_interrupted()
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"edgematte: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except EdgematteError as e:
        if received_signal():
            _exit_interrupted()
        if _debug["on"]:
            raise
        click.echo(f"edgematte: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _exit_interrupted()
    except Exception as e:  # a bug: keep it to one line unless asked
        if received_signal():  # a library turned our Terminated into its own error
            _exit_interrupted()
        if _debug["on"]:
            raise
        click.echo(f"edgematte: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)
