"""Console rendering (rich) of a `FleetSimulation`: one row per (routing, replica count), the replicas
each routing needs for the target hit rate, and per replica where one replica count was asked for.
Takes the finished simulation; recomputes nothing."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from profiler.cache_sim.fleet import FleetSimulation


def fleet_table(sim: FleetSimulation) -> Table:
    capacity = "unbounded" if sim.capacity_tokens is None else f"{sim.capacity_tokens:,} tokens"
    t = Table(title=f"Engine fleet ({capacity} per replica, {sim.policy.upper()}, {sim.block_size}-token "
                    f"blocks, prefix routing on {sim.route_blocks} leading blocks, {sim.steps:,} steps)",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("routing", "replicas", "hit rate", "hit tokens", "prefill saved", "replica hit rates",
                   "load max/mean"):
        t.add_column(header, justify="left" if header == "routing" else "right", no_wrap=True)
    for p in sorted(sim.points, key=lambda p: (p.routing, p.replicas)):
        rates = [r.hit_rate for r in p.per_replica]
        t.add_row(p.routing, f"{p.replicas:,}", f"{p.hit_rate:.1%}", f"{p.hit_tokens:,}",
                  f"{p.prefill_tokens_saved:,}", f"{min(rates):.1%}-{max(rates):.1%}",
                  f"{p.load_imbalance:.2f}")
    return t


def replica_table(sim: FleetSimulation, routing: str, replicas: int) -> Table:
    point = next(p for p in sim.points if p.routing == routing and p.replicas == replicas)
    t = Table(title=f"{routing}, {replicas} replicas", title_justify="left", box=box.SIMPLE_HEAD,
              pad_edge=False)
    for header in ("replica", "steps", "prompt tokens", "hit rate", "prefill saved", "evicted blocks"):
        t.add_column(header, justify="right", no_wrap=True)
    for r in point.per_replica:
        t.add_row(str(r.replica), f"{r.steps:,}", f"{r.prompt_tokens:,}", f"{r.hit_rate:.1%}",
                  f"{r.prefill_tokens_saved:,}", f"{r.evicted_blocks:,}")
    return t


def render(sim: FleetSimulation, console: Console) -> None:
    console.print(fleet_table(sim))
    counts = sorted({p.replicas for p in sim.points})
    if len(counts) == 1:
        for routing in sorted({p.routing for p in sim.points}):
            console.print(replica_table(sim, routing, counts[0]))
    needed = sim.replicas_needed()
    if needed:
        for routing, n in sorted(needed.items()):
            verdict = (f"{n} replica(s)" if n is not None
                       else f"more than {max(counts)} replicas (not reached in the sweep)")
            console.print(f"{routing}: {verdict} for a {sim.target_hit_rate:.1%} hit rate", highlight=False)
