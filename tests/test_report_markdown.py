"""The Markdown report: compact tables, escaped text, and always under GitHub's step-summary limit."""

from __future__ import annotations

import io
from dataclasses import replace

from profiler.analysis import Analysis, AnalysisOptions, RunAnalysis, StepMetrics, Totals
from builders import make_diagnosis, make_finding
from profiler.options import ProfileOptions
from profiler.profile import Profile, profile, reuse_matrix
from profiler.render import render
from profiler.render.markdown import GITHUB_SUMMARY_LIMIT_BYTES, md, render_markdown
from report_traces import make_agent_run, make_trace


def make_metrics(run_id: str, index: int, name: str = "step", input_tokens: int = 1000) -> StepMetrics:
    prefix = input_tokens // 2
    return StepMetrics(run_id=run_id, step_id=f"s{index}", name=name, index=index, model="gpt-4o",
                       provider="openai", start_unix_s=None, latency_ms=None, content_level="text",
                       tokenizer=None, input_tokens=input_tokens, output_tokens=10,
                       prefix_reused_tokens=prefix, block_reused_tokens=prefix, repeated_tokens=0,
                       novel_tokens=input_tokens - prefix, reported_input_tokens=None,
                       reported_cached_tokens=None, reported_cache_write_tokens=None,
                       cache_gap_tokens=None, redundancy_ratio=0.5)


def make_data(runs: int, steps: int, name: str = "step", findings: int = 0) -> Profile:
    """Report data of `runs` x `steps` steps built directly (no tokenizing), for size tests."""
    run_list = []
    for r in range(runs):
        ms = tuple(make_metrics(f"run-{r}", i, name) for i in range(steps))
        run_list.append(RunAnalysis(run_id=f"run-{r}", workflow="wf", trace=None, steps=ms,
                                    totals=Totals.of(ms)))
    all_steps = [s for r in run_list for s in r.steps]
    analysis = Analysis(runs=tuple(run_list), totals=Totals.of(all_steps), options=AnalysisOptions())
    diag = make_diagnosis(*(make_finding(run_id="run-0", step_id="s1", step_index=1, token_position=i,
                                         before_text=name, after_text=name, tokens_lost=5,
                                         usd_lost=None, fix=name, detail="", where="")
                            for i in range(findings)))
    return Profile(options=ProfileOptions(), analysis=analysis, diagnosis=diag,
                   matrix=reuse_matrix(analysis))


def markdown(data: Profile, **options) -> str:
    buf = io.StringIO()
    render_markdown(data, buf, **options)
    return buf.getvalue()


def test_a_small_report_has_every_section_and_no_html():
    # GIVEN a two-run trace
    text = markdown(profile(make_trace(make_agent_run("r1"), make_agent_run("r2"))))
    # THEN the headline, runs, diagnosis and steps are there as Markdown tables, without HTML tags
    for heading in ("## ctxprof report", "### Runs", "### Diagnosis", "### Steps"):
        assert heading in text
    assert "| total tokens |" in text and "| redundant share of input |" in text
    assert "<" not in text.replace("&lt;", "")


def test_long_tables_are_cut_with_a_note():
    # GIVEN 40 runs of 10 steps and 100 findings
    text = markdown(make_data(runs=40, steps=10, findings=100))
    # THEN each table is cut, saying how much was left out
    assert "_10 more runs not shown" in text
    assert "_350 more steps not shown" in text
    assert "_80 more findings not shown" in text


def test_the_report_always_fits_a_github_step_summary():
    # GIVEN very long step names in a big report (tables alone would exceed the budget)
    data = make_data(runs=200, steps=50, name="x" * 5000, findings=5000)
    # WHEN the tables are allowed many rows but the output has a small byte budget
    buf = io.StringIO()
    render_markdown(data, buf, max_bytes=20_000)
    # THEN it shrank to fit
    assert len(buf.getvalue().encode("utf-8")) <= 20_000
    # AND with the default budget it is under GitHub's 1 MiB limit
    assert len(markdown(data).encode("utf-8")) < GITHUB_SUMMARY_LIMIT_BYTES


def test_trace_text_is_escaped_for_tables():
    assert md("a|b") == "a\\|b"
    assert md("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert md("line1\nline2") == "line1⏎line2"
    assert md("`code` *bold* [link](x)") == "\\`code\\` \\*bold\\* \\[link\\](x)"
    # A hostile step name stays inside its cell.
    text = markdown(make_data(runs=1, steps=2, name="a | b\n| c"))
    rows = [line for line in text.splitlines() if line.startswith("| 0 ")]
    assert rows and rows[0].count(" | ") == 7


def test_render_dispatches_to_markdown():
    data = make_data(runs=1, steps=3)
    buf = io.StringIO()
    render(data, buf, "markdown")
    assert buf.getvalue() == markdown(data)
    assert "not available" in markdown(replace(data, diagnosis=None))
