"""`ctxprof analyze` end to end: outputs, the JSON contract, and one-line errors with exit 2."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from builders import make_step, make_trace, save, write_lines

METRICS = ["input_tokens", "output_tokens", "prefix_reused_tokens", "block_reused_tokens",
           "repeated_tokens", "novel_tokens", "reported_cached_tokens", "redundancy_ratio"]


def ctxprof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120"})


def test_table_on_a_sample(samples):
    out = ctxprof("analyze", str(samples / "retry_loop.jsonl"))
    assert out.returncode == 0, out.stderr
    assert "contract-extraction / retry-1" in out.stdout
    assert "12,010" in out.stdout  # total input tokens of the five attempts
    assert "80.0%" in out.stdout


def test_json_contract(samples):
    out = ctxprof("analyze", str(samples / "planner_executor_verifier.jsonl"), "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == "ctxprof.analysis/2"
    assert set(data) >= {"schema", "runs", "totals"}
    assert [r["run_id"] for r in data["runs"]] == ["pev-1", "pev-2", "pev-3"]
    for run in data["runs"]:
        assert set(run) >= {"run_id", "steps", "totals"}
        for step in run["steps"]:
            assert set(step) >= set(METRICS)
            assert step["novel_tokens"] == (step["input_tokens"] - step["prefix_reused_tokens"]
                                            - step["repeated_tokens"])
    assert set(data["totals"]) >= set(METRICS)
    assert data["totals"]["input_tokens"] == sum(r["totals"]["input_tokens"] for r in data["runs"])


def test_csv_and_output_file(tmp_path, samples):
    target = tmp_path / "out.csv"
    out = ctxprof("analyze", str(samples / "rag_chain.jsonl"), "--format", "csv", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert f"Wrote {target}" in out.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 10 and set(METRICS) <= set(rows[0])


def test_options_change_the_metrics(tmp_path):
    a = list(range(40))
    path = save(make_trace([make_step("x", tokens=a), make_step("y", tokens=[999] + a)]), tmp_path / "t.jsonl")
    run = json.loads(ctxprof("analyze", str(path), "--format", "json").stdout)
    glob = json.loads(ctxprof("analyze", str(path), "--format", "json", "--scope", "global",
                              "--min-repeat", "8").stdout)
    assert run["totals"]["repeated_tokens"] == 0
    assert glob["totals"]["repeated_tokens"] == 40
    assert glob["options"] == {"scope": "global", "block_size": 16, "min_repeat": 8}


@pytest.mark.parametrize("lines, newline, expected", [
    (['{"type": "step", "run_id": "r", "step_id": "1"', '{"type": "step", "run_id": "r", "step_id": "2"}'],
     True, ":2: not valid JSON"),
    ([{"type": "step", "run_id": "r", "step_id": "1", "usage": {"input_tokens": "many"}}], True,
     "field 'usage.input_tokens': expected an integer, got str"),
])
def test_bad_trace_files_give_one_clear_line_and_exit_2(tmp_path, lines, newline, expected):
    path = write_lines(tmp_path / "bad.jsonl", lines, newline_at_end=newline)
    out = ctxprof("analyze", str(path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and expected in out.stderr and "Traceback" not in out.stderr
    assert str(path) in out.stderr


def test_unknown_version_not_json_and_missing_file(tmp_path):
    newer = write_lines(tmp_path / "new.jsonl", [], header={"type": "header", "format": "ctxprof-trace",
                                                           "schema_version": 7})
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("<html>nope</html>\n")
    for path, expected in [(newer, "upgrade ctxprof"), (garbage, "not JSON"),
                           (tmp_path / "missing.jsonl", "no such file")]:
        out = ctxprof("analyze", str(path))
        assert out.returncode == 2, out
        assert expected in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_truncated_trace_still_analyses_with_a_warning(tmp_path, samples):
    text = (samples / "retry_loop.jsonl").read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 500])  # the writer was killed mid-line
    out = ctxprof("analyze", str(cut), "--format", "json")
    assert out.returncode == 0
    assert "incomplete (torn write)" in out.stderr
    assert json.loads(out.stdout)["totals"]["steps"] == 4


def test_bad_option_values_exit_2(samples):
    out = ctxprof("analyze", str(samples / "retry_loop.jsonl"), "--scope", "planet")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_version_and_help():
    from profiler import __version__

    out = ctxprof("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"ctxprof {__version__}"
    top = ctxprof("--help")
    assert top.returncode == 0 and "analyze" in top.stdout
    from profiler.cli import app as app_module

    app_module._register()
    for command in app_module.app.registered_commands:
        out = ctxprof(command.name, "--help")
        assert out.returncode == 0 and "Usage" in out.stdout, command.name


def test_self_identifying_foreign_traces_are_read_directly(tmp_path):
    # GIVEN a Mooncake block-hash trace (not a ctxprof trace): two requests sharing two 512-token blocks
    mooncake = tmp_path / "mooncake.jsonl"
    mooncake.write_text('{"timestamp": 0, "input_length": 1200, "output_length": 5, "hash_ids": [1, 2, 3]}\n'
                        '{"timestamp": 10, "input_length": 1100, "output_length": 5, "hash_ids": [1, 2, 4]}\n')
    # WHEN it is analysed in global scope, THEN it is imported on the fly, with a notice
    out = ctxprof("analyze", str(mooncake), "--format", "json", "--scope", "global", "--pricing", "none")
    assert out.returncode == 0, out.stderr
    assert "as a mooncake trace" in out.stderr
    steps = json.loads(out.stdout)["runs"][0]["steps"]
    assert [s["prefix_reused_tokens"] for s in steps] == [0, 1024]


def test_sniff_format_only_claims_what_identifies_itself(tmp_path, shared_data):
    from profiler.importers.registry import sniff_format

    assert sniff_format(shared_data / "mooncake" / "synthetic_trace.jsonl") == "mooncake"
    assert sniff_format(shared_data / "otlp_genai_example.json") == "otel"
    other = tmp_path / "x.jsonl"
    other.write_text('{"messages": []}\n')
    assert sniff_format(other) is None
    assert sniff_format(tmp_path / "missing.jsonl") is None
