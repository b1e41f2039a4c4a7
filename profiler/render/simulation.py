"""Console tables (rich) for cache simulations: a `ProviderSimulation` (per step: predicted against
reported cached tokens, cost) and an engine simulation (hit rate per capacity)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from profiler.cache_sim.providers import ProviderSimulation
from profiler.render.fmt import one_decimal as _fmt_s, tokens as _fmt_int, usd as _fmt_cost


def provider_table(sim: ProviderSimulation) -> Table:
    """One row per step, in the order the simulated cache saw them; totals in the footer."""
    t = sim.totals
    has_reported = t.reported_steps > 0
    starts = [s.start_unix_s for s in sim.steps if s.start_unix_s is not None]
    t0 = min(starts) if starts else None
    ttl = sim.options.get("ttl_s")
    models = sorted({s.model or "-" for s in sim.steps})
    several_models = len(models) > 1
    single_run = len({s.run_id for s in sim.steps}) == 1
    title = f"{sim.provider} prompt cache" + (" (what-if: another provider's model)"
                                              if t.what_if_steps else "")
    if isinstance(ttl, (int, float)):
        title += f", ttl {ttl:g} s"
    if not several_models and models:
        title += f", model {models[0]}"
    if single_run and sim.steps:
        title += f", run {sim.steps[0].run_id}"
    table = Table(title=title, show_footer=True, title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    table.add_column("step" if single_run else "run/step", footer="total", overflow="ellipsis",
                     min_width=5, max_width=40)
    if several_models:
        table.add_column("model", overflow="ellipsis", max_width=20)
    table.add_column("t (s)", no_wrap=True, justify="right")
    table.add_column("input", no_wrap=True, footer=_fmt_int(t.input_tokens), justify="right")
    table.add_column("cached", no_wrap=True, footer=_fmt_int(t.predicted_cached_tokens), justify="right")
    table.add_column("written", no_wrap=True, footer=_fmt_int(t.predicted_cache_write_tokens), justify="right")
    if has_reported:
        table.add_column("reported", no_wrap=True, footer=_fmt_int(t.reported_cached_tokens), justify="right")
    table.add_column("cost", no_wrap=True, footer=_fmt_cost(t.cost_usd), justify="right")
    table.add_column("no cache", no_wrap=True, footer=_fmt_cost(t.no_cache_cost_usd),
                     justify="right")
    for s in sim.steps:
        row = [s.step_id if single_run else f"{s.run_id}/{s.step_id}"]
        if several_models:
            row.append(s.model or "-")
        row += [_fmt_s(None if s.start_unix_s is None or t0 is None else s.start_unix_s - t0),
                _fmt_int(s.input_tokens), _fmt_int(s.predicted_cached_tokens),
                _fmt_int(s.predicted_cache_write_tokens)]
        if has_reported:
            row.append(_fmt_int(s.reported_cached_tokens))
        row += [_fmt_cost(s.cost_usd), _fmt_cost(s.no_cache_cost_usd)]
        table.add_row(*row)
    table.caption = (f"tokens in {_unit_words(t.unit)}; cached / written: predicted cache reads / writes"
                     + ("; reported: cached tokens the provider reported" if has_reported else ""))
    return table


def _unit_words(unit: str) -> str:
    return {"provider": "the provider's units", "ctxprof": "ctxprof's stand-in tokenizer's units",
            }.get(unit, "mixed units (some steps lack a reported input count)")


def provider_summary(sim: ProviderSimulation) -> str:
    t = sim.totals
    line = (f"{sim.provider}: {t.predicted_cached_tokens:,} of {t.input_tokens:,} input tokens "
            f"({t.predicted_hit_rate:.1%}) predicted cached over {t.steps} step(s), in "
            f"{_unit_words(t.unit)}")
    if t.what_if_steps:
        line = (f"what-if: {t.what_if_steps} of {t.steps} step(s) are another provider's model, so this "
                "is a hypothetical, not a saving. " + line)
    if t.reported_cached_tokens is not None:
        line += f"; the provider reported {t.reported_cached_tokens:,} cached over {t.reported_steps} step(s)"
    if t.cost_usd is not None and t.no_cache_cost_usd is not None and t.saving_usd is not None:
        line += (f"; cost {_fmt_cost(t.cost_usd)} against {_fmt_cost(t.no_cache_cost_usd)} without a "
                 f"cache (saving {_fmt_cost(t.saving_usd)})")
    return line


def print_provider_simulation(sim: ProviderSimulation, console: Console) -> None:
    console.print(provider_table(sim))
    console.print(provider_summary(sim))
