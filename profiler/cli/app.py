"""The `ctxprof` Typer application and the one place where errors become exit codes.

Each subcommand lives in its own module under `profiler.cli` and registers itself on `app` when
imported; `COMMAND_MODULES` lists them. Exit codes: 0 ok, 1 a check failed, 2 bad usage or unusable
input (never a traceback for a user mistake).
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

import typer
from rich.console import Console

from profiler import __version__
from profiler.errors import CheckFailed, ProfilerError

app = typer.Typer(
    name="ctxprof",
    help="Measure, price and diagnose redundant context in multi-step LLM workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Modules that define subcommands (each decorates functions with `@app.command`).
COMMAND_MODULES = [
    "profiler.cli.analyze_cmd",
    "profiler.cli.check_cmd",
    "profiler.cli.diff_cmd",
    "profiler.cli.report_cmd",
    "profiler.cli.simulate_cmd",
    "profiler.cli.import_cmd",
    "profiler.cli.run_cmd",
    "profiler.cli.collect_cmd",
    "profiler.cli.export_cmd",
    "profiler.cli.replay_cmd",
    "profiler.cli.diagnose_cmd",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctxprof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """Measure, price and diagnose redundant context in multi-step LLM workflows."""


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error class: typer >= 0.20 vendors click, older versions use the package."""
    classes: list[type[Exception]] = []
    try:
        from typer._click.exceptions import ClickException as vendored

        classes.append(vendored)
    except ImportError:
        pass
    try:
        from click.exceptions import ClickException

        classes.append(ClickException)
    except ImportError:
        pass
    return tuple(classes)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        # With standalone_mode=False, click returns the code of a `typer.Exit(code)` instead of exiting.
        code = app(args=argv, prog_name="ctxprof", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except CheckFailed as e:
        if str(e):
            err_console.print(f"ctxprof: {e}", markup=False)
        sys.exit(1)
    except ProfilerError as e:
        err_console.print(f"ctxprof: error: {e}", markup=False)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except _usage_errors() as e:
        # Bad options or arguments: the usage line and the problem, exit 2 (as click does).
        e.show()
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
