"""`ctxprof report`: format from suffix or --format, refuses to overwrite, says what it wrote."""

from __future__ import annotations

import json

import pytest

from profiler.cli.app import main
from profiler.trace.io import write_trace
from report_traces import make_agent_run, make_trace


@pytest.fixture()
def trace_file(tmp_path):
    path = tmp_path / "agent.jsonl"
    write_trace(make_trace(make_agent_run("r1", steps=3)), path)
    return path


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code


def test_writes_each_format_by_suffix(trace_file, tmp_path, capsys):
    for name, marker in (("r.html", "<!DOCTYPE html>"), ("r.md", "## ctxprof report"),
                         ("r.json", '"schema": "ctxprof.profile/1"')):
        out = tmp_path / name
        # WHEN a report is asked for by file name
        assert run_cli("report", str(trace_file), "-o", str(out)) == 0
        # THEN that format is written and the command says where
        assert marker in out.read_text(encoding="utf-8")
        assert f"Wrote {out}" in capsys.readouterr().err


def test_format_option_overrides_the_suffix(trace_file, tmp_path):
    out = tmp_path / "summary.txt"
    assert run_cli("report", str(trace_file), "-o", str(out), "--format", "json") == 0
    assert json.loads(out.read_text())["headline"]["steps"] == 3


def test_markdown_on_standard_output_by_default(trace_file, capsys):
    assert run_cli("report", str(trace_file)) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("## ctxprof report")
    assert "Wrote" not in captured.err


def test_an_existing_output_is_replaced(trace_file, tmp_path, capsys):
    # GIVEN an existing file WHEN a report is written to it THEN it is replaced, with no temporary left
    out = tmp_path / "r.md"
    out.write_text("old")
    assert run_cli("report", str(trace_file), "-o", str(out)) == 0
    assert out.read_text().startswith("## ctxprof report")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_suffix_is_a_usage_error(trace_file, tmp_path, capsys):
    assert run_cli("report", str(trace_file), "-o", str(tmp_path / "r.pdf")) == 2
    err = capsys.readouterr().err
    assert "r.pdf" in err and "--format" in err and "Traceback" not in err


def test_cdn_and_title_options(trace_file, tmp_path):
    out = tmp_path / "r.html"
    assert run_cli("report", str(trace_file), "-o", str(out), "--cdn", "--title", "Nightly <run>") == 0
    page = out.read_text()
    assert "https://cdn.plot.ly/plotly-" in page and "<title>Nightly &lt;run&gt;</title>" in page


def test_a_bad_trace_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a header"}\n')
    assert run_cli("report", str(bad), "-o", str(tmp_path / "r.html")) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
