"""`ctxprof analyze`: per-step reuse metrics of one or more traces."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app
from profiler.cli.common import (
    ADDRESS_OPT,
    BLOCK_SIZE_OPT,
    ENGINE_OPT,
    MIN_REPEAT_OPT,
    OUTPUT_OPT,
    PRICE_FILE_OPT,
    PRICING_OPT,
    SCOPE_OPT,
    TRACES_ARG,
    Engine,
    Pricing,
    Scope,
    build_profile,
    check_output,
    output_stream,
    profile_options,
    progress_bar,
    wrote,
)
from profiler.options import ProfileOptions
from profiler.render.console import write_csv, write_json, write_table


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command("analyze")
def analyze_command(
    traces: list[Path] = TRACES_ARG,
    scope: Scope = SCOPE_OPT,
    block_size: int = BLOCK_SIZE_OPT,
    min_repeat: int = MIN_REPEAT_OPT,
    pricing: Pricing = PRICING_OPT,
    price_file: Optional[Path] = PRICE_FILE_OPT,
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = OUTPUT_OPT,
    engine: Engine = ENGINE_OPT,
    address: Optional[str] = ADDRESS_OPT,
) -> None:
    """Measure, per step, the prompt tokens that repeat context earlier steps already processed.

    Columns: input_tokens, prefix_reused_tokens (reusable by a prefix cache), block_reused_tokens
    (the same in whole blocks), repeated_tokens (repeated outside the prefix), novel_tokens,
    reported_cached_tokens (what the provider said it served from cache), redundancy_ratio, and
    with prices the costs in USD: actual (as billed), with no cache, with an ideal prefix cache, and
    what the redundant input cost. A model with no known price gets an empty cost and a warning.
    """
    options = profile_options(scope=scope, block_size=block_size, min_repeat=min_repeat,
                              pricing=pricing, price_file=price_file, engine=engine, address=address,
                              providers=(), diagnose=False)
    if fmt is Format.json and options.scope == Scope.run.value and options.engine is Engine.local \
            and len(traces) == 1 and _streamed(traces[0], options, output):
        return
    result = build_profile(traces, options, label="analyze")
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.analysis.to_dict(), stream)
        elif fmt is Format.csv:
            write_csv(result.analysis, stream)
        else:
            write_table(result, stream, sections=("analysis",))
    wrote(output)


def _streamed(path: Path, options: ProfileOptions, output: Optional[Path]) -> bool:
    """Write the JSON document run by run (`profiler.streaming`: the same bytes, memory bounded by the
    largest run); False, with nothing written, when the file is not a ctxprof trace."""
    from profiler.cli.app import err_console
    from profiler.streaming import run_traces, write_analysis_json

    check_output(output)
    runs = run_traces(path)
    if runs is None:
        return False
    with progress_bar("analyze", None) as bar, output_stream(output) as stream:
        warnings = write_analysis_json(path, runs, options, stream, progress=bar)
    for w in warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    wrote(output)
    return True
