"""`ctxprof diff`: traces, analyses and baselines side by side (profiler.diff)."""

from __future__ import annotations

import json

import pytest

from ci_builders import LoopShape, expected_input_tokens, expected_reused_tokens, write_loop_trace
from profiler.cli.app import main
from profiler.diff import TOTAL_KEY, diff, load_summary
from profiler.errors import ProfilerError

BEFORE = LoopShape(steps=3)                      # plan, act, plan #2
AFTER = LoopShape(steps=5, system_tokens=300)    # a longer system prompt and two more steps


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


@pytest.fixture
def traces(tmp_path):
    a = write_loop_trace(tmp_path / "a.jsonl", runs=2, shape=BEFORE)
    b = write_loop_trace(tmp_path / "b.jsonl", runs=2, shape=AFTER)
    return a, b


def test_steps_are_matched_by_name_and_occurrence(traces):
    # GIVEN a 3-step and a 5-step version of a workflow
    a, b = traces
    # WHEN diffed
    result = diff(load_summary(a)[0], load_summary(b)[0])
    # THEN steps pair up by name and occurrence; the extra iterations show as added
    [wf] = result.workflows
    assert wf.workflow == "support-agent"
    assert [r.key for r in wf.steps] == ["plan", "act", "plan #2", "act #2", "plan #3"]
    added = [r.key for r in wf.steps if r.a is None]
    assert added == ["act #2", "plan #3"]
    # AND the first step grew by the 100 extra system-prompt tokens
    plan = wf.steps[0]
    assert (plan.a.input_tokens, plan.b.input_tokens, plan.delta("input_tokens")) == (250, 350, 100)
    # AND the per-run row carries means per run, with the closed-form token counts
    total = wf.total
    assert total.key == TOTAL_KEY and (total.a.count, total.b.count) == (2, 2)
    assert total.a.input_tokens == expected_input_tokens(BEFORE)
    assert total.b.input_tokens == expected_input_tokens(AFTER)
    assert total.b.reused_tokens == expected_reused_tokens(AFTER)
    assert total.delta("redundancy_ratio") == pytest.approx(
        expected_reused_tokens(AFTER) / expected_input_tokens(AFTER)
        - expected_reused_tokens(BEFORE) / expected_input_tokens(BEFORE))


def test_analysis_json_gives_the_same_diff_as_the_trace(traces, tmp_path):
    # GIVEN the analysis JSON of trace A
    a, b = traces
    assert run_cli("analyze", a, "--format", "json", "-o", tmp_path / "a.json") == 0
    # WHEN diffed against B THEN the token figures equal those of diffing the trace itself (costs
    # are whatever the analysis JSON carried: `analyze` may not price)
    from_trace = diff(load_summary(a)[0], load_summary(b)[0]).to_dict()
    from_json = diff(load_summary(tmp_path / "a.json")[0], load_summary(b)[0]).to_dict()
    assert tokens_only(from_json["workflows"]) == tokens_only(from_trace["workflows"])


def test_a_profile_json_gives_the_same_diff_as_the_trace(traces, tmp_path):
    # GIVEN the JSON profile of trace A, as `ctxprof report -o a.json` writes it
    a, b = traces
    assert run_cli("report", a, "-o", tmp_path / "a.json") == 0
    # WHEN diffed against B THEN every figure equals that of diffing the trace itself
    from_trace = diff(load_summary(a)[0], load_summary(b)[0]).to_dict()
    from_json = diff(load_summary(tmp_path / "a.json")[0], load_summary(b)[0]).to_dict()
    assert from_json["workflows"] == from_trace["workflows"]


def tokens_only(value):
    """`value` without its cost figures."""
    if isinstance(value, dict):
        return {k: tokens_only(v) for k, v in value.items() if k != "cost_usd"}
    if isinstance(value, list):
        return [tokens_only(v) for v in value]
    return value


def test_baseline_sides_compare_per_run_totals_only(traces, tmp_path):
    a, b = traces
    assert run_cli("baseline", a, "-o", tmp_path / "base.json") == 0
    result = diff(load_summary(tmp_path / "base.json")[0], load_summary(b)[0])
    [wf] = result.workflows
    assert wf.steps == ()
    assert wf.total.a.input_tokens == expected_input_tokens(BEFORE)
    assert wf.total.b.input_tokens == expected_input_tokens(AFTER)


def test_workflows_on_one_side_only(tmp_path):
    a = write_loop_trace(tmp_path / "a.jsonl", workflow="old", shape=BEFORE)
    b = write_loop_trace(tmp_path / "b.jsonl", workflow="new", shape=BEFORE)
    result = diff(load_summary(a)[0], load_summary(b)[0])
    assert [(w.workflow, w.total.a is None, w.total.b is None) for w in result.workflows] == [
        ("old", False, True), ("new", True, False)]


def test_cli_formats(traces, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a fixed terminal width for the table
    a, b = traces
    # table
    assert run_cli("diff", a, b) == 0
    out = capsys.readouterr().out
    assert "plan #3" in out and "250 -> 350 (+40.0%)" in out
    # json
    assert run_cli("diff", a, b, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "ctxprof.diff/1"
    plan = data["workflows"][0]["steps"][0]
    assert (plan["key"], plan["delta"]["input_tokens"]) == ("plan", 100)
    # markdown
    assert run_cli("diff", a, b, "--format", "markdown") == 0
    md = capsys.readouterr().out
    assert "#### workflow support-agent" in md
    assert "| act #2 | 0 / 2 | - -> 530 (added) |" in md


def test_costs_are_diffed_when_priced(traces):
    a, b = traces
    result = diff(load_summary(a)[0], load_summary(b)[0])
    total = result.workflows[0].total
    assert total.a.cost_usd is not None and total.b.cost_usd > total.a.cost_usd


@pytest.mark.parametrize("content, match", [
    ('{"schema": "something-else"}', "field 'schema' is 'something-else'"),
    ('{"schema": "ctxprof.analysis/1", "runs": [{"workflow": "w", "steps": [{"input_tokens": "x"}]}]}',
     r"runs\[0\]\.steps\[0\]: field 'run_id' is missing"),
    ("not json at all", "neither a ctxprof trace nor a JSON"),
])
def test_unusable_inputs_are_errors(tmp_path, content, match):
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ProfilerError, match=match):
        load_summary(path)


def test_an_analysis_with_a_malformed_number_names_the_field(traces, tmp_path):
    # GIVEN a real analysis JSON whose first step's input_tokens is not a number
    from profiler.analysis import analyze
    from profiler.trace import load_trace

    data = analyze(load_trace(traces[0])).to_dict()
    data["runs"][0]["steps"][0]["input_tokens"] = "x"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    # WHEN it is read THEN the error names the step and the field
    with pytest.raises(ProfilerError, match=r"runs\[0\]\.steps\[0\]: field 'input_tokens' must be int"):
        load_summary(path)


def test_cli_missing_file_exits_2(traces, tmp_path, capsys):
    a, _ = traces
    assert run_cli("diff", a, tmp_path / "missing.jsonl") == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
