"""Fleet simulation on Ray: the router ran on the driver in one pass (`profiler.cache_sim.fleet.route`);
here each replica of each (routing, replica count) point is one task running the same
`simulate_replica`, so the figures are those of the sequential path.

Contract: `simulate_replicas_on_ray(plans, simulate_replica, capacity_tokens, block_size, policy,
address)` takes, per point, the requests of each replica in order, and returns per point the results of
`simulate_replica(replica, requests, capacity_tokens, block_size, policy)` in replica order. The
replica simulator is passed in by `profiler.cache_sim.fleet`, so this module does not import it back.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence


def simulate_replicas_on_ray(plans: Sequence[Sequence[Sequence[Any]]], simulate_replica: Callable[..., Any],
                             capacity_tokens: int | None, block_size: int, policy: str,
                             address: str | None = None, progress: bool | None = None) -> list[list[Any]]:
    from profiler.distributed.cluster import connect
    from profiler.distributed.progress import progress_bar, task_result

    ray = connect(address)
    task = ray.remote(num_cpus=1, max_retries=0)(simulate_replica)
    refs = [[task.remote(r, ray.put(list(group)), capacity_tokens, block_size, policy)
             for r, group in enumerate(groups)] for groups in plans]
    out: list[list[Any]] = []
    with progress_bar("simulate fleet (ray)", sum(len(r) for r in refs), progress) as advance:
        for point in refs:
            out.append([task_result(ray, ref) for ref in point])
            advance(len(point))
    return out
