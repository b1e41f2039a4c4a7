"""`ctxprof report`: an HTML, Markdown or JSON report of one or more traces."""

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
    FORCE_OPT,
    MIN_REPEAT_OPT,
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
    wrote,
)
from profiler.errors import ProfilerError


class Format(str, Enum):
    html = "html"
    md = "md"
    json = "json"


_FORMAT_NAMES = {"html": "html", "md": "markdown", "json": "json"}


def report_format(fmt: Optional[Format], output: Optional[Path]) -> str:
    """The renderer for `--format`, else the output file's suffix; Markdown on standard output."""
    from profiler.render import SUFFIX_FORMATS

    if fmt is not None:
        return _FORMAT_NAMES[fmt.value]
    if output is None or str(output) == "-":
        return "markdown"
    suffix = output.suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise ProfilerError(f"cannot tell the report format from {output.name!r}: name the file .html, "
                          ".md or .json, or pass --format html|md|json")
    return SUFFIX_FORMATS[suffix]


@app.command("report")
def report_command(
    traces: list[Path] = TRACES_ARG,
    output: Optional[Path] = typer.Option(
        None, "-o", "--output",
        help="Report file; its suffix (.html, .md, .json) picks the format. Default: Markdown on "
             "standard output (for $GITHUB_STEP_SUMMARY)."),
    fmt: Optional[Format] = typer.Option(None, "--format", "-f",
                                         help="html, md or json (overrides the file suffix)."),
    force: bool = FORCE_OPT,
    cdn: bool = typer.Option(False, "--cdn",
                             help="HTML: link plotly.js from cdn.plot.ly instead of embedding it "
                                  "(smaller file, needs network to view)."),
    title: str = typer.Option("ctxprof report", "--title", help="Report title."),
    scope: Scope = SCOPE_OPT,
    block_size: int = BLOCK_SIZE_OPT,
    min_repeat: int = MIN_REPEAT_OPT,
    pricing: Pricing = PRICING_OPT,
    price_file: Optional[Path] = PRICE_FILE_OPT,
    engine: Engine = ENGINE_OPT,
    address: Optional[str] = ADDRESS_OPT,
) -> None:
    """Write a report: headline figures, tokens per step, cumulative cost, cache scenarios, reuse
    matrix, reported vs ideal caching, diagnosis and a per-step table.

    HTML is a single file that works offline (plotly.js embedded); Markdown fits a GitHub job summary.
    """
    from profiler.render import render

    check_output(output)  # before the analysis, so a bad target costs nothing
    kind = report_format(fmt, output)
    if kind == "html":
        _require_plotly()
    options = profile_options(scope=scope, block_size=block_size, min_repeat=min_repeat,
                              pricing=pricing, price_file=price_file, engine=engine, address=address)
    data = build_profile(traces, options, title=title)
    with output_stream(output) as stream:
        render(data, stream, kind, **({"cdn": cdn} if kind == "html" else {}))
    wrote(output)


def _require_plotly() -> None:
    try:
        import plotly  # noqa: F401
    except ModuleNotFoundError:
        raise ProfilerError("the HTML report needs plotly: pip install 'ctxprof[report]' "
                          "(or write Markdown/JSON with -o report.md / -o report.json)") from None
