"""Options and helpers shared by subcommands."""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator, Optional

import typer

from profiler.errors import ProfilerError, TraceFormatError

if TYPE_CHECKING:
    from profiler.progress import Progress
    from rich.console import Console
from profiler.trace import Trace, load_trace

if TYPE_CHECKING:
    from profiler.pricing import PriceTable

class Scope(str, Enum):
    """Which earlier steps a step is compared with (see docs/metrics.md)."""

    run = "run"
    global_ = "global"


TRACES_ARG = typer.Argument(..., help="Trace files (.jsonl, or .jsonl.gz) written by ctxprof.",
                            show_default=False)
SCOPE_OPT = typer.Option(Scope.run, "--scope",
                         help="'run': compare each step with earlier steps of its run; "
                              "'global': with every earlier step, as a shared serving cache.")
BLOCK_SIZE_OPT = typer.Option(16, "--block-size", min=1,
                              help="Block size (tokens) for block_reused_tokens, as vLLM's.")
MIN_REPEAT_OPT = typer.Option(32, "--min-repeat", min=1,
                              help="Shortest run of tokens that counts as repeated context.")
OUTPUT_OPT = typer.Option(None, "-o", "--output", help="Write to this file instead of standard output.")
FORCE_OPT = typer.Option(False, "--force", help="Overwrite the output file if it exists.")


def load_all(paths: list[Path]) -> list[Trace]:
    """Load ctxprof traces; files in a format that identifies itself (Mooncake, OTLP JSON) are
    imported on the fly, with a notice (`ctxprof import` writes them out once instead)."""
    return [_load_one(p) for p in paths]


def _load_one(path: Path) -> Trace:
    try:
        return load_trace(path)
    except TraceFormatError as e:
        if e.line != 1 or not e.reason.startswith(("not a ctxprof trace", "not JSON")):
            raise
        from profiler.importers.registry import import_sources, sniff_format

        fmt = sniff_format(path)
        if fmt is None:
            raise
        from profiler.cli.app import err_console

        err_console.print(f"ctxprof: reading {path} as a {fmt} trace (`ctxprof import {fmt}` converts "
                          "it once)", markup=False)
        return import_sources(fmt, [path])


@contextlib.contextmanager
def output_stream(path: Optional[Path], force: bool = True) -> Iterator[IO[str]]:
    """Standard output, or a file (refusing to overwrite one unless `force`)."""
    if path is None or str(path) == "-":
        yield sys.stdout
        return
    if path.exists() and not force:
        raise ProfilerError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        yield f


def table_console(stream: IO[str], **kwargs) -> "Console":
    """A rich console for tables: a terminal keeps its width; a pipe or a file gets room for every
    column (rich would otherwise assume 80 columns and cut numbers short)."""
    from rich.console import Console

    return Console(file=stream, width=None if stream.isatty() else 160, **kwargs)


def wrote(path: Optional[Path]) -> None:
    if path is not None and str(path) != "-":
        typer.echo(f"Wrote {path}", err=True)


def price_table(pricing: str, price_file: Optional[Path]) -> "PriceTable | None":
    """The price table the `--pricing` / `--price-file` options ask for (None: no pricing)."""
    from profiler.pricing import PriceTable

    if price_file is not None:
        return PriceTable.from_file(price_file, fallback_to_default=pricing != "none")
    if pricing == "none":
        return None
    return PriceTable.default()


@contextlib.contextmanager
def progress_bar(label: str, total_steps: int | None) -> Iterator["Progress"]:
    """A progress line on stderr for the duration of a command's work (silent when stderr is not a
    terminal)."""
    from profiler.progress import Progress

    bar = Progress(label, total_steps, stream=sys.stderr, is_tty=sys.stderr.isatty())
    try:
        yield bar
    finally:
        bar.close()


def llm_step_count(traces: list[Trace]) -> int:
    return sum(1 for t in traces for s in t.steps if s.kind == "llm")
