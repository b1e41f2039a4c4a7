"""Options and helpers shared by subcommands."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator, Optional

import typer

from profiler.errors import ProfilerError, TraceFormatError
from profiler.options import Engine, Pricing, ProfileOptions, Scope
from profiler.trace import Trace, load_trace

if TYPE_CHECKING:

    from profiler.profile import Profile
    from profiler.progress import Progress


TRACES_ARG = typer.Argument(..., help="Trace files (.jsonl, .jsonl.gz or .parquet) written by ctxprof.",
                            show_default=False)
SCOPE_OPT = typer.Option(Scope.run, "--scope",
                         help="'run': compare each step with earlier steps of its run; "
                              "'global': with every earlier step, as a shared serving cache.")
BLOCK_SIZE_OPT = typer.Option(16, "--block-size", min=1,
                              help="Block size (tokens) for block_reused_tokens, as vLLM's.")
MIN_REPEAT_OPT = typer.Option(32, "--min-repeat", min=1,
                              help="Shortest run of tokens that counts as repeated context.")
PRICING_OPT = typer.Option(Pricing.default, "--pricing",
                           help="'default': price steps with genai-prices (offline data), after the "
                                "--price-file if one is given; 'none': only the --price-file's prices, "
                                "or no costs without one.")
PRICE_FILE_OPT = typer.Option(None, "--price-file",
                              help="TOML or JSON file of prices (USD per million tokens) looked up "
                                   "before genai-prices; see docs/costs-and-caches.md.")
# The old name on check, baseline and diff; it meant what --price-file means.
PRICES_DEPRECATED_OPT = typer.Option(None, "--prices", hidden=True,
                                     help="Deprecated: use --price-file.")
ALLOW_UNKNOWN_OPT = typer.Option(False, "--allow-unknown", "--allow-unknown-cost",
                                 help="Let metrics that cannot be known (costs without prices, "
                                      "workflows missing from the baseline) pass.")
ENGINE_OPT = typer.Option(Engine.local, "--engine",
                          help="'local': this process; 'ray': tasks on a Ray cluster (pip install "
                               "'ctxprof[ray]'); inputs may then be folders, globs and s3:// or gs:// "
                               "URIs.")
ADDRESS_OPT = typer.Option(None, "--address",
                           help="With --engine ray: the cluster's address ('auto', 'ray://host:10001'); "
                                "default: start a local one.")
OUTPUT_OPT = typer.Option(None, "-o", "--output", help="Write to this file instead of standard output.")
# `-o` always replaces an existing file (written beside it, then renamed); --force is kept, hidden, so
# scripts written for older versions still run.
FORCE_OPT = typer.Option(False, "--force", hidden=True, help="Accepted for compatibility; -o overwrites.")


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


def build_profile(paths: list[Path], options: ProfileOptions, *, title: str = "ctxprof report",
                  label: str = "profile", warn_sections: tuple[str, ...] = ()) -> "Profile":
    """The one way every command builds its result: `profiler.profile.profile` over `paths` as
    `options` say, with a progress line; the profile's warnings go to stderr, and those of the
    sections named in `warn_sections` ("simulations", "engine", "diagnosis": what the command shows).
    With `--engine ray` the analysis runs on Ray; traces are read here only when a simulation or the
    diagnosis needs their steps."""
    from profiler.cli.app import err_console
    from profiler.profile import profile

    needs_steps = bool(options.providers or options.engine_capacities_tokens or options.diagnose)
    analysis = None
    loaded: list[Trace] = []
    if options.engine is Engine.ray:
        from profiler.distributed import analyze_on_ray

        analysis = analyze_on_ray([str(p) for p in paths], scope=options.scope,
                                  block_size=options.block_size, min_repeat=options.min_repeat,
                                  address=options.address, prices=options.price_table())
    if options.engine is Engine.local or needs_steps:
        loaded = load_all(paths)
    passes = (1 + len(options.providers) + bool(options.engine_capacities_tokens)
              + int(options.diagnose))
    with progress_bar(label, llm_step_count(loaded) * passes) as bar:
        result = profile(loaded, options, title=title, analysis=analysis, priced=analysis is not None,
                         progress=bar)
    shown = list(result.warnings)
    extra = {"simulations": [w for s in result.simulations for w in s.warnings],
             "engine": list(result.engine.warnings) if result.engine is not None else [],
             "diagnosis": list(result.diagnosis.warnings) if result.diagnosis is not None else []}
    for section in warn_sections:
        shown += [w for w in extra[section] if w not in shown]
    for w in shown:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    return result


def output_stream(path: Optional[Path]) -> "contextlib.AbstractContextManager[IO[str]]":
    """Standard output, or a file written whole or not at all (`profiler.output`: the one overwrite
    rule, `-o` replaces an existing file)."""
    from profiler.output import open_output

    return open_output(path)


def check_output(path: Optional[Path]) -> None:
    """Refuse an unwritable `-o` target (a folder, a missing folder) before doing any work."""
    if path is not None and str(path) != "-":
        from profiler.output import check_target

        check_target(path)


def wrote(path: Optional[Path]) -> None:
    if path is not None and str(path) != "-":
        typer.echo(f"Wrote {path}", err=True)


def profile_options(*, scope: Scope | str = Scope.run, block_size: int = 16, min_repeat: int = 32,
                    pricing: Pricing = Pricing.default, price_file: Optional[Path] = None,
                    prices: Optional[Path] = None, allow_unknown: bool = False,
                    engine: Engine = Engine.local, address: Optional[str] = None,
                    **extra: Any) -> ProfileOptions:
    """The shared options of a command, from its flags; `prices` is the deprecated `--prices`;
    `extra`: the command's own `ProfileOptions` fields (which simulations, diagnosis)."""
    if prices is not None:
        if price_file is not None:
            raise ProfilerError("--prices and --price-file given together; --prices is the old name "
                                "of --price-file: keep only --price-file")
        typer.echo("ctxprof: warning: --prices is deprecated; use --price-file (same meaning)",
                   err=True)
        price_file = prices
    return ProfileOptions(scope=Scope(scope).value, block_size=block_size, min_repeat=min_repeat,
                          pricing=pricing, price_file=price_file, allow_unknown=allow_unknown,
                          engine=engine, address=address, **extra)


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
