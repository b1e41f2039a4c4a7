"""Everything a report shows, computed once from traces: `build_report_data(traces, ...) -> ReportData`.

`ReportData` is plain, frozen data: the `Analysis` (with costs filled in when a price table is
available), a cost summary, one `Scenario` per provider caching simulation, the diagnosis findings,
the step-to-step reuse matrix, and notes saying why a section is empty. Renderers
(`profiler.report.html`, `.markdown`, `.json`) and `profiler.figures` read it and never recompute.

The cost model, provider simulations and diagnosis live in their own modules; they are imported
lazily, and when one is missing (or fails on this input) its section carries a note instead of
failing the whole report. `ReportData.unavailable` maps a section name to that note.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from profiler.analysis import Analysis, RunAnalysis, StepMetrics, analyze
from profiler.errors import ProfilerError
from profiler.trace.model import Trace

if TYPE_CHECKING:
    import pandas as pd

REPORT_SCHEMA = "ctxprof.report/1"
PROVIDERS = ("openai", "anthropic", "gemini")
# The reuse matrix is a square over steps; past this many steps it is cut (and says so).
MATRIX_MAX_STEPS = 150

SECTION_COSTS = "costs"
SECTION_SIMULATIONS = "simulations"
SECTION_DIAGNOSIS = "diagnosis"


@dataclass(frozen=True)
class CostSummary:
    """Totals of the per-step costs (USD); `unpriced_steps` had no known price and count as unknown."""

    actual_usd: float | None
    no_cache_usd: float | None
    ideal_usd: float | None
    redundant_usd: float | None
    priced_steps: int
    unpriced_steps: int

    @property
    def ideal_saving_usd(self) -> float | None:
        """What an ideal prefix cache saves against no caching at all."""
        if self.no_cache_usd is None or self.ideal_usd is None:
            return None
        return self.no_cache_usd - self.ideal_usd

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ideal_saving_usd": self.ideal_saving_usd}


@dataclass(frozen=True)
class ScenarioStep:
    run_id: str
    step_id: str
    input_tokens: int
    predicted_cached_tokens: int
    reported_cached_tokens: int | None
    cost_usd: float | None
    no_cache_cost_usd: float | None
    what_if: bool = False  # the step's own provider is not the simulated one


@dataclass(frozen=True)
class Scenario:
    """One provider's caching rules replayed over the traces (from `profiler.cache_sim.providers`)."""

    provider: str
    input_tokens: int
    predicted_cached_tokens: int
    reported_cached_tokens: int | None
    cost_usd: float | None
    no_cache_cost_usd: float | None
    saving_usd: float | None
    steps: tuple[ScenarioStep, ...] = ()
    unit: str = "provider"  # of every token figure of the row ("provider", "ctxprof" or "mixed")
    what_if_steps: int = 0  # steps of another provider's model: for them the row is a hypothetical

    @property
    def label(self) -> str:
        """The row's name in every report: a rule applied to another provider's model says so."""
        if self.what_if_steps and self.what_if_steps >= len(self.steps):
            return f"{self.provider} rules on another provider's model (what-if, simulated)"
        if self.what_if_steps:
            return (f"{self.provider} caching rules (simulated; what-if for {self.what_if_steps} step(s) "
                    "of another provider)")
        return f"{self.provider} caching rules (simulated)"

    @property
    def predicted_cached_share(self) -> float:
        return self.predicted_cached_tokens / self.input_tokens if self.input_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [asdict(s) for s in self.steps]
        return d


@dataclass(frozen=True)
class Finding:
    """One place where prefix reuse breaks (from `profiler.diagnose`)."""

    run_id: str
    step_id: str
    step_index: int | None
    token_position: int | None
    kind: str
    before_text: str | None
    after_text: str | None
    tokens_lost: int | None
    usd_lost: float | None
    fix: str | None
    detail: str | None
    # How many steps show this same break, and where in the prompt it is ("system prompt", "tools").
    occurrences: int = 1
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReuseMatrix:
    """`tokens[i][j]`: prompt tokens of step `i` that step `j` (earlier) left processed.

    Rows and columns are the same steps (`keys`, as (run_id, step_id), with display `labels`), in
    report order. `prefix[i][j]` is the part of `tokens[i][j]` that was a reusable prefix.
    """

    keys: tuple[tuple[str, str], ...]
    labels: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    prefix: tuple[tuple[int, ...], ...]
    omitted_steps: int = 0
    # Reused tokens whose source step is not in the matrix (cut off, or outside this report).
    outside_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"keys": [list(k) for k in self.keys], "labels": list(self.labels),
                "tokens": [list(r) for r in self.tokens], "prefix": [list(r) for r in self.prefix],
                "omitted_steps": self.omitted_steps, "outside_tokens": self.outside_tokens}


@dataclass(frozen=True, repr=False)
class ReportData:
    """The finished input of every report renderer (see the module docstring)."""

    analysis: Analysis
    costs: CostSummary | None
    simulations: tuple[Scenario, ...]
    diagnosis: tuple[Finding, ...] | None
    warnings: tuple[str, ...] = ()
    matrix: ReuseMatrix | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)
    title: str = "ctxprof report"

    # -- pandas views for notebooks ------------------------------------------------------------------
    @property
    def steps_df(self) -> "pd.DataFrame":
        return self.analysis.steps_df

    @property
    def runs_df(self) -> "pd.DataFrame":
        return self.analysis.runs_df

    @property
    def scenarios_df(self) -> "pd.DataFrame":
        import pandas as pd

        cols = ["provider", "input_tokens", "predicted_cached_tokens", "reported_cached_tokens",
                "cost_usd", "no_cache_cost_usd", "saving_usd"]
        return pd.DataFrame([{c: getattr(s, c) for c in cols} for s in self.simulations], columns=cols)

    @property
    def findings_df(self) -> "pd.DataFrame":
        import pandas as pd

        cols = list(Finding.__dataclass_fields__)
        return pd.DataFrame([f.to_dict() for f in self.diagnosis or ()], columns=cols)

    @property
    def matrix_df(self) -> "pd.DataFrame":
        import pandas as pd

        if self.matrix is None:
            return pd.DataFrame()
        return pd.DataFrame([list(r) for r in self.matrix.tokens], index=list(self.matrix.labels),
                            columns=list(self.matrix.labels))

    def headline(self) -> dict[str, Any]:
        """The figures a report opens with (all plain numbers; None where unknown)."""
        t = self.analysis.totals
        return {
            "runs": len(self.analysis.runs),
            "steps": t.steps,
            "total_tokens": t.input_tokens + t.output_tokens,
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
            "redundant_tokens": t.prefix_reused_tokens + t.repeated_tokens,
            "redundant_share": t.redundancy_ratio,
            "prefix_reused_tokens": t.prefix_reused_tokens,
            "repeated_tokens": t.repeated_tokens,
            "reported_cached_tokens": t.reported_cached_tokens,
            # The ideal prefix and the gap in the provider's tokens (`profiler.units`), beside `unit`.
            "ideal_prefix_tokens": t.provider_prefix_reused_tokens,
            "provider_input_tokens": t.provider_input_tokens,
            "cache_gap_tokens": t.cache_gap_tokens,
            "unit": t.unit,
            "unreliable_steps": t.unreliable_steps,
            "cost_actual_usd": None if self.costs is None else self.costs.actual_usd,
            "cost_redundant_usd": None if self.costs is None else self.costs.redundant_usd,
            "ideal_saving_usd": None if self.costs is None else self.costs.ideal_saving_usd,
            "scenario_saving_usd": {s.provider: s.saving_usd for s in self.simulations},
            "scenario_what_if": {s.provider: s.what_if_steps > 0 for s in self.simulations},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "title": self.title,
            "headline": self.headline(),
            "analysis": self.analysis.to_dict(),
            "costs": None if self.costs is None else self.costs.to_dict(),
            "simulations": [s.to_dict() for s in self.simulations],
            "diagnosis": None if self.diagnosis is None else [f.to_dict() for f in self.diagnosis],
            "reuse_matrix": None if self.matrix is None else self.matrix.to_dict(),
            "unavailable": dict(self.unavailable),
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        t = self.analysis.totals
        return (f"ReportData(title={self.title!r}, runs={len(self.analysis.runs)}, steps={t.steps}, "
                f"redundancy={t.redundancy_ratio:.1%}, costs={'yes' if self.costs else 'no'}, "
                f"simulations={[s.provider for s in self.simulations]}, "
                f"findings={None if self.diagnosis is None else len(self.diagnosis)}, "
                f"unavailable={sorted(self.unavailable)})")

    def _repr_html_(self) -> str:
        from profiler.report.html import render_summary_fragment

        return render_summary_fragment(self)


# -- building ------------------------------------------------------------------------------------------

def build_report_data(traces: Trace | Iterable[Trace], *, scope: str = "run", block_size: int = 16,
                      min_repeat: int = 32, prices: Any = None,
                      providers: Sequence[str] = PROVIDERS, tokenizer: Any = None,
                      title: str = "ctxprof report", analysis: Any = None,
                      progress: Any = None) -> ReportData:
    """Analyse `traces` once and gather everything a report shows.

    `analysis`: the analysis of `traces` with these options, when already computed (without costs).
    `prices` is a `profiler.pricing.PriceTable` (default: `PriceTable.default()` when that module is
    installed). Sections whose module is missing or fails on this input get a note in `unavailable`.
    `progress` (steps, tokens) is passed to the analysis, each provider simulation and the diagnosis.
    """
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    if analysis is None:  # else an analysis of these traces computed elsewhere (e.g. on Ray)
        analysis = analyze(trace_list, scope=scope, block_size=block_size, min_repeat=min_repeat,
                           tokenizer=tokenizer, progress=progress)
    unavailable: dict[str, str] = {}
    warnings = list(analysis.warnings)

    if prices is None:
        pricing = _optional("profiler.pricing", SECTION_COSTS, unavailable)
        if pricing is not None:
            prices = _guarded(lambda: pricing.PriceTable.default(), SECTION_COSTS, unavailable)
    costs: CostSummary | None = None
    if prices is not None:
        cost_mod = _optional("profiler.cost", SECTION_COSTS, unavailable)
        if cost_mod is not None:
            priced = _guarded(lambda: cost_mod.apply_costs(analysis, trace_list, prices),
                              SECTION_COSTS, unavailable)
            if priced is not None:
                analysis = priced
                costs = summarize_costs(analysis)
                if costs.priced_steps == 0:
                    unavailable.setdefault(SECTION_COSTS, "no step's model has a known price")

    simulations: list[Scenario] = []
    providers_mod = _optional("profiler.cache_sim.providers", SECTION_SIMULATIONS, unavailable)
    if providers_mod is not None:
        for name in providers:
            # A what-if for Anthropic needs breakpoints: steps recorded without `cache_control` marks
            # get the two a client would set (end of tools + system, end of prompt); marked steps
            # keep their own.
            options = {"auto_breakpoints": True} if name == "anthropic" else {}
            if progress is not None:
                options["progress"] = progress
            sim = _guarded(lambda: providers_mod.simulate_provider(trace_list, name, prices=prices,
                                                                   **options),
                           SECTION_SIMULATIONS, unavailable)
            if sim is not None:
                simulations.append(scenario_from(sim))

    diagnosis: tuple[Finding, ...] | None = None
    diagnose_mod = _optional("profiler.diagnose", SECTION_DIAGNOSIS, unavailable)
    if diagnose_mod is not None:
        options: dict[str, Any] = {"analysis": analysis, "prices": prices}
        if progress is not None:
            options["progress"] = progress
        if "min_repeat" in inspect.signature(diagnose_mod.diagnose).parameters:
            options["min_repeat"] = min_repeat
        result = _guarded(lambda: diagnose_mod.diagnose(trace_list, **options),
                          SECTION_DIAGNOSIS, unavailable)
        if result is not None:
            diagnosis = tuple(finding_from(f) for f in result.findings)

    return ReportData(analysis=analysis, costs=costs, simulations=tuple(simulations),
                      diagnosis=diagnosis, warnings=tuple(warnings), matrix=reuse_matrix(analysis),
                      unavailable=unavailable, title=title)


def _optional(module: str, section: str, unavailable: dict[str, str]) -> Any:
    """Import an optional analysis module; a missing one leaves a note for its section."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            note = f"not available: this installation has no {module}"
        else:
            note = f"not available: {module} needs {e.name}, which is not installed"
        unavailable.setdefault(section, note)
        return None


def _guarded(fn: Any, section: str, unavailable: dict[str, str]) -> Any:
    """Run one optional section; a `ProfilerError` becomes that section's note, not a failed report."""
    try:
        return fn()
    except ProfilerError as e:
        unavailable.setdefault(section, f"not available: {e}")
        return None


def summarize_costs(analysis: Analysis) -> CostSummary:
    t = analysis.totals
    priced = sum(1 for s in analysis.steps if s.cost_actual_usd is not None)
    return CostSummary(actual_usd=t.cost_actual_usd, no_cache_usd=t.cost_no_cache_usd,
                       ideal_usd=t.cost_ideal_usd, redundant_usd=t.cost_redundant_usd,
                       priced_steps=priced, unpriced_steps=t.steps - priced)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def scenario_from(sim: Any) -> Scenario:
    """A `Scenario` from a provider simulation result (attributes as `ProviderSimulation`)."""
    totals = _get(sim, "totals")
    steps = tuple(
        ScenarioStep(run_id=str(_get(s, "run_id")), step_id=str(_get(s, "step_id")),
                     input_tokens=int(_get(s, "input_tokens", 0) or 0),
                     predicted_cached_tokens=int(_get(s, "predicted_cached_tokens", 0) or 0),
                     reported_cached_tokens=_get(s, "reported_cached_tokens"),
                     cost_usd=_get(s, "cost_usd"), no_cache_cost_usd=_get(s, "no_cache_cost_usd"),
                     what_if=bool(_get(s, "what_if", False)))
        for s in _get(sim, "steps", ()) or ())
    return Scenario(provider=str(_get(sim, "provider")),
                    input_tokens=int(_get(totals, "input_tokens", 0) or 0),
                    predicted_cached_tokens=int(_get(totals, "predicted_cached_tokens", 0) or 0),
                    reported_cached_tokens=_get(totals, "reported_cached_tokens"),
                    cost_usd=_get(totals, "cost_usd"), no_cache_cost_usd=_get(totals, "no_cache_cost_usd"),
                    saving_usd=_get(totals, "saving_usd"), steps=steps,
                    unit=str(_get(totals, "unit", "provider")),
                    what_if_steps=int(_get(totals, "what_if_steps", 0) or 0))


def finding_from(f: Any) -> Finding:
    """A `Finding` from a diagnosis finding (attributes as `profiler.diagnose`'s findings)."""
    def text(name: str) -> str | None:
        v = _get(f, name)
        return None if v is None else str(v)

    return Finding(run_id=str(_get(f, "run_id")), step_id=str(_get(f, "step_id")),
                   step_index=_get(f, "step_index"), token_position=_get(f, "token_position"),
                   kind=str(_get(f, "kind", "")), before_text=text("before_text"),
                   after_text=text("after_text"), tokens_lost=_get(f, "tokens_lost"),
                   usd_lost=_get(f, "usd_lost"), fix=text("fix"), detail=text("detail"),
                   occurrences=int(_get(f, "occurrences", 1) or 1), where=text("where") or None)


def step_label(run: RunAnalysis, step: StepMetrics, many_runs: bool, limit: int = 32) -> str:
    """"run:index name" (or "index name" for a single run), cut to `limit` characters for chart axes.

    The index keeps labels distinct however they are cut."""
    name = step.name or step.step_id
    # Run ids tend to differ at their end (counters, dates), so a long one keeps its tail.
    run_id = run.run_id if len(run.run_id) <= 16 else "…" + run.run_id[-15:]
    prefix = f"{run_id}:{step.index}" if many_runs else f"{step.index}"
    return f"{prefix} {_cut(name, max(8, limit - len(prefix) - 1))}"


def step_labels(analysis: Analysis, limit: int = 32) -> list[str]:
    """`step_label` of every step in report order, made distinct (chart categories must be)."""
    many = len(analysis.runs) > 1
    seen: dict[str, int] = {}
    out = []
    for run in analysis.runs:
        for step in run.steps:
            label = step_label(run, step, many, limit)
            if label in seen:
                seen[label] += 1
                label = f"{label} ({seen[label]})"
            else:
                seen[label] = 1
            out.append(label)
    return out


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reuse_matrix(analysis: Analysis, max_steps: int = MATRIX_MAX_STEPS) -> ReuseMatrix | None:
    """Which earlier step each step's reused context came from, from `StepMetrics.sources`."""
    pairs = [(r, s) for r in analysis.runs for s in r.steps]
    if not pairs:
        return None
    kept = pairs[:max_steps]
    keys = tuple((s.run_id, s.step_id) for _, s in kept)
    pos = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    tokens = [[0] * n for _ in range(n)]
    prefix = [[0] * n for _ in range(n)]
    outside = 0
    for i, (_, s) in enumerate(kept):
        for src in s.sources:
            j = pos.get((src.run_id, src.step_id))
            if j is None:
                outside += src.prefix_tokens + src.repeated_tokens
                continue
            tokens[i][j] += src.prefix_tokens + src.repeated_tokens
            prefix[i][j] += src.prefix_tokens
    return ReuseMatrix(keys=keys, labels=tuple(step_labels(analysis)[:len(kept)]),
                       tokens=tuple(tuple(r) for r in tokens), prefix=tuple(tuple(r) for r in prefix),
                       omitted_steps=len(pairs) - len(kept), outside_tokens=outside)
