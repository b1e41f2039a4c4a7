"""The verdict of a CI check: every limit of the budgets, applied to the runs of an analysis.

Contract: `check(analysis, budgets, baseline)` returns a `CheckResult`: one `CheckRow` per workflow x
metric x kind (an absolute `budget`, or a `regression` allowance relative to the baseline) with a
verdict `pass`, `fail` or `unknown`. A value that cannot be known (a cost without prices, a cache gap
without provider-reported cache usage, a workflow missing from the baseline) is `unknown`, never a
silent pass; unknown rows fail the check unless `allow_unknown` is set. Library code: it never prints
or exits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profiler.check.baseline import Baseline
from profiler.check.budgets import Budgets, Limit
from profiler.check.metrics import METRICS, measure
from profiler.errors import ConfigError, ProfilerError, did_you_mean

if TYPE_CHECKING:
    from profiler.analysis import Analysis

CHECK_SCHEMA = "ctxprof.check/1"
VERDICTS = ("pass", "fail", "unknown")


@dataclass(frozen=True)
class CheckRow:
    workflow: str
    metric: str
    kind: str  # "budget" (absolute limit) or "regression" (allowed growth over the baseline)
    aggregate: str
    baseline: float | None
    current: float | None
    change_ratio: float | None  # (current - baseline) / |baseline|; inf when the baseline is 0
    limit: float  # the budget, or the allowed relative growth
    verdict: str  # "pass", "fail" or "unknown"
    note: str = ""
    limit_source: str | None = None  # "ctxprof.toml:7"
    runs: int = 0

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit

    def to_dict(self) -> dict[str, Any]:
        def finite(v: float | None) -> float | None:
            return v if v is None or math.isfinite(v) else None

        return {"workflow": self.workflow, "metric": self.metric, "kind": self.kind,
                "aggregate": self.aggregate, "runs": self.runs, "baseline": self.baseline,
                "current": self.current, "change_ratio": finite(self.change_ratio),
                "limit": self.limit, "verdict": self.verdict, "note": self.note,
                "limit_source": self.limit_source}


@dataclass(frozen=True)
class CheckResult:
    rows: tuple[CheckRow, ...]
    passed: bool
    allow_unknown: bool = False
    warnings: tuple[str, ...] = ()
    budget_source: str | None = None
    baseline_source: str | None = None

    @property
    def failures(self) -> tuple[CheckRow, ...]:
        """Rows that make the check fail (failed, and unknown unless unknowns are allowed)."""
        return tuple(r for r in self.rows
                     if r.verdict == "fail" or (r.verdict == "unknown" and not self.allow_unknown))

    def count(self, verdict: str) -> int:
        return sum(1 for r in self.rows if r.verdict == verdict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": CHECK_SCHEMA, "passed": self.passed, "allow_unknown": self.allow_unknown,
                "budget": self.budget_source, "baseline": self.baseline_source,
                "rows": [r.to_dict() for r in self.rows], "warnings": list(self.warnings)}


def change_ratio(baseline: float | None, current: float | None) -> float | None:
    if baseline is None or current is None:
        return None
    if baseline == 0:
        return 0.0 if current == 0 else math.inf
    return (current - baseline) / abs(baseline)


# Floating-point slack so that a value equal to its limit (after JSON round trips) passes.
_EPS = 1e-9


def check(analysis: "Analysis", budgets: Budgets, baseline: Baseline | None = None, *,
          allow_unknown: bool | None = None, strict_workflows: bool = True) -> CheckResult:
    """Check the runs of `analysis` against `budgets` and, for regression limits, `baseline`.

    `strict_workflows`: a workflow named in the budgets that is absent from the analysis is a
    `ConfigError` (a typo there would otherwise disable its budget silently). `allow_unknown`
    (default: the budgets file's `allow_unknown`) makes unknown rows pass the check.
    """
    measured = measure(analysis)
    if not measured:
        raise ProfilerError("the traces hold no runs to check; record the workflow first")
    warnings: list[str] = []
    if strict_workflows:
        for (section, name), line in sorted(budgets.workflow_lines.items()):
            if name not in measured:
                where = budgets.source if line is None else f"{budgets.source}:{line}"
                raise ConfigError(
                    f"{where}: workflow {name!r} in [{section}.workflow] is not in the traces"
                    f"{did_you_mean(name, measured)}; workflows in the traces: {', '.join(measured)}")
    has_regression = any(lim.kind == "regression" for lim in budgets.limits)
    if has_regression and baseline is None:
        warnings.append("[regression] limits were not checked: no baseline given (pass --baseline)")
    if baseline is not None:
        opts = analysis.options
        if (baseline.scope, baseline.block_size, baseline.min_repeat) != (
                opts.scope, opts.block_size, opts.min_repeat):
            warnings.append(
                f"the baseline was measured with scope={baseline.scope}, block_size={baseline.block_size}"
                f", min_repeat={baseline.min_repeat}; the traces now with scope={opts.scope}, "
                f"block_size={opts.block_size}, min_repeat={opts.min_repeat}")
        for name in sorted(set(baseline.workflows) - set(measured)):
            warnings.append(f"workflow {name!r} is in the baseline but not in the traces")

    rows: list[CheckRow] = []
    for name, wm in measured.items():
        budget_limits = budgets.limits_for(name, "budget")
        regression_limits = budgets.limits_for(name, "regression") if baseline is not None else {}
        base_wf = baseline.workflows.get(name) if baseline is not None else None
        for metric in METRICS:
            for kind, lim in (("budget", budget_limits.get(metric)),
                              ("regression", regression_limits.get(metric))):
                if lim is None:
                    continue
                current = wm.aggregate(metric, lim.aggregate)
                base = base_wf.value(metric, lim.aggregate) if base_wf is not None else None
                change = change_ratio(base, current)
                verdict, note = _verdict(kind, metric, lim, current, base, change,
                                         baseline is not None and base_wf is None)
                rows.append(CheckRow(workflow=name, metric=metric, kind=kind, aggregate=lim.aggregate,
                                     baseline=base, current=current, change_ratio=change,
                                     limit=lim.value, verdict=verdict, note=note,
                                     limit_source=lim.where, runs=wm.runs))
    if not rows:
        warnings.append("no budget or regression limit applies to the workflows in the traces")
    allow = budgets.allow_unknown if allow_unknown is None else allow_unknown
    failed = any(r.verdict == "fail" or (r.verdict == "unknown" and not allow) for r in rows)
    return CheckResult(rows=tuple(rows), passed=not failed, allow_unknown=allow,
                       warnings=tuple(warnings), budget_source=budgets.source,
                       baseline_source=None if baseline is None else baseline.source)


def _verdict(kind: str, metric: str, lim: Limit, current: float | None, base: float | None,
             change: float | None, workflow_missing_from_baseline: bool) -> tuple[str, str]:
    unit = METRICS[metric].unit
    if current is None:
        if unit == "usd":
            return "unknown", ("a step has no price (no cost model, or a model missing from the "
                               "price table; see --price-file)")
        if metric == "cache_gap_tokens_per_run":
            return "unknown", "the traces carry no provider-reported cache usage"
        return "unknown", "no value"
    if kind == "budget":
        return ("fail" if current > lim.value * (1 + _EPS) + _EPS else "pass"), ""
    if workflow_missing_from_baseline:
        return "unknown", "workflow not in the baseline (record a new one with `ctxprof baseline`)"
    if base is None:
        return "unknown", "unknown in the baseline"
    assert change is not None
    return ("fail" if change > lim.value + _EPS else "pass"), ""
