"""Reports of an analysis: `build_report_data` gathers everything once; renderers write it.

    data = build_report_data(traces)          # analysis, costs, cache scenarios, diagnosis
    render(data, stream, "html")              # or "markdown", "json"

Renderers take a finished `ReportData` and a text stream and never recompute anything.
"""

from __future__ import annotations

from typing import IO, Any

from profiler.report.data import (
    CostSummary,
    Finding,
    ReportData,
    ReuseMatrix,
    Scenario,
    build_report_data,
)

FORMATS = ("html", "markdown", "json")
SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown",
                  ".json": "json"}

__all__ = ["FORMATS", "SUFFIX_FORMATS", "CostSummary", "Finding", "ReportData", "ReuseMatrix",
           "Scenario", "build_report_data", "render"]


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
