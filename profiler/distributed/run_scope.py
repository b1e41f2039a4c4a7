"""Run scope on Ray: runs are independent, so each task analyses whole runs with the single-process
`profiler.analysis.analyze` and the driver merges the results (docs/scale.md, "Run scope").

Work units: a file is read by one task (runs never span files, and reading is most of the work); an
in-memory trace is cut into groups of whole runs of about `target_steps` steps each, shipped through
Ray's object store. Costs are filled in inside the tasks when a price table is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from profiler.distributed.inputs import Source, load_source
from profiler.trace.model import Trace

if TYPE_CHECKING:
    from profiler.analysis import Analysis, AnalysisOptions, RunAnalysis
    from profiler.pricing import PriceTable


def analyze_unit(source: Source, options: "AnalysisOptions",
                 prices: "PriceTable | None") -> tuple[tuple["RunAnalysis", ...], tuple[str, ...], str]:
    """One task: read (or take) a trace, analyse it in run scope, price it; plain data back."""
    from profiler.analysis import analyze

    trace = load_source(source)
    analysis = analyze(trace, scope="run", block_size=options.block_size, min_repeat=options.min_repeat)
    if prices is not None:
        from profiler.cost import apply_costs

        analysis = apply_costs(analysis, trace, prices)
    return analysis.runs, analysis.warnings, trace.path or ""


def split_runs(trace: Trace, target_steps: int) -> list[Trace]:
    """`trace` cut into traces of whole runs, in run order, each about `target_steps` steps."""
    groups: list[list[Any]] = [[]]
    size = 0
    for run in trace.runs:
        if groups[-1] and size + len(run.steps) > target_steps:
            groups.append([])
            size = 0
        groups[-1].append(run)
        size += len(run.steps)
    return [Trace(header=trace.header, runs=tuple(g), path=trace.path, warnings=trace.warnings)
            for g in groups]


def plan_units(sources: Sequence[Source], workers: int) -> list[tuple[int, Source]]:
    """(input index, unit) pairs in the single-process order."""
    units: list[tuple[int, Source]] = []
    for i, source in enumerate(sources):
        if isinstance(source, Trace):
            steps = sum(len(r.steps) for r in source.runs)
            target = max(1, -(-steps // (4 * workers)))  # a few units per worker balance the load
            units.extend((i, part) for part in split_runs(source, target))
        else:
            units.append((i, source))
    return units


def analyze_run_scope(sources: Sequence[Source], options: "AnalysisOptions", *,
                      prices: "PriceTable | None" = None, progress: bool | None = None) -> "Analysis":
    from profiler.distributed.cluster import cluster_cpus, require_ray
    from profiler.distributed.merge import merge_analyses
    from profiler.distributed.progress import gather

    ray = require_ray()
    task = ray.remote(num_cpus=1, max_retries=0)(analyze_unit)
    units = plan_units(sources, cluster_cpus())
    opts_ref, prices_ref = ray.put(options), ray.put(prices)
    refs = [task.remote(ray.put(u) if isinstance(u, Trace) else u, opts_ref, prices_ref)
            for _, u in units]
    paths: dict[int, str] = {}
    parts = []
    for (index, _), (runs, warnings, path) in zip(units, gather(ray, refs, "analyse (ray)", progress)):
        paths.setdefault(index, path)
        parts.append((runs, warnings))
    return merge_analyses(parts, options, [paths.get(i, "") for i in range(len(sources))])
