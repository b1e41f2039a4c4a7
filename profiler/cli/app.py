"""The `ctxprof` Typer application and the one place where errors become exit codes.

Each subcommand lives in its own module under `profiler.cli` and registers itself on `app` when
imported; `COMMAND_MODULES` lists them. Exit codes: 0 ok, 1 a check failed, 2 bad usage or unusable
input (never a traceback for a user mistake).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

import typer

from profiler import __version__
from profiler.errors import CheckFailed, ProfilerError
from profiler.safe_text import console as safe_console

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

# Error messages quote trace data (names, paths): shown as data, never markup or raw escapes.
err_console = safe_console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctxprof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
    max_line_mb: Optional[float] = typer.Option(
        None, "--max-line-mb", min=0.001,
        help="Longest input line to accept, in MiB (default 64; also $CTXPROF_MAX_LINE_MB)."),
) -> None:
    """Measure, price and diagnose redundant context in multi-step LLM workflows."""
    if max_line_mb is not None:
        from profiler.trace.io import MAX_LINE_ENV

        # The readers take the limit from the environment, so it reaches every reader in this process.
        os.environ[MAX_LINE_ENV] = repr(max_line_mb)


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
    # `--max-line-mb` reaches the readers through the environment; restore it afterwards so a main()
    # called in-process (tests, notebooks) leaves no setting behind.
    from profiler.trace.io import MAX_LINE_ENV

    saved_limit = os.environ.get(MAX_LINE_ENV)
    try:
        _main(argv)
    finally:
        if saved_limit is None:
            os.environ.pop(MAX_LINE_ENV, None)
        else:
            os.environ[MAX_LINE_ENV] = saved_limit


def _main(argv: list[str] | None) -> None:
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
    except ModuleNotFoundError as e:
        from profiler.optional import missing_dependency_error

        error = missing_dependency_error(e)
        if error is None:
            raise
        err_console.print(f"ctxprof: error: {error}", markup=False)
        sys.exit(2)
    except RecursionError:
        # The readers refuse JSON nested deeper than profiler.trace.io.MAX_NESTING_DEPTH; this catches
        # any other path that recursed too deep, still as unusable input rather than a traceback.
        err_console.print("ctxprof: error: the input is nested too deeply to process", markup=False)
        sys.exit(2)
    sys.exit(0)
