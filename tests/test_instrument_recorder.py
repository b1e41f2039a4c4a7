"""The recording API: steps, runs, nesting, decorator, threads, asyncio tasks, crash safety."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import profiler
from profiler.errors import ConfigError, TraceFormatError
from profiler.trace import load_trace

from recording_helpers import REPO, FakeClock, records


def test_import_profiler_stays_light() -> None:
    # GIVEN a fresh interpreter WHEN ctxprof is imported THEN no SDK, torch or recorder module loads
    code = ("import sys, profiler; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('openai', 'anthropic', 'torch', 'pynvml', 'transformers') or m.startswith('profiler.instrument')];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"


def test_manual_steps_are_written_with_injected_clock_and_ids(tmp_path: Path) -> None:
    # GIVEN a recorder with a hand-driven clock and sequential run ids
    clock = FakeClock()
    ids = iter(["run-a", "run-b"])
    path = tmp_path / "t.jsonl"
    # WHEN one step is recorded by hand (a custom client)
    with profiler.record(path, workflow="wf", gpu=False, instrument=False, clock=clock,
                         new_id=lambda: next(ids)) as rec:
        with rec.step("planner", team="a") as s:
            clock.advance(1.5)
            s.model = "gpt-4o"
            s.provider = "openai"
            s.set_prompt([{"role": "user", "content": "hi"}])
            s.set_output({"role": "assistant", "content": "hello"}, finish_reason="stop")
            s.set_usage({"prompt_tokens": 10, "completion_tokens": 2,
                         "prompt_tokens_details": {"cached_tokens": 4}})
    # THEN the trace has the run, the step with its times, usage normalised, and the run end
    trace = load_trace(path)
    (run,) = trace.runs
    assert run.run_id == "run-a" and run.workflow == "wf" and run.status == "ok"
    (step,) = run.steps
    assert step.name == "planner" and step.attributes == {"team": "a"}
    assert step.latency_ms == pytest.approx(1500.0)
    assert step.usage.input_tokens == 10 and step.usage.cache_read_tokens == 4
    assert step.output.message == {"role": "assistant", "content": "hello"}


def test_root_run_is_not_written_when_only_explicit_runs_are_used(tmp_path: Path) -> None:
    # GIVEN a recorder used only through rec.run(...)
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False, instrument=False) as rec:
        for i in range(3):
            with rec.run(workflow="agent", task=i):
                with rec.step("a"):
                    pass
    # THEN there are exactly three runs, none empty, each ended
    trace = load_trace(path)
    assert [r.workflow for r in trace.runs] == ["agent"] * 3
    assert all(len(r.steps) == 1 and r.status == "ok" and r.parent_run_id is None for r in trace.runs)
    assert [r.attributes["task"] for r in trace.runs] == [0, 1, 2]


def test_nested_workflow_links_parent_run_and_step(tmp_path: Path) -> None:
    # GIVEN a step that starts a sub-workflow
    path = tmp_path / "t.jsonl"
    with profiler.record(path, workflow="outer", gpu=False, instrument=False) as rec:
        with rec.step("delegate") as outer_step:
            with rec.run(workflow="inner") as inner:
                with rec.step("sub") as sub:
                    with rec.step("subsub"):
                        pass
    # THEN the inner run names its parent run and step; steps nest by parent_step_id
    trace = load_trace(path)
    outer = next(r for r in trace.runs if r.workflow == "outer")
    inner_run = trace.run(inner.run_id)
    assert inner_run.parent_run_id == outer.run_id
    assert inner_run.attributes["parent_step_id"] == outer_step.step_id
    subsub = next(s for s in inner_run.steps if s.name == "subsub")
    assert subsub.parent_step_id == sub.step_id
    assert next(s for s in inner_run.steps if s.name == "sub").parent_step_id is None


def test_decorator_records_sync_and_async_functions_and_passes_results(tmp_path: Path) -> None:
    @profiler.step("executor")
    def executor(x: int) -> int:
        return x * 2

    @profiler.step("verifier", kind="tool")
    async def verifier(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    # WHEN called with no recorder THEN they just run
    assert executor(2) == 4 and asyncio.run(verifier(1)) == 2
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False, instrument=False):
        assert executor(3) == 6
        assert asyncio.run(verifier(5)) == 6
    steps = load_trace(path).steps
    assert [(s.name, s.kind) for s in steps] == [("executor", "llm"), ("verifier", "tool")]


def test_exception_in_step_is_recorded_and_propagates(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with pytest.raises(ZeroDivisionError):
        with profiler.record(path, gpu=False, instrument=False) as rec:
            with rec.step("boom"):
                1 / 0
    trace = load_trace(path)
    assert trace.steps[0].attributes["error"].startswith("ZeroDivisionError")
    assert trace.runs[0].status == "error"


def test_32_threads_lose_nothing_and_never_interleave(tmp_path: Path) -> None:
    # GIVEN 32 threads each recording 25 steps with large prompts into one recorder
    path = tmp_path / "t.jsonl"
    per_thread = 25
    big = "x" * 20_000  # lines far larger than a pipe/OS write buffer

    with profiler.record(path, gpu=False, instrument=False) as rec:
        def work(t: int) -> None:
            with rec.run(workflow=f"thread-{t}"):
                for i in range(per_thread):
                    with rec.step(f"s{i}") as s:
                        s.set_prompt([{"role": "user", "content": f"{t}:{i}:{big}"}])

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, t))
                   for t in range(32)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    # THEN every line is valid JSON, every step is there, in its own thread's run
    lines = path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    trace = load_trace(path)
    assert len(trace.runs) == 32
    for run in trace.runs:
        t = int(run.workflow.split("-")[1])
        assert [s.name for s in run.steps] == [f"s{i}" for i in range(per_thread)]
        assert all(s.prompt.messages[0]["content"].startswith(f"{t}:") for s in run.steps)


def test_threads_without_context_fall_back_to_the_recorders_root_run(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with profiler.record(path, workflow="root", gpu=False, instrument=False):
        @profiler.step("in-thread")
        def f() -> None:
            pass

        th = threading.Thread(target=f)
        th.start()
        th.join()
    (run,) = load_trace(path).runs
    assert run.workflow == "root" and [s.name for s in run.steps] == ["in-thread"]


def test_asyncio_tasks_keep_their_own_current_step(tmp_path: Path) -> None:
    # GIVEN 20 concurrent tasks, each a run with two nested steps that yield to each other
    path = tmp_path / "t.jsonl"

    async def agent(rec: profiler.instrument.Recorder, i: int) -> None:
        async with rec.run(workflow=f"task-{i}"):
            async with rec.step("outer") as outer:
                await asyncio.sleep(0.001 * (i % 3))
                async with rec.step("inner") as inner:
                    await asyncio.sleep(0)
                    assert profiler.instrument.current_step() is inner
                assert profiler.instrument.current_step() is outer

    async def main() -> None:
        async with profiler.record(path, gpu=False, instrument=False) as rec:
            await asyncio.gather(*(agent(rec, i) for i in range(20)))

    asyncio.run(main())
    trace = load_trace(path)
    assert len(trace.runs) == 20
    for run in trace.runs:
        outer = next(s for s in run.steps if s.name == "outer")
        inner = next(s for s in run.steps if s.name == "inner")
        assert inner.parent_step_id == outer.step_id


def test_sigkill_mid_workflow_leaves_every_completed_step(tmp_path: Path) -> None:
    # GIVEN a process recording steps in a loop that reports each completed step on stdout
    path = tmp_path / "t.jsonl"
    script = textwrap.dedent(f"""
        import sys, profiler
        with profiler.record({str(path)!r}, workflow="crash", gpu=False, instrument=False) as rec:
            i = 0
            while True:
                with rec.step(f"s{{i}}") as s:
                    s.set_prompt([{{"role": "user", "content": "y" * 5000}}])
                print(i, flush=True)
                i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    done = -1
    assert proc.stdout is not None
    while done < 30:
        done = int(proc.stdout.readline())
    # WHEN it is killed without any chance to clean up
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # THEN the trace loads, with every step it reported complete (it may have finished more)
    trace = load_trace(path)
    names = [s.name for s in trace.steps]
    assert names[: done + 1] == [f"s{i}" for i in range(done + 1)]
    assert trace.runs[0].status is None  # no run_end: the run was cut off
    assert len(trace.warnings) <= 1


def test_redact_hook_rewrites_or_drops_steps(tmp_path: Path) -> None:
    def redact(step: dict) -> dict | None:
        if step["name"] == "secret":
            return None
        for m in step.get("prompt", {}).get("messages", []):
            m["content"] = m["content"].replace("alice@example.com", "<email>")
        return step

    path = tmp_path / "t.jsonl"
    with profiler.record(path, redact=redact, gpu=False, instrument=False) as rec:
        with rec.step("public") as s:
            s.set_prompt([{"role": "user", "content": "mail alice@example.com"}])
        with rec.step("secret") as s:
            s.set_prompt([{"role": "user", "content": "top secret"}])
    text = path.read_text()
    assert "alice@example.com" not in text and "top secret" not in text
    assert [s.name for s in load_trace(path).steps] == ["public"]


def test_redact_hook_returning_an_invalid_step_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="redact hook"):
        with profiler.record(tmp_path / "t.jsonl", redact=lambda d: {**d, "kind": "bogus"},
                             gpu=False, instrument=False) as rec:
            with rec.step("x"):
                pass


def test_unknown_content_level_and_closed_recorder_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="content level"):
        profiler.record(tmp_path / "t.jsonl", content="everything")
    rec = profiler.record(tmp_path / "t.jsonl", gpu=False, instrument=False)
    with pytest.raises(ConfigError, match="not open"):
        rec.step("x")


def test_gpu_without_nvml_gives_one_notice_and_null_gpu_fields(tmp_path: Path) -> None:
    # NVML cannot run on this machine (no NVIDIA driver); where it can, this test is skipped.
    from profiler.instrument.gpu import GpuUnavailable, NvmlSource

    try:
        NvmlSource().close()
        pytest.skip("NVML works here; the no-GPU path is not reachable")
    except GpuUnavailable:
        pass
    path = tmp_path / "t.jsonl"
    with pytest.warns(RuntimeWarning, match="GPU figures not recorded") as caught:
        with profiler.record(path, gpu=True, instrument=False) as rec:
            with rec.step("a"):
                pass
            with rec.step("b"):
                pass
    assert len([w for w in caught if "GPU" in str(w.message)]) == 1
    assert rec.notices and "GPU figures not recorded" in rec.notices[0]
    trace = load_trace(path)
    assert all(s.gpu is None for s in trace.steps) and trace.runs[0].gpu is None


def test_appending_to_an_existing_trace_keeps_both_recordings(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    for wf in ("first", "second"):
        with profiler.record(path, workflow=wf, gpu=False, instrument=False) as rec:
            with rec.step("a"):
                time.sleep(0.001)
    assert [r.workflow for r in load_trace(path).runs] == ["first", "second"]
    assert len(records(path, "header")) == 1


def test_appending_with_another_content_level_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with profiler.record(path, content="hashes", gpu=False, instrument=False):
        pass
    with pytest.raises(ConfigError, match="mix levels"):
        with profiler.record(path, content="text", gpu=False, instrument=False):
            pass


def test_sdks_are_patched_on_import_and_never_imported_for_nothing(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter recording with auto-instrumentation
    code = textwrap.dedent(f"""
        import sys, profiler
        with profiler.record({str(tmp_path / "t.jsonl")!r}, gpu=False):
            before = [m for m in ("openai", "anthropic") if m in sys.modules]
            import openai                                   # imported while recording
            from openai.resources.chat.completions import Completions
            patched = hasattr(Completions.create, "__ctxprof_original__")
        restored = not hasattr(Completions.create, "__ctxprof_original__")
        print(before, patched, restored, "anthropic" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    # THEN nothing was imported up front, openai was patched when imported, and restored on exit
    assert out.stdout.split() == ["[]", "True", "True", "False"], out.stderr


def test_recording_again_after_a_crash_cuts_the_torn_line_and_stays_readable(tmp_path: Path) -> None:
    # GIVEN a trace whose writer was killed in the middle of a line
    path = tmp_path / "t.jsonl"
    with profiler.record(path, workflow="first", gpu=False, instrument=False) as rec:
        with rec.step("a"):
            pass
    with open(path, "a") as f:
        f.write('{"type":"step","run_id":"r","step_id":"torn","prompt":{"messages":[{"ro')
    assert len(load_trace(path).warnings) == 1
    # WHEN a new recording appends to it
    with profiler.record(path, workflow="second", gpu=False, instrument=False) as rec:
        with rec.step("b"):
            pass
    # THEN the torn record is gone and both recordings load without error
    trace = load_trace(path)
    assert [s.name for s in trace.steps] == ["a", "b"] and trace.warnings == ()


def test_a_last_record_missing_only_its_newline_is_kept_when_appending(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with profiler.record(path, workflow="first", gpu=False, instrument=False) as rec:
        with rec.step("a"):
            pass
    text = path.read_text()
    path.write_text(text[:-1])  # killed between the record and its newline
    with profiler.record(path, workflow="second", gpu=False, instrument=False) as rec:
        with rec.step("b"):
            pass
    trace = load_trace(path)
    assert [r.workflow for r in trace.runs] == ["first", "second"] and trace.runs[0].status == "ok"
