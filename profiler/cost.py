"""The cost model: USD per step and in total, from an `Analysis`, the traces and a `PriceTable`.

`apply_costs(analysis, traces, prices)` returns a new `Analysis` whose `StepMetrics` and `Totals` have
the four cost fields filled (definitions in docs/costs-and-caches.md):

- `cost_actual_usd`: what the provider billed, from its reported usage: uncached input tokens at the
  input price, cache reads at the cache-read price, cache writes at the cache-write price, output at
  the output price. A step without reported usage is priced as analysed, with no caching.
- `cost_no_cache_usd`: every input token at the input price, plus output.
- `cost_ideal_usd`: an ideal prefix cache: `prefix_reused_tokens` at the cache-read price, the rest of
  the input at the input price, plus output.
- `cost_redundant_usd`: what the redundant input (`prefix_reused_tokens + repeated_tokens`) cost at
  the full input price.

Input token counts are the step's provider-unit figures (`profiler.units`): where the provider
reported its input count, that count is the billing truth and the analysed split is calibrated to it
(exact for OpenAI models, scaled for stand-in tokenizers); elsewhere the analysed counts. Output tokens are the reported ones where known (they include
reasoning tokens a trace may not hold), else the analysed ones. A cache price the model lacks falls
back to the input price (no discount, no premium). A model with no known price gets no cost (None)
and one warning; totals add up the steps that have a cost.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterable

from profiler.analysis import Analysis, StepMetrics, Totals
from profiler.pricing import ModelPrice, PriceTable
from profiler.trace.model import Step, Trace

_PER_MTOK = 1_000_000.0


class UnpricedSteps:
    """The steps `apply_costs` could not price, counted (models without a price, prices lacking an
    input or output price, steps naming no model); one instance can gather a stream of runs."""

    def __init__(self) -> None:
        self.unknown: dict[str, int] = {}
        self.incomplete: dict[str, int] = {}
        self.no_model = 0

    def warnings(self) -> list[str]:
        out = []
        for model, n in sorted(self.unknown.items()):
            out.append(f"no price for model {model!r} ({n} step(s)): their cost is left empty; "
                       "give its prices in a --price-file")
        for model, n in sorted(self.incomplete.items()):
            out.append(f"the price of model {model!r} lacks an input or output price ({n} step(s)): "
                       "their cost is left empty; complete it in a --price-file")
        if self.no_model:
            out.append(f"{self.no_model} step(s) name no model: their cost is left empty")
        return out


def apply_costs(analysis: Analysis, traces: Trace | Iterable[Trace], prices: PriceTable,
                unpriced: UnpricedSteps | None = None) -> Analysis:
    """A copy of `analysis` with costs filled in where a price is known, and warnings for the rest
    (counted into `unpriced` when given, whose warnings then cover every analysis priced with it)."""
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    steps_by_key = _index_steps(trace_list)
    notes = unpriced if unpriced is not None else UnpricedSteps()
    unknown, incomplete = notes.unknown, notes.incomplete
    runs = []
    for run in analysis.runs:
        new_steps = []
        for metrics in run.steps:
            step = steps_by_key.get((run.trace, metrics.run_id, metrics.step_id)) or steps_by_key.get(
                (None, metrics.run_id, metrics.step_id))
            reported_output = metrics.reported_output_tokens if step is None else step.usage.output_tokens
            basis = metrics.reported_input_tokens if metrics.reported_input_tokens is not None else (
                metrics.input_tokens)
            price = prices.lookup(metrics.model, metrics.provider, input_tokens=basis,
                                  at_unix_s=metrics.start_unix_s)
            if not metrics.model:
                notes.no_model += 1
            elif price is None:
                unknown[metrics.model] = unknown.get(metrics.model, 0) + 1
            elif price.input_usd_per_mtok is None or price.output_usd_per_mtok is None:
                incomplete[metrics.model] = incomplete.get(metrics.model, 0) + 1
                price = None
            new_steps.append(step_costs(metrics, price, reported_output))
        runs.append(replace(run, steps=tuple(new_steps), totals=Totals.of(new_steps)))
    warnings = list(analysis.warnings) + notes.warnings()
    all_steps = [s for r in runs for s in r.steps]
    return replace(analysis, runs=tuple(runs), totals=Totals.of(all_steps), warnings=tuple(warnings))


def step_costs(m: StepMetrics, price: ModelPrice | None, reported_output_tokens: int | None = None
               ) -> StepMetrics:
    """`m` with its four costs computed from `price` (all None when `price` is None)."""
    if price is None or price.input_usd_per_mtok is None or price.output_usd_per_mtok is None:
        return replace(m, cost_actual_usd=None, cost_no_cache_usd=None, cost_ideal_usd=None,
                       cost_redundant_usd=None)
    p_in = price.input_usd_per_mtok / _PER_MTOK
    p_out = price.output_usd_per_mtok / _PER_MTOK
    p_read = (price.cache_read_usd_per_mtok if price.cache_read_usd_per_mtok is not None
              else price.input_usd_per_mtok) / _PER_MTOK
    p_write = (price.cache_write_usd_per_mtok if price.cache_write_usd_per_mtok is not None
               else price.input_usd_per_mtok) / _PER_MTOK

    output = reported_output_tokens if reported_output_tokens is not None else m.output_tokens
    output_cost = output * p_out
    reported = m.reported_input_tokens
    basis = reported if reported is not None else m.input_tokens

    if reported is not None:
        read = m.reported_cached_tokens or 0
        write = m.reported_cache_write_tokens or 0
        uncached = max(reported - read - write, 0)
        actual = uncached * p_in + read * p_read + write * p_write + output_cost
    else:
        actual = m.input_tokens * p_in + output_cost

    if m.provider_input_tokens is not None and m.provider_input_tokens == basis:
        prefix = m.provider_prefix_reused_tokens or 0
        redundant = prefix + (m.provider_repeated_tokens or 0)
    else:  # a step not calibrated by `profiler.units` (built by hand)
        prefix = _rescale(m.prefix_reused_tokens, m.input_tokens, basis)
        redundant = _rescale(m.prefix_reused_tokens + m.repeated_tokens, m.input_tokens, basis)
    return replace(
        m,
        cost_actual_usd=actual,
        cost_no_cache_usd=basis * p_in + output_cost,
        cost_ideal_usd=prefix * p_read + (basis - prefix) * p_in + output_cost,
        cost_redundant_usd=redundant * p_in,
    )


def _rescale(tokens: int, analysed: int, basis: int) -> int:
    """`tokens` out of `analysed` expressed in the reported count `basis` (same fraction)."""
    if analysed <= 0:
        return 0
    if basis == analysed:
        return tokens
    return min(basis, round(tokens * basis / analysed))


def _index_steps(traces: list[Trace]) -> dict[tuple[str | None, str, str], Step]:
    out: dict[tuple[str | None, str, str], Step] = {}
    for trace in traces:
        for run in trace.runs:
            for step in run.steps:
                out[(trace.path, step.run_id, step.step_id)] = step
                out.setdefault((None, step.run_id, step.step_id), step)
    return out



def apply_prices(analysis: Analysis, traces: Trace | Iterable[Trace],
                 prices: "PriceTable | str | os.PathLike[str] | None" = None
                 ) -> tuple[Analysis, tuple[str, ...]]:
    """`apply_costs` for library callers: `prices` is a `PriceTable`, a price file (looked up before
    genai-prices, as `--price-file` does) or None (genai-prices). Returns the priced analysis and the
    warnings pricing added (models without a price: their cost stays unknown)."""
    if not isinstance(prices, PriceTable):
        from profiler.options import ProfileOptions

        prices = ProfileOptions(price_file=prices).price_table()
    assert prices is not None  # the default pricing always gives a table
    priced = apply_costs(analysis, traces, prices)
    return priced, tuple(w for w in priced.warnings if w not in analysis.warnings)
