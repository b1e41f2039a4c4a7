"""Serving-fleet simulation on the Mooncake FAST'25 trace: routing policies side by side.

    python benchmarks/fleet_bench.py [TRACE] [--capacity 40GiB] [--preset llama-3.1-8b]
                                     [--replicas 1,2,4,8,16] [--target 0.3]

Prints, for each routing policy (round-robin, least-loaded, prefix = consistent hashing on the
leading blocks) and replica count, the fleet's hit rate, prefill tokens saved and load balance
(max / mean prompt tokens per replica), each replica holding `--capacity` of KV memory of the
preset's model; then how many replicas each policy needs for `--target`. Checks that one replica
equals the single-engine simulator exactly, and times the sweep sequentially and with the replicas
as Ray tasks (2 CPUs; Ray's start-up is reported separately), asserting identical figures.
Default TRACE: ../shared/data/mooncake/synthetic_trace.jsonl (relative to the project root).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from profiler.cache_sim.engine import parse_capacity, simulate_engine  # noqa: E402
from profiler.cache_sim.fleet import parse_replicas, simulate_fleet  # noqa: E402
from profiler.importers.mooncake import import_mooncake  # noqa: E402
from profiler.reporters.fleet import render  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="?", default=str(ROOT.parent / "shared" / "data" / "mooncake"
                                                     / "synthetic_trace.jsonl"))
    ap.add_argument("--capacity", default="40GiB")
    ap.add_argument("--preset", default="llama-3.1-8b")
    ap.add_argument("--replicas", default="1,2,4,8,16")
    ap.add_argument("--target", type=float, default=0.3)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    trace = import_mooncake(args.trace)
    capacity = parse_capacity(args.capacity, args.preset)
    counts = parse_replicas(args.replicas)

    single = simulate_engine(trace, [capacity]).results[0]
    one = simulate_fleet(trace, replicas=[1], capacity_tokens=capacity)
    same = all((p.hit_tokens, p.prefill_tokens_saved) == (single.hit_tokens, single.prefill_tokens_saved)
               for p in one.points)
    print(f"One replica vs simulate_engine at {args.capacity} ({capacity:,} tokens): hit rate "
          f"{one.points[0].hit_rate:.4%} vs {single.hit_rate:.4%}, {'identical' if same else 'DIFFERENT'}")

    t0 = time.perf_counter()
    sim = simulate_fleet(trace, replicas=counts, capacity_tokens=capacity, target_hit_rate=args.target)
    sequential = time.perf_counter() - t0
    render(sim, Console(width=140))
    print(f"Sweep of {len(sim.points)} points ({sum(p.replicas for p in sim.points)} replica "
          f"simulations): sequential {sequential:.2f} s")
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        on_ray = simulate_fleet(trace, replicas=counts, capacity_tokens=capacity,
                                target_hit_rate=args.target, engine="ray")
        seconds = time.perf_counter() - t0
        ray.shutdown()
        assert on_ray.to_dict() == sim.to_dict(), "Ray and sequential disagree"
        print(f"Ray, 2 CPUs: {seconds:.2f} s ({sequential / seconds:.2f}x the sequential sweep; "
              f"figures identical); Ray start-up {startup:.1f} s, not counted")


if __name__ == "__main__":
    main()
