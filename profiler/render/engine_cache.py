"""Console rendering (rich) of an `EngineSimulation`: one row per capacity beside the ideal cache."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from profiler.cache_sim.kv_cache import EngineSimulation
from profiler.render.fmt import tokens as _int


def engine_table(sim: EngineSimulation, *, title: str | None = None) -> Table:
    """Capacity (tokens and blocks), hit tokens, hit rate, share of the ideal, prefill saved, evictions."""
    t = Table(title=title or f"Engine KV cache ({sim.policy.upper()}, {sim.block_size}-token blocks, "
                             f"global scope, {sim.steps:,} steps)",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("capacity (tokens)", "blocks", "hit tokens", "hit rate", "of ideal", "prefill saved",
                   "evicted blocks"):
        t.add_column(header, justify="right", no_wrap=True)
    rows = sorted(sim.results, key=lambda r: (r.capacity_tokens is None, r.capacity_tokens or 0))
    for r in rows:
        share = r.hit_tokens / sim.ideal_hit_tokens if sim.ideal_hit_tokens else 1.0
        t.add_row("unbounded" if r.capacity_tokens is None else _int(r.capacity_tokens),
                  _int(r.capacity_blocks), _int(r.hit_tokens), f"{r.hit_rate:.1%}", f"{share:.1%}",
                  _int(r.prefill_tokens_saved), _int(r.evicted_blocks))
    if not any(r.capacity_tokens is None for r in rows):
        t.add_row("ideal (unbounded)", "-", _int(sim.ideal_hit_tokens), f"{sim.ideal_hit_rate:.1%}",
                  "100.0%", "-", "0", style="dim")
    return t


def render(sim: EngineSimulation, console: Console) -> None:
    """Print the table and a one-line summary."""
    console.print(engine_table(sim))
    console.print(f"{sim.total_prompt_tokens:,} prompt tokens in {sim.steps:,} steps; an unbounded cache "
                  f"serves {sim.ideal_hit_tokens:,} ({sim.ideal_hit_rate:.1%}; "
                  f"{sim.ideal_block_hit_rate:.1%} of {sim.total_prompt_blocks:,} prompt blocks)",
                  highlight=False)
