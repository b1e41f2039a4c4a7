"""OpenHands / LiteLLM completion logs: prompts, outputs, usage, times and errors, checked against the
real logs in ../shared/data/openhands (values below were read off the files by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from importer_helpers import shared

from profiler.analysis import analyze
from profiler.errors import TraceFormatError
from profiler.importers.openhands import import_openhands

RUN2_CLAUDE = "run2_20250904T1943/fncall-claude-sonnet-4"
RUN2_DEEPSEEK = "run2_20250904T1943/nonfncall-deepseek-chat"
RUN1_CLAUDE = "run1_20250904T1628/fncall-claude-sonnet-4"


@pytest.fixture(scope="module")
def trace():
    return import_openhands(shared("openhands"))


def test_one_run_per_folder_with_steps_in_time_order(trace):
    # GIVEN the four folders of call files  WHEN imported  THEN four runs of 6 or 4 calls
    sizes = {r.run_id: len(r.steps) for r in trace.runs}
    assert sizes == {RUN1_CLAUDE: 6, "run1_20250904T1628/nonfncall-deepseek-chat": 4,
                     RUN2_CLAUDE: 6, RUN2_DEEPSEEK: 4}
    for run in trace.runs:
        starts = [s.start_unix_s for s in run.steps]
        assert starts == sorted(starts)


def test_third_call_prompt_is_the_history_as_sent(trace):
    # GIVEN run 2's Claude folder  WHEN imported  THEN its 3rd call sent 6 messages whose last is the
    # `terminal` result of `pwd && ls -la`, plus the three tool definitions
    step = trace.run(RUN2_CLAUDE).steps[2]
    messages = step.prompt.messages
    assert len(messages) == 6
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    last = messages[-1]
    assert last["tool_call_id"] == "toolu_01MgS75uyxLSueHHFj1DXiRZ"
    assert last["name"] == "terminal"
    assert last["content"][0]["text"].startswith(
        "/Users/xingyaow/Projects/OpenHands/openhands-v1-dev/agent-sdk.worktree/telemetry\ntotal 784")
    assert [t["function"]["name"] for t in step.prompt.tools] == ["terminal", "str_replace_editor", "finish"]


def test_anthropic_usage_is_normalised_and_cost_kept(trace):
    # GIVEN the first Claude call of run 2: prompt_tokens 4812, completion 146, cache fields 0
    step = trace.run(RUN2_CLAUDE).steps[0]
    assert (step.usage.input_tokens, step.usage.cache_read_tokens, step.usage.cache_write_tokens,
            step.usage.output_tokens) == (4812, 0, 0, 146)
    assert step.provider == "anthropic"
    assert step.model == "claude-sonnet-4-20250514"
    assert step.attributes["model_route"] == "litellm_proxy/anthropic/claude-sonnet-4-20250514"
    assert step.attributes["reported_cost_usd"] == pytest.approx(0.016626)


def test_deepseek_cache_hit_tokens_are_cache_reads(trace):
    # GIVEN DeepSeek's first call of run 2: prompt 7911, prompt_cache_hit_tokens 7872
    steps = trace.run(RUN2_DEEPSEEK).steps
    assert (steps[0].usage.input_tokens, steps[0].usage.cache_read_tokens,
            steps[0].usage.output_tokens) == (7911, 7872, 59)
    assert [s.usage.cache_read_tokens for s in steps] == [7872, 8000, 8896, 9024]
    assert steps[0].provider == "deepseek"


def test_times_are_log_time_minus_latency(trace):
    step = trace.run(RUN2_CLAUDE).steps[0]
    assert step.end_unix_s == pytest.approx(1757015025.9723232)
    assert step.start_unix_s == pytest.approx(1757015025.9723232 - 4.65870213508606)


def test_placeholder_tool_calls_are_rebuilt_from_the_next_call(trace):
    # GIVEN run 1, whose logged responses carry `tool_calls: [{}]`
    # THEN the first call's output is the assistant message the second call sent back
    step = trace.run(RUN1_CLAUDE).steps[0]
    assert step.output.message["tool_calls"][0]["id"] == "toolu_01SkqiFKkK4Lc96mGRGqYduY"
    assert step.output.message["tool_calls"][0]["function"]["name"] == "str_replace_editor"
    assert "output.message" in trace.header.attributes["reconstructed"]


def test_mocked_tool_calling_keeps_the_models_raw_text(trace):
    # GIVEN a DeepSeek call made with tools described in the prompt  THEN the output is the raw text
    step = trace.run(RUN2_DEEPSEEK).steps[1]
    assert "<function=str_replace_editor>" in step.output.message["content"]
    assert "tool_calls" not in step.output.message


def test_transcript_files_are_skipped_with_a_note(trace):
    skipped = {s["file"] for s in trace.header.attributes["skipped_files"]}
    assert skipped == {"fncall-llm-message.json", "nonfncall-llm-message.json"}


def test_every_run_analyses_and_reuses_its_history(trace):
    result = analyze(trace)
    assert result.totals.steps == 20
    for run in result.runs:
        # Each call after the first re-sends the previous call's whole prompt and answer.
        for before, step in zip(run.steps, run.steps[1:]):
            assert step.prefix_reused_tokens >= before.input_tokens
    deepseek = next(r for r in result.runs if r.run_id == RUN2_DEEPSEEK)
    assert deepseek.totals.reported_cached_tokens == 7872 + 8000 + 8896 + 9024


# ------------------------------------------------------------------------------- bad input

def _call(tmp_path: Path, name: str, body: object) -> Path:
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return path


def test_not_json_names_file_and_line(tmp_path):
    path = _call(tmp_path, "a.json", '{"messages": [],\n  "response": oops}')
    with pytest.raises(TraceFormatError) as e:
        import_openhands(path)
    assert e.value.path == str(path) and e.value.line == 2


def test_missing_response_names_the_field(tmp_path):
    path = _call(tmp_path, "a.json", {"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(TraceFormatError) as e:
        import_openhands(tmp_path / "run")
    assert e.value.field == "response" and e.value.path == str(path)
    assert "messages" in str(e.value)  # the hint says what a log file holds


def test_message_without_role_names_its_index(tmp_path):
    _call(tmp_path, "a.json", {"messages": [{"role": "user", "content": "hi"}, {"content": "x"}],
                               "response": {"choices": [{"message": {"content": "ok"}}]}})
    with pytest.raises(TraceFormatError) as e:
        import_openhands(tmp_path / "run")
    assert e.value.field == "messages[1]"


def test_newer_logs_with_usage_summary_only(tmp_path):
    # GIVEN a newer OpenHands log: no usage object in the response, a `usage_summary` beside it
    _call(tmp_path, "openai__gpt-4o-1757000000.000-ab12.json", {
        "messages": [{"role": "user", "content": "hi"}],
        "response": {"id": "r1", "model": "gpt-4o", "choices": [{"message": {"role": "assistant",
                                                                              "content": "hello"}}]},
        "usage_summary": {"prompt_tokens": 12, "completion_tokens": 3, "reasoning_tokens": 0,
                          "cache_read_tokens": 8},
        "timestamp": 1757000000.5, "latency_sec": 0.5, "cost": 0.001})
    trace = import_openhands(tmp_path / "run")
    step = trace.steps[0]
    assert (step.usage.input_tokens, step.usage.cache_read_tokens, step.usage.output_tokens) == (12, 8, 3)
    assert step.provider == "openai" and step.model == "gpt-4o"
    assert step.start_unix_s == pytest.approx(1757000000.0)


def test_failed_call_logs_are_skipped_with_a_note(tmp_path):
    # GIVEN a folder with one call and one `-error.json` log of a failed call
    _call(tmp_path, "openai__gpt-4o-1757000000.000-ab12.json", {
        "messages": [{"role": "user", "content": "hi"}],
        "response": {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}})
    _call(tmp_path, "openai__gpt-4o-1757000001.000-cd34-error.json", {
        "messages": [{"role": "user", "content": "hi"}], "error": {"type": "Timeout", "message": "x"}})
    trace = import_openhands(tmp_path / "run")
    assert len(trace.steps) == 1
    assert trace.header.attributes["skipped_files"][0]["file"].endswith("-error.json")


def test_openhands_v0_logs_without_latency(tmp_path):
    # GIVEN a log in OpenHands V0's shape: `response` is the model's raw text (tools mocked in the
    # prompt), `fncall_messages` / `fncall_response` hold the converted forms, no latency is logged
    _call(tmp_path, "anthropic__claude-3-5-sonnet-20241022-1735000000.000.json", {
        "messages": [{"role": "system", "content": "You are OpenHands."},
                     {"role": "user", "content": "hi"}],
        "response": {"model": "claude-3-5-sonnet-20241022", "choices": [{"message": {
            "role": "assistant", "content": "<function=finish>\n</function>"}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 5, "cache_read_input_tokens": 64,
                      "cache_creation_input_tokens": 30}},
        "fncall_messages": [{"role": "user", "content": "hi"}],
        "fncall_response": {"choices": [{"message": {"role": "assistant", "content": "", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "finish", "arguments": "{}"}}]}}]},
        "args": [], "kwargs": {"tools": [{"type": "function", "function": {"name": "finish"}}]},
        "timestamp": 1735000000.0, "cost": 0.0005})
    step = import_openhands(tmp_path / "run").steps[0]
    assert step.output.message["content"] == "<function=finish>\n</function>"
    assert (step.start_unix_s, step.end_unix_s) == (None, 1735000000.0)
    assert (step.provider, step.model) == ("anthropic", "claude-3-5-sonnet-20241022")
    assert (step.usage.input_tokens, step.usage.cache_read_tokens, step.usage.cache_write_tokens) == (
        100, 64, 30)
