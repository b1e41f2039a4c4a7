"""Every renderer: a finished `Profile` (or a check / diff / replay result) in, text on a stream out.

    p = profiler.profile(traces)              # analysis, costs, cache scenarios, diagnosis
    render(p, stream, "html")                 # or "markdown", "json"

Modules: `html`, `markdown`, `json` (reports), `console` (the analysis table), `simulation` and
`engine_cache` (cache simulation tables), `diagnosis`, `check_report`, `diff`, `replay`, `figures`
(plotly), `fmt` (number formats). Renderers read what they are given and never recompute or re-read
traces; text from a trace goes through `profiler.safe_text`.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from profiler.options import ProfileOptions
    from profiler.profile import Profile
    from profiler.trace.model import Trace

FORMATS = ("html", "markdown", "json")
SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown",
                  ".json": "json"}

__all__ = ["FORMATS", "SUFFIX_FORMATS", "render", "report"]


def render(data: "Profile", stream: IO[str], fmt: str, **options: Any) -> None:
    """Write `data` in format `fmt` ("html", "markdown" or "json") to `stream`."""
    if fmt == "html":
        from profiler.render.html import render_html

        render_html(data, stream, **options)
    elif fmt == "markdown":
        from profiler.render.markdown import render_markdown

        render_markdown(data, stream, **options)
    elif fmt == "json":
        from profiler.render.json import render_json

        render_json(data, stream)
    else:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def report(traces: "Trace | Iterable[Trace]", stream: IO[str], fmt: str = "html",
           options: "ProfileOptions | None" = None, *, title: str = "ctxprof report",
           cdn: bool = False) -> "Profile":
    """Write a report of `traces` to `stream` in format `fmt` ("html", "markdown" or "json"), as
    `ctxprof report` does; returns the `Profile` it rendered. `cdn` (HTML only) links plotly.js
    instead of embedding it."""
    from profiler.profile import profile

    data = profile(traces, options, title=title)
    render(data, stream, fmt, **({"cdn": cdn} if fmt == "html" else {}))
    return data
