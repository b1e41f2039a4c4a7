"""`ctxprof diff A B`: two traces, analyses or baselines side by side, per workflow and step name."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import OUTPUT_OPT, Scope, output_stream, table_console, wrote


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
    scope: Scope = typer.Option(Scope.run, "--scope", help="Reuse scope used to analyse traces."),
    prices: Optional[Path] = typer.Option(None, "--prices",
                                          help="Price file to use instead of the built-in table."),
    output: Optional[Path] = OUTPUT_OPT,
) -> None:
    """Show how input, reused and novel tokens, redundancy and cost changed from A to B.

    Values are means per run of each workflow; steps are matched by name and occurrence in their run
    (the second step named "plan" is "plan #2").
    """
    from profiler.diff import diff, load_summary
    from profiler.reporters import diff_report
    from profiler.reporters.console import write_json

    sa, wa = load_summary(a, scope=scope.value, prices_path=prices)
    sb, wb = load_summary(b, scope=scope.value, prices_path=prices)
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
