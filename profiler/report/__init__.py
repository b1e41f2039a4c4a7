"""Reports of an analysis: `build_report_data` gathers everything once; renderers write it.

    data = build_report_data(traces)          # analysis, costs, cache scenarios, diagnosis
    render(data, stream, "html")              # or "markdown", "json"

Renderers take a finished `ReportData` and a text stream and never recompute anything.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Iterable

from profiler.report.data import (
    CostSummary,
    Finding,
    ReportData,
    ReuseMatrix,
    Scenario,
    build_report_data,
)

if TYPE_CHECKING:
    from profiler.trace.model import Trace

FORMATS = ("html", "markdown", "json")
SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown",
                  ".json": "json"}

__all__ = ["FORMATS", "SUFFIX_FORMATS", "CostSummary", "Finding", "ReportData", "ReuseMatrix",
           "Scenario", "build_report_data", "render", "report"]


def render(data: ReportData, stream: IO[str], fmt: str, **options: Any) -> None:
    """Write `data` in format `fmt` ("html", "markdown" or "json") to `stream`."""
    if fmt == "html":
        from profiler.report.html import render_html

        render_html(data, stream, **options)
    elif fmt == "markdown":
        from profiler.report.markdown import render_markdown

        render_markdown(data, stream, **options)
    elif fmt == "json":
        from profiler.report.json import render_json

        render_json(data, stream)
    else:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def report(traces: "Trace | Iterable[Trace]", stream: IO[str], fmt: str = "html", *, scope: str = "run",
           block_size: int = 16, min_repeat: int = 32, title: str = "ctxprof report",
           cdn: bool = False) -> ReportData:
    """Write a report of `traces` to `stream` in format `fmt` ("html", "markdown" or "json"), as
    `ctxprof report` does; returns the `ReportData` it rendered. `cdn` (HTML only) links plotly.js
    instead of embedding it."""
    data = build_report_data(traces, scope=scope, block_size=block_size, min_repeat=min_repeat,
                             title=title)
    render(data, stream, fmt, **({"cdn": cdn} if fmt == "html" else {}))
    return data
