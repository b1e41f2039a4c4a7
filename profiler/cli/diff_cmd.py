"""`ctxprof diff A B`: two traces, analyses or baselines side by side, per workflow and step name."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import (
    BLOCK_SIZE_OPT,
    MIN_REPEAT_OPT,
    OUTPUT_OPT,
    PRICE_FILE_OPT,
    PRICES_DEPRECATED_OPT,
    PRICING_OPT,
    SCOPE_OPT,
    Pricing,
    Scope,
    output_stream,
    profile_options,
    wrote,
)


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"



@app.command("diff")
def diff_command(
    a: Path = typer.Argument(..., help="Before: a trace, an analysis JSON or a baseline JSON.",
                             show_default=False),
    b: Path = typer.Argument(..., help="After: a trace, an analysis JSON or a baseline JSON.",
                             show_default=False),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    scope: Scope = SCOPE_OPT,
    block_size: int = BLOCK_SIZE_OPT,
    min_repeat: int = MIN_REPEAT_OPT,
    pricing: Pricing = PRICING_OPT,
    price_file: Optional[Path] = PRICE_FILE_OPT,
    prices: Optional[Path] = PRICES_DEPRECATED_OPT,
    output: Optional[Path] = OUTPUT_OPT,
) -> None:
    """Show how input, reused and novel tokens, redundancy and cost changed from A to B.

    Values are means per run of each workflow; steps are matched by name and occurrence in their run
    (the second step named "plan" is "plan #2").
    """
    from profiler.diff import diff, load_summary
    from profiler.render import diff as diff_report
    from profiler.render.console import table_console, write_json

    options = profile_options(scope=scope, block_size=block_size, min_repeat=min_repeat,
                              pricing=pricing, price_file=price_file, prices=prices)
    sa, wa = load_summary(a, options=options)
    sb, wb = load_summary(b, options=options)
    for w in dict.fromkeys([*wa, *wb]):
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    result = diff(sa, sb)
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.to_dict(), stream)
        elif fmt is Format.markdown:
            diff_report.write_markdown(result, stream)
        else:
            console = table_console(stream, highlight=False)
            diff_report.print_diff(result, console)
    wrote(output)
