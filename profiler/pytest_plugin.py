"""pytest plugin: record a workflow inside a test and assert on its token use and cost.

Registered as the `ctxprof` pytest11 entry point, so installing ctxprof makes the `ctxprof_trace`
fixture available to every test suite:

    def test_support_agent_stays_cheap(ctxprof_trace):
        with profiler.record(ctxprof_trace.path, workflow="support-agent"):
            run_support_agent("reset my password")
        ctxprof_trace.assert_max(input_tokens_per_run=20_000, redundancy_ratio=0.5)
        ctxprof_trace.assert_within("ctxprof.toml")   # the same budgets file `ctxprof check` reads

The fixture gives a fresh trace path in the test's tmp_path (any writer may fill it: `profiler.record`,
`profiler.trace.TraceWriter`, an importer). Assertion failures list every failing metric. The ini
option `ctxprof_budget` names a default budgets file (relative to the rootdir) for `assert_within()`.

Importing this module is cheap: ctxprof's analysis (numpy, tokenizers) loads only when a test calls
`analyze` or an assertion.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pytest

if TYPE_CHECKING:
    from profiler.analysis import Analysis
    from profiler.check import Baseline, Budgets, CheckResult

TRACE_FILE_NAME = "ctxprof-trace.jsonl"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("ctxprof_budget", "Budgets file (ctxprof.toml) that ctxprof_trace.assert_within() "
                                    "uses when called without one; relative to the rootdir.",
                  default="")


class CtxprofTrace:
    """A trace file for one test, with helpers to analyse it and assert on its metrics."""

    def __init__(self, path: Path, *, default_budget: Path | None = None) -> None:
        self.path = path
        self.default_budget = default_budget

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"CtxprofTrace({str(self.path)!r})"

    def writer(self, header: Any = None) -> Any:
        """A `TraceWriter` appending to this trace (use it as a context manager)."""
        from profiler.trace.io import TraceWriter

        return TraceWriter(self.path, header)

    def analyze(self, *, scope: str = "run", prices: str | os.PathLike[str] | None = None,
                priced: bool = False) -> "Analysis":
        """Analyse the recorded trace (and fill in costs when `priced` or `prices` is given)."""
        __tracebackhide__ = True
        from profiler.options import Pricing, ProfileOptions
        from profiler.profile import profile
        from profiler.trace.io import load_trace

        if not self.path.exists() or self.path.stat().st_size == 0:
            pytest.fail(f"no ctxprof trace was recorded at {self.path}: record the workflow into "
                        "ctxprof_trace.path (e.g. `with profiler.record(ctxprof_trace.path, "
                        "workflow=...)`)", pytrace=False)
        trace = load_trace(self.path)
        options = ProfileOptions(scope=scope, price_file=None if prices is None else Path(prices),
                                 pricing=Pricing.default if priced or prices is not None else Pricing.none,
                                 providers=(), diagnose=False)
        return profile([trace], options).analysis

    def check(self, budget: "str | os.PathLike[str] | Mapping[str, Any] | Budgets | None" = None, *,
              baseline: "str | os.PathLike[str] | Baseline | None" = None,
              prices: str | os.PathLike[str] | None = None,
              allow_unknown: bool | None = None) -> "CheckResult":
        """Check the trace against budgets (a file, a dict shaped like the file, or `Budgets`)."""
        from profiler.check import METRICS, Baseline, check

        budgets = self._budgets(budget)
        base = (Baseline.from_file(baseline) if isinstance(baseline, (str, os.PathLike)) else baseline)
        priced = any(METRICS[lim.metric].unit == "usd" for lim in budgets.limits)
        scope = budgets.scope or (base.scope if base is not None else "run")
        analysis = self.analyze(scope=scope, prices=prices, priced=priced)
        # A shared budgets file names workflows this test did not record; that is not an error here.
        return check(analysis, budgets, base, allow_unknown=allow_unknown, strict_workflows=False)

    def assert_within(self, budget: "str | os.PathLike[str] | Mapping[str, Any] | Budgets | None" = None,
                      *, baseline: "str | os.PathLike[str] | Baseline | None" = None,
                      prices: str | os.PathLike[str] | None = None,
                      allow_unknown: bool | None = None) -> "CheckResult":
        """Fail the test unless every budget (and regression limit, with a baseline) holds."""
        __tracebackhide__ = True
        result = self.check(budget, baseline=baseline, prices=prices, allow_unknown=allow_unknown)
        self._raise_on_failure(result)
        return result

    def assert_max(self, *, workflow: str | None = None, aggregate: str = "max",
                   prices: str | os.PathLike[str] | None = None, allow_unknown: bool = False,
                   **limits: float) -> "CheckResult":
        """Fail the test when a metric exceeds its limit, e.g.
        `assert_max(input_tokens_per_run=20_000, redundancy_ratio=0.5, cost_per_run_usd=0.02)`.

        Limits apply to every workflow in the trace, or only to `workflow`.
        """
        __tracebackhide__ = True
        if not limits:
            raise TypeError("assert_max() needs at least one limit, e.g. input_tokens_per_run=20000")
        table: dict[str, Any] = {"aggregate": aggregate, **limits}
        data = {"budgets": table if workflow is None else {"workflow": {workflow: table}}}
        from profiler.check import Budgets

        budgets = Budgets.from_mapping(data, source="assert_max()")
        return self.assert_within(budgets, prices=prices, allow_unknown=allow_unknown)

    def _budgets(self, budget: Any) -> "Budgets":
        from profiler.check import Budgets

        if isinstance(budget, Budgets):
            return budget
        if budget is None:
            if self.default_budget is None:
                raise pytest.UsageError("ctxprof_trace.assert_within() needs a budgets file or dict, "
                                        "or the ini option ctxprof_budget")
            budget = self.default_budget
        if isinstance(budget, Mapping):
            return Budgets.from_mapping(budget, source="budgets dict")
        return Budgets.from_file(budget)

    def _raise_on_failure(self, result: "CheckResult") -> None:
        __tracebackhide__ = True
        from profiler.render.check_report import describe_row

        if not result.rows:
            pytest.fail(f"no ctxprof budget applies to the workflows recorded in {self.path} "
                        f"({'; '.join(result.warnings) or 'check the workflow names'})")
        if not result.passed:
            lines = [f"ctxprof budget exceeded ({len(result.failures)} of {len(result.rows)} "
                     f"check(s) failed) for {self.path}:"]
            lines += [f"  - {describe_row(r)}" for r in result.failures]
            pytest.fail("\n".join(lines))


@pytest.fixture
def ctxprof_trace(tmp_path: Path, pytestconfig: pytest.Config) -> CtxprofTrace:
    """A fresh trace path for this test (`.path`) with `analyze()`, `assert_max()`, `assert_within()`."""
    configured = pytestconfig.getini("ctxprof_budget")
    default_budget = Path(pytestconfig.rootpath, configured) if configured else None
    return CtxprofTrace(tmp_path / TRACE_FILE_NAME, default_budget=default_budget)
