"""Analysis results: text traces, content-free traces, DataFrames, reported usage."""

from __future__ import annotations

import pytest
from builders import make_step, make_trace

from profiler.analysis import analyze
from profiler.trace.model import Output, Prompt, Step, Usage


def test_dataframes_have_one_row_per_step_and_run():
    steps = [make_step("a", tokens=[1, 2, 3]), make_step("a", tokens=[1, 2, 3, 4]), make_step("b", tokens=[5])]
    result = analyze(make_trace(steps))
    assert list(result.steps_df["input_tokens"]) == [3, 4, 1]
    assert list(result.runs_df["run_id"]) == ["a", "b"]
    assert "<table" in result._repr_html_()


def test_reported_cache_and_gap():
    usage = Usage(input_tokens=2000, cache_read_tokens=1024, output_tokens=5)
    steps = [make_step("a", tokens=list(range(2000))),
             make_step("a", tokens=list(range(2000)), usage=usage), make_step("a", tokens=[7])]
    m = analyze(make_trace(steps)).steps
    assert m[0].reported_cached_tokens is None and m[0].cache_gap_tokens is None
    assert (m[1].reported_cached_tokens, m[1].cache_gap_tokens) == (1024, 2000 - 1024)
    totals = analyze(make_trace(steps)).totals
    assert totals.reported_cached_tokens == 1024 and totals.cache_gap_tokens == 976


def test_content_free_block_hash_steps_analyse():
    def hashed(step_id, blocks, n):
        return Step(run_id="r", step_id=step_id, start_unix_s=float(len(step_id)),
                    prompt=Prompt(block_hashes=tuple(blocks), block_size=16, num_tokens=n),
                    output=Output(num_tokens=3))
    steps = [hashed("1", [11, 12, 13], 50), hashed("22", [11, 12, 99, 13], 70)]
    m = analyze(make_trace(steps)).steps[1]
    assert m.content_level == "hashes"
    assert (m.input_tokens, m.prefix_reused_tokens, m.repeated_tokens, m.output_tokens) == (70, 32, 16, 3)


def test_text_steps_measure_shared_system_prompt():
    system = {"role": "system", "content": "Policy text. " * 300}
    steps = [make_step("r", messages=[system, {"role": "user", "content": "plan"}], answer="the plan"),
             make_step("r", messages=[system, {"role": "user", "content": "execute"}], answer="done")]
    first, second = analyze(make_trace(steps)).steps
    assert first.prefix_reused_tokens == 0
    assert second.prefix_reused_tokens > 600  # the whole system message
    assert second.novel_tokens < 10
    assert second.sources[0].step_id == steps[0].step_id


def test_tool_steps_are_not_token_metrics():
    steps = [make_step("r", tokens=[1, 2]), make_step("r", tokens=[], kind="tool")]
    assert len(analyze(make_trace(steps)).steps) == 1


def test_steps_without_content_use_reported_usage_and_warn():
    step = Step(run_id="r", step_id="1", usage=Usage(input_tokens=1234, output_tokens=5))
    result = analyze(make_trace([step]))
    assert result.steps[0].input_tokens == 1234 and result.steps[0].novel_tokens == 1234
    assert any("no prompt content" in w for w in result.warnings)


def test_young_collections_are_rarer_during_an_analysis_and_restored_after():
    import gc

    from profiler.analysis import analyze

    trace = make_trace([make_step("r", tokens=[1, 2, 3]), make_step("r", tokens=[1, 2, 3, 4])])
    before = gc.get_threshold()
    seen = []
    # WHEN an analysis runs, THEN young collections wait for 100,000 allocations
    analyze(trace, progress=lambda steps, tokens: seen.append(gc.get_threshold()[0]))
    assert seen and set(seen) == {100_000}
    # AND the thresholds in force before come back, also when the analysis fails
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError):
        analyze(trace, progress=lambda steps, tokens: (_ for _ in ()).throw(RuntimeError("stop")))
    assert gc.get_threshold() == before
    # AND a collector switched off (threshold 0) stays off
    try:
        gc.set_threshold(0)
        analyze(trace, progress=lambda steps, tokens: seen.append(gc.get_threshold()[0]))
        assert seen[-1] == 0 and gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
