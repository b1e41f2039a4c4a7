"""The cost model: hand-computed costs per step and in total."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.analysis import Totals, analyze
from profiler.cost import apply_costs
from profiler.pricing import PriceTable
from profiler.trace.model import Output, Prompt, Step, Trace, Usage

M = 1e6


def step(step_id: str, prompt: list[int], output: list[int], t: float, *, model: str = "test-model",
         usage: Usage | None = None, run: str = "r") -> Step:
    return Step(run_id=run, step_id=step_id, model=model, start_unix_s=t,
                prompt=Prompt(token_ids=tuple(prompt), tokenizer="test"),
                output=Output(token_ids=tuple(output)), usage=usage or Usage())


def seq(n: int, start: int) -> list[int]:
    return list(range(start, start + n))


@pytest.fixture()
def prices(tmp_path: Path) -> PriceTable:
    # $1 input, $0.10 cache read, $1.25 cache write, $2 output per million tokens
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"test-model": {
        "input_usd_per_mtok": 1.0, "cache_read_usd_per_mtok": 0.1, "cache_write_usd_per_mtok": 1.25,
        "output_usd_per_mtok": 2.0}}}))
    return PriceTable.from_file(path, fallback_to_default=False)


def two_step_trace() -> Trace:
    # step 1: 1,000 prompt tokens, 10 output; step 2 resends both and adds 200 new tokens
    p1, o1 = seq(1000, 10), seq(10, 5000)
    p2 = p1 + o1 + seq(200, 9000)
    return Trace.from_steps([
        step("1", p1, o1, 0.0, usage=Usage(input_tokens=1000, cache_read_tokens=0, output_tokens=10)),
        step("2", p2, seq(5, 7000), 1.0,
             usage=Usage(input_tokens=1210, cache_read_tokens=1000, output_tokens=5)),
    ])


def test_four_costs_of_a_step_by_hand(prices):
    trace = two_step_trace()
    result = apply_costs(analyze(trace), trace, prices)
    s1, s2 = result.steps
    assert (s2.prefix_reused_tokens, s2.input_tokens) == (1010, 1210)
    # actual: 210 uncached at $1, 1,000 read at $0.10, 5 output at $2
    assert s2.cost_actual_usd == pytest.approx((210 * 1 + 1000 * 0.1 + 5 * 2) / M)
    assert s2.cost_no_cache_usd == pytest.approx((1210 * 1 + 5 * 2) / M)
    # ideal: the 1,010-token reusable prefix at the read price, the other 200 at the input price
    assert s2.cost_ideal_usd == pytest.approx((1010 * 0.1 + 200 * 1 + 5 * 2) / M)
    assert s2.cost_redundant_usd == pytest.approx(1010 * 1 / M)
    assert s1.cost_actual_usd == s1.cost_no_cache_usd == pytest.approx((1000 + 20) / M)
    assert s1.cost_redundant_usd == 0


def test_totals_are_recomputed_per_run_and_overall(prices):
    trace = two_step_trace()
    result = apply_costs(analyze(trace), trace, prices)
    expected = Totals.of(list(result.steps))
    assert result.totals == expected
    assert result.runs[0].totals.cost_actual_usd == pytest.approx(
        sum(s.cost_actual_usd for s in result.steps))
    assert result.totals.cost_ideal_usd <= result.totals.cost_no_cache_usd


def test_cache_writes_cost_the_write_price(prices):
    # GIVEN Anthropic-style usage: 3,000 input of which 1,000 read and 1,500 written
    trace = Trace.from_steps([step("1", seq(3000, 1), [], 0.0, usage=Usage(
        input_tokens=3000, cache_read_tokens=1000, cache_write_tokens=1500, output_tokens=0))])
    (s,) = apply_costs(analyze(trace), trace, prices).steps
    assert s.cost_actual_usd == pytest.approx((500 * 1 + 1000 * 0.1 + 1500 * 1.25) / M)


def test_without_reported_usage_the_analysed_tokens_are_priced_uncached(prices):
    trace = Trace.from_steps([step("1", seq(400, 1), seq(7, 900), 0.0)])
    (s,) = apply_costs(analyze(trace), trace, prices).steps
    assert s.cost_actual_usd == s.cost_no_cache_usd == pytest.approx((400 + 14) / M)


def chat_step(step_id: str, messages: list[dict], t: float, usage: Usage | None = None) -> Step:
    # "test-model" has no offline tokenizer: ctxprof's o200k count stands in for the provider's
    return Step(run_id="r", step_id=step_id, model="test-model", start_unix_s=t,
                prompt=Prompt(messages=tuple(messages)),
                output=Output(message={"role": "assistant", "content": "ok"}), usage=usage or Usage())


def test_reported_input_rescales_the_analysed_reuse(prices):
    # GIVEN a model ctxprof's tokenizer only stands in for, and a provider that billed 1.2x its count
    first = [{"role": "user", "content": "alpha " * 500}]
    second = first + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "beta " * 200}]
    counted = analyze(Trace.from_steps([chat_step("1", first, 0.0), chat_step("2", second, 1.0)])).steps[1]
    billed = round(counted.input_tokens * 1.2)
    trace = Trace.from_steps([chat_step("1", first, 0.0),
                              chat_step("2", second, 1.0, Usage(input_tokens=billed, output_tokens=0))])
    s2 = apply_costs(analyze(trace), trace, prices).steps[1]
    # THEN the same fraction of the billed count is priced, in the provider's tokens
    reused = round(counted.prefix_reused_tokens * billed / counted.input_tokens)
    assert s2.calibration_method == "scaled_to_reported_input" and s2.provider_prefix_reused_tokens == reused
    assert s2.cost_no_cache_usd == pytest.approx(billed / M)
    assert s2.cost_ideal_usd == pytest.approx((reused * 0.1 + billed - reused) / M)
    assert s2.cost_redundant_usd == pytest.approx(
        (reused + s2.provider_repeated_tokens) / M)


def test_unknown_model_cost_stays_null_with_one_warning(prices):
    trace = Trace.from_steps([step("1", seq(10, 1), [], 0.0, model="mystery"),
                              step("2", seq(10, 1), [], 1.0, model="mystery"),
                              step("3", seq(10, 1), [], 2.0)])
    result = apply_costs(analyze(trace), trace, prices)
    assert [s.cost_actual_usd is None for s in result.steps] == [True, True, False]
    assert result.totals.cost_actual_usd == pytest.approx(10 / M)  # only the priced step
    warnings = [w for w in result.warnings if "mystery" in w]
    assert len(warnings) == 1 and "2 step(s)" in warnings[0] and "--price-file" in warnings[0]


def test_input_is_not_mutated(prices):
    trace = two_step_trace()
    before = analyze(trace)
    apply_costs(before, trace, prices)
    assert all(s.cost_actual_usd is None for s in before.steps)


def test_real_genai_prices_for_gpt_4o():
    p1, o1 = seq(2000, 10), seq(10, 5000)
    trace = Trace.from_steps([
        step("1", p1, o1, 0.0, model="gpt-4o"),
        step("2", p1 + o1 + seq(100, 9000), seq(4, 7000), 1.0, model="gpt-4o",
             usage=Usage(input_tokens=2110, cache_read_tokens=1920, output_tokens=4)),
    ])
    s2 = apply_costs(analyze(trace), trace, PriceTable.default()).steps[1]
    # gpt-4o: $2.50 input, $1.25 cached, $10 output per million tokens
    assert s2.cost_actual_usd == pytest.approx((190 * 2.5 + 1920 * 1.25 + 4 * 10) / M)
    assert s2.cost_ideal_usd == pytest.approx((2010 * 1.25 + 100 * 2.5 + 4 * 10) / M)
