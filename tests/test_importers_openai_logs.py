"""OpenAI-style request/response logs: record shapes, usage, times, Responses API, run grouping by key
and by prefix continuation (with a hypothesis property against the true conversation ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.errors import TraceFormatError
from profiler.importers.openai_logs import group_by_continuation, import_openai_logs, parse_record
from profiler.trace.model import Prompt, Step, Trace

SYSTEM = {"role": "system", "content": "You are a helpful travel agent."}


# ------------------------------------------------------------------------------------------ builders

def chat_record(messages: list[dict], answer: str, *, t: float | None = None, latency_s: float = 1.0,
                model: str = "gpt-4o", usage: dict | None = None, **extra: Any) -> dict:
    record: dict[str, Any] = {
        "request": {"model": model, "messages": messages},
        "response": {"id": f"chatcmpl-{abs(hash((json.dumps(messages), answer))) % 10**8}",
                     "object": "chat.completion", "model": model,
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": answer}}],
                     **({"usage": usage} if usage else {})},
        **extra}
    if t is not None:
        record["start_time"] = t
        record["latency_ms"] = latency_s * 1000
    return record


def write_log(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


class Conversation:
    """A chat that grows one user turn at a time; `call()` logs the next request and its answer."""

    def __init__(self, name: str, model: str = "gpt-4o") -> None:
        self.name = name
        self.model = model
        self.messages: list[dict] = [SYSTEM]
        self.turn = 0

    def call(self, t: float | None) -> dict:
        self.turn += 1
        self.messages = self.messages + [{"role": "user", "content": f"{self.name}: question {self.turn}"}]
        answer = f"{self.name}: answer {self.turn}"
        record = chat_record(list(self.messages), answer, t=t, model=self.model,
                             metadata={"conversation": self.name})
        self.messages = self.messages + [{"role": "assistant", "content": answer}]
        return record


def runs_of(trace) -> dict[str, list[str]]:
    """Run id -> the conversation names (from metadata) of its steps, in order."""
    return {r.run_id: [s.attributes["metadata"]["conversation"] for s in r.steps] for r in trace.runs}


# ------------------------------------------------------------------------------------------ grouping

def test_two_interleaved_conversations_separate(tmp_path):
    # GIVEN two conversations with the same system prompt, their calls interleaved in time
    a, b = Conversation("alice"), Conversation("bob")
    records = [a.call(0), b.call(1), a.call(3), b.call(4), b.call(6), a.call(7)]
    # WHEN imported without a run key
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", records))
    # THEN the heuristic puts each conversation in its own run, in order
    assert sorted(runs_of(trace).values()) == [["alice"] * 3, ["bob"] * 3]
    assert "prefix continuation" in trace.header.attributes["reconstructed"]["runs"]


def test_retry_with_identical_prompt_joins_its_run(tmp_path):
    # GIVEN a call, then the same prompt again after it ended (a retry), then the continuation
    a = Conversation("alice")
    first = a.call(0)
    retry = dict(first, start_time=5)
    retry["response"] = dict(first["response"], id="retry")
    follow = a.call(10)
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [first, retry, follow]))
    assert len(trace.runs) == 1 and len(trace.runs[0].steps) == 3


def test_identical_prompts_running_at_once_are_separate_runs(tmp_path):
    # GIVEN two calls with the same prompt that overlap in time (parallel samples, not a retry)
    one = chat_record([SYSTEM, {"role": "user", "content": "hi"}], "a", t=0, latency_s=5)
    two = chat_record([SYSTEM, {"role": "user", "content": "hi"}], "b", t=1, latency_s=5)
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [one, two]))
    assert len(trace.runs) == 2


def test_a_different_model_or_a_long_pause_starts_a_new_run(tmp_path):
    a = Conversation("alice")
    records = [a.call(0), a.call(10)]
    other_model = a.call(20)
    other_model["request"]["model"] = "gpt-4o-mini"
    late = a.call(20 + 4000)
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", records + [other_model, late]))
    assert [len(r.steps) for r in trace.runs] == [2, 1, 1]
    # without a window only the model change splits: the late call extends the first run's history
    no_window = import_openai_logs(tmp_path / "log.jsonl", window_s=None)
    assert [len(r.steps) for r in no_window.runs] == [3, 1]


def test_an_edited_answer_breaks_continuation(tmp_path):
    # GIVEN a follow-up whose history carries a different answer than the logged one
    first = chat_record([SYSTEM, {"role": "user", "content": "q1"}], "real answer", t=0)
    follow = chat_record([SYSTEM, {"role": "user", "content": "q1"},
                          {"role": "assistant", "content": "rewritten answer"},
                          {"role": "user", "content": "q2"}], "x", t=5)
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [first, follow]))
    assert len(trace.runs) == 2


def test_run_key_groups_by_value(tmp_path):
    a, b = Conversation("alice"), Conversation("bob")
    records = [a.call(0), b.call(1), a.call(2)]
    records[0]["metadata"]["session_id"] = "s1"
    records[1]["metadata"]["session_id"] = "s1"  # same session on purpose: the key wins
    records[2]["metadata"]["session_id"] = "s2"
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", records), run_key="metadata.session_id")
    assert runs_of(trace) == {"metadata.session_id=s1": ["alice", "bob"], "metadata.session_id=s2": ["alice"]}


def test_run_key_also_looks_inside_the_request_body(tmp_path):
    record = chat_record([{"role": "user", "content": "hi"}], "yo", t=0)
    record["request"]["metadata"] = {"session_id": "abc"}
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [record]), run_key="metadata.session_id")
    assert trace.runs[0].run_id == "metadata.session_id=abc"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=24))
def test_heuristic_recovers_random_interleavings(order):
    # GIVEN up to four conversations (same system prompt, same model) whose calls interleave in any
    # order, one second apart  WHEN grouped by prefix continuation
    convs = [Conversation(f"c{i}") for i in range(4)]
    records = [convs[i].call(float(t)) for t, i in enumerate(order)]
    calls = [parse_record(r, path=Path("log.jsonl"), line=n + 1, run_key=None) for n, r in enumerate(records)]
    assigned = group_by_continuation(calls)
    # THEN two calls share a run exactly when they belong to the same conversation
    truth = [r["metadata"]["conversation"] for r in records]
    for i in range(len(calls)):
        for j in range(len(calls)):
            assert (assigned[i] == assigned[j]) == (truth[i] == truth[j])


# ------------------------------------------------------------------------------------ record shapes

def test_chat_completions_usage_times_and_tools(tmp_path):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    record = chat_record([SYSTEM, {"role": "user", "content": "hi"}], "hello", t=1757000000.0,
                         latency_s=2.5, usage={"prompt_tokens": 2006, "completion_tokens": 30,
                                               "prompt_tokens_details": {"cached_tokens": 1920}})
    record["request"]["tools"] = tools
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [record]))
    step = trace.steps[0]
    usage = step.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (2006, 1920, 30)
    assert (step.start_unix_s, step.end_unix_s) == (1757000000.0, 1757000002.5)
    assert list(step.prompt.tools) == tools
    assert step.output.message == {"role": "assistant", "content": "hello"}
    assert (step.provider, step.model) == ("openai", "gpt-4o")


def test_litellm_standard_logging_payload(tmp_path):
    # GIVEN LiteLLM's logging payload: request fields at the top, Anthropic usage reshaped by LiteLLM
    record = {
        "id": "x1", "call_type": "completion", "model": "claude-sonnet-4-20250514",
        "custom_llm_provider": "anthropic",
        "messages": [{"role": "user", "content": "hi"}],
        "model_parameters": {"tools": [{"type": "function", "function": {"name": "f"}}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "hey"}}],
                     "usage": {"prompt_tokens": 5000, "completion_tokens": 20,
                               "cache_read_input_tokens": 4000, "cache_creation_input_tokens": 900}},
        "startTime": 1757000000.0, "completionStartTime": 1757000000.4, "endTime": 1757000001.0,
        "response_cost": 0.0123, "metadata": {"user_api_key_alias": "team-a"}}
    step = import_openai_logs(write_log(tmp_path / "log.jsonl", [record])).steps[0]
    assert (step.usage.input_tokens, step.usage.cache_read_tokens, step.usage.cache_write_tokens) == (
        5000, 4000, 900)
    assert step.provider == "anthropic"
    assert step.ttft_ms == pytest.approx(400.0)
    assert step.attributes["reported_cost_usd"] == 0.0123
    assert step.prompt.tools[0]["function"]["name"] == "f"


def test_top_level_token_counts_when_the_response_has_no_usage(tmp_path):
    record = chat_record([{"role": "user", "content": "hi"}], "yo", t=0)
    record.update(prompt_tokens=9, completion_tokens=2)
    step = import_openai_logs(write_log(tmp_path / "log.jsonl", [record])).steps[0]
    assert (step.usage.input_tokens, step.usage.output_tokens) == (9, 2)


def test_helicone_style_body_wrappers_and_iso_times(tmp_path):
    record = {"request": {"body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                          "created_at": "2025-09-04T12:00:00Z"},
              "response": {"body": {"choices": [{"message": {"role": "assistant", "content": "yo"}}]},
                           "delay_ms": 1500},
              "request_created_at": "2025-09-04T12:00:00Z", "delay_ms": 1500}
    step = import_openai_logs(write_log(tmp_path / "log.jsonl", [record])).steps[0]
    assert step.start_unix_s == 1756987200.0 and step.end_unix_s == 1756987201.5
    assert step.model == "gpt-4o-mini" and step.output.message["content"] == "yo"


def test_responses_api_input_items_and_previous_response_chain(tmp_path):
    first = {"request": {"model": "gpt-4.1", "instructions": "Be brief.", "input": "What is 2+2?",
                         "tools": [{"type": "function", "name": "calc", "parameters": {}}]},
             "response": {"id": "resp_1", "object": "response", "created_at": 1757000000,
                          "output": [{"type": "function_call", "call_id": "c1", "name": "calc",
                                      "arguments": "{\"x\": \"2+2\"}"}],
                          "usage": {"input_tokens": 300, "input_tokens_details": {"cached_tokens": 0},
                                    "output_tokens": 12}}}
    second = {"request": {"model": "gpt-4.1", "previous_response_id": "resp_1",
                          "input": [{"type": "function_call_output", "call_id": "c1", "output": "4"}]},
              "response": {"id": "resp_2", "object": "response", "created_at": 1757000003,
                           "output": [{"type": "message", "role": "assistant",
                                       "content": [{"type": "output_text", "text": "4"}]}],
                           "usage": {"input_tokens": 330, "input_tokens_details": {"cached_tokens": 256},
                                     "output_tokens": 2}}}
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [first, second]))
    assert len(trace.runs) == 1
    one, two = trace.steps
    assert list(one.prompt.messages) == [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "What is 2+2?"}]
    assert one.output.message["tool_calls"][0]["id"] == "c1"
    # the chained call's prompt is the earlier context, its answer, then the new input
    assert [m["role"] for m in two.prompt.messages] == ["system", "user", "assistant", "tool"]
    assert two.prompt.messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "4"}
    assert (two.usage.input_tokens, two.usage.cache_read_tokens) == (330, 256)
    assert two.output.message["content"] == "4"
    note = trace.header.attributes["reconstructed"]["prompt.messages (Responses API)"]
    assert "previous_response_id" in note


# ------------------------------------------------------------------------------------------ bad input

def test_bad_json_line_names_the_line(tmp_path):
    path = write_log(tmp_path / "log.jsonl", [chat_record([{"role": "user", "content": "a"}], "b"),
                                              "{not json"])
    with pytest.raises(TraceFormatError) as e:
        import_openai_logs(path)
    assert (e.value.path, e.value.line) == (str(path), 2)


def test_missing_request_names_the_field(tmp_path):
    path = write_log(tmp_path / "log.jsonl", [{"response": {"choices": []}}])
    with pytest.raises(TraceFormatError) as e:
        import_openai_logs(path)
    assert (e.value.line, e.value.field) == (1, "request")
    assert "docs/importing.md" in str(e.value)


def test_message_without_role_names_its_index(tmp_path):
    path = write_log(tmp_path / "log.jsonl", [{"request": {"messages": [{"content": "x"}]}, "response": {}}])
    with pytest.raises(TraceFormatError) as e:
        import_openai_logs(path)
    assert e.value.field == "request.messages[0]"


def test_bad_time_names_the_field(tmp_path):
    record = chat_record([{"role": "user", "content": "a"}], "b")
    record["start_time"] = "yesterday"
    with pytest.raises(TraceFormatError) as e:
        import_openai_logs(write_log(tmp_path / "log.jsonl", [record]))
    assert e.value.field == "start_time" and "ISO 8601" in str(e.value)


# ------------------------------------------------------------------ indexed grouping vs brute force

def brute_force_grouping(calls, window_s):
    """The heuristic stated plainly: scan every run for every call (the oracle for the indexed one)."""
    from profiler.importers.common import message_key

    runs: list[dict] = []
    out = []
    for order, call in enumerate(calls):
        keys = [message_key(m) for m in call.messages]
        best = None
        for run in runs:
            last = run["end"] if run["end"] is not None else run["start"]
            if run["model"] != call.model or (window_s is not None and last is not None
                                               and call.start_unix_s - last > window_s):
                continue
            n = len(run["prompt"])
            if keys[:n] != run["prompt"]:
                continue
            if len(keys) == n:
                if run["end"] is not None and call.start_unix_s < run["end"]:
                    continue
                score = (2 * n, run["order"])
            elif run["output"] is not None and keys[n] != run["output"]:
                continue
            else:
                score = (2 * n + 1, run["order"])
            if best is None or score > best[0]:
                best = (score, run)
        run = best[1] if best else {"id": f"run-{len(runs) + 1}"}
        if best is None:
            runs.append(run)
        run.update(model=call.model, prompt=keys, order=order, start=call.start_unix_s,
                   end=call.end_unix_s if call.end_unix_s is not None else call.start_unix_s,
                   output=None if call.output is None else message_key(call.output))
        out.append(run["id"])
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["turn", "turn", "retry", "fail"]),
                          st.sampled_from([1.0, 2.0, 5000.0]), st.booleans()),
                min_size=1, max_size=30))
def test_indexed_grouping_equals_brute_force(ops):
    # GIVEN random logs: four conversations over two models, new turns, retries, failed calls
    # (no answer logged) and pauses longer than the window
    convs = [Conversation(f"c{i}", model="gpt-4o" if i % 2 else "gpt-4o-mini") for i in range(4)]
    last: dict[int, dict] = {}
    t = 0.0
    records = []
    for conv, op, gap, same_start in ops:
        t += 0.0 if same_start else gap
        if op == "retry" and conv in last:
            record = json.loads(json.dumps(last[conv]))
            record["start_time"] = t
        else:
            record = convs[conv].call(t)
            if op == "fail":
                del record["response"]
        last[conv] = record
        records.append(record)
    calls = [parse_record(r, path=Path("log.jsonl"), line=i + 1, run_key=None) for i, r in enumerate(records)]
    # THEN the indexed grouping assigns exactly what the plain scan assigns
    assert group_by_continuation(calls, window_s=1800) == brute_force_grouping(calls, 1800)


def test_a_responses_chain_stays_in_its_run_across_a_model_change(tmp_path):
    # GIVEN a Responses call, an unrelated chat call, then a follow-up on the first with another model
    first = {"request": {"model": "gpt-4.1", "input": "hi"},
             "response": {"id": "resp_1", "created_at": 1, "output": [
                 {"type": "message", "content": [{"type": "output_text", "text": "hello"}]}]}}
    other = chat_record([{"role": "user", "content": "unrelated"}], "ok", t=2)
    follow = {"request": {"model": "gpt-4.1-mini", "previous_response_id": "resp_1", "input": "more"},
              "response": {"id": "resp_2", "created_at": 3, "output": []}}
    trace = import_openai_logs(write_log(tmp_path / "log.jsonl", [first, other, follow]))
    # THEN the follow-up joins the first call's run, and runs are numbered without gaps
    assert {r.run_id: [s.attributes["source_line"] for s in r.steps] for r in trace.runs} == {
        "run-1": [1, 3], "run-2": [2]}


# ------------------------------------------------------------- recorded Anthropic and structured bodies
# Both logs hold real calls recorded by crewAI's test suite (tests/data/vcr/LICENSE), as request and
# response bodies with the response's time.

RECORDED = Path(__file__).resolve().parent / "data" / "openai_log"


def test_an_anthropic_messages_body_keeps_system_blocks_answer_and_usage() -> None:
    # GIVEN two recorded Anthropic Messages calls (top-level system, a cache_control mark, tools)
    # WHEN the log is imported
    trace = import_openai_logs(RECORDED / "anthropic_messages.jsonl")
    first = trace.steps[0]
    # THEN the system prompt is the first message, the content blocks keep their cache mark,
    assert first.provider == "anthropic" and first.attributes["api"] == "anthropic-messages"
    assert first.prompt.messages[0]["role"] == "system"
    assert first.prompt.messages[0]["content"].startswith("You are a helpful assistant that uses tools.")
    assert first.prompt.messages[1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert first.prompt.tools[0]["name"] == "get_weather"
    # the content[] answer is the output (a tool_use block), and usage is Anthropic's, made inclusive
    assert first.output.message["content"][0]["type"] == "tool_use"
    assert first.output.finish_reason == "tool_use"
    assert (first.usage.input_tokens, first.usage.cache_read_tokens, first.usage.output_tokens) == (
        24 + 1857, 1857, 33)


def test_the_anthropic_simulator_and_the_tokenizer_see_what_the_body_sent() -> None:
    from profiler.cache_sim.providers import anthropic_breakpoints
    from profiler.tokens import StepTokenizer

    # GIVEN the recorded Anthropic call, and the same body with its system prompt as marked blocks
    record = json.loads((RECORDED / "anthropic_messages.jsonl").read_text().splitlines()[0])
    blocks = dict(record, request={**record["request"], "system": [
        {"type": "text", "text": record["request"]["system"], "cache_control": {"type": "ephemeral"}}]})
    tok = StepTokenizer()
    for rec, mark in ((record, "messages[1].content[0]"), (blocks, "messages[0].content[0]")):
        call = parse_record(rec, path=Path("log.jsonl"), line=1, run_key=None)
        step = import_openai_logs_step(call)
        # WHEN its prompt is tokenized and its breakpoints are read
        marks, _ = anthropic_breakpoints(step, tok)
        # THEN the padded system prompt is in the prompt (1,881 Claude tokens were billed; about 1,200
        # in the o200k stand-in, against ~150 for the tools and user turn alone) and the mark is a
        # breakpoint
        assert tok.prompt_tokens(step).size > 1000
        assert mark in [m.where for m in marks]


def import_openai_logs_step(call):
    from profiler.importers.openai_logs import calls_to_steps

    return calls_to_steps([call], ["run-1"])[0]


def test_a_chat_completions_body_is_not_taken_for_anthropic_by_its_provider_alone() -> None:
    # GIVEN a LiteLLM-style record routed to Anthropic but logged in Chat Completions form
    record = chat_record([SYSTEM, {"role": "user", "content": "Hi"}], "Hello",
                         custom_llm_provider="anthropic")
    # WHEN parsed THEN the chat answer is read from choices[0]
    call = parse_record(record, path=Path("log.jsonl"), line=1, run_key=None)
    assert call.api == "chat" and call.output["content"] == "Hello"


def test_structured_output_schemas_are_kept_and_counted_in_the_prompt() -> None:
    from profiler.analysis import analyze

    # GIVEN recorded crewAI calls, some with an OpenAI json_schema response_format
    trace = import_openai_logs(RECORDED / "structured_output.jsonl")
    with_schema = [s for s in trace.steps if s.prompt.response_format is not None]
    assert with_schema and with_schema[0].prompt.response_format["type"] == "json_schema"
    # WHEN analysed with and without the schema
    step = with_schema[0]
    bare = Step(run_id=step.run_id, step_id="bare", model=step.model,
                prompt=Prompt(messages=step.prompt.messages, tools=step.prompt.tools))
    counted = analyze(Trace.from_steps([step])).steps[0].input_tokens
    without = analyze(Trace.from_steps([bare])).steps[0].input_tokens
    # THEN the schema's tokens are part of the prompt
    assert counted - without > 50


def test_two_calls_differing_only_in_their_schema_are_not_a_full_prefix_hit() -> None:
    from profiler.analysis import analyze

    # GIVEN a recorded call with a schema, and the same call again with one more schema property
    record = next(json.loads(l) for l in (RECORDED / "structured_output.jsonl").read_text().splitlines()
                  if "response_format" in l)
    changed = json.loads(json.dumps(record))
    schema = changed["request"]["response_format"]["json_schema"]["schema"]
    schema["properties"]["confidence"] = {"type": "number"}
    records = [dict(record, start_time=1.0, end_time=2.0, metadata={"r": "a"}),
               dict(changed, start_time=3.0, end_time=4.0, metadata={"r": "a"})]
    from profiler.importers.openai_logs import calls_to_steps

    calls = [parse_record(r, path=Path("l"), line=i + 1, run_key="metadata.r")
             for i, r in enumerate(records)]
    trace = Trace.from_steps(calls_to_steps(calls, ["run-1", "run-1"]))
    # WHEN analysed in one run
    second = analyze(trace).steps[1]
    # THEN the prefix stops at the schema, before the messages that follow it
    assert second.prefix_reused_tokens < second.input_tokens - 20


def test_rewritten_answers_still_continue_their_run() -> None:
    # GIVEN a recorded crewAI run that resends only the first of five parallel tool calls it was given
    # (tests/data/vcr/test_max_usage_count_is_respected.yaml), as log records
    from profiler.importers.vcr import read_cassette

    calls, _, _ = read_cassette(Path(__file__).resolve().parent / "data" / "vcr" /
                                "test_max_usage_count_is_respected.yaml")
    # WHEN grouped without a run key THEN every call joins one run (before: a second run from call 2)
    assert group_by_continuation(calls) == ["run-1"] * len(calls)


def test_an_exact_answer_wins_over_a_rewritten_one() -> None:
    # GIVEN two runs with the same prompt; one answer is resent exactly, the other with "Observation:"
    base = [SYSTEM, {"role": "user", "content": "Go"}]
    a = chat_record(base, "Thought: use the tool", t=1.0)
    b = chat_record(base, "Thought: ask the user", t=1.5)
    a2 = chat_record(base + [{"role": "assistant", "content": "Thought: use the tool\nObservation: 42"}],
                     "done", t=5.0)
    b2 = chat_record(base + [{"role": "assistant", "content": "Thought: ask the user"}], "done", t=6.0)
    calls = [parse_record(r, path=Path("l"), line=i + 1, run_key=None) for i, r in enumerate([a, b, a2, b2])]
    # WHEN grouped THEN each continuation joins the run whose answer it carries
    assert group_by_continuation(calls) == ["run-1", "run-2", "run-1", "run-2"]


def test_a_request_level_cache_control_marks_the_last_message() -> None:
    from profiler.cache_sim.providers import anthropic_breakpoints
    from profiler.tokens import StepTokenizer

    # GIVEN the recorded Anthropic call with Anthropic's automatic caching (a top-level mark)
    record = json.loads((RECORDED / "anthropic_messages.jsonl").read_text().splitlines()[0])
    body = dict(record["request"], cache_control={"type": "ephemeral", "ttl": "1h"})
    body["messages"] = [{"role": "user", "content": "What is the weather in Tokyo?"}]
    step = import_openai_logs_step(parse_record(dict(record, request=body), path=Path("l"), line=1,
                                                run_key=None))
    # WHEN its breakpoints are read THEN the last message carries the mark, with its TTL
    marks, _ = anthropic_breakpoints(step, StepTokenizer())
    assert [(m.where, m.ttl_s) for m in marks] == [("messages[1]", 3600.0)]
