"""`ctxprof check` and `ctxprof baseline` end to end: exit codes, Markdown, JUnit, GitHub output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ci_builders import LoopShape, write_loop_trace
from profiler.cli.app import main

BEFORE = LoopShape(steps=3)  # 930 input tokens per run
AFTER = LoopShape(steps=5)   # 1,850 input tokens per run: the "regression"

BUDGETS = """\
[budgets]
steps_per_run = 10
redundancy_ratio = 0.95

[regression]
input_tokens_per_run = 0.05
steps_per_run = 0.5
"""


@pytest.fixture(autouse=True)
def _no_ci_env(monkeypatch):
    # The tests decide when they run "under GitHub Actions".
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def run_cli(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


@pytest.fixture
def project(tmp_path):
    """A repository with a budgets file, a baseline recorded from the 3-step version, and traces."""
    (tmp_path / "ctxprof.toml").write_text(BUDGETS, encoding="utf-8")
    before = write_loop_trace(tmp_path / "before.jsonl", runs=2, shape=BEFORE)
    write_loop_trace(tmp_path / "after.jsonl", runs=2, shape=AFTER)
    write_loop_trace(tmp_path / "same.jsonl", runs=2, shape=BEFORE, seed=1)
    assert run_cli("baseline", before, "-o", tmp_path / "baseline.json") == 0
    return tmp_path


def test_regression_is_caught_and_named_in_markdown_and_junit(project, capsys):
    # GIVEN a baseline of the 3-step workflow WHEN the 5-step version is checked
    code = run_cli("check", project / "after.jsonl", "--budget", project / "ctxprof.toml",
                   "--baseline", project / "baseline.json",
                   "--markdown", project / "report.md", "--junit", project / "junit.xml")
    out, err = capsys.readouterr()
    # THEN the check fails with exit code 1
    assert code == 1
    assert "input_tokens_per_run" in err and "check failed: 2 of 4 check(s) failed" in err
    assert "FAIL" in out
    # AND the Markdown names the failing metric in a failed row and in the list of failures
    md = (project / "report.md").read_text(encoding="utf-8")
    assert "### ctxprof check ❌ failed" in md
    failing_rows = [line for line in md.splitlines() if line.startswith("|") and "❌ fail" in line]
    assert any("**input_tokens_per_run**" in line and "+98.9%" in line for line in failing_rows)
    assert any("**steps_per_run**" in line for line in failing_rows)
    assert "grew +98.9% over the baseline (930 -> 1,850), more than the allowed +5.0%" in md
    # AND the JUnit XML has one testcase per workflow x metric, failures carrying the message
    root = ET.parse(project / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "2"
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("ctxprof.support-agent", "steps_per_run"),
                          ("ctxprof.support-agent", "redundancy_ratio"),
                          ("ctxprof.support-agent", "input_tokens_per_run vs baseline"),
                          ("ctxprof.support-agent", "steps_per_run vs baseline")}
    failure = cases[("ctxprof.support-agent", "input_tokens_per_run vs baseline")].find("failure")
    assert failure is not None and "input_tokens_per_run" in failure.get("message")
    assert "ctxprof.toml:6" in failure.text
    assert cases[("ctxprof.support-agent", "redundancy_ratio")].find("failure") is None


def test_clean_change_passes(project, capsys):
    # GIVEN the same workflow shape (different content) WHEN checked against the baseline
    code = run_cli("check", project / "same.jsonl", "--budget", project / "ctxprof.toml",
                   "--baseline", project / "baseline.json", "--junit", project / "junit.xml")
    out, _ = capsys.readouterr()
    # THEN every limit holds: exit 0
    assert code == 0
    assert "all 4 check(s) passed" in out
    root = ET.parse(project / "junit.xml").getroot()
    assert root.get("failures") == "0" and root.get("tests") == "4"


def test_budget_exceeded_without_baseline_fails(project, capsys):
    (project / "tight.toml").write_text("[budgets]\ninput_tokens_per_run = 1000\n", encoding="utf-8")
    assert run_cli("check", project / "before.jsonl", "--budget", project / "tight.toml") == 0
    assert run_cli("check", project / "after.jsonl", "--budget", project / "tight.toml") == 1
    assert "= 1,850 exceeds the budget 1,000" in capsys.readouterr().err


@pytest.mark.parametrize("toml, expected", [
    ("[budgets]\ninput_token_per_run = 5\n",
     ":2: unknown metric 'input_token_per_run' in [budgets] (did you mean 'input_tokens_per_run'?)"),
    ("[budgets.workflow.\"suport-agent\"]\nsteps_per_run = 5\n",
     ":1: workflow 'suport-agent' in [budgets.workflow] is not in the traces (did you mean "
     "'support-agent'?)"),
    ("[regresion]\nsteps_per_run = 0.1\n", ":1: unknown section [regresion] (did you mean 'regression'?)"),
    ("[budgets]\nsteps_per_run = 5\nredundancy_ratio 0.5\n", ":3: invalid TOML: "),
])
def test_bad_budgets_exit_2_with_a_clear_message(project, capsys, toml, expected):
    # GIVEN a budgets file with a typo, an unknown metric or workflow, or broken TOML
    path = project / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    # WHEN checked THEN exit 2 with one line naming file:line and the problem (no traceback)
    code = run_cli("check", project / "after.jsonl", "--budget", path)
    err = capsys.readouterr().err
    assert code == 2
    assert f"ctxprof: error: {path}{expected}" in err
    assert "Traceback" not in err


def test_missing_trace_exits_2(project, capsys):
    code = run_cli("check", project / "nope.jsonl", "--budget", project / "ctxprof.toml")
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.jsonl" in err and "Traceback" not in err


def test_missing_budgets_file_exits_2(project, capsys):
    assert run_cli("check", project / "after.jsonl", "--budget", project / "none.toml") == 2
    assert "budgets file not found" in capsys.readouterr().err


def test_github_actions_annotations_and_step_summary(project, capsys, monkeypatch):
    # GIVEN a run under GitHub Actions with a job summary file that already has content
    summary = project / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    # WHEN the regressed trace is checked
    code = run_cli("check", project / "after.jsonl", "--budget", project / "ctxprof.toml",
                   "--baseline", project / "baseline.json")
    out, _ = capsys.readouterr()
    assert code == 1
    # THEN each failure is an error annotation on the budgets-file line that set its limit
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 2
    toml = str(project / "ctxprof.toml").replace(":", "%3A").replace(",", "%2C")
    assert any(line.startswith(f"::error file={toml},line=6,title=ctxprof regression%3A support-agent "
                               "input_tokens_per_run::") for line in errors), errors
    # AND the Markdown report is appended to the job summary
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")
    assert "### ctxprof check ❌ failed" in text and "**input_tokens_per_run**" in text


def test_no_annotations_outside_github_actions(project, capsys):
    run_cli("check", project / "after.jsonl", "--budget", project / "ctxprof.toml",
            "--baseline", project / "baseline.json")
    assert "::error" not in capsys.readouterr().out


def test_unknown_cost_fails_unless_allowed(project, capsys):
    # GIVEN a cost budget and traces whose cost cannot be known (here: no cost model, or a model the
    # price table lacks)
    path = project / "cost.toml"
    path.write_text("[budgets]\ncost_per_run_usd = 100.0\n", encoding="utf-8")
    write_loop_trace(project / "unpriced.jsonl", shape=BEFORE, model="in-house-model-x", provider="acme")
    # WHEN checked THEN the verdict is unknown and the check fails...
    assert run_cli("check", project / "unpriced.jsonl", "--budget", path) == 1
    out, err = capsys.readouterr()
    assert "unknown" in out and "cost_per_run_usd" in err
    # ... unless unknown costs are allowed
    assert run_cli("check", project / "unpriced.jsonl", "--budget", path, "--allow-unknown-cost") == 0


def test_baseline_replaces_an_existing_file(project, capsys):
    # GIVEN an existing baseline WHEN a new one is recorded to the same path THEN it replaces it
    assert run_cli("baseline", project / "after.jsonl", "-o", project / "baseline.json") == 0
    data = json.loads((project / "baseline.json").read_text())
    assert data["workflows"]["support-agent"]["metrics"]["steps_per_run"]["max"] == 5.0


def test_baseline_scope_is_used_by_check(project, capsys):
    # GIVEN a baseline measured in global scope (runs share the system prompt)
    assert run_cli("baseline", project / "before.jsonl", "--scope", "global",
                   "-o", project / "global.json") == 0
    path = project / "redundancy.toml"
    path.write_text("[regression]\nredundancy_ratio = 0.0\n", encoding="utf-8")
    # WHEN checked without --scope THEN the same scope is used, so the unchanged trace passes
    assert run_cli("check", project / "before.jsonl", "--budget", path, "--baseline",
                   project / "global.json") == 0
    # AND forcing run scope shows the difference (redundancy falls, which is not a regression) with
    # a warning that the scopes differ
    assert run_cli("check", project / "before.jsonl", "--budget", path, "--baseline",
                   project / "global.json", "--scope", "run") == 0
    assert "scope=global" in capsys.readouterr().err


def test_annotation_paths_are_relative_to_the_github_workspace(project, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(project))
    run_cli("check", project / "after.jsonl", "--budget", (project / "ctxprof.toml").resolve(),
            "--baseline", project / "baseline.json")
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::error ")]
    assert errors and all(line.startswith("::error file=ctxprof.toml,line=") for line in errors)


def test_bundled_sample_traces_cache_gap_budget(samples, tmp_path, capsys):
    # GIVEN two bundled sample workflows: a ReAct loop whose provider cache misses ~11k reusable
    # tokens per run, and a planner/executor/verifier whose provider caches almost all of them
    traces = [samples / "react_tool_loop.jsonl", samples / "planner_executor_verifier.jsonl"]
    if not all(p.exists() for p in traces):
        pytest.skip("sample_traces/ is not in this checkout")
    budgets = tmp_path / "ctxprof.toml"
    budgets.write_text("[budgets]\ncache_gap_tokens_per_run = 5000\nredundancy_ratio = 0.95\n",
                       encoding="utf-8")
    # WHEN checked
    code = run_cli("check", *traces, "--budget", budgets, "--markdown", tmp_path / "report.md")
    # THEN only the ReAct loop's cache gap fails
    assert code == 1
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    failing = [line for line in md.splitlines() if line.startswith("|") and "❌ fail" in line]
    assert len(failing) == 1
    assert failing[0].startswith("| react-support-agent | **cache_gap_tokens_per_run** |")
    # AND a baseline of the same traces, with no growth allowed, passes
    assert run_cli("baseline", *traces, "-o", tmp_path / "baseline.json") == 0
    (tmp_path / "strict.toml").write_text(
        "[regression]\ninput_tokens_per_run = 0\nredundancy_ratio = 0\ncache_gap_tokens_per_run = 0\n",
        encoding="utf-8")
    assert run_cli("check", *traces, "--budget", tmp_path / "strict.toml",
                   "--baseline", tmp_path / "baseline.json") == 0
    capsys.readouterr()
