"""Every call path of the real openai and anthropic SDKs, sync and async, whole and streamed, recorded
against the local API server: each recorded step is compared with what the server received and sent
(prompt, reply text, usage, TTFT), or must carry an explicit marker saying why not."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic
import openai
import pytest

import profiler
from profiler.testing.fake_api import FakeLLMServer
from profiler.usage import normalize_usage
from recording_helpers import records


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(chunk_delay_s=0.0005, first_token_delay_s=0.003) as s:
        yield s


def _text(message: dict[str, Any] | None) -> str:
    """The reply text of a recorded assistant message (a tool call's arguments when it called one)."""
    if not message:
        return ""
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if block.get("type") == "text":
                parts.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                parts.append(json.dumps(block.get("input")))
        return "".join(parts)
    calls = message.get("tool_calls") or []
    return "".join(c["function"]["arguments"] for c in calls)


MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in two lines."}]


def _oa(server: FakeLLMServer, is_async: bool) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def _an(server: FakeLLMServer, is_async: bool) -> Any:
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(base_url=server.anthropic_base_url, api_key="sk-test", max_retries=0)


def _chat_kwargs(stream: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
    if stream:
        kw.update(stream=True, stream_options={"include_usage": True})
    return kw


def _resp_kwargs(stream: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": "gpt-4o-mini", "input": MESSAGES, "instructions": "Be brief."}
    if stream:
        kw["stream"] = True
    return kw


def _msg_kwargs(stream: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": MESSAGES,
                          "system": "Be brief."}
    if stream:
        kw["stream"] = True
    return kw


# -- how a caller drives each path (sync) ---------------------------------------------------------
def _consume(result: Any) -> None:
    for _ in result:
        pass


def _drive_sync(path: str, resource: Any, kwargs: dict[str, Any], stream: bool) -> None:
    if path in ("create", "parse"):
        result = getattr(resource, path)(**kwargs)
        if stream:
            _consume(result)
    elif path == "with_raw_response":
        raw = resource.with_raw_response.create(**kwargs)
        parsed = raw.parse()
        if stream:
            _consume(parsed)
    elif path == "with_streaming_response":
        with resource.with_streaming_response.create(**kwargs) as response:
            parsed = response.parse()
            if stream:
                _consume(parsed)
    else:
        raise AssertionError(path)


async def _aconsume(result: Any) -> None:
    async for _ in result:
        pass


async def _drive_async(path: str, resource: Any, kwargs: dict[str, Any], stream: bool) -> None:
    if path in ("create", "parse"):
        result = await getattr(resource, path)(**kwargs)
        if stream:
            await _aconsume(result)
    elif path == "with_raw_response":
        raw = await resource.with_raw_response.create(**kwargs)
        parsed = raw.parse()
        if asyncio.iscoroutine(parsed):
            parsed = await parsed
        if stream:
            await _aconsume(parsed)
    elif path == "with_streaming_response":
        async with resource.with_streaming_response.create(**kwargs) as response:
            parsed = await response.parse()
            if stream:
                await _aconsume(parsed)
    else:
        raise AssertionError(path)


RESOURCES: dict[str, tuple[Callable[[FakeLLMServer, bool], Any], Callable[[Any], Any],
                           Callable[[bool], dict[str, Any]], str]] = {
    "openai.chat": (_oa, lambda c: c.chat.completions, _chat_kwargs, "openai"),
    "openai.responses": (_oa, lambda c: c.responses, _resp_kwargs, "openai"),
    "anthropic.messages": (_an, lambda c: c.messages, _msg_kwargs, "anthropic"),
    "anthropic.beta.messages": (_an, lambda c: c.beta.messages, _msg_kwargs, "anthropic"),
}
PATHS = ("create", "parse", "with_raw_response", "with_streaming_response")

MATRIX = [(api, path, is_async, stream)
          for api in RESOURCES for path in PATHS for is_async in (False, True)
          for stream in (False, True)
          if not (path == "parse" and stream)]  # parse() takes no stream argument


def _record_one(server: FakeLLMServer, tmp_path: Path, api: str, path: str, is_async: bool,
                stream: bool, content: str = "text") -> tuple[dict[str, Any], Any]:
    make_client, resource_of, make_kwargs, _ = RESOURCES[api]
    trace = tmp_path / f"{content}.jsonl"
    before = len(server.log)
    client = make_client(server, is_async)
    kwargs = make_kwargs(stream)
    with profiler.record(trace, gpu=False, content=content):
        if is_async:
            asyncio.run(_drive_async(path, resource_of(client), kwargs, stream))
        else:
            _drive_sync(path, resource_of(client), kwargs, stream)
    served = server.log[before:]
    assert len(served) == 1
    steps = records(trace, "step")
    assert len(steps) == 1, steps
    return steps[0], served[0]


@pytest.mark.parametrize("api,path,is_async,stream", MATRIX,
                         ids=[f"{a}-{p}-{'async' if s else 'sync'}-{'stream' if st else 'whole'}"
                              for a, p, s, st in MATRIX])
def test_every_call_path_records_what_the_server_received_and_sent(
        server: FakeLLMServer, tmp_path: Path, api: str, path: str, is_async: bool,
        stream: bool) -> None:
    # GIVEN a real SDK client talking over HTTP to the local server
    # WHEN one call goes through this path while recording
    step, served = _record_one(server, tmp_path, api, path, is_async, stream)
    # THEN the step holds the prompt the server received ...
    provider = RESOURCES[api][3]
    prompt_text = json.dumps(step["prompt"]["messages"])
    assert MESSAGES[0]["content"] in prompt_text
    assert step["prompt"]["messages"][-1]["content"] == served.body.get(
        "messages", served.body.get("input"))[-1]["content"]
    # ... the reply it sent, its usage exactly, and (for streams) a time to first token
    assert _text(step["output"]["message"]) == served.reply
    expected = normalize_usage(served.usage, provider).to_dict()
    assert step["usage"] == expected
    assert "usage_absent" not in step["attributes"]
    assert "incomplete" not in step["attributes"]
    if stream:
        assert step["ttft_ms"] is not None and step["ttft_ms"] > 0


def test_a_chat_stream_without_usage_says_usage_was_absent(server: FakeLLMServer,
                                                           tmp_path: Path) -> None:
    # GIVEN a chat stream that does not ask for usage (the default of many frameworks)
    client = _oa(server, False)
    trace = tmp_path / "t.jsonl"
    with profiler.record(trace, gpu=False):
        _consume(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    step = records(trace, "step")[0]
    # THEN the output is recorded and the missing usage is marked, not a silent null
    assert _text(step["output"]["message"]) == server.log[-1].reply
    assert not step.get("usage")
    assert "include_usage" in step["attributes"]["usage_absent"]


def test_analysis_counts_tokens_itself_and_warns_when_usage_was_absent(server: FakeLLMServer,
                                                                        tmp_path: Path) -> None:
    client = _oa(server, False)
    trace = tmp_path / "t.jsonl"
    with profiler.record(trace, gpu=False):
        _consume(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    from profiler.analysis import analyze
    from profiler.trace.io import load_trace

    result = analyze(load_trace(trace))
    step = result.runs[0].steps[0]
    assert step.input_tokens > 0 and step.output_tokens > 0
    assert any("no usage" in w and "counted" in w for w in result.warnings), result.warnings


@pytest.mark.parametrize("api", ["openai.chat", "anthropic.messages"])
def test_a_stream_closed_early_is_incomplete_and_keeps_no_placeholder_usage(
        server: FakeLLMServer, tmp_path: Path, api: str) -> None:
    make_client, resource_of, make_kwargs, provider = RESOURCES[api]
    trace = tmp_path / "t.jsonl"
    with profiler.record(trace, gpu=False):
        stream = resource_of(make_client(server, False)).create(**make_kwargs(True))
        for i, _ in enumerate(stream):
            if i == 2:
                break
        stream.close()
    step = records(trace, "step")[0]
    assert step["attributes"]["incomplete"] is True
    assert step["attributes"]["stream"] == "closed before its end"
    # Anthropic's message_start carries output_tokens=1 as a placeholder: never recorded as reported
    assert "output_tokens" not in step.get("usage", {})
    if provider == "anthropic":
        assert step["usage"]["input_tokens"] == normalize_usage(server.log[-1].usage,
                                                                provider).input_tokens
        assert "usage_partial" in step["attributes"]


@pytest.mark.parametrize("api", ["openai.chat", "anthropic.messages"])
def test_a_stream_never_read_is_marked_incomplete(server: FakeLLMServer, tmp_path: Path,
                                                  api: str) -> None:
    make_client, resource_of, make_kwargs, _ = RESOURCES[api]
    trace = tmp_path / "t.jsonl"
    with profiler.record(trace, gpu=False) as rec:
        with rec.step("planner"):
            resource_of(make_client(server, False)).create(**make_kwargs(True))
        rec.step("other")  # the run goes on
    step = records(trace, "step")[0]
    assert step["name"] == "planner"
    assert step["attributes"]["incomplete"] is True
    assert step["attributes"]["output_not_recorded"] == "the stream was never read"


def test_a_raw_stream_read_without_parse_is_marked(server: FakeLLMServer, tmp_path: Path) -> None:
    client = _oa(server, False)
    trace = tmp_path / "t.jsonl"
    with profiler.record(trace, gpu=False):
        with client.chat.completions.with_streaming_response.create(**_chat_kwargs(True)) as r:
            lines = list(r.iter_lines())
    assert lines
    step = records(trace, "step")[0]
    assert step["attributes"]["incomplete"] is True
    assert "without .parse()" in step["attributes"]["output_not_recorded"]


def test_calls_fanned_out_to_a_thread_pool_nest_under_the_step(server: FakeLLMServer,
                                                              tmp_path: Path) -> None:
    # GIVEN a step that fans three calls out to worker threads
    client = _oa(server, False)
    trace = tmp_path / "t.jsonl"
    with profiler.record(trace, gpu=False) as rec:
        with rec.step("fan-out"):
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda _: client.chat.completions.create(**_chat_kwargs(False)),
                              range(3)))
    steps = records(trace, "step")
    # THEN one call fills the step and the others are its children, none lands at the root
    parent = next(s for s in steps if s.get("parent_step_id") is None)
    assert parent["name"] == "fan-out" and parent["prompt"]["messages"]
    children = [s for s in steps if s is not parent]
    assert len(children) == 2
    assert all(c.get("parent_step_id") == parent["step_id"] and c["name"] == "fan-out" for c in children)
    assert all(c["usage"]["input_tokens"] > 0 for c in steps)
