"""The analyzer: per-step reuse metrics of one or more traces (DESIGN.md, "Metrics").

`analyze(traces, scope=..., block_size=..., min_repeat=...)` returns an `Analysis`: per run, one
`StepMetrics` per LLM step and `Totals`; overall `Totals`; `steps_df` / `runs_df` as pandas DataFrames;
`to_dict()` for the JSON contract (`schema`, `runs[].run_id/steps/totals`, `totals`).

Scope `run` (default) compares a step with the earlier steps of its own run; `global` with every
earlier step of the input, ordered by start time (ties: file order), as a shared serving cache sees
them. Tool steps (kind "tool") carry no prompt and are left out of token metrics.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from profiler.errors import ProfilerError
from profiler.reuse import BlockReuseIndex, ReuseIndex, _Powers, namespace_salt
from profiler.tokens import StepTokenizer
from profiler.trace.model import Step, Trace, ordered_llm_steps
from profiler.units import calibrate_step, calibration_warnings

if TYPE_CHECKING:
    import pandas as pd

    from profiler.progress import Progress

ANALYSIS_SCHEMA = "ctxprof.analysis/2"
# Schema 1 had no units: its gap subtracted provider-reported cached tokens from ctxprof tokens.
ANALYSIS_SCHEMA_1 = "ctxprof.analysis/1"
SCOPES = ("run", "global")

METRIC_FIELDS = ("input_tokens", "output_tokens", "prefix_reused_tokens", "block_reused_tokens",
                 "repeated_tokens", "novel_tokens", "reported_cached_tokens", "cache_gap_tokens",
                 "redundancy_ratio")


@dataclass(frozen=True)
class ReuseSource:
    """Tokens of a step's prompt that an earlier step (`run_id`, `step_id`) first left processed."""

    run_id: str
    step_id: str
    prefix_tokens: int
    repeated_tokens: int

    @classmethod
    def from_dict(cls, d: Any, where: str = "source") -> "ReuseSource":
        from profiler.records import record_from_dict

        return record_from_dict(cls, d, where)


@dataclass(frozen=True)
class StepMetrics:
    run_id: str
    step_id: str
    name: str | None
    index: int  # position in its run (0-based, start order)
    model: str | None
    provider: str | None
    start_unix_s: float | None
    latency_ms: float | None
    content_level: str
    tokenizer: str | None
    input_tokens: int
    output_tokens: int
    prefix_reused_tokens: int
    block_reused_tokens: int
    repeated_tokens: int
    novel_tokens: int
    reported_input_tokens: int | None
    reported_cached_tokens: int | None
    reported_cache_write_tokens: int | None
    cache_gap_tokens: int | None
    redundancy_ratio: float
    sources: tuple[ReuseSource, ...] = ()
    # Costs in USD, filled in by `profiler.cost` when prices are known (None otherwise):
    # actual (with the provider's reported caching), with no caching at all, with an ideal prefix cache
    # (prefix_reused_tokens at the cache-read price), and what the redundant input tokens
    # (prefix_reused + repeated) cost at the full input price.
    cost_actual_usd: float | None = None
    cost_no_cache_usd: float | None = None
    cost_ideal_usd: float | None = None
    cost_redundant_usd: float | None = None
    reported_output_tokens: int | None = None
    # The bill figures in the provider's tokens, and how they were obtained (`profiler.units`):
    # `unit` "provider" or "ctxprof"; `calibration_method` "exact", "scaled_to_reported_input",
    # "reported_input" or "uncalibrated"; `cache_gap_tokens` and the costs are in `unit`.
    unit: str = "ctxprof"
    calibration_method: str = "uncalibrated"
    calibration_factor: float | None = None
    provider_input_tokens: int | None = None
    provider_prefix_reused_tokens: int | None = None
    provider_repeated_tokens: int | None = None
    provider_novel_tokens: int | None = None
    # Why the reported usage contradicts the content (`profiler.units.usage_flags`); any flag makes the
    # step's ideal cost, redundant cost and cache gap unreliable (left out of the totals).
    usage_flags: tuple[str, ...] = ()

    @property
    def usage_reliable(self) -> bool:
        return not self.usage_flags

    def to_dict(self) -> dict[str, Any]:
        # Field by field (the values are plain numbers and strings): `asdict` deep-copies every value
        # and was a sizeable part of `ctxprof analyze -f json` on large traces.
        d = {name: getattr(self, name) for name in _STEP_FIELDS}
        d["usage_flags"] = list(self.usage_flags)
        d["sources"] = [{"run_id": s.run_id, "step_id": s.step_id, "prefix_tokens": s.prefix_tokens,
                         "repeated_tokens": s.repeated_tokens} for s in self.sources]
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "step") -> "StepMetrics":
        """The inverse of `to_dict`; a malformed field raises `ProfilerError` naming it."""
        from profiler.records import expect_list, expect_mapping, record_from_dict

        sources = tuple(ReuseSource.from_dict(s, f"{where}.sources[{i}]")
                        for i, s in enumerate(expect_list(expect_mapping(d, where), "sources", where)))
        flags = tuple(str(f) for f in d.get("usage_flags") or ())
        return record_from_dict(cls, d, where, nested={"sources": sources, "usage_flags": flags})


_STEP_FIELDS = tuple(f.name for f in fields(StepMetrics))


@dataclass(frozen=True)
class Totals:
    steps: int
    input_tokens: int
    output_tokens: int
    prefix_reused_tokens: int
    block_reused_tokens: int
    repeated_tokens: int
    novel_tokens: int
    reported_cached_tokens: int | None
    cache_gap_tokens: int | None
    redundancy_ratio: float
    cost_actual_usd: float | None = None
    cost_no_cache_usd: float | None = None
    cost_ideal_usd: float | None = None
    cost_redundant_usd: float | None = None
    # Sums of the steps' provider-unit figures; `unit` "provider", "ctxprof" or "mixed" (some steps in
    # each). Steps with unreliable usage are left out of the gap, ideal and redundant totals: their
    # ideal cost counts as what they cost (no saving claimed), their gap and redundant cost as 0.
    unit: str = "ctxprof"
    provider_input_tokens: int | None = None
    provider_prefix_reused_tokens: int | None = None
    provider_repeated_tokens: int | None = None
    provider_novel_tokens: int | None = None
    unreliable_steps: int = 0

    @classmethod
    def of(cls, steps: Iterable[StepMetrics]) -> "Totals":
        acc = TotalsSum()
        for s in steps:
            acc.add(s)
        return acc.totals()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "totals") -> "Totals":
        from profiler.records import record_from_dict

        return record_from_dict(cls, d, where)


class TotalsSum:
    """Running sums from which `Totals` are made: `Totals.of(steps)` adds every step in order, and a
    stream of runs adds each run's steps as they come, keeping no step (the same figures, float sums
    included, since both add in the same order)."""

    _INT = ("input_tokens", "output_tokens", "prefix_reused_tokens", "block_reused_tokens",
            "repeated_tokens", "novel_tokens")
    _PROVIDER = ("input_tokens", "prefix_reused_tokens", "repeated_tokens", "novel_tokens")

    def __init__(self) -> None:
        self.steps = 0
        self.ints = dict.fromkeys(self._INT, 0)
        self.provider = dict.fromkeys(self._PROVIDER, 0)
        self.reported: int | None = None  # reliable steps with a reported cached count
        self.gap: int | None = None
        self.costs: dict[str, float | None] = dict.fromkeys(
            ("actual", "no_cache", "ideal", "redundant"), None)
        self.units: set[str] = set()
        self.unreliable = 0

    def _cost(self, name: str, value: float | None) -> None:
        if value is not None:
            current = self.costs[name]
            self.costs[name] = (0 if current is None else current) + value

    def add(self, s: StepMetrics) -> None:
        self.steps += 1
        for name in self._INT:
            self.ints[name] += getattr(s, name)
        for name in self._PROVIDER:
            v = getattr(s, "provider_" + name)
            self.provider[name] += v if v is not None else getattr(s, name)
        if s.usage_reliable and s.reported_cached_tokens is not None:
            self.reported = (self.reported or 0) + s.reported_cached_tokens
            self.gap = (self.gap or 0) + s.cache_gap_tokens
        self._cost("actual", s.cost_actual_usd)
        self._cost("no_cache", s.cost_no_cache_usd)
        self._cost("ideal", s.cost_ideal_usd if s.usage_reliable else s.cost_actual_usd)
        if s.usage_reliable:
            self._cost("redundant", s.cost_redundant_usd)
        else:
            self.unreliable += 1
        self.units.add(s.unit)

    def totals(self) -> Totals:
        i = self.ints
        units = set(self.units)
        return Totals(
            steps=self.steps,
            input_tokens=i["input_tokens"],
            output_tokens=i["output_tokens"],
            prefix_reused_tokens=i["prefix_reused_tokens"],
            block_reused_tokens=i["block_reused_tokens"],
            repeated_tokens=i["repeated_tokens"],
            novel_tokens=i["novel_tokens"],
            reported_cached_tokens=self.reported,
            cache_gap_tokens=self.gap,
            redundancy_ratio=_ratio(i["prefix_reused_tokens"] + i["repeated_tokens"], i["input_tokens"]),
            cost_actual_usd=self.costs["actual"],
            cost_no_cache_usd=self.costs["no_cache"],
            cost_ideal_usd=self.costs["ideal"],
            cost_redundant_usd=self.costs["redundant"],
            unit=units.pop() if len(units) == 1 else ("mixed" if units else "ctxprof"),
            provider_input_tokens=self.provider["input_tokens"],
            provider_prefix_reused_tokens=self.provider["prefix_reused_tokens"],
            provider_repeated_tokens=self.provider["repeated_tokens"],
            provider_novel_tokens=self.provider["novel_tokens"],
            unreliable_steps=self.unreliable,
        )


@dataclass(frozen=True)
class RunAnalysis:
    run_id: str
    workflow: str | None
    trace: str | None
    steps: tuple[StepMetrics, ...]
    totals: Totals

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "workflow": self.workflow, "trace": self.trace,
                "steps": [s.to_dict() for s in self.steps], "totals": self.totals.to_dict()}

    @classmethod
    def from_dict(cls, d: Any, where: str = "run") -> "RunAnalysis":
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, where)
        steps = tuple(StepMetrics.from_dict(s, f"{where}.steps[{i}]")
                      for i, s in enumerate(expect_list(d, "steps", where)))
        return record_from_dict(cls, d, where, nested={
            "steps": steps, "totals": Totals.from_dict(d.get("totals"), f"{where}.totals")})


@dataclass(frozen=True)
class AnalysisOptions:
    scope: str = "run"
    block_size: int = 16
    min_repeat: int = 32

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ProfilerError(f"unknown scope {self.scope!r}: use 'run' or 'global'")
        if self.block_size < 1:
            raise ProfilerError(f"--block-size must be at least 1, got {self.block_size}")
        if self.min_repeat < 1:
            raise ProfilerError(f"--min-repeat must be at least 1, got {self.min_repeat}")

    @classmethod
    def from_dict(cls, d: Any, where: str = "options") -> "AnalysisOptions":
        from profiler.records import record_from_dict

        return record_from_dict(cls, d, where)


@dataclass(frozen=True)
class Analysis:
    """Finished analysis: plain data that reporters, checks and notebooks render."""

    runs: tuple[RunAnalysis, ...]
    totals: Totals
    options: AnalysisOptions
    warnings: tuple[str, ...] = ()
    traces: tuple[str, ...] = field(default=())

    @property
    def steps(self) -> tuple[StepMetrics, ...]:
        return tuple(s for r in self.runs for s in r.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ANALYSIS_SCHEMA,
            "options": asdict(self.options),
            "traces": list(self.traces),
            "runs": [r.to_dict() for r in self.runs],
            "totals": self.totals.to_dict(),
            "warnings": list(self.warnings),
        }

    @property
    def steps_df(self) -> "pd.DataFrame":
        """One row per step, the metric columns named as in the JSON output."""
        import pandas as pd

        cols = [f.name for f in fields(StepMetrics) if f.name != "sources"]
        # Flags as one ";"-separated string, so the CSV cell is readable.
        rows = [{c: getattr(s, c) for c in cols} | {"usage_flags": ";".join(s.usage_flags),
                                                    "workflow": r.workflow}
                for r in self.runs for s in r.steps]
        return pd.DataFrame(rows, columns=[*cols, "workflow"])

    @property
    def runs_df(self) -> "pd.DataFrame":
        """One row per run with its totals."""
        import pandas as pd

        rows = [{"run_id": r.run_id, "workflow": r.workflow, "trace": r.trace, **r.totals.to_dict()}
                for r in self.runs]
        return pd.DataFrame(rows, columns=["run_id", "workflow", "trace",
                                           *[f.name for f in fields(Totals)]])

    def _repr_html_(self) -> str:
        t = self.totals
        head = (f"<p><b>ctxprof analysis</b>: {len(self.runs)} run(s), {t.steps} step(s), "
                f"{t.input_tokens:,} input tokens, redundancy {t.redundancy_ratio:.1%} "
                f"(scope {self.options.scope})</p>")
        return head + self.runs_df.to_html(index=False)

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "<analysis>") -> "Analysis":
        """The inverse of `to_dict` (an `ctxprof analyze --format json` output). A document of another
        schema, or a malformed field, raises `ProfilerError` naming `source` and the field."""
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, source)
        schema = d.get("schema")
        if schema == ANALYSIS_SCHEMA_1:
            d = _migrate_schema_1(d)
        elif schema != ANALYSIS_SCHEMA:
            raise ProfilerError(f"{source}: field 'schema' is {schema!r}, expected {ANALYSIS_SCHEMA!r} "
                                "(write the analysis with `ctxprof analyze --format json`)")
        runs = tuple(RunAnalysis.from_dict(r, f"{source}: runs[{i}]")
                     for i, r in enumerate(expect_list(d, "runs", source)))
        return record_from_dict(cls, d, source, nested={
            "runs": runs,
            "totals": Totals.from_dict(d.get("totals"), f"{source}: totals"),
            "options": AnalysisOptions.from_dict(d.get("options", {}), f"{source}: options"),
            "warnings": tuple(str(w) for w in expect_list(d, "warnings", source)),
            "traces": tuple(str(t) for t in expect_list(d, "traces", source)),
        })


def _migrate_schema_1(d: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 document in schema 2: its figures say they are in ctxprof's tokens, with an unknown
    calibration (schema 1 did not record one; its cache gap may mix units)."""
    from profiler.units import METHOD_SCHEMA_1

    def step(s: Any) -> Any:
        return s | {"unit": "ctxprof", "calibration_method": METHOD_SCHEMA_1} if isinstance(s, dict) else s

    def run(r: Any) -> Any:
        return r | {"steps": [step(s) for s in r.get("steps") or ()]} if isinstance(r, dict) else r

    return d | {"schema": ANALYSIS_SCHEMA, "runs": [run(r) for r in d.get("runs") or ()]}


COST_FIELDS = ("cost_actual_usd", "cost_no_cache_usd", "cost_ideal_usd", "cost_redundant_usd")


def _sum_known(values: Iterable[float | None]) -> float | None:
    """Sum of the known values; None when none is known (unknown prices are never counted as 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _reported(step: Step) -> tuple[int | None, int | None, int | None]:
    u = step.usage
    cached = u.cache_read_tokens
    if cached is None and u.input_tokens is not None and (u.cache_write_tokens is not None):
        cached = 0
    return u.input_tokens, cached, u.cache_write_tokens


class _Scope:
    """Reuse state of one scope: a token-level index per namespace salt and a block-level index."""

    def __init__(self, min_repeat: int, powers: _Powers) -> None:
        self.tokens = ReuseIndex(min_repeat, powers)
        self.blocks = BlockReuseIndex()


def analyze(traces: Trace | Iterable[Trace], *, scope: str = "run", block_size: int = 16,
            min_repeat: int = 32, tokenizer: StepTokenizer | None = None,
            progress: "Progress | None" = None) -> Analysis:
    """Compute the reuse metrics of every LLM step in `traces`, in this process. `progress`, when
    given, is called with (steps, tokens) done after each step (the CLI draws a bar with it). The
    public `profiler.analyze` adds the choice of engine (`profiler.profile.analyze`)."""
    options = AnalysisOptions(scope=scope, block_size=block_size, min_repeat=min_repeat)
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    tok = tokenizer or StepTokenizer()
    warnings: list[str] = [w for t in trace_list for w in t.warnings]

    ordered = ordered_llm_steps(trace_list)
    with _rare_young_collections():
        return _analyze_ordered(trace_list, ordered, options, tok, warnings, progress)


_YOUNG_THRESHOLD = 100_000  # allocations between young collections while an analysis runs
_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, ...] = ()


@contextmanager
def _rare_young_collections() -> Iterator[None]:
    """An analysis allocates many small objects that live until it ends (index entries, step
    results) and makes no reference cycles of its own. Under the default thresholds (a young
    collection every 700 allocations) the collector's full passes walk every live object again as
    they accumulate: 11% of the time of 30,000 runs sharing a prompt, against 2% at 1,000. While any
    analysis runs, young collections wait for 100,000 allocations (4% at 30,000 runs); the thresholds
    in force before come back when the last one ends. A disabled collector is left alone."""
    global _gc_depth, _gc_saved
    with _gc_lock:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            if 0 < _gc_saved[0] < _YOUNG_THRESHOLD:
                gc.set_threshold(_YOUNG_THRESHOLD, *_gc_saved[1:])
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and gc.get_threshold()[0] == _YOUNG_THRESHOLD != _gc_saved[0]:
                gc.set_threshold(*_gc_saved)


_STREAM_MEMO_LIMIT = 200_000  # distinct texts memoized before a stream of runs forgets them


def analyze_each_run(traces: Iterable[Trace], *, block_size: int = 16, min_repeat: int = 32,
                     tokenizer: StepTokenizer | None = None,
                     progress: "Progress | None" = None) -> Iterator[Analysis]:
    """Run-scope analysis as a stream: one `Analysis` per trace of `traces` (e.g. the one-run traces of
    `profiler.trace.io.iter_run_traces`), each released by the time the next is computed, so that a
    trace file larger than memory is analysed with memory bounded by its largest run. Every run's
    figures equal those of `analyze(..., scope="run")` on the whole input. The tokenizer's memo of
    distinct texts is shared across runs and cleared past `_STREAM_MEMO_LIMIT` entries."""
    tok = tokenizer or StepTokenizer()
    for trace in traces:
        yield analyze(trace, scope="run", block_size=block_size, min_repeat=min_repeat, tokenizer=tok,
                      progress=progress)
        if tok.memo_size() > _STREAM_MEMO_LIMIT:
            tok.forget()


def _analyze_ordered(trace_list: list[Trace], ordered: list[tuple[int, Step]],
                     options: AnalysisOptions, tok: StepTokenizer, warnings: list[str],
                     progress: "Progress | None" = None) -> Analysis:
    powers = _Powers()
    scopes: dict[Any, _Scope] = {}
    results: dict[tuple[int, str, str], StepMetrics] = {}
    ordinal_ids: list[tuple[str, str]] = []
    no_content: list[str] = []
    run_scope = options.scope == "run"
    # In run scope a run's index is released after its last step, so memory is bounded by the
    # largest run, not by the whole input.
    last_step = {(ti, step.run_id): ordinal for ordinal, (ti, step) in enumerate(ordered)} if run_scope else {}
    for ordinal, (ti, step) in enumerate(ordered):
        scope_key = (ti, step.run_id) if run_scope else None
        state = scopes.get(scope_key)
        if state is None:
            state = scopes[scope_key] = _Scope(options.min_repeat, powers)
        ordinal_ids.append((step.run_id, step.step_id))
        results[(ti, step.run_id, step.step_id)] = _analyze_step(step, ordinal, state, tok, options,
                                                                 ordinal_ids, no_content)
        if run_scope and last_step[scope_key] == ordinal:
            del scopes[scope_key]
        if progress is not None:
            progress(1, results[(ti, step.run_id, step.step_id)].input_tokens)
    return _finish(trace_list, ordered, results, options, warnings, no_content, tok)


def _finish(trace_list: list[Trace], ordered: list[tuple[int, Step]],
            results: dict[tuple[int, str, str], StepMetrics], options: AnalysisOptions,
            warnings: list[str], no_content: list[str], tok: StepTokenizer) -> Analysis:
    """The `Analysis` of finished step metrics (keyed by trace index, run and step id): runs in
    trace order, warnings after the traces' own. Shared with the Ray global scope."""
    absent = [s for _, s in ordered if s.attributes.get("usage_absent")]
    warnings += input_warnings(len(no_content), no_content[0] if no_content else None, len(absent),
                               absent[0] if absent else None, tok)

    runs = []
    for ti, trace in enumerate(trace_list):
        for run in trace.runs:
            metrics = [results[(ti, run.run_id, s.step_id)] for s in run.steps if s.kind == "llm"]
            metrics = [replace(m, index=i) for i, m in enumerate(metrics)]
            runs.append(RunAnalysis(run_id=run.run_id, workflow=run.workflow, trace=trace.path,
                                    steps=tuple(metrics), totals=Totals.of(metrics)))
    all_steps = [s for r in runs for s in r.steps]
    return calibrate(Analysis(runs=tuple(runs), totals=Totals.of(all_steps), options=options,
                              warnings=tuple(warnings), traces=tuple(t.path or "" for t in trace_list)),
                     trace_list)


def input_warnings(no_content: int, no_content_example: str | None, absent: int,
                   absent_example: Step | None, tok: StepTokenizer) -> list[str]:
    """The warnings about what the input lacked: `no_content` steps without prompt content (the first
    in step order named by `no_content_example`, "run/step"), `absent` steps without provider usage
    (the first is `absent_example`), and the models `tok` had no offline tokenizer for. Counts, not
    steps, so that a stream of runs gives the warnings of the whole."""
    out = []
    if no_content:
        out.append(f"{no_content} step(s) have no prompt content (e.g. {no_content_example}); "
                   "their input tokens come from reported usage and count as novel")
    if absent and absent_example is not None:
        out.append(f"{absent} step(s) carried no usage from the provider (e.g. "
                   f"{absent_example.run_id}/{absent_example.step_id}: "
                   f"{absent_example.attributes['usage_absent']}); "
                   "their input and output tokens are counted here with the tokenizer")
    if tok.approximate_models:
        out.append("no offline tokenizer for " + ", ".join(sorted(tok.approximate_models))
                   + f": token counts use {tok.default_encoding} as an approximation")
    return out


def calibrate(analysis: Analysis, traces: Trace | Iterable[Trace]) -> Analysis:
    """`analysis` with every step's unit, calibration, provider figures and usage flags filled in
    (`profiler.units.calibrate_step`), the cache gap in provider units, totals recomputed and warnings
    for what calibration found. `traces` are the analysed traces, in the order given to `analyze`."""
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    run_steps = [[s for s in run.steps if s.kind == "llm"] for t in trace_list for run in t.runs]
    if len(run_steps) != len(analysis.runs):
        run_steps = [[] for _ in analysis.runs]  # not the analysed traces: no content checks
    runs = []
    for run, steps in zip(analysis.runs, run_steps):
        new_steps = [calibrate_step(m, steps[i] if i < len(steps) else None) for i, m in enumerate(run.steps)]
        runs.append(replace(run, steps=tuple(new_steps), totals=Totals.of(new_steps)))
    all_steps = [s for r in runs for s in r.steps]
    warnings = list(analysis.warnings) + calibration_warnings(all_steps)
    return replace(analysis, runs=tuple(runs), totals=Totals.of(all_steps), warnings=tuple(warnings))


def _sources(prefix_source: int | None, prefix: int, sources: np.ndarray, covered: np.ndarray,
             ordinal_ids: list[tuple[str, str]]) -> tuple[ReuseSource, ...]:
    counts: dict[int, list[int]] = {}
    if prefix_source is not None and prefix:
        counts[prefix_source] = [prefix, 0]
    if covered.any():
        # Sources come in runs (a window's tokens share one): count by run, no sort.
        src = sources[covered]
        starts = np.flatnonzero(np.concatenate(([True], src[1:] != src[:-1])))
        lengths = np.diff(np.append(starts, src.size))
        for o, c in zip(src[starts].tolist(), lengths.tolist()):
            counts.setdefault(o, [0, 0])[1] += c
    return tuple(ReuseSource(*ordinal_ids[o], p, r) for o, (p, r) in sorted(counts.items()))


def _analyze_step(step: Step, ordinal: int, state: _Scope, tok: StepTokenizer,
                  options: AnalysisOptions, ordinal_ids: list[tuple[str, str]],
                  no_content: list[str]) -> StepMetrics:
    reported_input, reported_cached, reported_write = _reported(step)
    level = step.prompt.level
    namespace = None
    sources: tuple[ReuseSource, ...] = ()
    if level in ("text", "tokens"):
        prompt = tok.prompt_tokens(step)
        output = tok.output_tokens(step)
        namespace = tok.namespace(step)
        seq = np.concatenate([prompt, output]) if output.size else prompt
        hashes = state.tokens.hashes(seq, namespace_salt(namespace))
        match = state.tokens.match(int(prompt.size), hashes)
        state.tokens.insert(hashes, ordinal, match)
        input_tokens = int(prompt.size)
        output_tokens = token_output_count(step, output)
        prefix = match.prefix
        repeated = int(match.covered.sum())
        sources = _sources(match.prefix_source, prefix, match.sources, match.covered, ordinal_ids)
    elif level == "hashes":
        p = step.prompt
        bs = p.block_size or options.block_size
        bm = state.blocks.match(p.block_hashes or (), p.chained)
        state.blocks.insert(tuple(p.block_hashes or ()) + tuple(step.output.block_hashes or ()),
                            p.chained, ordinal)
        input_tokens = p.num_tokens or 0
        output_tokens = step.output.num_tokens or step.usage.output_tokens or 0
        prefix = min(bm.prefix_blocks * bs, input_tokens)
        repeated = min(bm.repeated_blocks * bs, input_tokens - prefix)
        namespace = f"blocks/{bs}"
        if bm.prefix_source is not None:
            sources = (ReuseSource(*ordinal_ids[bm.prefix_source], prefix, 0),)
    else:
        no_content.append(f"{step.run_id}/{step.step_id}")
        input_tokens = reported_input or 0
        output_tokens = step.output.num_tokens or step.usage.output_tokens or 0
        prefix = repeated = 0
    return step_metrics(step, options, level=level, namespace=namespace, input_tokens=input_tokens,
                        output_tokens=output_tokens, prefix=prefix, repeated=repeated, sources=sources)


def token_output_count(step: Step, output: np.ndarray) -> int:
    """Output tokens of a token-level step: its tokens, else the recorded count."""
    return int(output.size) if output.size or step.output.num_tokens is None else step.output.num_tokens


def step_metrics(step: Step, options: AnalysisOptions, *, level: str, namespace: str | None,
                 input_tokens: int, output_tokens: int, prefix: int, repeated: int,
                 sources: tuple[ReuseSource, ...]) -> StepMetrics:
    """A step's metrics from its reuse figures (one home for the derived fields)."""
    reported_input, reported_cached, reported_write = _reported(step)
    block = (prefix // options.block_size) * options.block_size
    return StepMetrics(
        run_id=step.run_id, step_id=step.step_id, name=step.name, index=0, model=step.model,
        provider=step.provider, start_unix_s=step.start_unix_s, latency_ms=step.latency_ms,
        content_level=level, tokenizer=namespace,
        input_tokens=input_tokens, output_tokens=output_tokens, prefix_reused_tokens=prefix,
        block_reused_tokens=block, repeated_tokens=repeated,
        novel_tokens=input_tokens - prefix - repeated,
        reported_input_tokens=reported_input, reported_cached_tokens=reported_cached,
        reported_cache_write_tokens=reported_write, reported_output_tokens=step.usage.output_tokens,
        cache_gap_tokens=None if reported_cached is None else prefix - reported_cached,
        redundancy_ratio=_ratio(prefix + repeated, input_tokens), sources=sources)
