"""Import every real trace in ../shared/data and set ctxprof's analysis beside what the sources report.

For each source: runs, steps, total input tokens (ctxprof's tokenization of the reconstructed prompts),
the prefix-reuse ratio (prefix_reused / input) and redundancy ratio (prefix_reused + repeated) / input
from `profiler.analysis.analyze`, and, where the provider reported usage, the reported input tokens and
the provider's cached ratio (reported cached / reported input, over the steps that report both).
A second table sets the figures a bill is compared with in both units (`profiler.units`): ctxprof's
count and the provider's, the ideal prefix and the cache gap in provider units (beside the unit-mixed
gap ctxprof printed before calibration), steps whose usage contradicts their content, and the error per
call of the source's own provider simulator against the cached tokens the provider reported.
A third table checks SWE-agent's own totals (`info.model_stats`) against the analysis.

Usage: python benchmarks/validate_real.py [--data ../shared/data]
Mooncake and OpenTelemetry go through the importer registry; where their importer is not installed
the row says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiler.analysis import Analysis, analyze  # noqa: E402
from profiler.errors import ProfilerError  # noqa: E402
from profiler.importers.registry import import_sources  # noqa: E402
from profiler.trace.model import Trace  # noqa: E402


@dataclass
class Row:
    source: str
    runs: int | None = None
    steps: int | None = None
    input_tokens: int | None = None
    prefix_ratio: float | None = None
    global_prefix_ratio: float | None = None
    redundancy_ratio: float | None = None
    reported_input: int | None = None
    input_on_reported: int | None = None
    reported_cached_ratio: float | None = None
    seconds: float | None = None
    note: str = ""
    units: "UnitsRow | None" = None


@dataclass
class UnitsRow:
    unit: str
    methods: str
    ctxprof_in: int
    provider_in: int
    ideal_prefix: int
    reported_cached: int | None
    gap: int | None
    mixed_gap: int | None
    negative_gap_steps: int
    unreliable_steps: int
    sim: str = "-"
    sim_calls: int = 0
    sim_mae: float | None = None
    sim_wrong: int | None = None


def print_table(table: list[tuple[str, ...]]) -> None:
    """A plain text table: the first row is the head, the first column left-aligned, numbers right."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def units_row(trace: Trace, result: Analysis) -> UnitsRow:
    """The bill figures of `result` in both units, and the source's own simulator against reported."""
    from collections import Counter

    from profiler.cache_sim.providers import simulate_provider, step_cache_provider
    from profiler.pricing import PriceTable

    t = result.totals
    reported = [s for s in result.steps if s.reported_cached_tokens is not None]
    methods = Counter(s.calibration_method for s in result.steps)
    row = UnitsRow(
        unit=t.unit, methods=", ".join(f"{m} {n}" for m, n in methods.most_common()),
        ctxprof_in=t.input_tokens, provider_in=t.provider_input_tokens or 0,
        ideal_prefix=t.provider_prefix_reused_tokens or 0, reported_cached=t.reported_cached_tokens,
        gap=t.cache_gap_tokens,
        mixed_gap=sum(s.prefix_reused_tokens - s.reported_cached_tokens for s in reported) if reported else None,
        negative_gap_steps=sum(1 for s in reported if s.usage_reliable and (s.cache_gap_tokens or 0) < 0),
        unreliable_steps=t.unreliable_steps)
    providers = Counter(step_cache_provider(s) for s in trace.steps if s.kind == "llm")
    provider = next((p for p, _ in providers.most_common() if p), None)
    if reported and provider and any(s.prompt.level in ("text", "tokens") for s in trace.steps):
        options = {"auto_breakpoints": True} if provider == "anthropic" else {}
        sim = simulate_provider(trace, provider, prices=PriceTable.empty(), **options)
        pairs = [(s.predicted_cached_tokens, s.reported_cached_tokens) for s in sim.steps
                 if s.reported_cached_tokens is not None and s.unit == "provider" and not s.what_if]
        row.sim, row.sim_calls = provider, len(pairs)
        if pairs:
            row.sim_mae = sum(abs(p - r) for p, r in pairs) / len(pairs)
            row.sim_wrong = sum(1 for p, r in pairs if (p > 0) != (r > 0))
    return row


def row_for(name: str, trace: Trace, result: Analysis, global_result: Analysis, seconds: float,
            note: str = "") -> Row:
    t = result.totals
    g = global_result.totals
    both = [s for s in result.steps if s.reported_input_tokens is not None
            and s.reported_cached_tokens is not None]
    reported = [s for s in result.steps if s.reported_input_tokens is not None]
    rep_in = sum(s.reported_input_tokens for s in reported) if reported else None
    cached = (sum(s.reported_cached_tokens for s in both) / sum(s.reported_input_tokens for s in both)
              if both and sum(s.reported_input_tokens for s in both) else None)
    return Row(name, len(trace.runs), t.steps, t.input_tokens,
               t.prefix_reused_tokens / t.input_tokens if t.input_tokens else 0.0,
               g.prefix_reused_tokens / g.input_tokens if g.input_tokens else 0.0, t.redundancy_ratio,
               rep_in, sum(s.input_tokens for s in reported) if reported else None, cached, seconds, note,
               units_row(trace, result))


def subset(trace: Trace, keep: Callable) -> Trace:
    return Trace(header=trace.header, runs=tuple(r for r in trace.runs if keep(r)), path=trace.path)


def fmt_int(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    data: Path = args.data
    if not data.is_dir():
        print(f"{data} is not present; nothing to validate")
        return 0

    rows: list[Row] = []
    swe_checks: list[tuple[str, dict, int, int]] = []

    def run(name: str, fmt: str, sources: list[Path], options: dict | None = None,
            split: Callable[[Trace], list[tuple[str, Trace, str]]] | None = None) -> None:
        missing = [s for s in sources if not s.exists()]
        if missing:
            rows.append(Row(name, note=f"skipped: {missing[0]} is absent"))
            return
        t0 = time.perf_counter()
        try:
            trace = import_sources(fmt, sources, options)
        except ProfilerError as e:
            rows.append(Row(name, note=f"skipped: {e}"))
            return
        parts = split(trace) if split else [(name, trace, "")]
        for part_name, part, note in parts:
            t1 = time.perf_counter()
            result = analyze(part)
            global_result = analyze(part, scope="global")
            seconds = time.perf_counter() - t1 + (t1 - t0 if part is parts[0][1] else 0.0)
            rows.append(row_for(part_name, part, result, global_result, seconds, note))
            if fmt == "swe-agent":
                for r, ra in zip(part.runs, result.runs):
                    stats = r.attributes.get("reported_model_stats")
                    if stats:
                        swe_checks.append((r.run_id, stats, ra.totals.input_tokens, ra.totals.steps))

    def by_provider(trace: Trace) -> list[tuple[str, Trace, str]]:
        out = []
        for provider in sorted({s.provider or "?" for s in trace.steps}):
            part = subset(trace, lambda r, p=provider: r.steps and (r.steps[0].provider or "?") == p)
            out.append((f"openhands / {provider}", part, ""))
        return out

    def agent_and_user(trace: Trace) -> list[tuple[str, Trace, str]]:
        return [("tau-bench / agent", subset(trace, lambda r: r.parent_run_id is None), ""),
                ("tau-bench / simulated user", subset(trace, lambda r: r.parent_run_id is not None),
                 "reconstructed user-simulator prompts")]

    run("openhands", "openhands", [data / "openhands"], split=by_provider)
    run("swe-agent", "swe-agent", [data / "swe-agent"])
    run("tau-bench", "tau-bench", [data / "tau-bench" / "gpt-4o-airline.json"], {"include_user": True},
        split=agent_and_user)
    run("mooncake", "mooncake", [data / "mooncake" / "synthetic_trace.jsonl"])
    run("otel", "otel", [data / "otlp_genai_example.json"])
    run("mini-swe-agent-gemini", "mini-swe-agent", [data / "mini-swe-agent-gemini"])
    run("vcr-crewai", "vcr", [data / "vcr-crewai"])

    head = ("source", "runs", "steps", "input tok", "prefix reuse", "(global)", "redundancy",
            "reported in", "(ctxprof in)", "reported cached", "time s")
    table = [head] + [(r.source, fmt_int(r.runs), fmt_int(r.steps), fmt_int(r.input_tokens),
                       fmt_ratio(r.prefix_ratio), fmt_ratio(r.global_prefix_ratio),
                       fmt_ratio(r.redundancy_ratio), fmt_int(r.reported_input),
                       fmt_int(r.input_on_reported), fmt_ratio(r.reported_cached_ratio),
                       "-" if r.seconds is None else f"{r.seconds:.1f}") for r in rows]
    print_table(table)
    print("prefix reuse = prefix_reused / input in run scope, (global) across all runs of the source;"
          " redundancy = (prefix_reused + repeated) / input;\nreported in = provider-reported input "
          "tokens on the steps that report usage, (ctxprof in) = ctxprof's count of the same steps;"
          " reported cached = provider cached / reported input.")
    for r in rows:
        if r.note:
            print(f"  {r.source}: {r.note}")
    print_units(rows)

    if swe_checks:
        print()
        print("SWE-agent: the run's own totals (info.model_stats) against the analysis")
        print(f"  {'run':36} {'tokens_sent':>12} {'analysed in':>12} {'diff':>7} {'api_calls':>9} "
              f"{'steps':>6}")
        for run_id, stats, analysed, steps in swe_checks:
            sent = stats.get("tokens_sent")
            diff = "-" if not sent else f"{(analysed - sent) / sent:+.1%}"
            print(f"  {run_id:36} {fmt_int(sent):>12} {fmt_int(analysed):>12} {diff:>7} "
                  f"{fmt_int(stats.get('api_calls')):>9} {steps:>6}")
    gemini_rule_check(data / "mini-swe-agent-gemini")
    return 0


def print_units(rows: list[Row]) -> None:
    print()
    print("Bill figures in both units (gap and ideal in provider tokens; sim = the source's provider simulator)")
    head = ("source", "unit", "ctxprof in", "provider in", "ideal prefix", "reported cached", "gap",
            "(mixed gap)", "gap<0", "flagged", "sim", "calls", "MAE/call", "hit/miss wrong")
    table = [head]
    for r in rows:
        u = r.units
        if u is None:
            continue
        table.append((r.source, u.unit, fmt_int(u.ctxprof_in), fmt_int(u.provider_in), fmt_int(u.ideal_prefix),
                      fmt_int(u.reported_cached), fmt_int(u.gap), fmt_int(u.mixed_gap),
                      fmt_int(u.negative_gap_steps), fmt_int(u.unreliable_steps), u.sim,
                      fmt_int(u.sim_calls) if u.sim != "-" else "-",
                      "-" if u.sim_mae is None else f"{u.sim_mae:,.0f}", fmt_int(u.sim_wrong)))
    print_table(table)
    print("ctxprof in / provider in = all input tokens in ctxprof's count and calibrated to the provider's;"
          " gap = ideal prefix - reported cached over\nthe steps that report caching (provider units; "
          "steps with contradictory usage left out); (mixed gap) = ctxprof prefix - reported cached, the\n"
          "unit-mixed figure printed before calibration; gap<0 = steps where the provider cached more than "
          "the prefix; flagged = steps whose\nusage contradicts their content; MAE/call = mean |predicted -"
          " reported cached| per call, provider tokens.")
    for r in rows:
        if r.units is not None:
            print(f"  {r.source}: calibration {r.units.methods}")


def gemini_rule_check(folder: Path) -> None:
    """Gemini implicit caching: the simulator's per-call error against the cached tokens Gemini
    reported, with the rule it had before (4,096 minimum, token granularity) and the per-model rule
    of `provider_rules` (Gemini 3 Pro: 2,048 minimum, 2,048-token chunks)."""
    from profiler.cache_sim.provider_rules import GEMINI_LEGACY, rule_for
    from profiler.cache_sim.providers import simulate_provider
    from profiler.pricing import PriceTable

    if not folder.is_dir():
        return
    trace = import_sources("mini-swe-agent", [folder])
    model = trace.steps[0].model
    new_rule = rule_for("gemini", model)
    print()
    print(f"Gemini implicit caching ({folder.name}, model {model}): per-call error against reported cached")
    legacy_sim = simulate_provider(trace, "gemini", prices=PriceTable.empty(),
                                   min_tokens=GEMINI_LEGACY.min_tokens, chunk_tokens=GEMINI_LEGACY.chunk_tokens)
    new_sim = simulate_provider(trace, "gemini", prices=PriceTable.empty())

    def errors(sim) -> tuple[int, float, int]:
        pairs = [(s.predicted_cached_tokens, s.reported_cached_tokens) for s in sim.steps
                 if s.reported_cached_tokens is not None]
        abs_err = sum(abs(p - r) for p, r in pairs)
        return len(pairs), abs_err / max(1, len(pairs)), sum(1 for p, r in pairs if (p > 0) != (r > 0))

    # Provider units throughout: the shared prefix of a call is taken as the previous call's reported
    # prompt (the history is append-only), so no tokenizer enters this comparison.
    def rule_errors(min_tokens: int, chunk: int) -> tuple[int, float, int]:
        pairs = []
        for run in trace.runs:
            previous = None
            for step in run.steps:
                reported = step.usage.cache_read_tokens
                if previous is not None and reported is not None and step.usage.input_tokens:
                    shared = previous if step.usage.input_tokens >= min_tokens and previous >= min_tokens else 0
                    pairs.append(((shared // chunk) * chunk, reported))
                previous = step.usage.input_tokens
        abs_err = sum(abs(p - r) for p, r in pairs)
        return len(pairs), abs_err / max(1, len(pairs)), sum(1 for p, r in pairs if (p > 0) != (r > 0))

    rows = [("rule", "calls (sim/rule)", "sim MAE (provider tok)", "sim hit/miss wrong", "rule MAE (provider tok)",
             "rule hit/miss wrong")]
    for label, sim, (mn, ch) in (
            (f"before: min {GEMINI_LEGACY.min_tokens}, chunk {GEMINI_LEGACY.chunk_tokens}", legacy_sim,
             (GEMINI_LEGACY.min_tokens, GEMINI_LEGACY.chunk_tokens)),
            (f"now: min {new_rule.min_tokens}, chunk {new_rule.chunk_tokens}", new_sim,
             (new_rule.min_tokens, new_rule.chunk_tokens))):
        n, mae, wrong = errors(sim)
        rn, rmae, rwrong = rule_errors(mn, ch)
        rows.append((label, f"{n}/{rn}", f"{mae:,.0f}", fmt_int(wrong), f"{rmae:,.0f}", fmt_int(rwrong)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
    print("  sim = the simulator: prefixes matched on ctxprof's o200k stand-in tokens, scaled per call to"
          " Gemini's reported input, then the\n  minimum and chunk applied in Gemini's units; rule = the rule"
          " applied to the previous call's reported prompt, in Gemini's own\n  units; hit/miss wrong = calls"
          " where one side is 0 and the other not.")


if __name__ == "__main__":
    raise SystemExit(main())
