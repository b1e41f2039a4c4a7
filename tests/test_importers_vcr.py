"""VCR cassettes: real crewAI recordings (tests/data/vcr, MIT, see its LICENSE), streamed Anthropic
responses assembled, times from the Date header, one run per cassette; the whole shared folder where
it is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importer_helpers import TEST_DATA, shared
from profiler.errors import TraceFormatError
from profiler.importers import IMPORTERS
from profiler.importers.registry import import_sources
from profiler.importers.vcr import assemble_stream, import_vcr

CASSETTES = TEST_DATA / "vcr"


def test_registered_as_an_importer() -> None:
    assert IMPORTERS["vcr"] == "profiler.importers.vcr:import_vcr"


def test_a_streamed_anthropic_cassette_becomes_one_run_with_usage_and_answers() -> None:
    # GIVEN a recorded cassette of two streamed Anthropic Messages calls
    # WHEN imported
    trace = import_vcr(CASSETTES / "test_anthropic_streaming_cached_prompt_tokens.yaml")
    # THEN one run holds both calls, each with its assembled answer and Anthropic's usage
    assert [r.run_id for r in trace.runs] == ["test_anthropic_streaming_cached_prompt_tokens"]
    first, second = trace.steps
    assert first.output.message["content"] == [{"type": "text", "text": "Hello"}]
    assert first.usage.cache_read_tokens == 1217 and first.usage.input_tokens == 1220
    assert first.usage.output_tokens == 4
    assert first.prompt.messages[0]["role"] == "system"
    # and times from the Date headers: Tue, 10 Feb 2026 18:27:43 and :44 GMT
    assert first.end_unix_s == 1770748063.0 and second.end_unix_s == 1770748064.0
    assert "streamed" in trace.header.attributes["reconstructed"]["output"]


def test_openai_tool_calls_and_processing_time() -> None:
    # GIVEN a recorded OpenAI cassette with parallel tool calls
    trace = import_vcr(CASSETTES / "test_max_usage_count_is_respected.yaml")
    first = trace.steps[0]
    # THEN the calls keep their tool calls and start before their Date by the processing time
    assert len(first.output.message["tool_calls"]) == 5
    assert first.start_unix_s < first.end_unix_s
    assert [s.usage.input_tokens for s in trace.steps][:3] == [145, 212, 279]  # cassette order
    assert [len(s.prompt.messages) for s in trace.steps] == [2, 5, 8, 11, 14, 17]


def test_a_folder_is_walked_one_run_per_cassette() -> None:
    trace = import_sources("vcr", [CASSETTES])
    assert len(trace.runs) == 2 and len(trace.steps) == 8


def test_assembles_openai_and_gemini_streams() -> None:
    # GIVEN OpenAI chat chunks (text and a tool call in pieces, usage last) and Gemini chunks
    openai = "\n\n".join("data: " + json.dumps(e) for e in [
        {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo", "tool_calls": [
            {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]},
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3}},
    ]) + "\n\ndata: [DONE]\n"
    gemini = "\n\n".join("data: " + json.dumps(e) for e in [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi "}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "there"}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2}},
    ])
    # WHEN assembled THEN they are the bodies the non-streaming APIs return
    body = assemble_stream(openai)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}
    assert body["usage"]["prompt_tokens"] == 10
    g = assemble_stream(gemini)
    assert g["candidates"][0]["content"]["parts"] == [{"text": "Hi there"}]
    assert g["usageMetadata"]["promptTokenCount"] == 7
    assert assemble_stream("not an event stream") is None


def test_a_gemini_cassette(tmp_path: Path) -> None:
    # GIVEN a cassette with a Gemini generateContent call (model in the URI, schema in the config)
    # (written here: no recorded Gemini cassette is available offline)
    import yaml

    body = {"contents": [{"role": "user", "parts": [{"text": "List two colours."}]}],
            "systemInstruction": {"parts": [{"text": "Answer in JSON."}]},
            "generationConfig": {"responseMimeType": "application/json",
                                 "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}}}}
    response = {"candidates": [{"content": {"role": "model", "parts": [{"text": '["red", "blue"]'}]},
                                "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 2100, "cachedContentTokenCount": 2048,
                                  "candidatesTokenCount": 6}}
    cassette = {"version": 1, "interactions": [{
        "request": {"method": "POST", "body": json.dumps(body), "headers": {},
                    "uri": "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"},
        "response": {"status": {"code": 200, "message": "OK"}, "body": {"string": json.dumps(response)},
                     "headers": {"Date": ["Tue, 10 Feb 2026 18:27:43 GMT"]}}}]}
    path = tmp_path / "gemini.yaml"
    path.write_text(yaml.safe_dump(cassette))
    # WHEN imported THEN the step has the model, system prompt, schema, answer and usage
    (step,) = import_vcr(path).steps
    assert step.model == "gemini-2.5-flash" and step.provider == "google"
    assert step.prompt.messages[0] == {"role": "system", "content": [{"type": "text", "text": "Answer in JSON."}]}
    assert step.prompt.response_format["responseSchema"]["type"] == "ARRAY"
    assert step.output.message["content"] == [{"type": "text", "text": '["red", "blue"]'}]
    assert (step.usage.input_tokens, step.usage.cache_read_tokens) == (2100, 2048)


def test_bad_cassettes_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: [\n")
    with pytest.raises(TraceFormatError, match="bad.yaml"):
        import_vcr(bad)
    other = tmp_path / "other.yaml"
    other.write_text("just: a mapping\n")
    with pytest.raises(TraceFormatError, match="interactions"):
        import_vcr(other)
    empty = tmp_path / "empty.yaml"
    empty.write_text("interactions:\n- request: {method: GET, uri: 'https://x', body: null}\n  response: {}\n")
    with pytest.raises(TraceFormatError, match="no LLM calls"):
        import_vcr(empty)


def test_every_shared_cassette_imports_with_usage() -> None:
    folder = shared("vcr-crewai")
    trace = import_vcr(folder)
    assert len(trace.runs) == 8 and len(trace.steps) == 47
    assert all(s.usage.input_tokens for s in trace.steps)
    assert all(s.output.message is not None for s in trace.steps)
    assert sum(s.prompt.response_format is not None for s in trace.steps) >= 5


def test_a_rewritten_answer_no_longer_splits_the_run_of_a_gateway_log(tmp_path: Path) -> None:
    from profiler.analysis import analyze
    from profiler.importers.openai_logs import import_openai_logs

    # GIVEN the calls of a recorded crewAI run (which resends only the first of the parallel tool
    # calls it was given) written as a gateway log with no run key
    cassette = import_vcr(CASSETTES / "test_max_usage_count_is_respected.yaml")
    log = tmp_path / "gateway.jsonl"
    log.write_text("".join(json.dumps({
        "request": {"model": s.model, "messages": [dict(m) for m in s.prompt.messages],
                    "tools": [dict(t) for t in s.prompt.tools or ()]},
        "response": {"choices": [{"message": dict(s.output.message)}]},
        "start_time": s.start_unix_s, "end_time": s.end_unix_s}) + "\n" for s in cassette.steps))
    # WHEN imported with prefix-continuation grouping
    grouped = import_openai_logs(log)
    # THEN it is one run, and run-scope reuse equals the cassette's (before: 2 runs, 2,194 of 2,424)
    assert len(grouped.runs) == 1
    reuse = sum(s.prefix_reused_tokens for s in analyze(grouped).steps)
    assert reuse == sum(s.prefix_reused_tokens for s in analyze(cassette).steps)
