"""Renderers for a `CheckResult`: console table, Markdown (GitHub job summary), JUnit XML and
GitHub Actions annotation lines. They take the finished result and a stream; nothing is recomputed."""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from typing import IO, TYPE_CHECKING

from profiler.safe_text import markdown_cell, visible

if TYPE_CHECKING:
    from rich.table import Table

    from profiler.check import CheckResult, CheckRow

VERDICT_MARK = {"pass": "✅ pass", "fail": "❌ fail", "unknown": "⚠️ unknown"}


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "usd":
        return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def format_change(change: float | None) -> str:
    if change is None:
        return "-"
    if math.isinf(change):
        return "new (baseline 0)"
    return f"{change:+.1%}"


def format_limit(row: "CheckRow") -> str:
    if row.kind == "regression":
        return f"≤ {row.limit:+.1%} vs baseline"
    return f"≤ {format_value(row.limit, row.unit)}"


def metric_label(row: "CheckRow") -> str:
    runs = f"{row.runs} run" + ("" if row.runs == 1 else "s")
    return f"{row.metric} ({row.aggregate} of {runs})" if row.runs > 1 else row.metric


def describe_row(row: "CheckRow") -> str:
    """One line: what was checked, what was found."""
    cur = format_value(row.current, row.unit)
    label = f"{row.workflow}: {metric_label(row)}"
    if row.verdict == "unknown":
        return f"{label} is unknown: {row.note}"
    if row.kind == "budget":
        limit = format_value(row.limit, row.unit)
        if row.verdict == "fail":
            return f"{label} = {cur} exceeds the budget {limit}"
        return f"{label} = {cur} is within the budget {limit}"
    base = format_value(row.baseline, row.unit)
    change = format_change(row.change_ratio)
    if row.verdict == "fail":
        return (f"{label} grew {change} over the baseline ({base} -> {cur}), more than the allowed "
                f"{row.limit:+.1%}")
    return f"{label} changed {change} from the baseline ({base} -> {cur}), allowed {row.limit:+.1%}"


def summary_line(result: "CheckResult") -> str:
    n = len(result.rows)
    failed = len(result.failures)
    if not n:
        return "no checks applied"
    if failed:
        return f"{failed} of {n} check(s) failed"
    unknown = result.count("unknown")
    extra = f" ({unknown} unknown, allowed)" if unknown else ""
    return f"all {n} check(s) passed{extra}"


def _baseline_cell(result: "CheckResult", row: "CheckRow") -> str:
    # "?" means the baseline does not know the value; "-" that no baseline was given.
    return "-" if result.baseline_source is None else format_value(row.baseline, row.unit)


def check_table(result: "CheckResult") -> "Table":
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"ctxprof check: {summary_line(result)}", title_justify="left")
    for name, justify in (("workflow", "left"), ("metric", "left"), ("baseline", "right"),
                          ("current", "right"), ("change", "right"), ("limit", "right"),
                          ("verdict", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    styles = {"pass": "green", "fail": "bold red", "unknown": "yellow"}
    for row in result.rows:
        verdict = row.verdict if row.verdict != "fail" else "FAIL"
        table.add_row(row.workflow, metric_label(row), _baseline_cell(result, row),
                      format_value(row.current, row.unit), format_change(row.change_ratio),
                      format_limit(row), Text(verdict, style=styles[row.verdict]))
    return table


def _md_cell(text: str) -> str:
    return markdown_cell(text)


def write_markdown(result: "CheckResult", stream: IO[str]) -> None:
    """A Markdown report (a heading, a table, notes), as GitHub renders in a job summary."""
    status = "❌ failed" if not result.passed else "✅ passed"
    stream.write(f"### ctxprof check {status}\n\n")
    sources = [f"budgets `{result.budget_source}`"] if result.budget_source else []
    if result.baseline_source:
        sources.append(f"baseline `{result.baseline_source}`")
    stream.write(summary_line(result) + (" · " + " · ".join(sources) if sources else "") + "\n\n")
    if result.rows:
        stream.write("| workflow | metric | baseline | current | change | limit | verdict |\n")
        stream.write("|---|---|---:|---:|---:|---:|---|\n")
        for row in result.rows:
            metric = _md_cell(row.metric)
            if row in result.failures:
                metric = f"**{metric}**"
            if row.runs > 1:
                metric += _md_cell(f" ({row.aggregate} of {row.runs} runs)")
            cells = [_md_cell(row.workflow), metric] + [_md_cell(c) for c in (
                _baseline_cell(result, row), format_value(row.current, row.unit),
                format_change(row.change_ratio), format_limit(row))] + [VERDICT_MARK[row.verdict]]
            stream.write("| " + " | ".join(cells) + " |\n")
        stream.write("\n")
    failures = result.failures
    if failures:
        stream.write("**Failed:**\n\n")
        for row in failures:
            where = f" (limit at `{row.limit_source}`)" if row.limit_source else ""
            stream.write(f"- {_md_cell(describe_row(row))}{where}\n")
        stream.write("\n")
    allowed_unknown = [r for r in result.rows if r.verdict == "unknown" and r not in failures]
    for row in allowed_unknown:
        stream.write(f"- ⚠️ {_md_cell(describe_row(row))} (allowed by allow_unknown)\n")
    for w in result.warnings:
        stream.write(f"- ⚠️ {_md_cell(w)}\n")
    if allowed_unknown or result.warnings:
        stream.write("\n")


def write_junit(result: "CheckResult", stream: IO[str]) -> None:
    """JUnit XML: one testcase per workflow x metric x kind; failures carry the message."""
    failures = result.failures
    skipped = [r for r in result.rows if r.verdict == "unknown" and r not in failures]
    suites = ET.Element("testsuites", name="ctxprof", tests=str(len(result.rows)),
                        failures=str(len(failures)), errors="0", skipped=str(len(skipped)))
    suite = ET.SubElement(suites, "testsuite", name="ctxprof check", tests=str(len(result.rows)),
                          failures=str(len(failures)), errors="0", skipped=str(len(skipped)))
    for row in result.rows:
        name = row.metric if row.kind == "budget" else f"{row.metric} vs baseline"
        case = ET.SubElement(suite, "testcase", classname=visible(f"ctxprof.{row.workflow}"), name=visible(name),
                             time="0")
        # XML 1.0 cannot hold control characters at all: they are shown escaped.
        text = visible(describe_row(row), keep="\n")
        if row.limit_source:
            text += f"\nlimit: {row.limit_source}"
        if row in failures:
            fail = ET.SubElement(case, "failure", message=visible(describe_row(row)), type=row.kind)
            fail.text = text
        elif row in skipped:
            ET.SubElement(case, "skipped", message=visible(describe_row(row)))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = text
    if result.warnings:
        err = ET.SubElement(suite, "system-err")
        err.text = "\n".join(visible(w) for w in result.warnings)
    ET.indent(suites)
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    stream.write(ET.tostring(suites, encoding="unicode"))
    stream.write("\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: "CheckResult", *, workspace: str | None = None) -> list[str]:
    """Workflow-command lines (`::error ...::message`) for GitHub Actions.

    A failing row becomes an error annotation on the budgets file line that set its limit; an unknown
    row that is allowed, and every warning, a warning annotation. GitHub wants file paths relative to
    the repository: absolute paths inside `workspace` ($GITHUB_WORKSPACE) are made relative to it.
    """
    lines = []
    failures = result.failures
    for row in result.rows:
        if row.verdict == "pass":
            continue
        level = "error" if row in failures else "warning"
        props = []
        if row.limit_source:
            m = re.fullmatch(r"(.*?):(\d+)", row.limit_source)
            path, line = (m.group(1), m.group(2)) if m else (row.limit_source, None)
            if workspace and os.path.isabs(path):
                rel = os.path.relpath(path, workspace)
                path = path if rel.startswith("..") else rel
            props.append(f"file={_escape_property(path)}")
            if line:
                props.append(f"line={line}")
        kind = "budget" if row.kind == "budget" else "regression"
        props.append(f"title={_escape_property(f'ctxprof {kind}: {row.workflow} {row.metric}')}")
        lines.append(f"::{level} {','.join(props)}::{_escape_data(describe_row(row))}")
    for w in result.warnings:
        lines.append(f"::warning title=ctxprof::{_escape_data(w)}")
    return lines
