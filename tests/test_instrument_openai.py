"""Auto-instrumentation of the real `openai` SDK against a local server that answers like the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

import profiler
from profiler.trace import load_trace
from profiler.usage import normalize_usage

from recording_helpers import records

API_KEY = "sk-test-DO-NOT-LEAK-0123456789"
SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 40}
TOOLS = [{"type": "function", "function": {"name": "search", "description": "Search the docs.",
                                           "parameters": {"type": "object", "properties": {
                                               "query": {"type": "string"}}}}}]


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0)


def test_chat_completion_sync_records_prompt_output_usage_and_no_key(tmp_path: Path, fake_api) -> None:
    # GIVEN two calls that share a long system prompt (the server reports the second as cached)
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    messages = [SYSTEM, {"role": "user", "content": "What is the refund policy?"}]
    with profiler.record(path, workflow="chat", gpu=False) as rec:
        with rec.step("planner"):
            first = c.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS,
                                              temperature=0.2)
        second = c.chat.completions.create(model="gpt-4o-mini", messages=messages + [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": first.choices[0].message.tool_calls[0].id, "content": "ok"}],
            tools=TOOLS)
    # THEN both steps carry the prompt, tools, output (incl. tool calls) and the usage the server sent
    trace = load_trace(path)
    s1, s2 = trace.steps
    assert s1.name == "planner" and s2.name == "openai.chat"
    assert s1.provider == "openai" and s1.model == "gpt-4o-mini"
    assert list(s1.prompt.messages) == messages and list(s1.prompt.tools) == TOOLS
    assert s1.output.message["tool_calls"][0]["function"]["name"] == "search"
    assert s1.output.finish_reason == "tool_calls"
    assert s2.output.message["content"] == second.choices[0].message.content
    for step, served in zip((s1, s2), fake_api.log):
        assert step.usage == normalize_usage(served.usage, "openai")
    assert s2.usage.cache_read_tokens and s2.usage.cache_read_tokens > 0
    assert s1.attributes["temperature"] == 0.2
    # AND the API key reached the server but never the trace
    assert all(served.had_api_key for served in fake_api.log)
    assert API_KEY not in path.read_text() and "authorization" not in path.read_text().lower()


def test_stream_with_include_usage_records_usage_ttft_and_passes_chunks(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, gpu=False):
        stream = c.chat.completions.create(model="gpt-4o-mini", stream=True,
                                           stream_options={"include_usage": True},
                                           messages=[{"role": "user", "content": "stream please"}])
        chunks = list(stream)
    # THEN the caller saw every chunk unchanged (the last one carries the usage)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    (step,) = load_trace(path).steps
    assert step.output.message == {"role": "assistant", "content": text}
    assert step.usage == normalize_usage(fake_api.log[0].usage, "openai")
    assert step.usage.input_tokens is not None
    assert step.ttft_ms is not None and 0 < step.ttft_ms <= step.latency_ms


def test_stream_without_usage_leaves_usage_unknown_not_zero(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False):
        for _ in client(fake_api).chat.completions.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]):
            pass
    (step,) = load_trace(path).steps
    assert step.usage.input_tokens is None and step.usage.output_tokens is None
    assert step.output.message["content"]


def test_stream_helper_with_tool_calls_is_recorded_once(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False):
        with client(fake_api).chat.completions.stream(
                model="gpt-4o-mini", tools=TOOLS, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "find the refund docs"}]) as stream:
            final = stream.get_final_completion()
    (step,) = load_trace(path).steps
    call = step.output.message["tool_calls"][0]
    assert call["id"] == final.choices[0].message.tool_calls[0].id
    assert call["function"]["arguments"] == final.choices[0].message.tool_calls[0].function.arguments
    assert step.output.finish_reason == "tool_calls"


def test_async_chat_and_async_stream(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"

    async def main() -> str:
        c = openai.AsyncOpenAI(base_url=fake_api.openai_base_url, api_key=API_KEY, max_retries=0)
        async with profiler.record(path, gpu=False) as rec:
            async with rec.step("async-whole"):
                await c.chat.completions.create(model="gpt-4o-mini",
                                                messages=[{"role": "user", "content": "a"}])
            async with rec.step("async-stream"):
                stream = await c.chat.completions.create(
                    model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": "b"}])
                parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
        await c.close()
        return "".join(parts)

    streamed = asyncio.run(main())
    whole, streamed_step = load_trace(path).steps
    assert whole.name == "async-whole" and whole.usage.input_tokens is not None
    assert streamed_step.output.message["content"] == streamed
    assert streamed_step.usage.output_tokens is not None and streamed_step.ttft_ms is not None


def test_responses_api_whole_and_streamed(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, gpu=False):
        r = c.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="Summarise the policy.")
        events = list(c.responses.create(model="gpt-4o-mini", stream=True, input=[
            {"role": "user", "content": "Summarise the policy."}]))
    whole, streamed = load_trace(path).steps
    assert whole.prompt.messages == ({"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Summarise the policy."})
    assert whole.output.message["content"] == r.output_text
    assert whole.usage == normalize_usage(fake_api.log[0].usage)
    assert whole.usage.input_tokens == fake_api.log[0].usage["input_tokens"]
    assert streamed.usage.input_tokens == fake_api.log[1].usage["input_tokens"]
    assert events[-1].type == "response.completed"
    assert streamed.ttft_ms is not None and streamed.output.finish_reason == "completed"


def test_patches_are_removed_on_exit_and_calls_outside_are_not_recorded(tmp_path: Path,
                                                                         fake_api) -> None:
    from openai.resources.chat.completions import Completions

    original = Completions.create
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False):
        assert Completions.create is not original
    assert Completions.create is original
    client(fake_api).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert records(path, "step") == []


def test_server_error_is_recorded_on_the_step_and_raised(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    bad = openai.OpenAI(base_url=fake_api.openai_base_url + "/nope", api_key=API_KEY, max_retries=0)
    with profiler.record(path, gpu=False):
        with pytest.raises(openai.NotFoundError):
            bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    (step,) = load_trace(path).steps
    assert "NotFoundError" in step.attributes["error"]
    assert API_KEY not in path.read_text()


def test_responses_stream_helper_and_raw_response_variant(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, gpu=False):
        with c.responses.stream(model="gpt-4o-mini", input="stream helper") as stream:
            final = stream.get_final_response()
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "raw"}])
        parsed = raw.parse()
    helper, raw_step = load_trace(path).steps
    assert helper.output.message["content"] == final.output_text
    assert helper.usage.input_tokens == fake_api.log[0].usage["input_tokens"]
    assert raw_step.output.message["content"] == parsed.choices[0].message.content
    assert raw_step.usage.input_tokens == parsed.usage.prompt_tokens


def test_a_recording_failure_never_breaks_the_call(tmp_path: Path, fake_api) -> None:
    # GIVEN a recorder that fails to write LLM steps (here a redact hook raising, as a full disk would)
    def failing(step: dict) -> dict:
        if step["name"] == "openai.chat":
            raise OSError("No space left on device")
        return step

    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, redact=failing, gpu=False) as rec:
        with rec.step("kept", kind="tool"):
            pass
        # WHEN the program makes a call THEN it gets its answer, with a warning about the recording
        with pytest.warns(RuntimeWarning, match="could not record.*No space left"):
            reply = c.chat.completions.create(model="gpt-4o-mini",
                                              messages=[{"role": "user", "content": "still works"}])
        assert reply.choices[0].message.content
    assert [s.name for s in load_trace(path).steps] == ["kept"]


def test_32_threads_calling_the_sdk_each_get_their_own_steps(tmp_path: Path, fake_api) -> None:
    import contextvars
    import threading

    path = tmp_path / "t.jsonl"
    c = client(fake_api)  # one client shared by every thread, as applications do

    with profiler.record(path, gpu=False) as rec:
        def agent(t: int) -> None:
            with rec.run(workflow=f"agent-{t}"):
                for i in range(3):
                    with rec.step(f"s{i}"):
                        if i == 2:
                            for _ in c.chat.completions.create(
                                    model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
                                    messages=[{"role": "user", "content": f"thread {t} call {i}"}]):
                                pass
                        else:
                            c.chat.completions.create(model="gpt-4o-mini", messages=[
                                {"role": "user", "content": f"thread {t} call {i}"}])

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(agent, t))
                   for t in range(32)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    trace = load_trace(path)
    assert len(trace.runs) == 32 and len(fake_api.log) == 96
    for run in trace.runs:
        t = run.workflow.split("-")[1]
        assert [s.name for s in run.steps] == ["s0", "s1", "s2"]
        assert [s.prompt.messages[0]["content"] for s in run.steps] == [
            f"thread {t} call {i}" for i in range(3)]
        assert all(s.usage.input_tokens and s.output.message["content"] for s in run.steps)
