"""`ctxprof run` (record a program without changing it), `ctxprof export --format otlp`, and the
three-step example end to end (recorded through the real OpenAI SDK, then `ctxprof analyze`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from profiler.otel import import_otlp
from profiler.trace import load_trace

from recording_helpers import REPO


def ctxprof(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def test_run_records_an_unmodified_script_and_keeps_its_exit_code(tmp_path: Path, fake_api) -> None:
    # GIVEN a plain OpenAI program that knows nothing about ctxprof and exits with code 3
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent("""
        import sys, openai
        client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-script-secret")
        history = [{"role": "system", "content": "Rules. " * 100}]
        for q in sys.argv[2:]:
            history.append({"role": "user", "content": q})
            r = client.chat.completions.create(model="gpt-4o-mini", messages=history)
            history.append({"role": "assistant", "content": r.choices[0].message.content})
        print("answers:", len(history) // 2)
        sys.exit(3)
    """))
    trace_path = tmp_path / "out.jsonl"
    # WHEN it runs under `ctxprof run` with its own arguments
    result = ctxprof("run", "-o", str(trace_path), "--content", "tokens", str(script),
                     fake_api.openai_base_url, "first question", "second question")
    # THEN its output and exit code are its own, and its calls are in the trace
    assert result.returncode == 3, result.stderr
    assert "answers: 2" in result.stdout and f"Wrote {trace_path}" in result.stderr
    trace = load_trace(trace_path)
    assert trace.header.content_level == "tokens"
    assert trace.runs[0].workflow == "agent"
    assert [s.name for s in trace.steps] == ["openai.chat", "openai.chat"]
    assert all(s.prompt.token_ids for s in trace.steps)
    assert "sk-script-secret" not in trace_path.read_text()


def test_run_with_a_missing_script_is_a_one_line_error(tmp_path: Path) -> None:
    result = ctxprof("run", str(tmp_path / "nope.py"))
    assert result.returncode == 2 and "no such script" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_three_step_workflow_end_to_end(tmp_path: Path) -> None:
    # GIVEN the shipped example (it starts its own local API server)
    trace_path = tmp_path / "three.jsonl"
    run = subprocess.run([sys.executable, str(REPO / "examples" / "three_step_workflow.py"),
                          "-o", str(trace_path), "--runs", "2"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert run.returncode == 0, run.stderr
    # WHEN ctxprof analyze reads its trace
    result = ctxprof("analyze", str(trace_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    # THEN two runs of planner -> executor (two calls) -> verifier, with reuse and reported caching
    assert len(analysis["runs"]) == 2
    for r in analysis["runs"]:
        assert [s["name"] for s in r["steps"]] == ["planner", "executor", "executor", "verifier"]
        assert r["totals"]["prefix_reused_tokens"] > 0
    assert analysis["totals"]["redundancy_ratio"] > 0.5
    assert analysis["totals"]["reported_cached_tokens"] > 0
    trace = load_trace(trace_path)
    assert any(s.kind == "tool" for s in trace.steps)
    assert "sk-example-not-a-real-key" not in trace_path.read_text()


def test_export_otlp_round_trips_a_recorded_trace(tmp_path: Path, fake_api) -> None:
    import openai

    import profiler

    trace_path = tmp_path / "t.jsonl"
    client = openai.OpenAI(base_url=fake_api.openai_base_url, api_key="sk-x", max_retries=0)
    with profiler.record(trace_path, workflow="w", gpu=False) as rec:
        with rec.step("planner"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}])
    out = tmp_path / "otlp.json"
    result = ctxprof("export", str(trace_path), "--format", "otlp", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Wrote {out}" in result.stderr
    # Run again, it replaces the file (the one overwrite rule).
    again = ctxprof("export", str(trace_path), "--format", "otlp", "-o", str(out))
    assert again.returncode == 0, again.stderr
    original, back = load_trace(trace_path), import_otlp(out)
    assert [s.to_dict()["prompt"] for s in back.steps] == [s.to_dict()["prompt"] for s in original.steps]
    assert [s.usage for s in back.steps] == [s.usage for s in original.steps]
