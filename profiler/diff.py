"""Compare two traces, analyses or baselines, per workflow and per step name.

Contract:
- `load_summary(path)` reads a trace (`.jsonl`, `.jsonl.gz`), an analysis JSON (`ctxprof analyze
  --format json`), a profile JSON (`ctxprof report -o x.json`) or a baseline JSON (`ctxprof baseline`) into a `Summary`: per workflow, the mean per
  run of input / reused (prefix reused + repeated) / novel / output tokens and cost, and (not for
  baselines, which keep no steps) the same per step key. `summarize_analysis(analysis)` does it for
  an `Analysis` in memory.
- Step keys match steps by name and occurrence within a run: the first step named "plan" of a run is
  `plan`, the second `plan #2`, so a loop that gains an iteration shows as a new key, not as a shift of
  every later step. A step without a name is keyed by its step id.
- `diff(a, b)` pairs workflows and step keys of both sides into a `DiffResult` (plain data; the
  renderers are in `profiler.render.diff`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from profiler.errors import ProfilerError

if TYPE_CHECKING:
    from profiler.analysis import Analysis, StepMetrics
    from profiler.options import ProfileOptions

DIFF_SCHEMA = "ctxprof.diff/1"
TOTAL_KEY = "(per run)"
SIDE_FIELDS = ("input_tokens", "reused_tokens", "novel_tokens", "output_tokens", "cost_usd")


@dataclass(frozen=True)
class Side:
    """Means over `count` runs (workflow totals) or over the runs that have the step key."""

    count: int
    input_tokens: float
    reused_tokens: float
    novel_tokens: float
    output_tokens: float
    cost_usd: float | None

    @property
    def redundancy_ratio(self) -> float:
        return self.reused_tokens / self.input_tokens if self.input_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "input_tokens": self.input_tokens,
                "reused_tokens": self.reused_tokens, "novel_tokens": self.novel_tokens,
                "output_tokens": self.output_tokens, "redundancy_ratio": self.redundancy_ratio,
                "cost_usd": self.cost_usd}


@dataclass(frozen=True)
class WorkflowSummary:
    workflow: str
    total: Side
    steps: tuple[tuple[str, Side], ...] | None  # None: the source keeps no steps (a baseline)


@dataclass(frozen=True)
class Summary:
    label: str
    kind: str  # "trace", "analysis" or "baseline"
    workflows: tuple[WorkflowSummary, ...]


@dataclass(frozen=True)
class DiffRow:
    key: str
    a: Side | None
    b: Side | None

    def delta(self, name: str) -> float | None:
        if self.a is None or self.b is None:
            return None
        va, vb = getattr(self.a, name), getattr(self.b, name)
        if va is None or vb is None:
            return None
        return vb - va

    def to_dict(self) -> dict[str, Any]:
        names = (*SIDE_FIELDS, "redundancy_ratio")
        return {"key": self.key,
                "a": None if self.a is None else self.a.to_dict(),
                "b": None if self.b is None else self.b.to_dict(),
                "delta": {n: self.delta(n) for n in names}}


@dataclass(frozen=True)
class WorkflowDiff:
    workflow: str
    total: DiffRow
    steps: tuple[DiffRow, ...]


@dataclass(frozen=True)
class DiffResult:
    a: str
    b: str
    workflows: tuple[WorkflowDiff, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": DIFF_SCHEMA, "a": self.a, "b": self.b,
                "workflows": [{"workflow": w.workflow, "total": w.total.to_dict(),
                               "steps": [s.to_dict() for s in w.steps]} for w in self.workflows]}


# --------------------------------------------------------------------------------------------------
# Summaries


class _Acc:
    """Sums per-run values of one key."""

    def __init__(self) -> None:
        self.count = 0
        self.sums = dict.fromkeys(SIDE_FIELDS, 0.0)
        self.cost_known = True

    def add(self, values: Mapping[str, float | None]) -> None:
        self.count += 1
        for name in SIDE_FIELDS:
            v = values[name]
            if v is None:
                if name == "cost_usd":
                    self.cost_known = False
                continue
            self.sums[name] += v

    def side(self) -> Side:
        n = self.count or 1
        return Side(count=self.count, input_tokens=self.sums["input_tokens"] / n,
                    reused_tokens=self.sums["reused_tokens"] / n,
                    novel_tokens=self.sums["novel_tokens"] / n,
                    output_tokens=self.sums["output_tokens"] / n,
                    cost_usd=self.sums["cost_usd"] / n if self.cost_known else None)


def _step_values(step: "StepMetrics") -> dict[str, float | None]:
    return {"input_tokens": float(step.input_tokens),
            "reused_tokens": float(step.prefix_reused_tokens + step.repeated_tokens),
            "novel_tokens": float(step.novel_tokens), "output_tokens": float(step.output_tokens),
            "cost_usd": step.cost_actual_usd}


def summarize_analysis(analysis: "Analysis", *, label: str = "analysis",
                       kind: str = "analysis") -> Summary:
    """Summary of the runs of an analysis (read from JSON with `Analysis.from_dict`)."""
    from profiler.check import workflow_label

    totals: dict[str, _Acc] = {}
    steps: dict[str, dict[str, _Acc]] = {}
    for run in analysis.runs:
        wf = workflow_label(run.workflow)
        run_sum: dict[str, float | None] = dict.fromkeys(SIDE_FIELDS, 0.0)
        seen: dict[str, int] = {}
        wf_steps = steps.setdefault(wf, {})
        for step in run.steps:
            values = _step_values(step)
            for name in SIDE_FIELDS:
                v = values[name]
                cur = run_sum[name]
                run_sum[name] = None if v is None or cur is None else cur + v
            name = step.name or step.step_id
            seen[name] = seen.get(name, 0) + 1
            key = name if seen[name] == 1 else f"{name} #{seen[name]}"
            wf_steps.setdefault(key, _Acc()).add(values)
        totals.setdefault(wf, _Acc()).add(run_sum)
    workflows = tuple(
        WorkflowSummary(workflow=wf, total=totals[wf].side(),
                        steps=tuple((k, acc.side()) for k, acc in steps[wf].items()))
        for wf in sorted(totals))
    return Summary(label=label, kind=kind, workflows=workflows)


def summarize_baseline(data: Mapping[str, Any], *, label: str) -> Summary:
    from profiler.check import Baseline

    baseline = Baseline.from_dict(data, source=label)
    workflows = []
    for wf, w in sorted(baseline.workflows.items()):
        def mean(metric: str) -> float | None:
            return w.value(metric, "mean")

        total = Side(count=w.runs, input_tokens=mean("input_tokens_per_run") or 0.0,
                     reused_tokens=mean("redundant_tokens_per_run") or 0.0,
                     novel_tokens=mean("novel_tokens_per_run") or 0.0,
                     output_tokens=mean("output_tokens_per_run") or 0.0,
                     cost_usd=mean("cost_per_run_usd"))
        workflows.append(WorkflowSummary(workflow=wf, total=total, steps=None))
    return Summary(label=label, kind="baseline", workflows=tuple(workflows))


def load_summary(path: str | os.PathLike[str], *, options: "ProfileOptions | None" = None
                 ) -> tuple[Summary, tuple[str, ...]]:
    """Read a trace, an analysis JSON or a baseline JSON; returns the summary and warnings. A trace
    is analysed and priced as `options` say (default: `ProfileOptions()`)."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise ProfilerError(f"{path}: no such file (give two traces, analyses or baselines)")
    if path.suffix != ".gz" and not _looks_like_trace(path):
        from profiler.importers.common import read_text
        from profiler.trace.io import parse_json

        from profiler.errors import TraceFormatError

        try:
            data = parse_json(read_text(path), path=path, line=None)
        except TraceFormatError as e:
            if not e.reason.startswith("not valid JSON"):
                raise
            raise TraceFormatError(f"neither a ctxprof trace nor a JSON analysis or baseline ({e.reason})",
                                   path=path, line=e.line) from None
        schema = data.get("schema") if isinstance(data, dict) else None
        if isinstance(schema, str) and schema.startswith("ctxprof.analysis"):
            from profiler.analysis import Analysis

            return summarize_analysis(Analysis.from_dict(data, source=label), label=label), ()
        if isinstance(schema, str) and schema.startswith("ctxprof.profile"):
            from profiler.profile import Profile

            analysis = Profile.from_dict(data, source=label).analysis
            return summarize_analysis(analysis, label=label), ()
        if schema == "ctxprof.baseline":
            return summarize_baseline(data, label=label), ()
        raise ProfilerError(f"{label}: field 'schema' is {schema!r}; expected a ctxprof trace, "
                            "an analysis (`ctxprof analyze --format json`), a profile (`ctxprof report -o x.json`) or a baseline")
    from dataclasses import replace

    from profiler.options import ProfileOptions
    from profiler.profile import profile
    from profiler.trace import load_trace

    trace = load_trace(path)
    options = replace(options or ProfileOptions(), providers=(), diagnose=False)
    analysis = profile([trace], options).analysis
    return summarize_analysis(analysis, label=label, kind="trace"), analysis.warnings


def _looks_like_trace(path: Path) -> bool:
    # Only the start of the first line: a trace's header is short, and a huge line must not be read
    # whole just to tell the kind of file (the trace reader then applies the line-length limit).
    with open(path, encoding="utf-8", errors="replace") as f:
        while True:
            line = f.readline(1 << 16)
            if not line:
                return False
            if line.strip():
                break
    try:
        first = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return '"format":"ctxprof-trace"' in line.replace(" ", "")
    return isinstance(first, dict) and first.get("format") == "ctxprof-trace"


# --------------------------------------------------------------------------------------------------
# Diff


def _ordered_keys(a: Iterable[str], b: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def diff(a: Summary, b: Summary) -> DiffResult:
    wa = {w.workflow: w for w in a.workflows}
    wb = {w.workflow: w for w in b.workflows}
    out = []
    for wf in _ordered_keys(wa, wb):
        sa, sb = wa.get(wf), wb.get(wf)
        total = DiffRow(TOTAL_KEY, sa.total if sa else None, sb.total if sb else None)
        steps_a = dict(sa.steps) if sa and sa.steps is not None else {}
        steps_b = dict(sb.steps) if sb and sb.steps is not None else {}
        if (sa and sa.steps is None) or (sb and sb.steps is None):
            # A baseline keeps no steps: comparing steps with it would call every step new.
            steps_a = steps_b = {}
        rows = tuple(DiffRow(k, steps_a.get(k), steps_b.get(k)) for k in _ordered_keys(steps_a, steps_b))
        out.append(WorkflowDiff(workflow=wf, total=total, steps=rows))
    return DiffResult(a=a.label, b=b.label, workflows=tuple(out))
