"""profiler.units: provider-unit calibration of each step's split and usage sanity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_step, make_trace
from conftest import SHARED_DATA
from profiler.analysis import Analysis, analyze
from profiler.cache_sim.providers import simulate_provider
from profiler.cost import apply_costs
from profiler.importers.registry import import_sources
from profiler.pricing import PriceTable
from profiler.trace.model import Usage
from profiler.units import (FLAG_CACHED_EXCEEDS_INPUT, FLAG_IMPLAUSIBLE_COUNT, FLAG_INPUT_FAR_FROM_CONTENT,
                            FLAG_OUTPUT_ON_EMPTY_OUTPUT, METHOD_EXACT, METHOD_SCALED, METHOD_SCHEMA_1,
                            Split, calibrate_split)
from profiler.usage import normalize_usage

GEMINI_FIXTURE = (Path(__file__).parent / "data" / "gemini"
                  / "gemini-3-pro-django-16315-first-11-calls.traj.json")


@st.composite
def splits(draw: st.DrawFn) -> Split:
    prefix = draw(st.integers(0, 200_000))
    repeated = draw(st.integers(0, 200_000))
    novel = draw(st.integers(0, 200_000))
    return Split(prefix + repeated + novel, prefix, repeated, novel)


@given(split=splits(), reported=st.integers(0, 1_000_000), exact=st.booleans())
@settings(max_examples=300, deadline=None)
def test_calibrated_split_sums_to_the_reported_input_and_is_never_negative(split, reported, exact):
    c = calibrate_split(split, reported, exact)
    s = c.split
    assert s.input_tokens == reported
    assert s.prefix_reused_tokens + s.repeated_tokens + s.novel_tokens == reported
    assert min(s.prefix_reused_tokens, s.repeated_tokens, s.novel_tokens) >= 0
    assert c.unit == "provider"
    if split.input_tokens and c.method == METHOD_SCALED:
        # THEN the reuse fractions are kept, up to rounding of each part
        assert abs(s.prefix_reused_tokens - split.prefix_reused_tokens * reported / split.input_tokens) <= 1


@given(split=splits())
@settings(max_examples=200, deadline=None)
def test_calibration_is_the_identity_where_the_tokenizer_is_the_providers(split):
    # GIVEN the provider's own tokenizer, and a reported count equal to ctxprof's (or none)
    for reported in (split.input_tokens, None):
        c = calibrate_split(split, reported, exact=True)
        assert c.split == split and c.method == METHOD_EXACT and c.factor == 1.0


def test_without_a_reported_count_a_stand_in_stays_in_ctxprof_units():
    c = calibrate_split(Split(100, 50, 10, 40), None, exact=False)
    assert (c.unit, c.method, c.split) == ("ctxprof", "uncalibrated", Split(100, 50, 10, 40))


def conversation(model: str, usages: list[Usage]) -> list:
    """One growing chat: each call resends the history and adds a long user message."""
    history: list[dict] = []
    steps = []
    for i, usage in enumerate(usages):
        history = history + [{"role": "user", "content": f"request {i}: " + "lorem ipsum dolor " * 120}]
        steps.append(make_step("r", step_id=f"call-{i}", messages=list(history), answer=f"answer {i}",
                               model=model, usage=usage, start=float(i)))
        history = history + [{"role": "assistant", "content": f"answer {i}"}]
    return steps


def test_gemini_gap_is_in_provider_units_and_its_sign_is_right():
    # GIVEN 11 real Gemini 3 Pro calls whose reported input is ~20% above ctxprof's o200k count
    trace = import_sources("mini-swe-agent", [GEMINI_FIXTURE])
    a = analyze(trace)
    steps = a.steps
    mixed_gap = sum(s.prefix_reused_tokens - s.reported_cached_tokens for s in steps)
    # THEN the unit-mixed gap (o200k prefix - Gemini cached) said the provider cached more than is
    # reusable, while in Gemini's own tokens 8,461 reusable tokens were not served from cache
    assert mixed_gap == -1043
    assert a.totals.cache_gap_tokens == 8461 > 0
    assert a.totals.unit == "provider"
    assert a.totals.provider_prefix_reused_tokens - a.totals.reported_cached_tokens == 8461
    assert all(s.calibration_method == METHOD_SCALED for s in steps)
    assert all(1.05 < s.calibration_factor < 1.3 for s in steps)
    assert a.totals.provider_input_tokens == sum(s.reported_input_tokens for s in steps)
    # AND the one call where Gemini cached more than the prefix in its own units is a named finding
    finding = [w for w in a.warnings if w.startswith("finding:")]
    assert len(finding) == 1 and "call-10" in finding[0] and "8,103 cached" in finding[0]


def test_gemini_simulator_predicts_in_provider_units_with_the_chunk_rule():
    trace = import_sources("mini-swe-agent", [GEMINI_FIXTURE])
    sim = simulate_provider(trace, "gemini", prices=PriceTable.empty())
    reported_in = {s.step_id: s.usage.input_tokens for s in trace.steps}
    for s in sim.steps:
        # THEN input is Gemini's count, and every predicted hit is whole 2,048-token chunks of it
        assert s.unit == "provider" and s.input_tokens == reported_in[s.step_id]
        assert s.predicted_cached_tokens % 2048 == 0 and s.predicted_cached_tokens <= s.input_tokens
        assert s.ctxprof_input_tokens < s.input_tokens and not s.what_if
    assert sim.totals.unit == "provider"
    errors = [abs(s.predicted_cached_tokens - s.reported_cached_tokens) for s in sim.steps]
    assert sum(errors) / len(errors) < 1500


def test_openai_without_tools_is_exact_and_says_so():
    # GIVEN an OpenAI model whose usage agrees with ctxprof's count (o200k is its tokenizer)
    steps = conversation("gpt-4o", [Usage(), Usage()])
    counted = analyze(make_trace(steps)).steps
    usages = [Usage(input_tokens=s.input_tokens + 3, cache_read_tokens=0, output_tokens=2) for s in counted]
    a = analyze(make_trace(conversation("gpt-4o", usages)))
    for s, before in zip(a.steps, counted):
        assert (s.unit, s.calibration_method, s.calibration_factor) == ("provider", METHOD_EXACT, 1.0)
        assert s.provider_prefix_reused_tokens == before.prefix_reused_tokens
        assert s.provider_input_tokens == s.reported_input_tokens == before.input_tokens + 3
        assert s.usage_flags == ()
    assert not any("stand-in" in w for w in a.warnings)


def prices(tmp_path: Path, model: str) -> PriceTable:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {model: {
        "input_usd_per_mtok": 1.0, "cache_read_usd_per_mtok": 0.1, "output_usd_per_mtok": 2.0}}}))
    return PriceTable.from_file(path, fallback_to_default=False)


def test_a_billion_cached_tokens_on_a_short_prompt_is_flagged_not_silently_wrong(tmp_path):
    # GIVEN a call whose usage claims 10^9 cached tokens for a prompt of about 1,759 tokens
    raw = {"prompt_tokens": 1759, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 10**9}}
    first = analyze(make_trace(conversation("gpt-4o", [Usage()]))).steps[0].input_tokens
    steps = conversation("gpt-4o", [Usage(input_tokens=first, cache_read_tokens=0, output_tokens=2),
                                    normalize_usage(raw)])
    trace = make_trace(steps)
    a = apply_costs(analyze(trace), trace, prices(tmp_path, "gpt-4o"))
    good, bad = a.steps
    # THEN the step is flagged in the JSON and named in a warning
    assert FLAG_IMPLAUSIBLE_COUNT in bad.usage_flags and good.usage_flags == ()
    assert bad.to_dict()["usage_flags"] == list(bad.usage_flags)
    assert bad.calibration_method == "unreliable_usage" and bad.provider_prefix_reused_tokens == 0
    assert any("r/call-1" in w and "contradicts" in w for w in a.warnings)
    # AND its actual cost is still what was billed, but totals leave its ideal, gap and redundant out
    assert bad.cost_actual_usd is not None and a.totals.cost_actual_usd == pytest.approx(
        good.cost_actual_usd + bad.cost_actual_usd)
    assert a.totals.unreliable_steps == 1
    assert a.totals.cache_gap_tokens == good.cache_gap_tokens
    assert a.totals.cost_ideal_usd == pytest.approx(good.cost_ideal_usd + bad.cost_actual_usd)
    assert a.totals.cost_redundant_usd == pytest.approx(good.cost_redundant_usd)


def test_cached_above_input_and_output_on_an_empty_answer_are_flagged():
    steps = conversation("gpt-4o", [Usage(input_tokens=400, cache_read_tokens=500, output_tokens=1)])
    steps.append(make_step("r", step_id="empty", messages=[{"role": "user", "content": "hi"}], answer="",
                           model="gpt-4o", usage=Usage(input_tokens=8, output_tokens=300), start=9.0))
    a = analyze(make_trace(steps))
    assert FLAG_CACHED_EXCEEDS_INPUT in a.steps[0].usage_flags
    assert a.steps[1].usage_flags == (FLAG_OUTPUT_ON_EMPTY_OUTPUT,)


def test_reasoning_tokens_on_an_empty_answer_are_not_a_contradiction():
    step = make_step("r", messages=[{"role": "user", "content": "hi"}], answer="", model="gpt-4o",
                     usage=Usage(input_tokens=8, output_tokens=300, reasoning_tokens=300))
    assert analyze(make_trace([step])).steps[0].usage_flags == ()


def test_twelve_tokens_of_content_billed_as_12345_no_longer_show_an_unflagged_ideal_above_the_spend(tmp_path):
    # GIVEN the OTel example's shape: a 12-token prompt whose usage reports 12,345 input, 11,000 cached
    step = make_step("r", messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                     answer="Sunny.", model="claude-sonnet-4-5",
                     usage=Usage(input_tokens=12345, cache_read_tokens=11000, output_tokens=5))
    trace = make_trace([step])
    a = apply_costs(analyze(trace), trace, prices(tmp_path, "claude-sonnet-4-5"))
    (s,) = a.steps
    # THEN the step is flagged, and the totals claim no saving the bill contradicts
    assert FLAG_INPUT_FAR_FROM_CONTENT in s.usage_flags
    assert a.totals.cost_ideal_usd <= a.totals.cost_actual_usd
    assert a.totals.cache_gap_tokens is None and a.totals.unreliable_steps == 1


@pytest.mark.skipif(not (SHARED_DATA / "otlp_genai_example.json").is_file(), reason="shared data absent")
def test_the_otel_example_is_flagged_and_its_ideal_never_exceeds_the_spend():
    trace = import_sources("otel", [SHARED_DATA / "otlp_genai_example.json"])
    a = apply_costs(analyze(trace), trace, PriceTable.default())
    assert all(FLAG_INPUT_FAR_FROM_CONTENT in s.usage_flags for s in a.steps)
    if a.totals.cost_actual_usd is not None:
        assert a.totals.cost_ideal_usd <= a.totals.cost_actual_usd


def test_a_gemini_rule_on_a_claude_trace_is_a_what_if_in_every_output():
    steps = conversation("claude-sonnet-4-5", [Usage(), Usage(), Usage()])
    sim = simulate_provider(make_trace(steps), "gemini", prices=PriceTable.empty(), min_tokens=64)
    assert all(s.what_if for s in sim.steps) and sim.totals.what_if_steps == 3
    assert any(w.startswith("what-if:") for w in sim.warnings)
    assert sim.to_dict()["totals"]["what_if_steps"] == 3
    from profiler.report.data import scenario_from

    assert "what-if" in scenario_from(sim).label
    from profiler.reporters.simulation import provider_summary

    assert provider_summary(sim).startswith("what-if:")
    # AND the trace's own provider is not a what-if
    own = simulate_provider(make_trace(steps), "anthropic", prices=PriceTable.empty())
    assert own.totals.what_if_steps == 0 and "what-if" not in scenario_from(own).label


def test_schema_1_analysis_is_read_with_its_unknown_calibration_said():
    trace = make_trace(conversation("gpt-4o", [Usage(), Usage()]))
    d = analyze(trace).to_dict()
    d["schema"] = "ctxprof.analysis/1"
    for run in d["runs"]:
        for s in run["steps"]:
            for key in ("unit", "calibration_method", "calibration_factor", "provider_input_tokens",
                        "provider_prefix_reused_tokens", "provider_repeated_tokens", "provider_novel_tokens",
                        "usage_flags", "reported_output_tokens"):
                del s[key]
    back = Analysis.from_dict(d)
    assert all(s.calibration_method == METHOD_SCHEMA_1 and s.unit == "ctxprof" for s in back.steps)
    assert back.to_dict()["schema"] == "ctxprof.analysis/2"


def test_analysis_round_trips_with_units():
    trace = import_sources("mini-swe-agent", [GEMINI_FIXTURE])
    a = analyze(trace)
    assert Analysis.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_the_report_states_units_what_ifs_and_the_finding(tmp_path):
    from profiler.report.data import build_report_data
    from profiler.report.markdown import markdown_lines

    # GIVEN the real Gemini calls, reported with OpenAI, Anthropic and Gemini scenarios
    trace = import_sources("mini-swe-agent", [GEMINI_FIXTURE])
    data = build_report_data([trace], prices=prices(tmp_path, "google/gemini-3-pro-preview"))
    text = "\n".join(markdown_lines(data))
    # THEN the other providers' rules are what-ifs, Gemini's own is not, and the ideal is in provider tokens
    assert "openai rules on another provider's model (what-if, simulated)" in text
    assert "anthropic rules on another provider's model (what-if, simulated)" in text
    assert "gemini caching rules (simulated)" in text
    assert "| ideal prefix (provider tokens) | 53,066 |" in text
    assert "finding: on 1 step(s)" in text
    assert data.headline()["cache_gap_tokens"] == 8461
