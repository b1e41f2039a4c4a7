"""CI checks: budgets and baseline regressions on the per-run metrics of an analysis.

Contract:
- `Budgets.from_file(path)` reads a budgets file (`ctxprof.toml`, or `[tool.ctxprof]` of a
  `pyproject.toml`; see docs/ci.md) and validates every key. A typo, an unknown metric or section, a
  bad value or malformed TOML raises `ConfigError` naming the file, the line and the key, with a
  "did you mean" suggestion. `Budgets.from_mapping(dict)` takes the same structure as a dict.
- `measure(analysis)` turns an `Analysis` into per-workflow, per-run metric values (`METRICS`);
  `make_baseline(analysis)` aggregates them into a `Baseline` (JSON, schema `ctxprof.baseline`,
  version 1) that a later `check` compares with.
- `check(analysis, budgets, baseline)` returns a `CheckResult`: one `CheckRow` per workflow x metric x
  kind (an absolute `budget`, or a `regression` allowance relative to the baseline) with a verdict
  `pass`, `fail` or `unknown`. A value that cannot be known (a cost without prices, a cache gap
  without provider-reported cache usage, a workflow missing from the baseline) is `unknown`, never a
  silent pass; unknown rows fail the check unless `allow_unknown` is set.

Per-run values are aggregated over the runs of a workflow with `max` (default: every run must stay
within the budget), `mean`, `median` or `p95`. Library code: it never prints or exits.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from profiler.errors import ConfigError, ProfilerError

if TYPE_CHECKING:
    from profiler.analysis import Analysis, RunAnalysis
    from profiler.trace.model import Trace

BASELINE_SCHEMA = "ctxprof.baseline"
BASELINE_VERSION = 1
CHECK_SCHEMA = "ctxprof.check/1"

UNNAMED_WORKFLOW = "(unnamed)"
AGGREGATES = ("max", "mean", "median", "p95")
DEFAULT_AGGREGATE = "max"
VERDICTS = ("pass", "fail", "unknown")


# --------------------------------------------------------------------------------------------------
# Metrics of a run


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "tokens", "steps", "ratio" or "usd"
    description: str
    value: Callable[["RunAnalysis"], float | None]


def _run_cost(field_name: str) -> Callable[["RunAnalysis"], float | None]:
    def value(run: "RunAnalysis") -> float | None:
        # A run's cost is known only when every step was priced: a partial sum would understate it.
        costs = [getattr(s, field_name) for s in run.steps]
        if any(c is None for c in costs):
            return None
        return float(sum(costs))

    return value


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("input_tokens_per_run", "tokens", "prompt tokens sent over the run",
           lambda r: r.totals.input_tokens),
    Metric("output_tokens_per_run", "tokens", "output tokens generated over the run",
           lambda r: r.totals.output_tokens),
    Metric("novel_tokens_per_run", "tokens", "prompt tokens no earlier step had processed",
           lambda r: r.totals.novel_tokens),
    Metric("redundant_tokens_per_run", "tokens",
           "prompt tokens that re-process earlier context (prefix reused + repeated)",
           lambda r: r.totals.prefix_reused_tokens + r.totals.repeated_tokens),
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


# --------------------------------------------------------------------------------------------------
# Budgets file


@dataclass(frozen=True)
class Limit:
    """One limit from the budgets file.

    kind "budget": `value` is the highest allowed aggregate of the metric; kind "regression": the
    highest allowed relative growth over the baseline (0.05 = +5%). `workflow` None applies to every
    workflow without its own limit for that metric.
    """

    kind: str
    workflow: str | None
    metric: str
    value: float
    aggregate: str
    source: str | None = None  # file the limit came from
    line: int | None = None

    @property
    def where(self) -> str | None:
        if self.source is None:
            return None
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Budgets:
    limits: tuple[Limit, ...] = ()
    aggregate: str = DEFAULT_AGGREGATE
    scope: str | None = None
    allow_unknown: bool = False
    source: str | None = None
    # Lines of the workflow tables, for errors about workflows that are not in the traces.
    workflow_lines: Mapping[tuple[str, str], int | None] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Budgets":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: budgets file not found (write one as described in docs/ci.md, "
                              "or pass --budget PATH)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the budgets file: {e}") from None
        data = _parse_toml(text, str(path))
        prefix: tuple[str, ...] = ()
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            if not isinstance(tool, dict) or "ctxprof" not in tool:
                raise ConfigError(f"{path}: has no [tool.ctxprof] table with ctxprof budgets")
            data = tool["ctxprof"]
            prefix = ("tool", "ctxprof")
        return cls.from_mapping(data, source=str(path), lines=_KeyLines(text, prefix))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<budgets>",
                     lines: "_KeyLines | None" = None) -> "Budgets":
        """Budgets from the budgets-file structure as a dict (as `tomllib` would return it)."""
        return _Parser(source, lines or _KeyLines("")).parse(data)

    def limits_for(self, workflow: str, kind: str) -> dict[str, Limit]:
        """Effective limits of `kind` for `workflow`: its own, else the ones for every workflow."""
        out: dict[str, Limit] = {}
        for lim in self.limits:
            if lim.kind == kind and lim.workflow is None:
                out[lim.metric] = lim
        for lim in self.limits:
            if lim.kind == kind and lim.workflow == workflow:
                out[lim.metric] = lim
        return out


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        line = getattr(e, "lineno", None)
        if line is None:
            m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
            line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        msg = re.sub(r"\s*\(at end of document\)", " at the end of the file", msg)
        where = source if line is None else f"{source}:{line}"
        raise ConfigError(f"{where}: invalid TOML: {msg} (fix the syntax; see docs/ci.md for the "
                          "budgets file format)") from None


_BARE_OR_QUOTED = r'(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
_KEY_PATH_RE = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_TABLE_HEADER = re.compile(rf"\[\[?\s*({_KEY_PATH_RE})\s*\]")
_KEY_LINE = re.compile(rf"({_KEY_PATH_RE})\s*=(.*)$")
_KEY_PART = re.compile(_BARE_OR_QUOTED)


def _split_key(path: str) -> tuple[str, ...]:
    parts = []
    for raw in _KEY_PART.findall(path):
        if raw.startswith('"'):
            try:
                parts.append(json.loads(raw))
            except json.JSONDecodeError:
                parts.append(raw[1:-1])
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return tuple(parts)


class _KeyLines:
    """Line numbers of the keys and tables of a TOML text (tomllib does not keep them).

    A light scan: table headers (`[a."b"]`) and `key = value` / dotted-key lines. Keys inside inline
    tables and multi-line values are not located (their errors point at the enclosing key instead).
    """

    def __init__(self, text: str, prefix: tuple[str, ...] = ()) -> None:
        self.prefix = prefix
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_multiline: str | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if in_multiline:
                if in_multiline in stripped:
                    in_multiline = None
                continue
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("["):
                m = _TABLE_HEADER.match(stripped)
                if m:
                    table = _split_key(m.group(1))
                    self._add(table, lineno)
                continue
            eq = _KEY_LINE.match(stripped)
            if eq:
                self._add(table + _split_key(eq.group(1)), lineno)
                rest = eq.group(2)
                for quote in ('"""', "'''"):
                    if rest.count(quote) == 1:
                        in_multiline = quote

    def _add(self, key: tuple[str, ...], lineno: int) -> None:
        for i in range(1, len(key) + 1):
            self._lines.setdefault(key[:i], lineno)

    def line(self, *key: str) -> int | None:
        """Line of `key`, else of its closest enclosing table that was found."""
        full = self.prefix + key
        for i in range(len(full), 0, -1):
            if full[:i] in self._lines:
                return self._lines[full[:i]]
        return None


def _suggest(word: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _table_name(*keys: str) -> str:
    parts = [k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in keys]
    return "[" + ".".join(parts) + "]"


SECTIONS = ("check", "budgets", "regression")
CHECK_KEYS = ("aggregate", "scope", "allow_unknown")
TABLE_SETTINGS = ("aggregate",)


class _Parser:
    def __init__(self, source: str, lines: _KeyLines) -> None:
        self.source = source
        self.lines = lines

    def error(self, key: tuple[str, ...], message: str) -> ConfigError:
        line = self.lines.line(*key)
        where = self.source if line is None else f"{self.source}:{line}"
        return ConfigError(f"{where}: {message}")

    def parse(self, data: Mapping[str, Any]) -> Budgets:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{self.source}: budgets must be a table, got {type(data).__name__}")
        for key in data:
            if key not in SECTIONS:
                raise self.error((key,), f"unknown section [{key}]{_suggest(key, SECTIONS)}; "
                                         f"sections are {', '.join(f'[{s}]' for s in SECTIONS)}")
        settings = self.table(data, "check")
        for key in settings:
            if key not in CHECK_KEYS:
                raise self.error(("check", key), f"unknown key {key!r} in [check]"
                                 f"{_suggest(key, CHECK_KEYS)}; keys are {', '.join(CHECK_KEYS)}")
        default_agg = self.aggregate_value(settings, ("check",), DEFAULT_AGGREGATE)
        scope = settings.get("scope")
        if scope is not None and scope not in ("run", "global"):
            raise self.error(("check", "scope"), f"scope must be 'run' or 'global', got {scope!r}")
        allow_unknown = settings.get("allow_unknown", False)
        if not isinstance(allow_unknown, bool):
            raise self.error(("check", "allow_unknown"),
                             f"allow_unknown must be true or false, got {allow_unknown!r}")
        limits: list[Limit] = []
        workflow_lines: dict[tuple[str, str], int | None] = {}
        for kind, section in (("budget", "budgets"), ("regression", "regression")):
            table = self.table(data, section)
            limits += self.limits(table, kind, (section,), None, default_agg)
            workflows = table.get("workflow", {})
            if not isinstance(workflows, Mapping):
                raise self.error((section, "workflow"),
                                 f"[{section}.workflow] must be a table of workflows, e.g. "
                                 f'[{section}.workflow."support-agent"]')
            for name, wtable in workflows.items():
                key = (section, "workflow", name)
                if not isinstance(wtable, Mapping):
                    raise self.error(key, f"{_table_name(*key)} must be a table of metric limits "
                                          f'(a workflow\'s limits go in [{section}.workflow."NAME"])')
                if "workflow" in wtable:
                    raise self.error(key + ("workflow",),
                                     f"{_table_name(*key)} cannot nest another workflow table")
                workflow_lines[(section, name)] = self.lines.line(*key)
                agg = self.aggregate_value(table, (section,), default_agg)
                limits += self.limits(wtable, kind, key, name, agg)
        return Budgets(limits=tuple(limits), aggregate=default_agg, scope=scope,
                       allow_unknown=allow_unknown, source=self.source, workflow_lines=workflow_lines)

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error((key,), f"[{key}] must be a table, got {type(value).__name__}")
        return value

    def aggregate_value(self, table: Mapping[str, Any], key: tuple[str, ...], default: str) -> str:
        value = table.get("aggregate", default)
        if value not in AGGREGATES:
            raise self.error(key + ("aggregate",), f"aggregate must be one of {', '.join(AGGREGATES)}, "
                                                   f"got {value!r}{_suggest(str(value), AGGREGATES)}")
        return value

    def limits(self, table: Mapping[str, Any], kind: str, key: tuple[str, ...], workflow: str | None,
               inherited_agg: str) -> list[Limit]:
        agg = self.aggregate_value(table, key, inherited_agg)
        out = []
        allowed = (*METRICS, *TABLE_SETTINGS) + (("workflow",) if workflow is None else ())
        for name, raw in table.items():
            if name in ("aggregate", "workflow"):
                continue
            if name not in METRICS:
                hint = _suggest(name, allowed)
                if not hint and name in CHECK_KEYS:
                    hint = " (settings go in [check])"
                raise self.error(key + (name,),
                                 f"unknown metric {name!r} in {_table_name(*key)}{hint}; metrics are "
                                 f"{', '.join(METRICS)}")
            value = self.limit_value(kind, name, raw, key + (name,))
            out.append(Limit(kind=kind, workflow=workflow, metric=name, value=value, aggregate=agg,
                             source=self.source, line=self.lines.line(*key, name)))
        return out

    def limit_value(self, kind: str, metric: str, raw: Any, key: tuple[str, ...]) -> float:
        where = f"{'.'.join(key)}"
        if kind == "regression" and isinstance(raw, str) and raw.strip().endswith("%"):
            try:
                raw = float(raw.strip()[:-1]) / 100.0
            except ValueError:
                raise self.error(key, f"{where} = {raw!r} is not a percentage (write 0.05 or \"5%\")"
                                 ) from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            example = "0.05 (allow +5%)" if kind == "regression" else "a number such as 50000"
            raise self.error(key, f"{where} must be a number, got {raw!r}; write {example}")
        if raw < 0:
            raise self.error(key, f"{where} must be >= 0, got {raw}")
        if kind == "budget" and METRICS[metric].unit == "ratio" and raw > 1:
            raise self.error(key, f"{where} = {raw} is a ratio between 0 and 1 (0.6 means 60%)")
        return float(raw)


# --------------------------------------------------------------------------------------------------
# Baseline


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
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: baseline not found (write one with `ctxprof baseline TRACE... "
                              f"-o {path}`)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the baseline: {e}") from None
        from profiler.errors import TraceFormatError
        from profiler.trace.io import parse_json

        try:
            data = parse_json(text, path=None, line=None)
        except TraceFormatError as e:
            where = f"{path}:{e.line}" if e.line is not None else str(path)
            raise ConfigError(f"{where}: invalid JSON: {e.reason} (write a new baseline with "
                              "`ctxprof baseline TRACE... -o baseline.json`)") from None
        return cls.from_dict(data, source=str(path))


def make_baseline(analysis: "Analysis") -> Baseline:
    """Aggregate the per-run metrics of `analysis` (every aggregate, so any budget file can use it)."""
    from profiler import __version__

    workflows = {}
    for name, wm in measure(analysis).items():
        metrics = {m: {how: wm.aggregate(m, how) for how in AGGREGATES} for m in METRICS}
        workflows[name] = BaselineWorkflow(runs=wm.runs, metrics=metrics)
    opts = analysis.options
    return Baseline(workflows=workflows, scope=opts.scope, block_size=opts.block_size,
                    min_repeat=opts.min_repeat, traces=tuple(analysis.traces),
                    created_unix_s=time.time(), ctxprof_version=__version__)


# --------------------------------------------------------------------------------------------------
# The check


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
                    f"{_suggest(name, measured)}; workflows in the traces: {', '.join(measured)}")
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
                               "price table; see --prices)")
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


# --------------------------------------------------------------------------------------------------
# Prices (optional: the cost model may be absent, and a model may be missing from the price table)


def apply_prices(analysis: "Analysis", traces: Sequence["Trace"],
                 prices_path: str | os.PathLike[str] | None = None) -> tuple["Analysis", tuple[str, ...]]:
    """Fill the cost fields of `analysis` from a price table; returns it and warnings (unknown
    models: their cost stays unknown). A price file that cannot be read raises `PricingError`."""
    from profiler.cost import apply_costs
    from profiler.pricing import PriceTable

    prices = PriceTable.from_file(prices_path) if prices_path is not None else PriceTable.default()
    priced = apply_costs(analysis, traces, prices)
    return priced, tuple(w for w in priced.warnings if w not in analysis.warnings)
