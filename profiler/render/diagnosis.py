"""Console rendering (rich) of a `Diagnosis`: a summary table, then each finding with both sides of
the break and its fix. User text is printed as plain text (never as rich markup)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from profiler.diagnose import Diagnosis, Finding
from profiler.safe_text import visible


def _usd(v: float | None) -> str:
    if v is None:
        return "-"
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def _scope(f: Finding) -> str:
    runs = {s.split("/", 1)[0] for s in f.steps} or {f.run_id}
    if f.occurrences == 1:
        return f"{f.run_id}/{f.step_id}"
    return f"{f.occurrences} steps, {len(runs)} run{'s' if len(runs) > 1 else ''}"


def diagnosis_table(diagnosis: Diagnosis) -> Table:
    t = Table(title="Where prefix reuse breaks although the content repeats", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("#", justify="right", no_wrap=True)
    t.add_column("cause", no_wrap=True)
    t.add_column("where", overflow="fold")
    t.add_column("steps", overflow="fold")
    t.add_column("tokens lost", justify="right", no_wrap=True)
    t.add_column("$ lost", justify="right", no_wrap=True)
    for i, f in enumerate(diagnosis.findings, start=1):
        t.add_row(str(i), f.kind, f.where, _scope(f), f"{f.tokens_lost:,}", _usd(f.usd_lost))
    return t


def render(diagnosis: Diagnosis, console: Console) -> None:
    """The summary table, then one block per finding."""
    if not diagnosis.findings:
        console.print(f"No breaks found: no step loses {diagnosis.min_tokens_lost:,} or more repeated "
                      "tokens to a prefix that stops matching.", highlight=False)
        return
    console.print(diagnosis_table(diagnosis))
    for i, f in enumerate(diagnosis.findings, start=1):
        # Text objects skip the console's string handling: trace data is made visible here.
        block = Text()
        block.append(visible(f"{i}. {f.kind} in {f.where}"), style="bold")
        block.append(visible(f" -- {f.detail}") + "\n")
        source = f" (compared with {f.source_step_id})" if f.source_step_id else ""
        block.append(visible(f"   first: run {f.run_id}, step {f.step_id} (#{f.step_index}), token "
                             f"{f.token_position:,}{source}") + "\n")
        block.append("   before: ", style="dim")
        block.append(visible(f.before_text) + "\n")
        block.append("   now:    ", style="dim")
        block.append(visible(f.after_text) + "\n")
        block.append(f"   lost: {f.tokens_lost:,} tokens ({_usd(f.usd_lost)})\n")
        block.append("   fix: ", style="bold")
        block.append(visible(f.fix))
        console.print(block)
    total = diagnosis.usd_lost
    console.print(f"{len(diagnosis.findings)} finding(s): {diagnosis.tokens_lost:,} prompt tokens could "
                  f"have been a reusable prefix ({_usd(total)}).", highlight=False)
