"""`ctxprof analyze`: per-step reuse metrics of one or more traces."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.analysis import analyze
from profiler.cli.app import app, err_console
from profiler.cli.common import (
    BLOCK_SIZE_OPT,
    MIN_REPEAT_OPT,
    OUTPUT_OPT,
    SCOPE_OPT,
    TRACES_ARG,
    Scope,
    llm_step_count,
    load_all,
    output_stream,
    progress_bar,
    price_table,
    table_console,
    wrote,
)
from profiler.reporters.console import print_analysis, write_csv, write_json


class Pricing(str, Enum):
    default = "default"
    none = "none"


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
    pricing: Pricing = typer.Option(Pricing.default, "--pricing",
                                    help="'default': price steps with genai-prices (offline data); "
                                         "'none': no cost columns."),
    price_file: Optional[Path] = typer.Option(None, "--price-file",
                                              help="TOML or JSON file of prices (USD per million "
                                                   "tokens) looked up before genai-prices; see "
                                                   "docs/costs-and-caches.md."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = OUTPUT_OPT,
) -> None:
    """Measure, per step, the prompt tokens that repeat context earlier steps already processed.

    Columns: input_tokens, prefix_reused_tokens (reusable by a prefix cache), block_reused_tokens
    (the same in whole blocks), repeated_tokens (repeated outside the prefix), novel_tokens,
    reported_cached_tokens (what the provider said it served from cache), redundancy_ratio, and
    with prices the costs in USD: actual (as billed), with no cache, with an ideal prefix cache, and
    what the redundant input cost. A model with no known price gets an empty cost and a warning.
    """
    loaded = load_all(traces)
    with progress_bar("analyze", llm_step_count(loaded)) as bar:
        result = analyze(loaded, scope=scope.value, block_size=block_size, min_repeat=min_repeat,
                         progress=bar)
    table = price_table(pricing.value, price_file)
    if table is not None:
        from profiler.cost import apply_costs

        result = apply_costs(result, loaded, table)
    for w in result.warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.to_dict(), stream)
        elif fmt is Format.csv:
            write_csv(result, stream)
        else:
            console = table_console(stream)
            print_analysis(result, console)
    wrote(output)
