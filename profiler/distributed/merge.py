"""Putting per-task analyses back together.

Contract: `merge_analyses(parts, options, traces)` with `parts` in the single-process order (inputs in
the order given, runs in trace order) returns the `Analysis` the single-process engine returns: the
runs concatenated, overall totals recomputed from the steps in that order (so float sums are the
same), warnings in first-seen order without repeats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from profiler.analysis import Analysis, AnalysisOptions, RunAnalysis


def merge_analyses(parts: Iterable[tuple[Sequence["RunAnalysis"], Sequence[str]]],
                   options: "AnalysisOptions", traces: Sequence[str]) -> "Analysis":
    from profiler.analysis import Analysis, Totals

    from profiler.units import calibration_warnings

    runs: list[RunAnalysis] = []
    warnings: dict[str, None] = {}
    for part_runs, part_warnings in parts:
        runs.extend(part_runs)
        # A part's calibration warnings count its own steps; the whole's are computed once below.
        own = set(calibration_warnings([s for r in part_runs for s in r.steps]))
        warnings.update(dict.fromkeys(w for w in part_warnings if w not in own))
    steps = [s for r in runs for s in r.steps]
    return Analysis(runs=tuple(runs), totals=Totals.of(steps), options=options,
                    warnings=(*warnings, *calibration_warnings(steps)), traces=tuple(traces))
