"""Console tables (rich) and CSV/JSON writers for an `Analysis`."""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from profiler.analysis import Analysis, Totals


def _fmt_int(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _fmt_cost(v: float | None) -> str:
    if v is None:
        return "-"
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def analysis_table(analysis: Analysis, *, title: str | None = None) -> list[Table]:
    """One rich table per run (one row per step, totals in the footer) and one for the totals."""
    tables = []
    has_cost = any(getattr(s, "cost_actual_usd", None) is not None for s in analysis.steps)
    for run in analysis.runs:
        label = run.run_id if not run.workflow else f"{run.workflow} / {run.run_id}"
        t = Table(title=f"{label}  ({run.trace})" if run.trace else label, show_footer=True,
                  title_justify="left")
        tot = run.totals
        t.add_column("#", footer="total", justify="right")
        t.add_column("step", footer=f"{tot.steps} steps")
        t.add_column("input", footer=_fmt_int(tot.input_tokens), justify="right")
        t.add_column("prefix reused", footer=_fmt_int(tot.prefix_reused_tokens), justify="right")
        t.add_column("block reused", footer=_fmt_int(tot.block_reused_tokens), justify="right")
        t.add_column("repeated", footer=_fmt_int(tot.repeated_tokens), justify="right")
        t.add_column("novel", footer=_fmt_int(tot.novel_tokens), justify="right")
        t.add_column("output", footer=_fmt_int(tot.output_tokens), justify="right")
        t.add_column("reported cached", footer=_fmt_int(tot.reported_cached_tokens), justify="right")
        t.add_column("redundancy", footer=_fmt_pct(tot.redundancy_ratio), justify="right")
        if has_cost:
            t.add_column("cost", footer=_fmt_cost(getattr(tot, "cost_actual_usd", None)), justify="right")
            t.add_column("redundant $", footer=_fmt_cost(getattr(tot, "cost_redundant_usd", None)),
                         justify="right")
        for s in run.steps:
            row = [str(s.index), s.name or s.step_id, _fmt_int(s.input_tokens),
                   _fmt_int(s.prefix_reused_tokens), _fmt_int(s.block_reused_tokens),
                   _fmt_int(s.repeated_tokens), _fmt_int(s.novel_tokens), _fmt_int(s.output_tokens),
                   _fmt_int(s.reported_cached_tokens), _fmt_pct(s.redundancy_ratio)]
            if has_cost:
                row += [_fmt_cost(getattr(s, "cost_actual_usd", None)),
                        _fmt_cost(getattr(s, "cost_redundant_usd", None))]
            t.add_row(*row)
        tables.append(t)
    return tables


def totals_line(totals: Totals, runs: int) -> str:
    reused = totals.prefix_reused_tokens + totals.repeated_tokens
    return (f"{runs} run(s), {totals.steps} step(s): {totals.input_tokens:,} input tokens, "
            f"{reused:,} of them ({totals.redundancy_ratio:.1%}) re-process earlier context "
            f"({totals.prefix_reused_tokens:,} as a reusable prefix, {totals.repeated_tokens:,} repeated "
            f"elsewhere)")


def print_analysis(analysis: Analysis, console: Console) -> None:
    for table in analysis_table(analysis):
        console.print(table)
    console.print(totals_line(analysis.totals, len(analysis.runs)))


def write_json(data: Any, stream: IO[str]) -> None:
    json.dump(data, stream, indent=2, sort_keys=False, default=str)
    stream.write("\n")


def write_csv(analysis: Analysis, stream: IO[str]) -> None:
    df = analysis.steps_df
    df.to_csv(stream, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
