"""OTLP JSON with GenAI semantic conventions: import (the shared example, other spellings) and the
ctxprof -> OTLP -> ctxprof round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.analysis import analyze
from profiler.errors import TraceFormatError
from profiler.importers import IMPORTERS
from profiler.otel import export_otlp, import_otlp
from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage

from recording_helpers import SHARED_DATA

EXAMPLE = SHARED_DATA / "otlp_genai_example.json"


def span(span_id: str, name: str, attrs: dict, *, parent: str | None = None, start: int = 1,
         trace_id: str = "ab" * 16, events: list | None = None) -> dict:
    def value(v):
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": v if isinstance(v, str) else json.dumps(v)}

    d = {"traceId": trace_id, "spanId": span_id, "name": name, "kind": 3,
         "startTimeUnixNano": str(1_700_000_000_000_000_000 + start * 1_000_000),
         "endTimeUnixNano": str(1_700_000_000_000_000_000 + (start + 5) * 1_000_000),
         "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()]}
    if parent:
        d["parentSpanId"] = parent
    if events:
        d["events"] = events
    return d


def otlp(tmp_path: Path, spans: list[dict]) -> Path:
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                                   "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}))
    return path


def test_registered_as_an_importer() -> None:
    assert IMPORTERS["otel"] == "profiler.otel:import_otlp"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="shared data folder not present")
def test_imports_the_shared_genai_example() -> None:
    trace = import_otlp(EXAMPLE)
    (run,) = trace.runs
    assert run.run_id == "9f91fc32dcc338de5cbca8bed33fad56" and run.workflow == "planner"
    chat, tool = run.steps
    assert (chat.kind, chat.name, chat.model, chat.provider) == ("llm", "planner", "claude-sonnet-4-5",
                                                                  "anthropic")
    assert chat.usage == Usage(input_tokens=12345, cache_read_tokens=11000, cache_write_tokens=1200,
                               output_tokens=321)
    assert chat.prompt.messages == ({"role": "user", "content": "Plan step 3"},)
    assert chat.output.message == {"role": "assistant", "content": "..."}
    assert chat.output.finish_reason == "end_turn"
    assert (tool.kind, tool.name) == ("tool", "search")
    assert chat.start_unix_s == pytest.approx(1795584305.498986739)
    result = analyze(trace)
    assert result.steps[0].reported_cached_tokens == 11000


def test_other_spellings_events_and_exclusive_input_counts(tmp_path: Path) -> None:
    # GIVEN an OpenLLMetry-style span (flattened prompt attributes, Anthropic raw counts) and a span
    # with messages in events
    spans = [
        span("0000000000000001", "anthropic.chat", {
            "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-haiku-4-5",
            "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.cache_read_input_tokens": 900,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be exact.",
            "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Hello",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Hi!"}),
        span("0000000000000002", "chat gpt-4o", {"gen_ai.operation.name": "chat",
                                                  "gen_ai.request.model": "gpt-4o",
                                                  "gen_ai.usage.input_tokens": 20}, start=10,
             events=[{"name": "gen_ai.user.message", "timeUnixNano": "1",
                      "attributes": [{"key": "content", "value": {"stringValue": "Question"}}]},
                     {"name": "gen_ai.choice", "timeUnixNano": "2",
                      "attributes": [{"key": "message", "value": {"stringValue": json.dumps(
                          {"role": "assistant", "content": "Answer"})}}]}]),
    ]
    trace = import_otlp(otlp(tmp_path, spans))
    a, b = trace.steps
    assert a.usage.input_tokens == 910 and a.usage.cache_read_tokens == 900  # made inclusive
    assert a.prompt.messages == ({"role": "system", "content": "Be exact."}, {"role": "user", "content": "Hello"})
    assert a.output.message == {"role": "assistant", "content": "Hi!"}
    assert b.prompt.messages == ({"role": "user", "content": "Question"},)
    assert b.output.message == {"role": "assistant", "content": "Answer"}
    assert trace.header.attributes["reconstructed"]


def test_runs_are_grouped_by_trace_id(tmp_path: Path) -> None:
    spans = [span(f"{i:016x}", "chat m", {"gen_ai.operation.name": "chat"}, trace_id=t * 32, start=i)
             for i, t in enumerate("aabab")]
    trace = import_otlp(otlp(tmp_path, spans))
    assert sorted(len(r.steps) for r in trace.runs) == [2, 3]


def test_bad_input_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"spans": []}))
    with pytest.raises(TraceFormatError, match="resourceSpans"):
        import_otlp(bad)
    path = otlp(tmp_path, [{"spanId": "01", "name": "x"}])
    with pytest.raises(TraceFormatError, match=r"spans\[0\]"):
        import_otlp(path)


def make_trace() -> Trace:
    tools = ({"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},)
    history = [{"role": "system", "content": "Policy text"}, {"role": "user", "content": "Refund?"}]
    steps = [
        Step(run_id="run-1", step_id="1", name="planner", model="gpt-4o", provider="openai",
             start_unix_s=1_700_000_000.125, end_unix_s=1_700_000_001.5, ttft_ms=210.5,
             prompt=Prompt(messages=tuple(history), tools=tools),
             output=Output(message={"role": "assistant", "content": None, "tool_calls": [
                 {"id": "c1", "function": {"arguments": "{\"q\": \"refund\"}", "name": "search"},
                  "type": "function"}]}, finish_reason="tool_calls"),
             usage=Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=20),
             attributes={"temperature": 0.2}),
        Step(run_id="run-1", step_id="2", name="search", kind="tool", parent_step_id="1",
             start_unix_s=1_700_000_001.6, end_unix_s=1_700_000_001.7, output=Output(text="found")),
        Step(run_id="run-1", step_id="3", name="verifier", model="claude-haiku-4-5", provider="anthropic",
             start_unix_s=1_700_000_002.0, end_unix_s=1_700_000_003.0,
             prompt=Prompt(block_hashes=(11, 22), block_size=16, num_tokens=40),
             output=Output(block_hashes=(33,), num_tokens=9, finish_reason="end_turn"),
             usage=Usage(input_tokens=40, cache_read_tokens=0, cache_write_tokens=32, output_tokens=9)),
    ]
    runs = [Run(run_id="run-1", workflow="support", start_unix_s=1_700_000_000.0,
                end_unix_s=1_700_000_003.5, status="ok", attributes={"task": "t1"})]
    return Trace.from_steps(steps, header=TraceHeader(), runs=runs)


def test_round_trip_keeps_every_step_field(tmp_path: Path) -> None:
    trace = make_trace()
    out = tmp_path / "otlp.json"
    doc = export_otlp(trace, out)
    # The exported spans speak the conventions other backends read.
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    chat = next(s for s in spans if s["name"] == "chat gpt-4o")
    keys = {a["key"] for a in chat["attributes"]}
    assert {"gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.definitions",
            "gen_ai.system_instructions"} <= keys
    assert len({s["traceId"] for s in spans}) == 1 and all(len(s["spanId"]) == 16 for s in spans)
    back = import_otlp(out)
    assert len(back.runs) == 1
    (run,) = back.runs
    orig = trace.runs[0]
    assert (run.run_id, run.workflow, run.status, dict(run.attributes)) == (
        orig.run_id, orig.workflow, orig.status, dict(orig.attributes))
    for a, b in zip(orig.steps, run.steps):
        da, db = a.to_dict(), b.to_dict()
        for key in ("start_unix_s", "end_unix_s"):
            assert db.pop(key) == pytest.approx(da.pop(key), abs=1e-6)
        assert db == da


def test_semconv_messages_alone_rebuild_chat_messages(tmp_path: Path) -> None:
    # GIVEN an export with the ctxprof-only attributes removed (what another tool would have written)
    doc = export_otlp(make_trace())
    for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        s["attributes"] = [a for a in s["attributes"] if not a["key"].startswith("ctxprof.")]
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps(doc))
    planner = next(s for s in import_otlp(path).steps if s.model == "gpt-4o")
    assert planner.prompt.messages == ({"role": "system", "content": "Policy text"},
                                       {"role": "user", "content": "Refund?"})
    call = planner.output.message["tool_calls"][0]
    assert call["function"]["name"] == "search" and json.loads(call["function"]["arguments"]) == {"q": "refund"}
    assert planner.usage.cache_read_tokens == 1024 and planner.ttft_ms == pytest.approx(210.5)


def openinference_llm_span(span_id: str, start: int, tool_description: str) -> dict:
    """An OpenInference LLM span with the flattened attributes its OpenAI instrumentor writes (shape
    from the OpenInference semantic conventions; no recorded export is available offline): tool
    definitions, a tool call in the history, its result, and a multi-part user message."""
    weather = {"type": "function", "function": {"name": "get_weather", "description": tool_description,
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string"}}}}}
    return span(span_id, "ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
        "llm.token_count.prompt": 120, "llm.token_count.completion": 8,
        "llm.tools.0.tool.json_schema": json.dumps(weather),
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You answer weather questions. " * 20,
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Weather in Paris?",
        "llm.input_messages.1.message.contents.1.message_content.type": "image",
        "llm.input_messages.1.message.contents.1.message_content.image.image.url": "https://example.com/p.png",
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.tool_calls.0.tool_call.id": "call_1",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
        "llm.input_messages.3.message.role": "tool",
        "llm.input_messages.3.message.tool_call_id": "call_1",
        "llm.input_messages.3.message.content": "18 C, sunny",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "It is 18 C and sunny in Paris.",
    }, start=start)


def test_openinference_tool_calls_results_parts_and_tool_definitions(tmp_path: Path) -> None:
    # GIVEN an OpenInference LLM span with flattened tool calls, a tool result, content parts, tools
    trace = import_otlp(otlp(tmp_path, [openinference_llm_span("0000000000000001", 1, "Weather now.")]))
    (step,) = trace.steps
    messages = step.prompt.messages
    # THEN every one reaches the prompt
    assert step.prompt.tools[0]["function"]["name"] == "get_weather"
    assert messages[1]["content"] == [{"type": "text", "text": "Weather in Paris?"},
                                      {"type": "image_url", "image_url": {"url": "https://example.com/p.png"}}]
    assert messages[2]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert messages[3] == {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}


def test_a_changed_tool_definition_is_a_break_not_reuse(tmp_path: Path) -> None:
    # GIVEN two calls of one trace with the same messages, the second with a reworded tool
    trace = import_otlp(otlp(tmp_path, [openinference_llm_span("0000000000000001", 1, "Weather now."),
                                        openinference_llm_span("0000000000000002", 20, "Current weather.")]))
    # WHEN analysed
    second = analyze(trace).steps[1]
    # THEN the prefix stops inside the tools block (before: tools were dropped and it was a full hit)
    assert second.prefix_reused_tokens < 40 < second.input_tokens


def test_a_folder_of_otlp_files_is_walked(tmp_path: Path) -> None:
    from profiler.importers.registry import import_sources

    # GIVEN a folder holding two OTLP JSON exports (in a subfolder too)
    (tmp_path / "a").mkdir()
    otlp(tmp_path / "a", [openinference_llm_span("0000000000000001", 1, "x")])
    (tmp_path / "b.json").write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": []},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [
            openinference_llm_span("0000000000000002", 1, "y") | {"traceId": "cd" * 16}]}]}]}))
    # WHEN imported as a folder (this used to end in a traceback) THEN both traces are read
    trace = import_sources("otel", [tmp_path])
    assert len(trace.runs) == 2
