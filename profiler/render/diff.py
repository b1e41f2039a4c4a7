"""Renderers for a `DiffResult`: rich tables and Markdown. Each cell reads `A -> B (change)`."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from rich.console import Console

    from profiler.diff import DiffResult, DiffRow, Side


def _tokens(v: float) -> str:
    return f"{v:,.0f}" if abs(v - round(v)) < 0.05 else f"{v:,.1f}"


def _cost(v: float | None) -> str:
    if v is None:
        return "?"
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def _rel(a: float, b: float) -> str:
    if a == b:
        return "="
    if a == 0:
        return "new"
    return f"{(b - a) / abs(a):+.1%}"


def _cell(row: "DiffRow", get: Callable[["Side"], float | None], fmt: Callable[[float], str],
          change: Callable[[float, float], str] = _rel) -> str:
    a = None if row.a is None else get(row.a)
    b = None if row.b is None else get(row.b)
    if row.a is None:
        return f"- -> {fmt(b) if b is not None else '?'} (added)"
    if row.b is None:
        return f"{fmt(a) if a is not None else '?'} -> - (removed)"
    if a is None or b is None:
        return f"{_cost(a)} -> {_cost(b)}"
    return f"{fmt(a)} -> {fmt(b)} ({change(a, b)})"


def _pp(a: float, b: float) -> str:
    return "=" if abs(b - a) < 5e-4 else f"{(b - a) * 100:+.1f} pp"


def row_cells(row: "DiffRow") -> list[str]:
    count = f"{row.a.count if row.a else 0} / {row.b.count if row.b else 0}"
    return [
        row.key,
        count,
        _cell(row, lambda s: s.input_tokens, _tokens),
        _cell(row, lambda s: s.reused_tokens, _tokens),
        _cell(row, lambda s: s.novel_tokens, _tokens),
        _cell(row, lambda s: s.redundancy_ratio, lambda v: f"{v:.1%}", _pp),
        _cell(row, lambda s: s.cost_usd, _cost),
    ]


HEADERS = ["step", "runs A / B", "input tokens", "reused tokens", "novel tokens", "redundancy",
           "cost"]


def print_diff(result: "DiffResult", console: "Console") -> None:
    from rich.table import Table

    console.print(f"A: {result.a}\nB: {result.b}  (means per run; steps matched by name and "
                  "occurrence)", markup=False, highlight=False)
    for wf in result.workflows:
        table = Table(title=f"workflow {wf.workflow}", title_justify="left")
        for i, h in enumerate(HEADERS):
            table.add_column(h, justify="left" if i == 0 else "right")
        table.add_row(*row_cells(wf.total), style="bold")
        for row in wf.steps:
            table.add_row(*row_cells(row))
        console.print(table)


def write_markdown(result: "DiffResult", stream: IO[str]) -> None:
    from profiler.safe_text import markdown_cell

    stream.write(f"### ctxprof diff\n\nA: {markdown_cell(result.a)} · B: {markdown_cell(result.b)} "
                 "(means per run; steps "
                 "matched by name and occurrence)\n\n")
    for wf in result.workflows:
        stream.write(f"#### workflow {markdown_cell(wf.workflow)}\n\n")
        stream.write("| " + " | ".join(HEADERS) + " |\n")
        stream.write("|---|" + "---:|" * (len(HEADERS) - 1) + "\n")
        for i, row in enumerate((wf.total, *wf.steps)):
            cells = [markdown_cell(c) for c in row_cells(row)]
            if i == 0:
                cells[0] = f"**{cells[0]}**"
            stream.write("| " + " | ".join(cells) + " |\n")
        stream.write("\n")
