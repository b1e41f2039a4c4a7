"""Profile: built once from traces with ProfileOptions; every section filled in or noted; the
document (`ctxprof.profile/1`) reads back to an equal Profile."""

from __future__ import annotations

import json

import pytest

from builders import make_finding
from profiler.analysis import analyze
from profiler.errors import ProfilerError
from profiler.options import Pricing, ProfileOptions
from profiler.profile import (PROFILE_SCHEMA, SECTION_COSTS, SECTION_SIMULATIONS, Profile, profile,
                              reuse_matrix)
from report_traces import make_agent_run, make_trace


def test_headline_matches_the_analysis_totals():
    # GIVEN a two-run agent trace
    trace = make_trace(make_agent_run("r1"), make_agent_run("r2", stamp_system=True))
    # WHEN it is profiled
    data = profile(trace)
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


def test_every_section_fills_in_from_the_real_modules():
    # GIVEN a trace of a priced model, profiled with the default options
    data = profile(make_trace(make_agent_run("r1"), make_agent_run("r2", stamp_system=True)))
    # THEN costs, three provider scenarios and a diagnosis are present, with no notes
    assert data.unavailable == {}
    assert data.costs is not None and data.costs.priced_steps == 10
    assert data.costs.no_cache_usd >= data.costs.ideal_usd
    assert [s.provider for s in data.simulations] == ["openai", "anthropic", "gemini"]
    assert data.simulation("anthropic").options.get("auto_breakpoints") is True
    assert data.diagnosis is not None and data.diagnosis.findings  # the stamped system prompt
    assert {f.kind for f in data.diagnosis.findings} <= {"dynamic_value", "reordered",
                                                         "rewritten_history", "model_change", "other"}
    assert list(data.scenarios_df["provider"]) == ["openai", "anthropic", "gemini"]
    assert data.headline()["scenario_saving_usd"]["openai"] == data.simulations[0].totals.saving_usd
    assert data.engine is None  # not asked for


def test_options_choose_the_sections():
    # GIVEN options asking for one provider, an engine sweep, and no diagnosis, unpriced
    options = ProfileOptions(providers=("deepseek",), engine_capacities_tokens=(None, 64),
                             diagnose=False, pricing=Pricing.none)
    # WHEN profiling
    data = profile(make_trace(make_agent_run(steps=3)), options)
    # THEN exactly those sections are there; costs carry the reason they are missing
    assert [s.provider for s in data.simulations] == ["deepseek"]
    assert [r.capacity_tokens for r in data.engine.results] == [None, 64]
    assert data.diagnosis is None and data.costs is None
    assert "not priced" in data.unavailable[SECTION_COSTS]
    assert data.simulations[0].totals.cost_usd is None  # no genai-prices behind --pricing none


def test_a_failing_section_becomes_a_note_not_a_failed_profile():
    # GIVEN a provider name the simulator refuses
    data = profile(make_trace(make_agent_run(steps=2)), ProfileOptions(providers=("nosuch",)))
    # THEN the simulations say why and the rest is there
    assert "nosuch" in data.unavailable[SECTION_SIMULATIONS]
    assert data.simulations == () and data.diagnosis is not None


def test_to_dict_from_dict_round_trips_through_json():
    # GIVEN a profile with every section
    options = ProfileOptions(engine_capacities_tokens=(None, 128), ttl_s=60.0)
    data = profile(make_trace(make_agent_run("r1"), make_agent_run("r2", stamp_system=True)), options,
                   title="round trip")
    # WHEN written as JSON and read back
    doc = json.loads(json.dumps(data.to_dict()))
    back = Profile.from_dict(doc, source="p.json")
    # THEN it is the same profile, and says its schema and units
    assert doc["schema"] == PROFILE_SCHEMA and doc["units"]["_usd"] == "US dollars"
    assert back == data
    assert back.to_dict() == data.to_dict()


def test_from_dict_names_the_source_and_field_of_a_bad_document():
    doc = profile(make_trace(make_agent_run(steps=2))).to_dict()
    with pytest.raises(ProfilerError, match="p.json.*schema"):
        Profile.from_dict(doc | {"schema": "ctxprof.report/1"}, source="p.json")
    doc["simulations"][0]["totals"]["input_tokens"] = "many"
    with pytest.raises(ProfilerError, match=r"p.json: simulations\[0\].totals: field 'input_tokens'"):
        Profile.from_dict(doc, source="p.json")


def test_repr_html_escapes_trace_text():
    data = profile(make_trace(make_agent_run("<b>run</b>", steps=2)))
    html = data._repr_html_()
    assert "<script" not in html and "Summary" in html and "<b>run</b>" not in html
    assert "Profile(" in repr(data)


def test_findings_df_has_the_diagnose_finding_columns():
    from dataclasses import replace

    data = profile(make_trace(make_agent_run(steps=2)), ProfileOptions(providers=()))
    with_finding = replace(data, diagnosis=replace(data.diagnosis, findings=(make_finding(),)))
    assert list(with_finding.findings_df["kind"]) == ["dynamic_value"]
