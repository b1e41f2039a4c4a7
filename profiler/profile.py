"""One result for every command: `profile(traces, options) -> Profile`.

Contract: `profile` analyses `traces` once with `ProfileOptions` (scope, block size, minimum repeat,
pricing), fills in costs when prices are known, runs the provider cache simulations the options name,
the engine KV-cache simulation when they give capacities, and the diagnosis unless switched off, and
returns a frozen `Profile`. Every renderer (`profiler.render`) and check reads a `Profile` and never
recomputes. `Profile.to_dict()` is a versioned document (schema `ctxprof.profile/1`, the JSON report);
`Profile.from_dict` reads it back, so a profile written once can be rendered or compared later.

Each figure carries its unit in its name (`_tokens`, `_usd`, `_s`, `_ratio`/`_rate`/`_share` as
fractions); `UNITS` states them once, and the document repeats them under "units". Whatever calibration
the analysis holds travels inside `analysis` untouched.

A section that cannot be computed on this input (a `ProfilerError` from the simulator or diagnosis, no
model with a known price) leaves a note in `Profile.unavailable` instead of failing the whole profile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from profiler.analysis import Analysis, RunAnalysis, StepMetrics
from profiler.errors import ProfilerError
from profiler.options import ProfileOptions
from profiler.trace.model import Trace

if TYPE_CHECKING:
    import pandas as pd

    from profiler.cache_sim.kv_cache import EngineSimulation
    from profiler.cache_sim.providers import ProviderSimulation
    from profiler.diagnose import Diagnosis
    from profiler.progress import Progress

PROFILE_SCHEMA = "ctxprof.profile/1"
# The reuse matrix is a square over steps; past this many steps it is cut (and says so).
MATRIX_MAX_STEPS = 150

SECTION_COSTS = "costs"
SECTION_SIMULATIONS = "simulations"
SECTION_ENGINE = "engine"
SECTION_DIAGNOSIS = "diagnosis"

# The unit of every figure, by the ending of its name.
UNITS = {"_tokens": "tokens", "_blocks": "KV blocks", "_usd": "US dollars", "_s": "seconds",
         "_ms": "milliseconds", "_ratio": "fraction (0-1)", "_rate": "fraction (0-1)",
         "_share": "fraction (0-1)", "steps": "count"}


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

    @classmethod
    def of(cls, analysis: Analysis) -> "CostSummary":
        t = analysis.totals
        priced = sum(1 for s in analysis.steps if s.cost_actual_usd is not None)
        return cls(actual_usd=t.cost_actual_usd, no_cache_usd=t.cost_no_cache_usd,
                   ideal_usd=t.cost_ideal_usd, redundant_usd=t.cost_redundant_usd,
                   priced_steps=priced, unpriced_steps=t.steps - priced)


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

    @classmethod
    def from_dict(cls, d: Any, where: str = "reuse_matrix") -> "ReuseMatrix":
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, where)

        def square(name: str) -> tuple[tuple[int, ...], ...]:
            return tuple(tuple(int(v) for v in row) for row in expect_list(d, name, where))

        return record_from_dict(cls, d, where, nested={
            "keys": tuple((str(k[0]), str(k[1])) for k in expect_list(d, "keys", where)),
            "labels": tuple(str(x) for x in expect_list(d, "labels", where)),
            "tokens": square("tokens"), "prefix": square("prefix")})


@dataclass(frozen=True, repr=False)
class Profile:
    """Everything the commands report about a set of traces (see the module docstring)."""

    options: ProfileOptions
    analysis: Analysis  # with costs filled in when prices were known
    costs: CostSummary | None = None
    simulations: tuple["ProviderSimulation", ...] = ()
    engine: "EngineSimulation | None" = None
    diagnosis: "Diagnosis | None" = None
    matrix: ReuseMatrix | None = None
    warnings: tuple[str, ...] = ()  # the analysis's (simulations and diagnosis carry their own)
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
        return pd.DataFrame([{"provider": s.provider} | {c: getattr(s.totals, c) for c in cols[1:]}
                             for s in self.simulations], columns=cols)

    @property
    def findings_df(self) -> "pd.DataFrame":
        import pandas as pd

        from profiler.diagnose import Finding

        cols = list(Finding.__dataclass_fields__)
        findings = self.diagnosis.findings if self.diagnosis is not None else ()
        return pd.DataFrame([f.to_dict() for f in findings], columns=cols)

    @property
    def matrix_df(self) -> "pd.DataFrame":
        import pandas as pd

        if self.matrix is None:
            return pd.DataFrame()
        return pd.DataFrame([list(r) for r in self.matrix.tokens], index=list(self.matrix.labels),
                            columns=list(self.matrix.labels))

    def simulation(self, provider: str) -> "ProviderSimulation | None":
        return next((s for s in self.simulations if s.provider == provider), None)

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
            "scenario_saving_usd": {s.provider: s.totals.saving_usd for s in self.simulations},
            "scenario_what_if": {s.provider: s.totals.what_if_steps > 0 for s in self.simulations},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "title": self.title,
            "options": self.options.to_dict(),
            "units": dict(UNITS),
            "headline": self.headline(),
            "analysis": self.analysis.to_dict(),
            "costs": None if self.costs is None else self.costs.to_dict(),
            "simulations": [s.to_dict() for s in self.simulations],
            "engine": None if self.engine is None else self.engine.to_dict(),
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
            "reuse_matrix": None if self.matrix is None else self.matrix.to_dict(),
            "unavailable": dict(self.unavailable),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "<profile>") -> "Profile":
        """The inverse of `to_dict` (a `ctxprof report -o x.json` output). A document of another
        schema, or a malformed field, raises `ProfilerError` naming `source` and the field."""
        from profiler.cache_sim.kv_cache import EngineSimulation
        from profiler.cache_sim.providers import ProviderSimulation
        from profiler.diagnose import Diagnosis
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, source)
        if d.get("schema") != PROFILE_SCHEMA:
            raise ProfilerError(f"{source}: field 'schema' is {d.get('schema')!r}, expected "
                                f"{PROFILE_SCHEMA!r} (write the profile with `ctxprof report -o "
                                "profile.json`)")

        def optional(name: str, read: Callable[[Any, str], Any]) -> Any:
            value = d.get(name)
            return None if value is None else read(value, f"{source}: {name}")

        costs = d.get("costs")
        if costs is not None:
            costs = {k: v for k, v in expect_mapping(costs, f"{source}: costs").items()
                     if k != "ideal_saving_usd"}
        unavailable = expect_mapping(d.get("unavailable", {}), f"{source}: unavailable")
        return cls(
            options=ProfileOptions.from_dict(d.get("options", {}), f"{source}: options"),
            analysis=Analysis.from_dict(d.get("analysis"), source=f"{source}: analysis"),
            costs=None if costs is None else record_from_dict(CostSummary, costs, f"{source}: costs"),
            simulations=tuple(ProviderSimulation.from_dict(s, f"{source}: simulations[{i}]")
                              for i, s in enumerate(expect_list(d, "simulations", source))),
            engine=optional("engine", EngineSimulation.from_dict),
            diagnosis=optional("diagnosis", Diagnosis.from_dict),
            matrix=optional("reuse_matrix", ReuseMatrix.from_dict),
            warnings=tuple(str(w) for w in expect_list(d, "warnings", source)),
            unavailable={str(k): str(v) for k, v in unavailable.items()},
            title=str(d.get("title", "ctxprof report")))

    def __repr__(self) -> str:
        t = self.analysis.totals
        return (f"Profile(title={self.title!r}, runs={len(self.analysis.runs)}, steps={t.steps}, "
                f"redundancy={t.redundancy_ratio:.1%}, costs={'yes' if self.costs else 'no'}, "
                f"simulations={[s.provider for s in self.simulations]}, "
                f"findings={None if self.diagnosis is None else len(self.diagnosis.findings)}, "
                f"unavailable={sorted(self.unavailable)})")

    def _repr_html_(self) -> str:
        from profiler.render.html import render_summary_fragment

        return render_summary_fragment(self)


# -- building ------------------------------------------------------------------------------------------

def analyze(traces: Any, *, scope: str = "run", block_size: int = 16, min_repeat: int = 32,
            tokenizer: Any = None, progress: Any = None, engine: str = "local",
            address: str | None = None) -> Analysis:
    """Compute the reuse metrics of every LLM step in `traces` (`profiler.analysis.analyze`).
    `progress`, when given, is called with (steps, tokens) done after each step.

    `engine="ray"` runs the analysis on a Ray cluster (`address`, else a local one started on demand;
    `pip install 'ctxprof[ray]'`), where `traces` may also be files, folders, globs and URIs; the
    result is the same, figure for figure (docs/scale.md)."""
    from profiler.options import Engine, resolve_engine

    if resolve_engine(engine, address) is Engine.ray:
        from profiler.distributed import analyze_on_ray

        return analyze_on_ray(traces, scope=scope, block_size=block_size, min_repeat=min_repeat,
                              address=address)
    from profiler.analysis import analyze as analyze_here

    return analyze_here(traces, scope=scope, block_size=block_size, min_repeat=min_repeat,
                        tokenizer=tokenizer, progress=progress)


def profile(traces: Trace | Iterable[Trace], options: ProfileOptions | None = None, *,
            title: str = "ctxprof report", analysis: Analysis | None = None, priced: bool = False,
            progress: "Progress | None" = None) -> Profile:
    """Analyse `traces` once and gather everything the commands report (see the module docstring).

    `analysis`: the analysis of `traces` with these options when already computed (e.g. on Ray),
    already priced as the options say when `priced` is True. `progress` (steps, tokens) is passed to
    the analysis, each simulation and the diagnosis.
    """
    from profiler.cost import apply_costs

    options = options or ProfileOptions()
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    if analysis is None:
        from profiler.analysis import analyze

        analysis = analyze(trace_list, scope=options.scope, block_size=options.block_size,
                           min_repeat=options.min_repeat, progress=progress)
    unavailable: dict[str, str] = {}
    prices = options.price_table()
    costs: CostSummary | None = None
    if prices is not None:
        if not priced:
            analysis = apply_costs(analysis, trace_list, prices)
        costs = CostSummary.of(analysis)
        if costs.priced_steps == 0:
            unavailable[SECTION_COSTS] = "no step's model has a known price"
    else:
        from profiler.pricing import PriceTable

        unavailable[SECTION_COSTS] = "not priced (--pricing none and no --price-file)"
        prices = PriceTable.empty()  # simulations and diagnosis: tokens only, no genai-prices

    simulations = []
    if options.providers:
        from profiler.cache_sim.providers import simulate_provider

        for name in options.providers:
            sim = _section(lambda: simulate_provider(trace_list, name, prices=prices, progress=progress,
                                                     **options.provider_options(name)),
                           SECTION_SIMULATIONS, unavailable)
            if sim is not None:
                simulations.append(sim)

    engine = None
    if options.engine_capacities_tokens:
        from profiler.cache_sim.kv_cache import simulate_engine

        engine = _section(lambda: simulate_engine(trace_list, list(options.engine_capacities_tokens),
                                                  block_size=options.block_size,
                                                  policy=options.engine_policy, progress=progress),
                          SECTION_ENGINE, unavailable)

    diagnosis = None
    if options.diagnose:
        from profiler.diagnose import diagnose

        diagnosis = _section(lambda: diagnose(trace_list, analysis=analysis, prices=prices,
                                              min_repeat=options.min_repeat,
                                              min_tokens_lost=options.min_tokens_lost,
                                              progress=progress),
                             SECTION_DIAGNOSIS, unavailable)

    # The profile's own warnings are the analysis's; each simulation and the diagnosis keeps its own.
    warnings = list(analysis.warnings)
    return Profile(options=options, analysis=analysis, costs=costs, simulations=tuple(simulations),
                   engine=engine, diagnosis=diagnosis, matrix=reuse_matrix(analysis),
                   warnings=tuple(warnings), unavailable=unavailable, title=title)


def _section(fn: Callable[[], Any], section: str, unavailable: dict[str, str]) -> Any:
    """Run one section; a `ProfilerError` becomes that section's note, not a failed profile."""
    try:
        return fn()
    except ProfilerError as e:
        unavailable.setdefault(section, f"not available: {e}")
        return None


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
