"""Console tables (rich) and CSV/JSON writers: `write_table(profile, stream)` is the console view
of a `Profile` (the analysis tables, then whichever simulations and diagnosis it holds)."""

from __future__ import annotations

import csv
from typing import IO, TYPE_CHECKING, Any, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from profiler.analysis import Analysis, Totals
from profiler.render import fmt
from profiler.render.jsontext import dumps

if TYPE_CHECKING:
    from profiler.profile import Profile

SECTIONS = ("analysis", "simulations", "engine", "diagnosis")

_fmt_int = fmt.tokens
_fmt_pct = fmt.pct
_fmt_cost = fmt.usd


def analysis_table(analysis: Analysis, *, title: str | None = None) -> list[Table]:
    """One rich table per run (one row per step, totals in the footer) and one for the totals."""
    tables = []
    has_cost = any(s.cost_actual_usd is not None for s in analysis.steps)
    # Beside the provider's cached count, the ideal and the gap in the same (provider) units.
    has_cached = any(s.reported_cached_tokens is not None for s in analysis.steps)
    for run in analysis.runs:
        label = run.run_id if not run.workflow else f"{run.workflow} / {run.run_id}"
        t = Table(title=f"{label}  ({run.trace})" if run.trace else label, show_footer=True,
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
        tot = run.totals

        def num(header: str, footer: str, values: list[str]) -> None:
            # Numbers are never truncated: the step-name column gives way instead.
            width = max(len(header), len(footer), *(len(v) for v in values)) if values else len(header)
            t.add_column(header, footer=footer, justify="right", no_wrap=True, min_width=width)

        rows = [[str(s.index), s.name or s.step_id, _fmt_int(s.input_tokens),
                 _fmt_int(s.prefix_reused_tokens), _fmt_int(s.block_reused_tokens),
                 _fmt_int(s.repeated_tokens), _fmt_int(s.novel_tokens), _fmt_int(s.output_tokens),
                 _fmt_int(s.reported_cached_tokens), _fmt_pct(s.redundancy_ratio)]
                + ([_fmt_cost(s.cost_actual_usd), _fmt_cost(s.cost_redundant_usd)] if has_cost else [])
                + ([_fmt_int(s.provider_prefix_reused_tokens),
                    _fmt_int(s.cache_gap_tokens) + ("!" if s.usage_flags else "")] if has_cached else [])
                for s in run.steps]
        col = [list(c) for c in zip(*rows)] if rows else [[] for _ in range(14)]
        num("#", "all", col[0])
        t.add_column("step", footer=f"{tot.steps} steps", no_wrap=True, overflow="ellipsis")
        num("input", _fmt_int(tot.input_tokens), col[2])
        num("prefix", _fmt_int(tot.prefix_reused_tokens), col[3])
        num("block", _fmt_int(tot.block_reused_tokens), col[4])
        num("repeated", _fmt_int(tot.repeated_tokens), col[5])
        num("novel", _fmt_int(tot.novel_tokens), col[6])
        num("output", _fmt_int(tot.output_tokens), col[7])
        num("cached", _fmt_int(tot.reported_cached_tokens), col[8])
        num("redund.", _fmt_pct(tot.redundancy_ratio), col[9])
        if has_cost:
            num("cost", _fmt_cost(tot.cost_actual_usd), col[10])
            num("redund. $", _fmt_cost(tot.cost_redundant_usd), col[11])
        if has_cached:
            at = 12 if has_cost else 10
            num("ideal (prov.)", _fmt_int(tot.provider_prefix_reused_tokens), col[at])
            num("gap (prov.)", _fmt_int(tot.cache_gap_tokens), col[at + 1])
        for row in rows:
            t.add_row(*row)
        tables.append(t)
    return tables


def totals_line(totals: Totals, runs: int) -> str:
    reused = totals.prefix_reused_tokens + totals.repeated_tokens
    line = (f"{runs} run(s), {totals.steps} step(s): {totals.input_tokens:,} input tokens, "
            f"{reused:,} of them ({totals.redundancy_ratio:.1%}) re-process earlier context "
            f"({totals.prefix_reused_tokens:,} as a reusable prefix, {totals.repeated_tokens:,} repeated "
            f"elsewhere)")
    if totals.unit != "ctxprof" and totals.provider_input_tokens != totals.input_tokens:
        line += (f". In the provider's tokens{' (some steps uncalibrated)' if totals.unit == 'mixed' else ''}: "
                 f"{totals.provider_input_tokens:,} input, {totals.provider_prefix_reused_tokens:,} "
                 "reusable prefix")
    if totals.cache_gap_tokens is not None:
        line += (f"; cache gap {totals.cache_gap_tokens:,} reusable tokens not served from cache "
                 f"({totals.unit} units)")
    if totals.unreliable_steps:
        line += (f"; {totals.unreliable_steps} step(s) with contradictory usage left out of the ideal "
                 "and gap")
    if totals.cost_actual_usd is not None:
        line += (f". Spent {_fmt_cost(totals.cost_actual_usd)} (no cache: "
                 f"{_fmt_cost(totals.cost_no_cache_usd)}, ideal prefix cache: "
                 f"{_fmt_cost(totals.cost_ideal_usd)}); redundant input cost "
                 f"{_fmt_cost(totals.cost_redundant_usd)} at full price")
    return line


LEGEND = ("prefix: prefix_reused_tokens (an ideal prefix cache could skip them); block: the same in "
          "whole blocks; repeated: repeated_tokens (seen before, outside the prefix); cached: what the "
          "provider reported as cache hits; redund.: (prefix + repeated) / input; ideal (prov.) and "
          "gap (prov.): the reusable prefix and the reuse not served from cache, in the provider's "
          "tokens (docs/metrics.md); !: usage contradicts the content (left out of the gap total)")


def print_analysis(analysis: Analysis, console: Console) -> None:
    for table in analysis_table(analysis):
        console.print(table)
    console.print(LEGEND, style="dim")
    console.print(totals_line(analysis.totals, len(analysis.runs)))


def table_console(stream: IO[str], **kwargs: Any) -> Console:
    """A rich console for tables: a terminal keeps its width; a pipe or a file gets room for every
    column (rich would otherwise assume 80 columns and cut numbers short)."""
    from profiler.safe_text import console

    return console(file=stream, width=None if stream.isatty() else 160, **kwargs)


def write_table(profile: "Profile", stream: IO[str], sections: Sequence[str] = SECTIONS) -> None:
    """The console view of `profile`: each of `sections` it holds, in the order of `SECTIONS`."""
    console = table_console(stream, highlight=False)
    if "analysis" in sections:
        print_analysis(profile.analysis, console)
    if "simulations" in sections:
        from profiler.render.simulation import print_provider_simulation

        for sim in profile.simulations:
            print_provider_simulation(sim, console)
    if "engine" in sections and profile.engine is not None:
        from profiler.render.engine_cache import render

        render(profile.engine, console)
    if "diagnosis" in sections and profile.diagnosis is not None:
        from profiler.render.diagnosis import render

        render(profile.diagnosis, console)


def write_json(data: Any, stream: IO[str]) -> None:
    stream.write(dumps(data, indent=2))  # json.dump(data, indent=2, default=str), the same text
    stream.write("\n")


def write_csv(analysis: Analysis, stream: IO[str]) -> None:
    df = analysis.steps_df
    df.to_csv(stream, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
