"""Auto-instrumentation of the real `anthropic` SDK against a local server that answers like the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic

import profiler
from profiler.trace import load_trace


API_KEY = "sk-ant-test-DO-NOT-LEAK-987654"
MODEL = "claude-haiku-4-5"
SYSTEM = [{"type": "text", "text": "You are the support agent. Policy: be exact. " * 40,
           "cache_control": {"type": "ephemeral"}}]


def client(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0)


def test_messages_create_records_cache_write_then_cache_read(tmp_path: Path, fake_api) -> None:
    # GIVEN two calls with the same cached system prompt
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, gpu=False) as rec:
        for name in ("first", "second"):
            with rec.step(name):
                c.messages.create(model=MODEL, max_tokens=100, system=SYSTEM,
                                  messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    first, second = load_trace(path).steps
    # THEN usage is inclusive: input = uncached + cache read + cache write, as the server reported them
    for step, served in zip((first, second), fake_api.log):
        u = served.usage
        assert step.usage.input_tokens == (u["input_tokens"] + u["cache_read_input_tokens"]
                                           + u["cache_creation_input_tokens"])
        assert step.usage.cache_read_tokens == u["cache_read_input_tokens"]
        assert step.usage.cache_write_tokens == u["cache_creation_input_tokens"]
    assert first.usage.cache_write_tokens > 0 and second.usage.cache_read_tokens > 0
    # AND the system prompt is the first message; the output keeps Anthropic's content blocks
    assert first.prompt.messages[0] == {"role": "system", "content": SYSTEM}
    assert first.output.message["content"][0]["type"] == "text"
    assert first.provider == "anthropic" and first.output.finish_reason == "end_turn"
    assert API_KEY not in path.read_text()


def test_stream_helper_records_usage_from_message_start_and_delta(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, gpu=False):
        with c.messages.stream(model=MODEL, max_tokens=50, system=SYSTEM,
                               messages=[{"role": "user", "content": "stream it"}]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    (step,) = load_trace(path).steps
    served = fake_api.log[0].usage
    assert step.output.message["content"] == [{"type": "text", "text": text}]
    assert final.content[0].text == text  # the SDK's own accumulation still works
    assert step.usage.output_tokens == served["output_tokens"]  # from message_delta
    assert step.usage.cache_write_tokens == served["cache_creation_input_tokens"]  # message_start
    assert step.ttft_ms is not None and step.ttft_ms <= step.latency_ms


def test_create_stream_true_with_tool_use(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    tools = [{"name": "lookup", "description": "Look a booking up.",
              "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]
    with profiler.record(path, gpu=False):
        events = list(client(fake_api).messages.create(
            model=MODEL, max_tokens=50, tools=tools, stream=True,
            messages=[{"role": "user", "content": "find booking ABC"}]))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    (step,) = load_trace(path).steps
    block = step.output.message["content"][0]
    assert block["type"] == "tool_use" and block["input"] == {"query": "find booking ABC"}
    assert list(step.prompt.tools) == tools and step.output.finish_reason == "tool_use"


def test_async_messages_and_async_stream(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"

    async def main() -> None:
        c = anthropic.AsyncAnthropic(base_url=fake_api.anthropic_base_url, api_key=API_KEY, max_retries=0)
        async with profiler.record(path, gpu=False):
            await c.messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "a"}])
            async with c.messages.stream(model=MODEL, max_tokens=20,
                                         messages=[{"role": "user", "content": "b"}]) as s:
                async for _ in s.text_stream:
                    pass
        await c.close()

    asyncio.run(main())
    whole, streamed = load_trace(path).steps
    assert whole.usage.input_tokens is not None and streamed.usage.output_tokens is not None
    assert streamed.ttft_ms is not None and whole.ttft_ms is None


def test_beta_messages_are_recorded_too(tmp_path: Path, fake_api) -> None:
    path = tmp_path / "t.jsonl"
    c = client(fake_api)
    with profiler.record(path, gpu=False):
        c.beta.messages.create(model=MODEL, max_tokens=20, system=SYSTEM,
                               messages=[{"role": "user", "content": "beta"}])
        with c.beta.messages.stream(model=MODEL, max_tokens=20,
                                    messages=[{"role": "user", "content": "beta stream"}]) as s:
            text = s.get_final_text()
    whole, streamed = load_trace(path).steps
    assert whole.usage.cache_write_tokens == fake_api.log[0].usage["cache_creation_input_tokens"]
    assert streamed.output.message["content"] == [{"type": "text", "text": text}]
    assert streamed.usage.output_tokens == fake_api.log[1].usage["output_tokens"]
