"""Console tables (rich) for a finished `ReplayResult`: one row per step and a summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.render import fmt
from profiler.replay.result import ModeStep, ReplayResult


def steps_table(result: ReplayResult) -> Table:
    t = Table(title=f"replay: {result.model.name} on {result.model.device_name} ({result.model.dtype})",
              title_justify="left")
    for name, justify in (("#", "right"), ("step", "left"), ("prompt", "right"), ("output", "right"),
                          ("predicted reuse", "right"), ("reused", "right"), ("cold prefill ms", "right"),
                          ("reuse prefill ms", "right"), ("cold ttft ms", "right"),
                          ("reuse ttft ms", "right"), ("max |dlogit|", "right"), ("same", "center")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in result.steps:
        cold: ModeStep | None = s.cold
        reuse: ModeStep | None = s.reuse
        ms = fmt.one_decimal
        t.add_row(
            str(s.index), f"{s.run_id}/{s.name or s.step_id}", fmt.tokens(s.prompt_tokens),
            fmt.tokens(s.output_tokens), fmt.tokens(s.predicted_reused_tokens),
            fmt.tokens(None if reuse is None else reuse.reused_tokens),
            ms(None if cold is None else cold.prefill_ms), ms(None if reuse is None else reuse.prefill_ms),
            ms(None if cold is None else cold.ttft_ms), ms(None if reuse is None else reuse.ttft_ms),
            "-" if s.check is None else f"{s.check.max_abs_logit_diff:.2e}",
            "-" if s.check is None else ("yes" if s.check.equal else "NO"))
    return t


def summary_table(result: ReplayResult) -> Table:
    t = Table(title="summary", title_justify="left")
    t.add_column("")
    t.add_column("cold", justify="right")
    t.add_column("reuse", justify="right")
    c, r = result.cold, result.reuse

    def row(label: str, attr: str, fmt) -> None:  # type: ignore[no-untyped-def]
        t.add_row(label, fmt(None if c is None else getattr(c, attr)),
                  fmt(None if r is None else getattr(r, attr)))

    row("tokens prefilled", "prefill_tokens", fmt.tokens)
    row("tokens reused", "reused_tokens", fmt.tokens)
    row("prefill ms", "prefill_ms", fmt.one_decimal)
    row("time to first token ms", "ttft_ms", fmt.one_decimal)
    row("decode ms", "decode_ms", fmt.one_decimal)
    row("cache lookup ms", "cache_lookup_ms", fmt.one_decimal)
    row("cache insert ms", "cache_insert_ms", fmt.one_decimal)
    row("peak GPU memory", "peak_gpu_memory_bytes", fmt.mib)
    row("energy", "energy_j", fmt.joules)
    return t


def prediction_table(result: ReplayResult) -> Table:
    p = result.prediction
    t = Table(title="predicted (analyzer) vs measured (replay)", title_justify="left")
    t.add_column("")
    t.add_column("predicted", justify="right")
    t.add_column("measured", justify="right")
    t.add_row("prefill tokens saved", fmt.tokens(p.predicted_saved_prefill_tokens),
              fmt.tokens(p.measured_saved_prefill_tokens))
    t.add_row("share of prompt tokens", fmt.pct(p.predicted_saved_token_fraction),
              fmt.pct(None if p.measured_saved_prefill_tokens is None
                   else p.measured_saved_prefill_tokens / p.prompt_tokens if p.prompt_tokens else 0.0))
    t.add_row("prefill FLOPs saved", fmt.pct(p.predicted_saved_flops_fraction),
              fmt.pct(p.measured_saved_flops_fraction))
    t.add_row("prefill time saved", fmt.pct(p.predicted_saved_flops_fraction),
              fmt.pct(p.measured_saved_prefill_time_fraction))
    t.add_row("time to first token saved", "-", fmt.pct(p.measured_saved_ttft_fraction))
    t.add_row("prefill speedup", fmt.times(1 / (1 - p.predicted_saved_flops_fraction)
                                     if p.predicted_saved_flops_fraction < 1 else None),
              fmt.times(p.prefill_speedup))
    return t


def check_line(result: ReplayResult) -> str:
    cmp = result.comparison
    if cmp is None:
        return "outputs not compared (run --mode both to check cold and reuse agree)"
    verdict = "the same" if cmp.equal else "DIFFERENT"
    return (f"outputs: {verdict} in {cmp.steps_equal}/{cmp.steps_compared} steps; largest logit "
            f"difference {cmp.max_abs_logit_diff:.3g} (tolerance {cmp.atol:g} + {cmp.rtol:g} x |logit|); "
            f"greedy tokens differ at {cmp.greedy_mismatches} of {cmp.greedy_tokens_compared} positions "
            f"({cmp.greedy_mismatches_beyond_tolerance} beyond tolerance)")


def print_replay(result: ReplayResult, console: Console) -> None:
    console.print(steps_table(result))
    console.print(summary_table(result))
    console.print(prediction_table(result))
    sources = ", ".join(f"{k} ({v} steps)" for k, v in sorted(result.token_sources.items()))
    o = result.options
    capacity = "unbounded" if o.capacity_tokens is None else f"{o.capacity_tokens:,} tokens"
    console.print(f"token sequences: {sources}; timer: {o.timer}; cache: {capacity}, block "
                  f"{o.block_size}, {o.eviction_policy}; evicted {result.evicted_tokens:,} tokens",
                  markup=False)
    console.print(check_line(result), markup=False)
