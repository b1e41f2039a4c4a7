"""CI checks: budgets and baseline regressions on the per-run metrics of an analysis.

The package is split along its seams; every public name is re-exported here:
- `metrics`: the metric catalogue (`METRICS`), `measure(analysis)` and `aggregate(values, how)`;
- `budgets`: the budgets file (`Budgets.from_file`, `Budgets.from_mapping`), read with tomllib;
- `baseline`: the baseline JSON (`make_baseline`, `Baseline.from_file`);
- `verdict`: `check(analysis, budgets, baseline) -> CheckResult`.
Library code: it never prints, exits or reads the clock (the caller passes `created_unix_s`).
"""

from __future__ import annotations

from profiler.check.baseline import BASELINE_SCHEMA, BASELINE_VERSION, Baseline, BaselineWorkflow, make_baseline
from profiler.check.budgets import CHECK_KEYS, SECTIONS, TABLE_SETTINGS, Budgets, Limit
from profiler.check.metrics import (
    AGGREGATES,
    DEFAULT_AGGREGATE,
    METRICS,
    UNNAMED_WORKFLOW,
    Metric,
    WorkflowMetrics,
    aggregate,
    measure,
    workflow_label,
)
from profiler.check.verdict import CHECK_SCHEMA, VERDICTS, CheckResult, CheckRow, change_ratio, check

__all__ = ["AGGREGATES", "BASELINE_SCHEMA", "BASELINE_VERSION", "CHECK_KEYS", "CHECK_SCHEMA",
           "DEFAULT_AGGREGATE", "METRICS", "SECTIONS", "TABLE_SETTINGS", "UNNAMED_WORKFLOW", "VERDICTS", "Baseline",
           "BaselineWorkflow", "Budgets", "CheckResult", "CheckRow", "Limit", "Metric",
           "WorkflowMetrics", "aggregate", "apply_prices", "change_ratio", "check", "make_baseline", "measure",
           "workflow_label"]


def __getattr__(name: str) -> object:
    # `apply_prices` lives in profiler.cost (it imports the analyzer); importable from here lazily so
    # that `import profiler.check` stays light.
    if name == "apply_prices":
        from profiler.cost import apply_prices

        return apply_prices
    raise AttributeError(f"module 'profiler.check' has no attribute {name!r}")
