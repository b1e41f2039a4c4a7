"""The Markdown report, sized for a GitHub Actions job summary.

`render_markdown(data, stream, max_bytes=...)` writes compact tables with no HTML: the headline, the
cache scenarios, one line per run, the diagnosis and the per-step table. GitHub refuses a step summary
over 1 MiB, so long tables are cut (with a line saying how many rows were left out) and the whole text
is kept under `max_bytes` (default 900 KiB, leaving room for other steps' summaries).

Text from traces is escaped so it cannot become Markdown or HTML: `|`, backquotes, `<`, `>`, `&`,
`*`, `_`, `[`, `]` and newlines.
"""

from __future__ import annotations

from typing import IO, Any, Sequence

from profiler.report.data import (
    SECTION_COSTS,
    SECTION_DIAGNOSIS,
    SECTION_SIMULATIONS,
    ReportData,
)
from profiler.reporters import fmt as _fmt

GITHUB_SUMMARY_LIMIT_BYTES = 1024 * 1024
DEFAULT_MAX_BYTES = 900 * 1024
MAX_STEP_ROWS = 50
MAX_RUN_ROWS = 30
MAX_FINDING_ROWS = 20

_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]",
               "<": "&lt;", ">": "&gt;", "&": "&amp;", "#": "\\#"}


def md(text: Any, limit: int = 120) -> str:
    """Trace text as a single safe table cell."""
    flat = _fmt.shorten("" if text is None else str(text), limit)
    return "".join(_MD_ESCAPES.get(ch, ch) for ch in flat)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(head))]
    return (["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def _cut(rows: list[list[str]], limit: int, what: str) -> tuple[list[list[str]], list[str]]:
    if len(rows) <= limit:
        return rows, []
    return rows[:limit], ["", f"_{len(rows) - limit} more {what} not shown; `ctxprof report -o "
                               f"report.html` or `--format json` has them all._"]


def markdown_lines(data: ReportData, *, max_steps: int = MAX_STEP_ROWS, max_runs: int = MAX_RUN_ROWS,
                   max_findings: int = MAX_FINDING_ROWS) -> list[str]:
    a = data.analysis
    h = data.headline()
    out = [f"## {md(data.title, 200)}", ""]
    out.append(f"{h['runs']} run(s), {h['steps']} step(s), scope `{a.options.scope}`.")
    out.append("")
    rows = [["total tokens", f"{_fmt.tokens(h['total_tokens'])} ({_fmt.tokens(h['input_tokens'])} in, "
                             f"{_fmt.tokens(h['output_tokens'])} out)"],
            ["redundant share of input", f"{_fmt.pct(h['redundant_share'])} "
                                         f"({_fmt.tokens(h['prefix_reused_tokens'])} prefix + "
                                         f"{_fmt.tokens(h['repeated_tokens'])} repeated)"]]
    if h["unit"] != "ctxprof" and h["provider_input_tokens"] != h["input_tokens"]:
        rows.append([f"input in the provider's tokens ({h['unit']})", _fmt.tokens(h["provider_input_tokens"])])
    if h["reported_cached_tokens"] is not None:
        rows.append(["provider-reported cached", _fmt.tokens(h["reported_cached_tokens"])])
        rows.append([f"ideal prefix ({h['unit']} tokens)", _fmt.tokens(h["ideal_prefix_tokens"])])
    if data.costs is not None:
        rows += [["spent in all (actual)", _fmt.usd(h["cost_actual_usd"])],
                 ["redundant context at the full input price", _fmt.usd(h["cost_redundant_usd"])],
                 ["saving with an ideal prefix cache", _fmt.usd(h["ideal_saving_usd"])]]
    for s in data.simulations:
        rows.append([f"saving under {md(s.label)}", _fmt.usd(s.saving_usd)])
    out += _table(["figure", "value"], rows, numeric_from=1)

    notes = [(label, data.unavailable[sec]) for sec, label in
             ((SECTION_COSTS, "Costs"), (SECTION_SIMULATIONS, "Cache scenarios"),
              (SECTION_DIAGNOSIS, "Diagnosis")) if sec in data.unavailable]
    if notes or data.warnings:
        out.append("")
        out += [f"- {label}: {md(text, 300)}" for label, text in notes]
        out += [f"- Warning: {md(wr, 300)}" for wr in data.warnings]

    if data.simulations or data.costs is not None:
        out += ["", "### Cache scenarios", ""]
        srows = []
        if data.costs is not None:
            srows.append(["no caching", "-", _fmt.usd(data.costs.no_cache_usd), "-"])
        for s in data.simulations:
            srows.append([md(s.label), _fmt.tokens(s.predicted_cached_tokens),
                          _fmt.usd(s.cost_usd), _fmt.usd(s.saving_usd)])
        if data.costs is not None:
            srows.append(["ideal prefix cache", _fmt.tokens(h["ideal_prefix_tokens"]),
                          _fmt.usd(data.costs.ideal_usd), _fmt.usd(data.costs.ideal_saving_usd)])
        out += _table(["scenario", "cached tokens", "cost", "saving"], srows)

    if len(a.runs) > 1:
        out += ["", "### Runs", ""]
        rrows = [[md(r.run_id, 60), md(r.workflow or "-", 40), str(r.totals.steps),
                  _fmt.tokens(r.totals.input_tokens), _fmt.pct(r.totals.redundancy_ratio),
                  _fmt.usd(r.totals.cost_actual_usd)] for r in a.runs]
        rrows, more = _cut(rrows, max_runs, "runs")
        out += _table(["run", "workflow", "steps", "input", "redundancy", "cost"], rrows, numeric_from=2)
        out += more

    out += ["", "### Diagnosis", ""]
    if data.diagnosis is None:
        out.append(f"_{md(data.unavailable.get(SECTION_DIAGNOSIS, 'not available'), 300)}_")
    elif not data.diagnosis:
        out.append("No reuse breaks found.")
    else:
        frows = [[md(f"{f.run_id}:{f.step_index if f.step_index is not None else f.step_id}"
                     + (f" (+{f.occurrences - 1} more)" if f.occurrences > 1 else "")
                     + (f", {f.where}" if f.where else ""), 80),
                  md(f.kind, 40), _fmt.tokens(f.token_position),
                  f"{md(f.before_text, 60)} → {md(f.after_text, 60)}",
                  _fmt.tokens(f.tokens_lost), _fmt.usd(f.usd_lost), md(f.fix, 160)]
                 for f in data.diagnosis]
        frows, more = _cut(frows, max_findings, "findings")
        out += _table(["step", "kind", "token", "before → after", "tokens lost", "USD lost", "fix"],
                      frows, numeric_from=99)
        out += more

    out += ["", "### Steps", ""]
    many = len(a.runs) > 1
    priced = data.costs is not None
    srows2 = []
    for r in a.runs:
        for s in r.steps:
            label = f"{r.run_id}:{s.index} {s.name or s.step_id}" if many else f"{s.index} {s.name or s.step_id}"
            row = [md(label, 60), _fmt.tokens(s.input_tokens), _fmt.tokens(s.prefix_reused_tokens),
                   _fmt.tokens(s.repeated_tokens), _fmt.tokens(s.novel_tokens),
                   _fmt.tokens(s.output_tokens), _fmt.tokens(s.reported_cached_tokens),
                   _fmt.pct(s.redundancy_ratio)]
            if priced:
                row.append(_fmt.usd(s.cost_actual_usd))
            srows2.append(row)
    srows2, more = _cut(srows2, max_steps, "steps")
    head = ["step", "input", "prefix", "repeated", "novel", "output", "reported cached", "redundancy"]
    out += _table(head + (["cost"] if priced else []), srows2)
    out += more
    out.append("")
    return out


def render_markdown(data: ReportData, stream: IO[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Write the Markdown report, shrinking its tables until it fits in `max_bytes` (UTF-8)."""
    limits = (MAX_STEP_ROWS, MAX_RUN_ROWS, MAX_FINDING_ROWS)
    while True:
        text = "\n".join(markdown_lines(data, max_steps=limits[0], max_runs=limits[1],
                                        max_findings=limits[2]))
        if len(text.encode("utf-8")) <= max_bytes or limits == (0, 0, 0):
            break
        limits = tuple(n // 2 for n in limits)  # type: ignore[assignment]
    stream.write(text)
