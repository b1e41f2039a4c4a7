"""The metric catalogue of a CI check: per-run values of an analysis, grouped by workflow.

Contract: `METRICS` names every metric a budgets file may limit, with its unit; `measure(analysis)`
returns, per workflow ("(unnamed)" for runs without one), the per-run value of every metric (None:
unknown, e.g. a cost without prices); `aggregate(values, how)` folds them with `max`, `mean`, `median`
or `p95`, and is unknown when any run is. Token metrics are in the provider's tokens wherever the
analysis has them (`profiler.units`; each run's `totals.unit` says which).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from profiler.errors import ConfigError

if TYPE_CHECKING:
    from profiler.analysis import Analysis, RunAnalysis

UNNAMED_WORKFLOW = "(unnamed)"
AGGREGATES = ("max", "mean", "median", "p95")
DEFAULT_AGGREGATE = "max"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "tokens", "steps", "ratio" or "usd"
    description: str
    value: Callable[["RunAnalysis"], float | None]


def _provider_tokens(name: str) -> Callable[["RunAnalysis"], float | None]:
    """A run total in the provider's tokens (`profiler.units`), ctxprof's count where an older
    analysis has none."""
    def value(run: "RunAnalysis") -> float | None:
        v = getattr(run.totals, "provider_" + name)
        return v if v is not None else getattr(run.totals, name)

    return value


def _run_cost(field_name: str) -> Callable[["RunAnalysis"], float | None]:
    def value(run: "RunAnalysis") -> float | None:
        # A run's cost is known only when every step was priced: a partial sum would understate it.
        costs = [getattr(s, field_name) for s in run.steps]
        if any(c is None for c in costs):
            return None
        return float(sum(costs))

    return value


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("input_tokens_per_run", "tokens", "prompt tokens sent over the run (provider's tokens where reported)",
           _provider_tokens("input_tokens")),
    Metric("output_tokens_per_run", "tokens", "output tokens generated over the run",
           lambda r: r.totals.output_tokens),
    Metric("novel_tokens_per_run", "tokens", "prompt tokens no earlier step had processed",
           _provider_tokens("novel_tokens")),
    Metric("redundant_tokens_per_run", "tokens",
           "prompt tokens that re-process earlier context (prefix reused + repeated)",
           lambda r: _provider_tokens("prefix_reused_tokens")(r) + _provider_tokens("repeated_tokens")(r)),
    Metric("redundancy_ratio", "ratio", "redundant / input tokens of the run",
           lambda r: r.totals.redundancy_ratio),
    Metric("cache_gap_tokens_per_run", "tokens",
           "reusable prefix tokens the provider did not serve from cache (needs reported usage)",
           lambda r: r.totals.cache_gap_tokens),
    Metric("steps_per_run", "steps", "LLM calls in the run", lambda r: r.totals.steps),
    Metric("cost_per_run_usd", "usd", "actual cost of the run (needs prices)",
           _run_cost("cost_actual_usd")),
    Metric("redundant_cost_per_run_usd", "usd",
           "what the redundant input tokens cost at the full input price (needs prices)",
           _run_cost("cost_redundant_usd")),
)}


def aggregate(values: Sequence[float | None], how: str) -> float | None:
    """Aggregate per-run values; None (unknown) when there are none or any of them is unknown."""
    if how not in AGGREGATES:
        raise ConfigError(f"unknown aggregate {how!r}: use one of {', '.join(AGGREGATES)}")
    if not values or any(v is None for v in values):
        return None
    xs = sorted(float(v) for v in values)  # type: ignore[arg-type]
    if how == "max":
        return xs[-1]
    if how == "mean":
        return math.fsum(xs) / len(xs)
    q = 0.5 if how == "median" else 0.95
    # Linear interpolation between closest ranks (numpy's default "linear" method).
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class WorkflowMetrics:
    """Per-run values of every metric for the runs of one workflow (in input order)."""

    workflow: str
    run_ids: tuple[str, ...]
    values: Mapping[str, tuple[float | None, ...]]

    @property
    def runs(self) -> int:
        return len(self.run_ids)

    def aggregate(self, metric: str, how: str) -> float | None:
        return aggregate(self.values[metric], how)


def workflow_label(workflow: str | None) -> str:
    return workflow if workflow else UNNAMED_WORKFLOW


def measure(analysis: "Analysis") -> dict[str, WorkflowMetrics]:
    """Per-run metric values of every workflow of `analysis` (runs without a workflow: "(unnamed)")."""
    grouped: dict[str, list["RunAnalysis"]] = {}
    for run in analysis.runs:
        grouped.setdefault(workflow_label(run.workflow), []).append(run)
    out = {}
    for name in sorted(grouped):
        runs = grouped[name]
        values = {m.name: tuple(_number(m.value(r)) for r in runs) for m in METRICS.values()}
        out[name] = WorkflowMetrics(workflow=name, run_ids=tuple(r.run_id for r in runs), values=values)
    return out


def _number(v: float | int | None) -> float | None:
    return None if v is None else float(v)
