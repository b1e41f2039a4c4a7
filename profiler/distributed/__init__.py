"""Distributed analysis on Ray (optional extra `ctxprof[ray]`).

Contract: `analyze_on_ray(inputs, scope=..., block_size=..., min_repeat=..., address=..., prices=...)`
returns the same `profiler.analysis.Analysis` as the single-process `analyze` on the same traces,
figure for figure (runs, steps, totals, costs); warnings are the union of the per-task warnings.

Layout (each part replaceable on its own):
- `cluster`: connecting to a Ray cluster (or starting a local one) with one-line errors;
- `inputs`: expanding files, folders, globs and URIs (`s3://`, `gs://`, local) into trace files, and
  reading one of them inside a task;
- `run_scope`: the run-scope plan (runs are independent: analyse groups of runs in tasks, merge);
- `merge`: putting per-task analyses back together in the single-process order;
- `progress`: a progress bar on standard error when it is a terminal.

- `global_scope`: the global-scope plan (steps partitioned by their first block, repeated windows
  shuffled to their earliest step; docs/scale.md, "Global scope").

Nothing in the single-process path imports this package or Ray.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from profiler.analysis import Analysis
    from profiler.distributed.inputs import Source
    from profiler.pricing import PriceTable


def analyze_on_ray(inputs: "Source | Iterable[Source]", *, scope: str = "run",
                   block_size: int = 16, min_repeat: int = 32, address: str | None = None,
                   prices: "PriceTable | None" = None, progress: bool | None = None,
                   num_cpus: int | None = None) -> "Analysis":
    """Analyse traces (in-memory `Trace`s, or files, folders, globs and URIs) on a Ray cluster.

    `address`: an existing cluster ("auto", "ray://host:10001", "host:6379"); None starts a local
    one (with `num_cpus` CPUs, default all) unless Ray is already initialised in this process.
    `prices`: fill in costs as `profiler.cost.apply_costs` does, inside the tasks.
    """
    from profiler.analysis import AnalysisOptions
    from profiler.trace.model import Trace

    options = AnalysisOptions(scope=scope, block_size=block_size, min_repeat=min_repeat)
    single = isinstance(inputs, (Trace, str, os.PathLike))
    items: Sequence[Any] = [inputs] if single else list(inputs)  # type: ignore[arg-type]
    from profiler.distributed.cluster import connect
    from profiler.distributed.inputs import resolve_inputs
    from profiler.distributed.run_scope import analyze_run_scope

    # Resolve before starting Ray: a missing file should not cost a cluster start-up.
    resolved = resolve_inputs(items)
    connect(address, num_cpus=num_cpus)
    if options.scope == "global":
        from profiler.distributed.global_scope import analyze_global_scope
        from profiler.distributed.inputs import load_source

        # The global order needs every step's start time: the driver reads the traces (tokenizing
        # and hashing, most of the work, happen in the tasks).
        return analyze_global_scope([load_source(s) for s in resolved], options, prices=prices,
                                    progress=progress)
    return analyze_run_scope(resolved, options, prices=prices, progress=progress)


