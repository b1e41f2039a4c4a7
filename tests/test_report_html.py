"""The HTML report: self-contained, every section present, trace text escaped."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest

pytest.importorskip("plotly")

from builders import make_diagnosis, make_finding, make_simulation  # noqa: E402
from profiler.profile import profile  # noqa: E402
from profiler.render import render  # noqa: E402
from profiler.render.html import SECTIONS, script_json  # noqa: E402
from report_traces import make_agent_run, make_trace  # noqa: E402

HOSTILE = "</script><script>document.body.setAttribute('data-pwned','1')</script><!--"


def hostile_data():
    """Report data whose run id, step names, title and diagnosis text all try to inject a script."""
    trace = make_trace(make_agent_run(HOSTILE, steps=3, step_name=HOSTILE, user_text=HOSTILE * 3))
    data = profile(trace, title=f"title {HOSTILE}")
    finding = make_finding(run_id=HOSTILE, step_id="s1", step_index=1, token_position=4,
                           before_text=f"<img src=x onerror=\"document.title='pwned'\"> {HOSTILE}",
                           after_text=HOSTILE, tokens_lost=10, usd_lost=None, fix=HOSTILE,
                           detail=HOSTILE, where=HOSTILE)
    scenario = make_simulation("openai", [(HOSTILE, "s1", 100, 50)], cost_usd=0.5, no_cache_cost_usd=1.0)
    return replace(data, diagnosis=make_diagnosis(finding), simulations=(scenario,))


def render_html(data, **options) -> str:
    buf = io.StringIO()
    render(data, buf, "html", **options)
    return buf.getvalue()


def script_tags(page: str) -> list[str]:
    return re.findall(r"<script[^>]*>", page, flags=re.IGNORECASE)


def test_trace_text_cannot_open_a_script_or_element():
    # GIVEN a report whose trace text is full of markup
    page = render_html(hostile_data())
    # THEN the only script elements are the report's own four (error hook, plotly, figures, render)
    assert script_tags(page) == ["<script>", "<script>", '<script type="application/json" '
                                 'id="ctxprof-figures">', "<script>"]
    # AND the markup shows as text
    assert "&lt;/script&gt;&lt;script&gt;document.body.setAttribute(" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page


def test_figure_json_escapes_script_terminators_and_round_trips():
    # GIVEN figure data holding script terminators
    text = script_json({"a": HOSTILE, "b": "x]]>y & z"})
    # THEN none survives literally, and the JSON decodes to the original
    for bad in ("</", "<!--", "<", ">", "]]>"):
        assert bad not in text
    assert json.loads(text) == {"a": HOSTILE, "b": "x]]>y & z"}


def test_every_section_is_present_and_plotly_is_embedded():
    page = render_html(hostile_data())
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in page
    for chart in ("tokens", "cumulative", "scenarios", "matrix", "cached"):
        assert f'id="chart-{chart}"' in page
    # Offline: no external script, stylesheet or image.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "plotly.js" in page and len(page) > 1_000_000


def test_cdn_option_links_plotly_instead():
    page = render_html(profile(make_trace(make_agent_run(steps=2))), cdn=True)
    assert re.search(r'<script src="https://cdn\.plot\.ly/plotly-[0-9.]+\.min\.js"', page)
    assert len(page) < 200_000


def test_missing_sections_say_not_available():
    # GIVEN report data built where the diagnosis module (for one) is missing
    data = profile(make_trace(make_agent_run(steps=2)))
    data = replace(data, diagnosis=None, unavailable={**data.unavailable,
                                                      "diagnosis": "not available: no diagnose module"})
    page = render_html(data)
    diag = page[page.index('<section id="diagnosis">'):page.index('<section id="steps">')]
    assert "not available: no diagnose module" in diag


def test_figure_data_is_the_analysis():
    # GIVEN a report
    data = profile(make_trace(make_agent_run(steps=4)))
    page = render_html(data)
    figures = json.loads(re.search(r'id="ctxprof-figures">(.*?)</script>', page, re.S).group(1))
    # THEN the stacked bars carry each step's prefix-reused tokens
    bars = {t["name"]: t["y"] for t in figures["tokens"]["data"]}
    assert bars["prefix-reused"] == [s.prefix_reused_tokens for s in data.analysis.steps]
    assert bars["novel"] == [s.novel_tokens for s in data.analysis.steps]


def test_a_finding_shows_where_it_is_and_how_often_it_recurs():
    data = profile(make_trace(make_agent_run(steps=2)))
    finding = make_finding(run_id="run-1", step_id="s1", step_index=1, token_position=7,
                           before_text="Time: 10:00", after_text="Time: 10:01", tokens_lost=1200,
                           usd_lost=0.0123, fix="Move the time to the end of the prompt.", detail="",
                           occurrences=3, where="system prompt")
    page = render_html(replace(data, diagnosis=make_diagnosis(finding)))
    diag = page[page.index('<section id="diagnosis">'):page.index('<section id="steps">')]
    assert "run-1:1 (+2 more), system prompt" in diag
    assert "<code>Time: 10:00</code> &rarr; <code>Time: 10:01</code>" in diag
    assert "1,200" in diag and "$0.0123" in diag and "Move the time to the end" in diag


def test_empty_sections_say_so():
    # GIVEN one step (nothing to reuse) and no cost or scenario data, and no notes about them
    data = profile(make_trace(make_agent_run(steps=1)))
    page = render_html(replace(data, unavailable={}, costs=None, simulations=()))
    assert "No prices and no cache scenarios in this report." in page
    assert "No step shown reuses context of another step shown." in page
