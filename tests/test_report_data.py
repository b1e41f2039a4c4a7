"""ReportData: built once from traces; sections that need missing modules say so."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from profiler.analysis import analyze
from profiler.report import build_report_data
from profiler.report.data import (SECTION_COSTS, SECTION_DIAGNOSIS, SECTION_SIMULATIONS, ReportData,
                                  finding_from, reuse_matrix, scenario_from)
from report_traces import make_agent_run, make_trace


def test_headline_matches_the_analysis_totals():
    # GIVEN a two-run agent trace
    trace = make_trace(make_agent_run("r1"), make_agent_run("r2", stamp_system=True))
    # WHEN the report data is built
    data = build_report_data(trace)
    # THEN the headline figures are the analysis totals
    t = analyze(trace).totals
    h = data.headline()
    assert h["total_tokens"] == t.input_tokens + t.output_tokens
    assert h["redundant_tokens"] == t.prefix_reused_tokens + t.repeated_tokens
    assert h["redundant_share"] == pytest.approx(t.redundancy_ratio)
    assert h["runs"] == 2 and h["steps"] == 10
    assert data.steps_df.shape[0] == 10


def test_reuse_matrix_rows_add_up_to_each_steps_reused_tokens():
    # GIVEN an analysed trace (run scope: every source lies in the same run)
    analysis = analyze(make_trace(make_agent_run("r1", steps=6), make_agent_run("r2", steps=4)))
    # WHEN the reuse matrix is built
    m = reuse_matrix(analysis)
    # THEN row i sums to step i's prefix + repeated tokens, sources are earlier steps of its run,
    # and the prefix part never exceeds the total
    steps = analysis.steps
    assert m.outside_tokens == 0 and m.omitted_steps == 0
    for i, s in enumerate(steps):
        assert sum(m.tokens[i]) == s.prefix_reused_tokens + s.repeated_tokens
        assert sum(m.prefix[i]) == s.prefix_reused_tokens
        for j, v in enumerate(m.tokens[i]):
            if v:
                assert j < i and steps[j].run_id == s.run_id
                assert m.prefix[i][j] <= v


def test_reuse_matrix_is_cut_and_counts_what_it_leaves_out():
    analysis = analyze(make_trace(make_agent_run("r1", steps=6)))
    m = reuse_matrix(analysis, max_steps=3)
    assert len(m.keys) == 3 and m.omitted_steps == 3
    assert len(m.tokens) == 3 and all(len(r) == 3 for r in m.tokens)


@pytest.mark.parametrize("missing, section, named", [
    ("profiler.cost", SECTION_COSTS, "profiler.cost"),
    ("profiler.cache_sim.providers", SECTION_SIMULATIONS, "profiler.cache_sim"),
    ("profiler.diagnose", SECTION_DIAGNOSIS, "profiler.diagnose"),
])
def test_a_section_whose_module_cannot_be_imported_carries_a_note(monkeypatch, missing, section, named):
    # GIVEN an installation where one section's module cannot be imported (None in sys.modules makes
    # `import` fail as for a missing module)
    monkeypatch.setitem(sys.modules, missing, None)
    data = build_report_data(make_trace(make_agent_run()))
    # THEN that section is empty with a note naming the module, and the others are filled in
    assert "not available" in data.unavailable[section] and named in data.unavailable[section]
    assert set(data.unavailable) == {section}


def test_with_every_module_installed_every_section_fills_in():
    # GIVEN a trace of a priced model and every optional module
    data = build_report_data(make_trace(make_agent_run("r1"), make_agent_run("r2", stamp_system=True)))
    # THEN costs, three provider scenarios and a diagnosis are present, with no notes
    assert data.unavailable == {}
    assert data.costs is not None and data.costs.priced_steps == 10
    assert data.costs.no_cache_usd >= data.costs.ideal_usd
    assert [s.provider for s in data.simulations] == ["openai", "anthropic", "gemini"]
    assert data.diagnosis is not None


def _fake_module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def test_sections_are_wired_to_the_module_contracts(monkeypatch):
    # GIVEN stand-ins for the pricing, cost, simulation and diagnosis modules, shaped as their
    # contracts (this test checks the wiring only; the real modules are tested beside them)
    calls = {}

    def apply_costs(analysis, traces, prices):
        from dataclasses import replace

        from profiler.analysis import RunAnalysis, Totals
        calls["apply_costs"] = prices
        runs = []
        for r in analysis.runs:
            steps = tuple(replace(s, cost_actual_usd=0.5, cost_no_cache_usd=1.0, cost_ideal_usd=0.25,
                                  cost_redundant_usd=0.75) for s in r.steps)
            runs.append(RunAnalysis(r.run_id, r.workflow, r.trace, steps, Totals.of(steps)))
        all_steps = [s for r in runs for s in r.steps]
        return replace(analysis, runs=tuple(runs), totals=Totals.of(all_steps))

    def simulate_provider(traces, provider, prices=None, **options):
        calls.setdefault("simulate_options", {})[provider] = options
        totals = SimpleNamespace(input_tokens=100, predicted_cached_tokens=60, reported_cached_tokens=None,
                                 cost_usd=0.4, no_cache_cost_usd=1.0, saving_usd=0.6)
        step = SimpleNamespace(run_id="run-1", step_id="s1", input_tokens=100, predicted_cached_tokens=60,
                               reported_cached_tokens=None, cost_usd=0.4, no_cache_cost_usd=1.0)
        return SimpleNamespace(provider=provider, steps=[step], totals=totals)

    def diagnose(traces, analysis=None, prices=None):
        calls["diagnose_analysis_priced"] = analysis.totals.cost_actual_usd is not None
        f = SimpleNamespace(run_id="run-1", step_id="s2", step_index=2, token_position=3,
                            kind="timestamp", before_text="Time: 1", after_text="Time: 2",
                            tokens_lost=900, usd_lost=0.01, fix="move the timestamp", detail=None)
        return SimpleNamespace(findings=[f])

    prices = object()
    monkeypatch.setitem(sys.modules, "profiler.pricing",
                        _fake_module("profiler.pricing",
                                     PriceTable=SimpleNamespace(default=lambda: prices)))
    monkeypatch.setitem(sys.modules, "profiler.cost", _fake_module("profiler.cost", apply_costs=apply_costs))
    monkeypatch.setitem(sys.modules, "profiler.cache_sim", _fake_module("profiler.cache_sim"))
    monkeypatch.setitem(sys.modules, "profiler.cache_sim.providers",
                        _fake_module("profiler.cache_sim.providers", simulate_provider=simulate_provider))
    monkeypatch.setitem(sys.modules, "profiler.diagnose", _fake_module("profiler.diagnose", diagnose=diagnose))
    # WHEN the report data is built
    data = build_report_data(make_trace(make_agent_run(steps=4)))
    # THEN every section is filled from them: default prices, priced analysis passed on to diagnose
    assert data.unavailable == {}
    assert calls == {"apply_costs": prices, "diagnose_analysis_priced": True,
                     "simulate_options": {"openai": {}, "anthropic": {"auto_breakpoints": True}, "gemini": {}}}
    assert data.costs.actual_usd == pytest.approx(2.0) and data.costs.ideal_saving_usd == pytest.approx(3.0)
    assert data.costs.priced_steps == 4 and data.costs.unpriced_steps == 0
    assert [s.provider for s in data.simulations] == ["openai", "anthropic", "gemini"]
    assert data.simulations[0].saving_usd == 0.6 and data.simulations[0].steps[0].predicted_cached_tokens == 60
    assert data.diagnosis[0].kind == "timestamp" and data.diagnosis[0].tokens_lost == 900
    assert data.headline()["scenario_saving_usd"] == {"openai": 0.6, "anthropic": 0.6, "gemini": 0.6}
    assert list(data.findings_df["kind"]) == ["timestamp"]
    assert list(data.scenarios_df["provider"]) == ["openai", "anthropic", "gemini"]


def test_a_failing_section_becomes_a_note_not_a_failed_report(monkeypatch):
    from profiler.errors import PricingError

    def default():
        raise PricingError("price table unreadable: run `ctxprof prices update`")

    monkeypatch.setitem(sys.modules, "profiler.pricing",
                        _fake_module("profiler.pricing", PriceTable=SimpleNamespace(default=default)))
    data = build_report_data(make_trace(make_agent_run(steps=2)))
    assert data.costs is None
    assert "price table unreadable" in data.unavailable[SECTION_COSTS]


def test_converters_accept_mappings_and_objects():
    f = finding_from({"run_id": "r", "step_id": 3, "step_index": 1, "token_position": 5, "kind": "k",
                      "before_text": "a", "after_text": "b", "tokens_lost": 1, "usd_lost": None,
                      "fix": "f", "detail": "d"})
    assert f.step_id == "3" and f.usd_lost is None
    s = scenario_from(SimpleNamespace(provider="gemini", steps=[], totals={
        "input_tokens": 10, "predicted_cached_tokens": 5, "reported_cached_tokens": None,
        "cost_usd": None, "no_cache_cost_usd": None, "saving_usd": None}))
    assert s.predicted_cached_share == 0.5


def test_to_dict_has_every_section_and_repr_html_escapes():
    data = build_report_data(make_trace(make_agent_run("<b>run</b>", steps=2)))
    d = data.to_dict()
    assert d["schema"] == "ctxprof.report/1"
    assert set(d) >= {"headline", "analysis", "costs", "simulations", "diagnosis", "reuse_matrix",
                      "unavailable", "warnings"}
    html = data._repr_html_()
    assert "<script" not in html and "Summary" in html
    assert isinstance(data, ReportData)
