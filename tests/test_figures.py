"""Plotly figures: they show the analysis' numbers, and importing the module does not import plotly."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

pytest.importorskip("plotly")

from profiler import figures  # noqa: E402
from profiler.analysis import analyze  # noqa: E402
from profiler.report import build_report_data  # noqa: E402
from profiler.report.data import CostSummary, Scenario, ScenarioStep  # noqa: E402
from report_traces import make_agent_run, make_trace  # noqa: E402


def by_name(fig):
    return {t.name: t for t in fig.data}


def test_tokens_per_step_stacks_the_metrics_of_each_step():
    analysis = analyze(make_trace(make_agent_run(steps=4)))
    fig = figures.tokens_per_step(analysis)
    bars = by_name(fig)
    assert fig.layout.barmode == "stack"
    assert list(bars["prefix-reused"].y) == [s.prefix_reused_tokens for s in analysis.steps]
    assert list(bars["repeated (non-prefix)"].y) == [s.repeated_tokens for s in analysis.steps]
    assert list(bars["novel"].y) == [s.novel_tokens for s in analysis.steps]
    assert list(bars["output"].y) == [s.output_tokens for s in analysis.steps]


def test_many_steps_are_summed_by_depth():
    # GIVEN more steps than a bar chart shows one by one
    runs = [make_agent_run(f"r{i}", steps=3) for i in range(figures.MAX_STEP_BARS // 3 + 1)]
    analysis = analyze(make_trace(*runs))
    # WHEN charted
    bars = by_name(figures.tokens_per_step(analysis))
    # THEN there is one bar per depth, the sum over runs
    assert list(bars["novel"].x) == [0, 1, 2]
    for depth in range(3):
        assert bars["novel"].y[depth] == sum(s.novel_tokens for s in analysis.steps if s.index == depth)


def test_cumulative_cost_uses_usd_when_priced_and_tokens_otherwise():
    analysis = analyze(make_trace(make_agent_run(steps=3)))
    unpriced = by_name(figures.cumulative_cost(analysis))
    inputs = [s.input_tokens for s in analysis.steps]
    assert list(unpriced["no reuse"].y) == [sum(inputs[:i + 1]) for i in range(3)]
    # GIVEN costs on every step
    runs = tuple(replace(r, steps=tuple(replace(s, cost_no_cache_usd=1.0, cost_actual_usd=0.6,
                                                cost_ideal_usd=0.5) for s in r.steps))
                 for r in analysis.runs)
    priced = by_name(figures.cumulative_cost(replace(analysis, runs=runs)))
    assert list(priced["no caching"].y) == [1.0, 2.0, 3.0]
    assert list(priced["ideal prefix reuse"].y) == [0.5, 1.0, 1.5]


def test_reuse_heatmap_and_cached_vs_ideal_show_the_report_data():
    data = build_report_data(make_trace(make_agent_run(steps=3)))
    heat = figures.reuse_heatmap(data).data[0]
    assert [[v or 0 for v in row] for row in heat.z] == [list(r) for r in data.matrix.tokens]
    sim = Scenario(provider="openai", input_tokens=1, predicted_cached_tokens=1, reported_cached_tokens=None,
                   cost_usd=1.0, no_cache_cost_usd=2.0, saving_usd=1.0,
                   steps=(ScenarioStep("run-1", "s2", 10, 7, None, None, None),))
    data = replace(data, simulations=(sim,),
                   costs=CostSummary(actual_usd=1.5, no_cache_usd=2.0, ideal_usd=0.5, redundant_usd=1.0,
                                     priced_steps=3, unpriced_steps=0))
    cached = by_name(figures.cached_vs_ideal(data))
    # the ideal in the provider's tokens, as the reported cached count beside it
    assert list(cached["ideal (prefix reusable)"].y) == [s.provider_prefix_reused_tokens
                                                         for s in data.analysis.steps]
    assert list(cached["reported cached"].y) == [s.reported_cached_tokens for s in data.analysis.steps]
    assert list(cached["openai (simulated)"].y) == [None, None, 7]
    costs = figures.scenario_costs(data).data[0]
    assert list(costs.x) == ["no caching", "actual (recorded)", "openai rules", "ideal prefix cache"]
    assert list(costs.y) == [2.0, 1.5, 1.0, 0.5]
    assert set(figures.all_figures(data)) == {"tokens", "cumulative", "scenarios", "matrix", "cached"}


def test_importing_figures_and_report_does_not_import_plotly():
    code = ("import sys, profiler.figures, profiler.report, profiler.report.data; "
            "print('plotly' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
