"""Budgets file, baseline and check verdicts (profiler.check)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_builders import LoopShape, expected_input_tokens, make_trace
from profiler.analysis import Analysis, RunAnalysis, Totals, analyze
from profiler.check import (AGGREGATES, BASELINE_SCHEMA, METRICS, Baseline, Budgets, aggregate,
                            change_ratio, check, make_baseline, measure)
from profiler.errors import ConfigError, ProfilerError

SMALL = LoopShape(steps=3)  # 3 steps: 250 + 310 + 370 = 930 input tokens per run
BIG = LoopShape(steps=5)    # 5 steps: 1,850 input tokens per run


def budgets_file(tmp_path: Path, text: str, name: str = "ctxprof.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def analysis_of(*runs: tuple[str, str | None, LoopShape], **kwargs) -> Analysis:
    return analyze(make_trace(list(runs), **kwargs))


def with_costs(analysis: Analysis, usd_per_token: float | None) -> Analysis:
    """The analysis with every step's actual cost set to input_tokens x `usd_per_token`."""
    runs = []
    for run in analysis.runs:
        steps = tuple(dataclasses.replace(
            s, cost_actual_usd=None if usd_per_token is None else s.input_tokens * usd_per_token,
            cost_redundant_usd=None if usd_per_token is None else
            (s.prefix_reused_tokens + s.repeated_tokens) * usd_per_token) for s in run.steps)
        runs.append(RunAnalysis(run.run_id, run.workflow, run.trace, steps, Totals.of(steps)))
    return dataclasses.replace(analysis, runs=tuple(runs),
                               totals=Totals.of([s for r in runs for s in r.steps]))


# --------------------------------------------------------------------------------------------------
# Budgets file


def test_budgets_file_reads_global_and_workflow_limits_with_their_lines(tmp_path):
    # GIVEN a budgets file with settings, global budgets, a workflow override and regression limits
    path = budgets_file(tmp_path, """\
[check]
aggregate = "mean"

[budgets]
input_tokens_per_run = 50_000
redundancy_ratio = 0.6

[budgets.workflow."support-agent"]
input_tokens_per_run = 80000
aggregate = "max"

[regression]
cost_per_run_usd = "10%"
input_tokens_per_run = 0.05
""")
    # WHEN it is read
    budgets = Budgets.from_file(path)
    # THEN every limit carries its value, aggregate and line
    by_key = {(lim.kind, lim.workflow, lim.metric): lim for lim in budgets.limits}
    assert by_key[("budget", None, "input_tokens_per_run")].value == 50_000
    assert by_key[("budget", None, "input_tokens_per_run")].aggregate == "mean"
    assert by_key[("budget", None, "input_tokens_per_run")].where == f"{path}:5"
    assert by_key[("budget", "support-agent", "input_tokens_per_run")].aggregate == "max"
    assert by_key[("budget", "support-agent", "input_tokens_per_run")].line == 9
    assert by_key[("regression", None, "cost_per_run_usd")].value == pytest.approx(0.10)
    assert by_key[("regression", None, "input_tokens_per_run")].line == 14
    # AND the workflow's own limit replaces the global one, other global limits still apply
    effective = budgets.limits_for("support-agent", "budget")
    assert effective["input_tokens_per_run"].value == 80_000
    assert effective["redundancy_ratio"].value == 0.6
    assert budgets.limits_for("other", "budget")["input_tokens_per_run"].value == 50_000


@pytest.mark.parametrize("text, line, expected", [
    ("[budgets]\ninput_token_per_run = 5\n", 2,
     ["unknown metric 'input_token_per_run'", "did you mean 'input_tokens_per_run'", "[budgets]"]),
    ("[budgets]\nredundancy_ratio = 0.5\n\n[regression.workflow.\"a\"]\ncache_gap_tokens = 0.1\n", 5,
     ["unknown metric 'cache_gap_tokens'", "did you mean 'cache_gap_tokens_per_run'",
      '[regression.workflow.a]']),
    ("[budget]\ninput_tokens_per_run = 5\n", 1, ["unknown section [budget]", "did you mean 'budgets'"]),
    ("[check]\naggregat = 'max'\n", 2, ["unknown key 'aggregat' in [check]", "did you mean 'aggregate'"]),
    ("[check]\naggregate = 'maximum'\n", 2, ["aggregate must be one of max, mean, median, p95",
                                             "did you mean 'max'"]),
    ("[budgets]\nscope = 'global'\n", 2, ["unknown metric 'scope'", "settings go in [check]"]),
    ("[budgets]\ninput_tokens_per_run = '50k'\n", 2, ["must be a number, got '50k'"]),
    ("[budgets]\ninput_tokens_per_run = -1\n", 2, ["must be >= 0"]),
    ("[budgets]\nredundancy_ratio = 60\n", 2, ["ratio between 0 and 1"]),
    ("[regression]\ninput_tokens_per_run = 'five%'\n", 2, ["is not a percentage"]),
    ("[budgets]\nworkflow = 3\n", 2, ["must be a table of workflows"]),
])
def test_bad_budgets_are_rejected_naming_file_line_and_key(tmp_path, text, line, expected):
    # GIVEN a budgets file with a mistake
    path = budgets_file(tmp_path, text)
    # WHEN it is read THEN a ConfigError names the file and line and says what is wrong
    with pytest.raises(ConfigError) as err:
        Budgets.from_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: "), message
    for part in expected:
        assert part in message, message


def test_malformed_toml_is_a_config_error_with_file_and_line(tmp_path):
    # GIVEN a budgets file with a TOML syntax error on line 3
    path = budgets_file(tmp_path, "[budgets]\ninput_tokens_per_run = 5\nredundancy_ratio = = 0.5\n")
    # WHEN it is read THEN the error points at file:3
    with pytest.raises(ConfigError, match=rf"^{path}:3: invalid TOML: "):
        Budgets.from_file(path)


def test_missing_budgets_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="budgets file not found"):
        Budgets.from_file(tmp_path / "nope.toml")


def test_pyproject_tool_ctxprof_table_is_read_with_lines(tmp_path):
    # GIVEN budgets kept in pyproject.toml under [tool.ctxprof]
    path = budgets_file(tmp_path, '[project]\nname = "x"\n\n[tool.ctxprof.budgets]\nsteps_per_run = 4\n'
                                  'step_per_run = 5\n', name="pyproject.toml")
    # WHEN read THEN the typo is reported on its line of pyproject.toml
    with pytest.raises(ConfigError, match=rf"{path}:6: unknown metric 'step_per_run'"):
        Budgets.from_file(path)


def test_budgets_from_a_dict_use_the_same_validation():
    budgets = Budgets.from_mapping({"budgets": {"steps_per_run": 4}})
    assert [(lim.metric, lim.value) for lim in budgets.limits] == [("steps_per_run", 4.0)]
    with pytest.raises(ConfigError, match="did you mean 'steps_per_run'"):
        Budgets.from_mapping({"budgets": {"step_per_run": 4}})


# --------------------------------------------------------------------------------------------------
# Aggregation and metrics


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=30))
def test_aggregates_match_numpy(values):
    assert aggregate(values, "max") == max(values)
    assert aggregate(values, "mean") == pytest.approx(np.mean(values), rel=1e-9, abs=1e-6)
    assert aggregate(values, "median") == pytest.approx(np.median(values), rel=1e-9, abs=1e-6)
    assert aggregate(values, "p95") == pytest.approx(np.percentile(values, 95), rel=1e-9, abs=1e-6)


def test_an_unknown_run_value_makes_the_aggregate_unknown():
    assert aggregate([1.0, None, 3.0], "max") is None
    assert aggregate([], "mean") is None


def test_measure_gives_per_run_values_per_workflow():
    # GIVEN two runs of one workflow (3 and 5 steps) and one run without a workflow name
    analysis = analysis_of(("a", "support-agent", SMALL), ("b", "support-agent", BIG), ("c", None, SMALL))
    # WHEN measured
    measured = measure(analysis)
    # THEN values are per run, grouped by workflow
    assert set(measured) == {"support-agent", "(unnamed)"}
    wf = measured["support-agent"]
    assert wf.values["input_tokens_per_run"] == (expected_input_tokens(SMALL), expected_input_tokens(BIG))
    assert wf.values["steps_per_run"] == (3.0, 5.0)
    assert wf.aggregate("steps_per_run", "mean") == 4.0
    assert wf.values["cost_per_run_usd"] == (None, None)  # not priced
    assert wf.values["cache_gap_tokens_per_run"][0] > 0  # reported cached 0, prefix reuse > 0


# --------------------------------------------------------------------------------------------------
# Check verdicts


def test_budget_fails_when_the_max_run_exceeds_it_and_passes_with_mean():
    # GIVEN runs of 930 and 1,850 input tokens and a 1,500-token budget
    analysis = analysis_of(("a", "w", SMALL), ("b", "w", BIG))
    # WHEN checked with the default aggregate (max) THEN it fails, naming the metric
    result = check(analysis, Budgets.from_mapping({"budgets": {"input_tokens_per_run": 1500}}))
    assert not result.passed
    [row] = result.failures
    assert (row.workflow, row.metric, row.kind, row.current, row.limit) == (
        "w", "input_tokens_per_run", "budget", 1850.0, 1500.0)
    # AND with the mean (1,390) it passes
    result = check(analysis, Budgets.from_mapping(
        {"check": {"aggregate": "mean"}, "budgets": {"input_tokens_per_run": 1500}}))
    assert result.passed and result.rows[0].current == pytest.approx(1390.0)


def test_a_value_equal_to_its_budget_passes():
    analysis = analysis_of(("a", "w", SMALL))
    result = check(analysis, Budgets.from_mapping(
        {"budgets": {"input_tokens_per_run": expected_input_tokens(SMALL), "steps_per_run": 3}}))
    assert result.passed


def test_workflow_specific_budget_overrides_the_global_one():
    analysis = analysis_of(("a", "big", BIG), ("b", "small", SMALL))
    budgets = Budgets.from_mapping({"budgets": {"steps_per_run": 3, "workflow": {"big": {"steps_per_run": 5}}}})
    result = check(analysis, budgets)
    assert result.passed
    assert {(r.workflow, r.limit) for r in result.rows} == {("big", 5.0), ("small", 3.0)}


def test_unknown_workflow_in_budgets_is_a_config_error_with_suggestion(tmp_path):
    # GIVEN budgets for a misspelt workflow
    path = budgets_file(tmp_path, '[budgets.workflow."suport-agent"]\nsteps_per_run = 3\n')
    analysis = analysis_of(("a", "support-agent", SMALL))
    # WHEN checked THEN the typo is an error naming file, line and the likely workflow
    with pytest.raises(ConfigError, match=rf"{path}:1: workflow 'suport-agent' .* is not in the traces "
                                          r"\(did you mean 'support-agent'\?\)"):
        check(analysis, Budgets.from_file(path))
    # AND a caller that checks only some workflows can relax that
    result = check(analysis, Budgets.from_file(path), strict_workflows=False)
    assert result.rows == () and result.warnings


def test_regression_against_baseline_fails_beyond_the_allowed_growth():
    # GIVEN a baseline of 3-step runs and a change that makes them 5-step runs
    baseline = make_baseline(analysis_of(("a", "w", SMALL)))
    after = analysis_of(("a", "w", BIG))
    budgets = Budgets.from_mapping({"regression": {"input_tokens_per_run": 0.05, "steps_per_run": 1.0}})
    # WHEN checked
    result = check(after, budgets, baseline)
    # THEN input tokens (+98.9%) fail, steps (+66.7% of an allowed +100%) pass
    verdicts = {r.metric: (r.verdict, r.change_ratio) for r in result.rows}
    assert verdicts["input_tokens_per_run"][0] == "fail"
    assert verdicts["input_tokens_per_run"][1] == pytest.approx(1850 / 930 - 1)
    assert verdicts["steps_per_run"] == ("pass", pytest.approx(2 / 3))
    assert not result.passed


def test_unchanged_workflow_passes_its_regression_check():
    analysis = analysis_of(("a", "w", SMALL))
    baseline = Baseline.from_dict(json.loads(json.dumps(make_baseline(analysis).to_dict())))
    result = check(analysis, Budgets.from_mapping({"regression": {m: 0.0 for m in METRICS
                                                                  if METRICS[m].unit != "usd"}}), baseline)
    assert result.passed, [r.to_dict() for r in result.failures]
    assert all(r.change_ratio == 0.0 for r in result.rows)


def test_cache_gap_opening_up_fails_its_regression_limit():
    # GIVEN a baseline where the provider served every prompt token from cache (cache gap <= 0)
    baseline = make_baseline(analysis_of(("a", "w", SMALL), cached_fraction=1.0))
    assert baseline.workflows["w"].value("cache_gap_tokens_per_run", "max") <= 0
    # WHEN a change stops the provider caching anything
    after = analysis_of(("a", "w", SMALL), cached_fraction=0.0)
    result = check(after, Budgets.from_mapping({"regression": {"cache_gap_tokens_per_run": 0.5}}), baseline)
    # THEN the regression fails
    [row] = result.rows
    assert row.verdict == "fail"


def test_change_ratio_is_relative_to_the_baseline_magnitude():
    assert change_ratio(0, 0) == 0.0
    assert change_ratio(0, 5) == math.inf
    assert change_ratio(100, 105) == pytest.approx(0.05)
    assert change_ratio(-10, -5) == pytest.approx(0.5)
    assert change_ratio(None, 5) is None


def test_workflow_missing_from_baseline_is_unknown_and_fails_unless_allowed():
    baseline = make_baseline(analysis_of(("a", "old", SMALL)))
    analysis = analysis_of(("a", "new", SMALL))
    budgets = Budgets.from_mapping({"regression": {"steps_per_run": 0.1}})
    result = check(analysis, budgets, baseline)
    [row] = result.rows
    assert row.verdict == "unknown" and "not in the baseline" in row.note
    assert not result.passed
    assert any("'old' is in the baseline but not in the traces" in w for w in result.warnings)
    assert check(analysis, budgets, baseline, allow_unknown=True).passed


def test_regression_limits_without_a_baseline_are_reported_not_silently_skipped():
    result = check(analysis_of(("a", "w", SMALL)), Budgets.from_mapping({"regression": {"steps_per_run": 0}}))
    assert result.rows == ()
    assert any("no baseline given" in w for w in result.warnings)


def test_cost_budget_is_unknown_without_prices_and_fails_unless_allowed():
    # GIVEN an unpriced analysis and a cost budget
    analysis = analysis_of(("a", "w", SMALL))
    budgets = Budgets.from_mapping({"budgets": {"cost_per_run_usd": 0.01}})
    # WHEN checked THEN the cost is unknown, which fails the check...
    result = check(analysis, budgets)
    [row] = result.rows
    assert (row.verdict, row.current) == ("unknown", None)
    assert not result.passed
    # ... unless unknowns are allowed (flag, or allow_unknown in [check])
    assert check(analysis, budgets, allow_unknown=True).passed
    assert check(analysis, Budgets.from_mapping({"check": {"allow_unknown": True},
                                                 "budgets": {"cost_per_run_usd": 0.01}})).passed


def test_partially_priced_run_has_unknown_cost():
    analysis = with_costs(analysis_of(("a", "w", SMALL)), 1e-6)
    run = analysis.runs[0]
    steps = (dataclasses.replace(run.steps[0], cost_actual_usd=None), *run.steps[1:])
    partial = dataclasses.replace(analysis, runs=(dataclasses.replace(run, steps=steps),))
    assert measure(partial)["w"].values["cost_per_run_usd"] == (None,)


def test_cost_budget_and_regression_on_priced_analyses():
    # GIVEN analyses priced at $1 per million input tokens (930 and 1,850 tokens per run)
    before = with_costs(analysis_of(("a", "w", SMALL)), 1e-6)
    after = with_costs(analysis_of(("a", "w", BIG)), 1e-6)
    budgets = Budgets.from_mapping({"budgets": {"cost_per_run_usd": 0.0015},
                                    "regression": {"cost_per_run_usd": 0.10}})
    # WHEN the baseline is the cheaper version
    baseline = make_baseline(before)
    assert baseline.workflows["w"].value("cost_per_run_usd", "max") == pytest.approx(930e-6)
    # THEN the cheaper version passes, the dearer one fails both the budget and the regression
    assert check(before, budgets, baseline).passed
    result = check(after, budgets, baseline)
    assert {(r.kind, r.verdict) for r in result.rows} == {("budget", "fail"), ("regression", "fail")}
    assert result.rows[0].current == pytest.approx(1850e-6)


def test_costs_from_the_cost_model_feed_cost_budgets():
    from profiler.check import apply_prices

    # GIVEN a trace of a model the price table knows
    trace = make_trace([("a", "w", SMALL)], model="gpt-4o-mini")
    analysis, _ = apply_prices(analyze(trace), [trace])
    # WHEN checked against a generous cost budget THEN the cost is known and within it
    result = check(analysis, Budgets.from_mapping({"budgets": {"cost_per_run_usd": 1.0}}))
    assert result.rows[0].current is not None and result.rows[0].current > 0
    assert result.passed


# --------------------------------------------------------------------------------------------------
# Baseline file


def test_baseline_round_trips_through_json(tmp_path):
    baseline = make_baseline(analysis_of(("a", "w", SMALL), ("b", "w", BIG)))
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline.to_dict()), encoding="utf-8")
    loaded = Baseline.from_file(path)
    assert loaded.to_dict() == baseline.to_dict()
    data = json.loads(path.read_text())
    assert (data["schema"], data["version"]) == (BASELINE_SCHEMA, 1)
    assert set(data["workflows"]["w"]["metrics"]["input_tokens_per_run"]) == set(AGGREGATES)
    assert data["workflows"]["w"]["metrics"]["cost_per_run_usd"]["max"] is None


@pytest.mark.parametrize("content, match", [
    ('{"schema": "ctxprof.analysis/1"}', "not a ctxprof baseline"),
    ('{"schema": "ctxprof.baseline", "version": 99, "workflows": {}}', "newer than this ctxprof reads"),
    ('{"schema": "ctxprof.baseline", "version": 1, "workflows": {"w": {"runs": 1, "metrics": '
     '{"steps_per_run": {"max": "3"}}}}}', "workflows.w.metrics.steps_per_run.max"),
    ('{"schema": ', r":1: invalid JSON"),
])
def test_bad_baselines_are_config_errors(tmp_path, content, match):
    path = tmp_path / "baseline.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        Baseline.from_file(path)


def test_no_runs_is_unusable_input():
    empty = analyze([])
    with pytest.raises(ProfilerError, match="no runs"):
        check(empty, Budgets.from_mapping({"budgets": {"steps_per_run": 1}}))


def test_check_result_to_dict_is_json_safe():
    # GIVEN a regression from a zero baseline (an infinite change)
    baseline = make_baseline(analysis_of(("a", "w", SMALL)))
    zero = {agg: 0.0 for agg in AGGREGATES}
    w = baseline.workflows["w"]
    baseline = dataclasses.replace(baseline, workflows={"w": dataclasses.replace(
        w, metrics={**w.metrics, "output_tokens_per_run": zero})})
    result = check(analysis_of(("a", "w", SMALL)),
                   Budgets.from_mapping({"regression": {"output_tokens_per_run": 10.0}}), baseline)
    [row] = result.rows
    assert row.change_ratio == math.inf and row.verdict == "fail"
    # WHEN serialised THEN the JSON is strict (no Infinity)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["rows"][0]["change_ratio"] is None and data["passed"] is False


def test_the_budgets_example_in_the_docs_is_valid():
    # GIVEN the first TOML example of docs/ci.md WHEN read THEN it is a valid budgets file
    docs = Path(__file__).resolve().parents[1] / "docs" / "ci.md"
    if not docs.exists():
        pytest.skip("docs/ci.md is not in this checkout")
    text = docs.read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    budgets = Budgets.from_mapping(tomllib_loads(example))
    assert budgets.limits_for("support-agent", "budget")["input_tokens_per_run"].aggregate == "p95"
    assert budgets.limits_for("other", "regression")["cost_per_run_usd"].value == pytest.approx(0.1)


def tomllib_loads(text: str):
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(text)


@settings(max_examples=40, deadline=None)
@given(
    workflows=st.lists(st.text(alphabet='ab.-_ "\\\'é#[]=', min_size=1, max_size=8), max_size=3,
                       unique=True),
    metrics=st.lists(st.sampled_from([m for m in METRICS if METRICS[m].unit != "ratio"]), min_size=1,
                     max_size=4, unique=True),
    blank_lines=st.integers(0, 2),
)
def test_limit_lines_match_where_they_were_written(tmp_path_factory, workflows, metrics, blank_lines):
    # GIVEN a budgets file written line by line (workflow names quoted, with dots, quotes, brackets)
    lines: list[str] = []
    expected: dict[tuple[str | None, str], int] = {}

    def table(header: str, workflow: str | None) -> None:
        lines.extend([""] * blank_lines + [header, "# limits"])
        for i, metric in enumerate(metrics):
            lines.append(f"{metric} = {100 + i}  # per run")
            expected[(workflow, metric)] = len(lines)

    table("[budgets]", None)
    for name in workflows:
        table(f"[budgets.workflow.{json.dumps(name)}]", name)
    path = tmp_path_factory.mktemp("budgets") / "ctxprof.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # WHEN read THEN every limit knows the line it came from
    budgets = Budgets.from_file(path)
    assert {(lim.workflow, lim.metric): lim.line for lim in budgets.limits} == expected
