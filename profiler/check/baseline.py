"""The baseline of a CI check: per-workflow aggregates of every metric, as versioned JSON.

Contract: `make_baseline(analysis)` aggregates the per-run metrics of an analysis with every aggregate
(so any budgets file can use it); `Baseline.to_dict()` / `from_dict()` / `from_file()` write and read
it as JSON with schema `ctxprof.baseline`, version 1. A file that is not a baseline, is newer than
this ctxprof, or holds a malformed field raises `ConfigError` naming the file and field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from profiler.check.metrics import AGGREGATES, METRICS, measure
from profiler.errors import ConfigError, read_config_text

if TYPE_CHECKING:
    from profiler.analysis import Analysis

BASELINE_SCHEMA = "ctxprof.baseline"
BASELINE_VERSION = 1


@dataclass(frozen=True)
class BaselineWorkflow:
    runs: int
    # metric -> aggregate name -> value (None: unknown when the baseline was recorded)
    metrics: Mapping[str, Mapping[str, float | None]]

    def value(self, metric: str, how: str) -> float | None:
        return self.metrics.get(metric, {}).get(how)


@dataclass(frozen=True)
class Baseline:
    workflows: Mapping[str, BaselineWorkflow]
    scope: str = "run"
    block_size: int = 16
    min_repeat: int = 32
    traces: tuple[str, ...] = ()
    created_unix_s: float | None = None
    ctxprof_version: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": BASELINE_SCHEMA,
            "version": BASELINE_VERSION,
            "ctxprof_version": self.ctxprof_version,
            "created_unix_s": self.created_unix_s,
            "options": {"scope": self.scope, "block_size": self.block_size, "min_repeat": self.min_repeat},
            "traces": list(self.traces),
            "workflows": {
                name: {"runs": w.runs, "metrics": {m: dict(aggs) for m, aggs in w.metrics.items()}}
                for name, w in sorted(self.workflows.items())
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<baseline>") -> "Baseline":
        def bad(field_name: str, message: str) -> ConfigError:
            return ConfigError(f"{source}: field '{field_name}': {message} (write a new baseline with "
                               "`ctxprof baseline TRACE... -o baseline.json`)")

        if not isinstance(d, Mapping) or d.get("schema") != BASELINE_SCHEMA:
            found = d.get("schema") if isinstance(d, Mapping) else type(d).__name__
            raise bad("schema", f"expected {BASELINE_SCHEMA!r}, got {found!r}; this is not a ctxprof "
                                "baseline")
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad("version", f"expected an integer, got {version!r}")
        if version > BASELINE_VERSION:
            raise ConfigError(f"{source}: baseline version {version} is newer than this ctxprof reads "
                              f"({BASELINE_VERSION}); upgrade ctxprof (pip install -U ctxprof)")
        options = d.get("options") or {}
        if not isinstance(options, Mapping):
            raise bad("options", "expected an object")
        workflows_raw = d.get("workflows")
        if not isinstance(workflows_raw, Mapping):
            raise bad("workflows", "expected an object of workflows")
        workflows = {}
        for name, w in workflows_raw.items():
            if not isinstance(w, Mapping) or not isinstance(w.get("metrics"), Mapping):
                raise bad(f"workflows.{name}", "expected an object with 'runs' and 'metrics'")
            metrics: dict[str, dict[str, float | None]] = {}
            for metric, aggs in w["metrics"].items():
                if not isinstance(aggs, Mapping):
                    raise bad(f"workflows.{name}.metrics.{metric}", "expected an object of aggregates")
                clean: dict[str, float | None] = {}
                for agg, value in aggs.items():
                    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                        raise bad(f"workflows.{name}.metrics.{metric}.{agg}",
                                  f"expected a number or null, got {value!r}")
                    clean[agg] = None if value is None else float(value)
                metrics[metric] = clean
            runs = w.get("runs", 0)
            workflows[name] = BaselineWorkflow(runs=int(runs) if isinstance(runs, int) else 0,
                                               metrics=metrics)
        scope = options.get("scope", "run")
        if scope not in ("run", "global"):
            raise bad("options.scope", f"expected 'run' or 'global', got {scope!r}")
        sizes = {}
        for key, default in (("block_size", 16), ("min_repeat", 32)):
            value = options.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"options.{key}", f"expected a positive integer, got {value!r}")
            sizes[key] = value
        traces = d.get("traces") or ()
        if not isinstance(traces, (list, tuple)):
            raise bad("traces", "expected a list of paths")
        created = d.get("created_unix_s")
        if created is not None and (isinstance(created, bool) or not isinstance(created, (int, float))):
            raise bad("created_unix_s", f"expected a number, got {created!r}")
        version_made = d.get("ctxprof_version")
        return cls(workflows=workflows, scope=scope, block_size=sizes["block_size"],
                   min_repeat=sizes["min_repeat"], traces=tuple(str(t) for t in traces),
                   created_unix_s=created,
                   ctxprof_version=None if version_made is None else str(version_made), source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Baseline":
        path = Path(path)
        text = read_config_text(path, "baseline", f"write one with `ctxprof baseline TRACE... -o {path}`")
        from profiler.errors import TraceFormatError
        from profiler.trace.io import parse_json

        try:
            data = parse_json(text, path=None, line=None)
        except TraceFormatError as e:
            where = f"{path}:{e.line}" if e.line is not None else str(path)
            raise ConfigError(f"{where}: invalid JSON: {e.reason} (write a new baseline with "
                              "`ctxprof baseline TRACE... -o baseline.json`)") from None
        return cls.from_dict(data, source=str(path))


def make_baseline(analysis: "Analysis", *, created_unix_s: float | None = None) -> Baseline:
    """Aggregate the per-run metrics of `analysis` (every aggregate, so any budget file can use it).

    `created_unix_s`: when the baseline was recorded (the caller reads its clock; None: not recorded).
    """
    from profiler import __version__

    workflows = {}
    for name, wm in measure(analysis).items():
        metrics = {m: {how: wm.aggregate(m, how) for how in AGGREGATES} for m in METRICS}
        workflows[name] = BaselineWorkflow(runs=wm.runs, metrics=metrics)
    opts = analysis.options
    return Baseline(workflows=workflows, scope=opts.scope, block_size=opts.block_size,
                    min_repeat=opts.min_repeat, traces=tuple(analysis.traces),
                    created_unix_s=created_unix_s, ctxprof_version=__version__)
