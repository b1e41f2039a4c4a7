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
    output_stream,
    profile_options,
    wrote,
)
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
    result = build_profile(traces, options, label="analyze")
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.analysis.to_dict(), stream)
        elif fmt is Format.csv:
            write_csv(result.analysis, stream)
        else:
            write_table(result, stream, sections=("analysis",))
    wrote(output)
