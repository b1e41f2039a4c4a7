"""The FLOP model and the result records (no torch needed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from profiler.replay.result import ModeStep, ModeTotals, prefill_flops


def brute_force_flops(params: int, layers: int, width: int, start: int, end: int) -> float:
    return sum(2.0 * params + 4.0 * layers * width * (c + 1) for c in range(start, end))


@given(params=st.integers(1, 10**9), layers=st.integers(1, 64), width=st.integers(1, 8192),
       start=st.integers(0, 3000), length=st.integers(0, 3000))
def test_prefill_flops_is_the_sum_over_positions(params, layers, width, start, length):
    got = prefill_flops(params, layers, width, start=start, end=start + length)
    want = brute_force_flops(params, layers, width, start, start + length)
    assert abs(got - want) <= 1e-9 * max(want, 1.0)


@given(n=st.integers(2, 5000), cached=st.integers(1, 4999))
def test_flops_saved_share_is_below_the_token_share(n, cached):
    # GIVEN a prompt of n tokens whose first `cached` tokens come from the cache
    cached = min(cached, n - 1)
    full = prefill_flops(10**6, 16, 2048, start=0, end=n)
    rest = prefill_flops(10**6, 16, 2048, start=cached, end=n)
    # THEN the share of FLOPs saved never exceeds the share of tokens saved (early tokens are cheaper)
    assert 1 - rest / full <= cached / n + 1e-12


def make_mode_step(**kw) -> ModeStep:
    base = dict(prefill_tokens=10, reused_tokens=0, output_tokens=2, prefill_ms=1.0, ttft_ms=1.5,
                decode_ms=0.5, cache_lookup_ms=0.1, cache_insert_ms=0.0, prefill_flops=100.0,
                peak_gpu_memory_bytes=None, energy_j=None, cache_tokens_after=0, first_token=3)
    return ModeStep(**(base | kw))


def test_totals_never_turn_unknown_figures_into_zero():
    # GIVEN steps where energy was measured for one only
    steps = [make_mode_step(energy_j=2.0, peak_gpu_memory_bytes=100), make_mode_step()]
    totals = ModeTotals.of(steps)
    # THEN a partial energy total is unknown, and the peak is the largest known one
    assert totals.energy_j is None
    assert totals.peak_gpu_memory_bytes == 100
    assert totals.prefill_tokens == 20 and totals.ttft_ms == 3.0
    assert ModeTotals.of([make_mode_step(energy_j=1.0), make_mode_step(energy_j=2.5)]).energy_j == 3.5
