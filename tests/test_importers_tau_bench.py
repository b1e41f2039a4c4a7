"""tau-bench historical trajectories (../shared/data/tau-bench): agent prompts are traj[:k] plus the
tool definitions; the simulated user's calls are rebuilt on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from importer_helpers import shared

from profiler.analysis import analyze
from profiler.errors import TraceFormatError
from profiler.importers.tau_bench import USER_GREETING, import_tau_bench, user_system_prompt
from profiler.trace.model import Trace


@pytest.fixture(scope="module")
def source() -> Path:
    return shared("tau-bench", "gpt-4o-airline.json")


@pytest.fixture(scope="module")
def records(source) -> list[dict]:
    return json.loads(source.read_text())


@pytest.fixture(scope="module")
def trace(source):
    return import_tau_bench(source, include_user=True)


def test_kth_agent_prompt_is_traj_up_to_k(trace, records):
    # GIVEN record 0 (task 0, trial 0: 32 messages)
    traj = records[0]["traj"]
    run = trace.run("task-0-trial-0")
    assistant_positions = [k for k, m in enumerate(traj) if m["role"] == "assistant"]
    assert [s.attributes["traj_index"] for s in run.steps] == assistant_positions
    # THEN the prompt of each assistant message k is exactly traj[:k]
    for step, k in zip(run.steps, assistant_positions):
        assert list(step.prompt.messages) == traj[:k]
    first = run.steps[0]
    assert [m["role"] for m in first.prompt.messages] == ["system", "user"]
    assert first.prompt.messages[1]["content"] == (
        "Hi! I'm looking to book a flight from New York to Seattle on May 20th.")
    assert first.output.message["content"].startswith(
        "To assist you with booking a flight, I'll need your user ID.")


def test_tools_come_from_the_tools_file_beside_it(trace, source):
    tools = json.loads((source.parent / "airline_tools_info.json").read_text())
    step = trace.run("task-0-trial-0").steps[0]
    assert list(step.prompt.tools) == tools
    assert len(tools) == 14
    assert (step.model, step.provider) == ("gpt-4o", "openai")  # from the file name


def test_tool_call_output_keeps_its_id(trace, records):
    traj = records[0]["traj"]
    k = next(k for k, m in enumerate(traj) if m["role"] == "assistant" and m.get("tool_calls"))
    step = next(s for s in trace.run("task-0-trial-0").steps if s.attributes["traj_index"] == k)
    assert step.output.message["tool_calls"][0]["id"] == "call_oIHazX6yQrB8hUwl4cRilFKj"
    assert step.output.message["tool_calls"][0]["function"]["name"] == "get_user_details"


def test_simulated_user_is_a_second_run_with_its_own_prompt(trace, records):
    record = records[0]
    traj = record["traj"]
    run = trace.run("task-0-trial-0/user")
    assert run.parent_run_id == "task-0-trial-0"
    users = [m for m in traj if m["role"] == "user"]
    assert len(run.steps) == len(users)
    first, second = run.steps[0], run.steps[1]
    # The simulator starts from its system prompt (with the task's instruction) and the greeting ...
    assert list(first.prompt.messages) == [
        {"role": "system", "content": user_system_prompt(record["info"]["task"]["instruction"])},
        {"role": "user", "content": USER_GREETING}]
    assert first.output.message["content"] == users[0]["content"]
    # ... then reads the agent's text replies as user messages and its own as assistant messages.
    assert second.prompt.messages[-2] == {"role": "assistant", "content": users[0]["content"]}
    assert second.prompt.messages[-1] == {"role": "user", "content": traj[2]["content"]}
    assert "You are mia_li_3668." in first.prompt.messages[0]["content"]


def test_no_usage_or_times_and_the_header_says_so(trace):
    rec = trace.header.attributes["reconstructed"]
    assert "no token usage" in rec["usage"] and "no call times" in rec["timestamps"]
    assert all(s.usage.input_tokens is None and s.start_unix_s is None for s in trace.steps[:50])


def test_first_records_analyse(trace):
    assert len(trace.runs) == 400  # 200 records, each with its user-simulator run
    some = Trace(header=trace.header, runs=trace.runs[:20])
    result = analyze(some)
    assert result.totals.steps == len(some.steps)
    agent = [r for r in result.runs if not r.run_id.endswith("/user")]
    for run in agent:
        # every agent turn resends the policy, the tools and the history before it
        assert all(s.prefix_reused_tokens > 0 for s in run.steps[1:])


@pytest.mark.slow
def test_whole_file_analyses(trace):
    result = analyze(trace)
    assert result.totals.steps == len(trace.steps) == 3944
    assert result.totals.redundancy_ratio > 0.5


def test_explicit_tools_file_and_missing_tools(tmp_path, records):
    # GIVEN a copy of one record in a folder without a tools file
    path = tmp_path / "gpt-4o-airline.json"
    path.write_text(json.dumps(records[:1]))
    bare = import_tau_bench(path)
    assert bare.steps[0].prompt.tools is None
    assert "no tool definitions" in bare.header.attributes["reconstructed"]["prompt.tools"]
    tools = tmp_path / "mytools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {"name": "f", "parameters": {}}}]))
    given = import_tau_bench(path, tools=tools, model="gpt-4o-2024-08-06")
    assert given.steps[0].prompt.tools[0]["function"]["name"] == "f"
    assert given.steps[0].model == "gpt-4o-2024-08-06"


def test_record_without_traj_names_the_field(tmp_path):
    path = tmp_path / "x-airline.json"
    path.write_text(json.dumps([{"task_id": 1, "traj": []}, {"task_id": 2}]))
    with pytest.raises(TraceFormatError) as e:
        import_tau_bench(path)
    assert e.value.field == "[1].traj" and e.value.path == str(path)


def test_not_a_list(tmp_path):
    path = tmp_path / "x-airline.json"
    path.write_text(json.dumps({"traj": []}))
    with pytest.raises(TraceFormatError, match="list of records"):
        import_tau_bench(path)


def test_not_json_names_the_line(tmp_path):
    path = tmp_path / "x-airline.json"
    path.write_text('[\n{"traj": [}\n]')
    with pytest.raises(TraceFormatError) as e:
        import_tau_bench(path)
    assert e.value.line == 2


def test_user_prompt_is_tau_benchs_template_verbatim():
    # The text of tau-bench's LLMUserSimulationEnv.build_system_prompt, copied by hand.
    expected = (
        "You are a user interacting with an agent.\n\nInstruction: Be Mia.\n\nRules:\n"
        "- Just generate one line at a time to simulate the user's message.\n"
        "- Do not give away all the instruction at once. Only provide the information that is necessary "
        "for the current step.\n"
        "- Do not hallucinate information that is not provided in the instruction. For example, if the "
        "agent asks for the order id but it is not mentioned in the instruction, do not make up an order "
        "id, just say you do not remember or have it.\n"
        "- If the instruction goal is satisified, generate '###STOP###' as a standalone message without "
        "anything else to end the conversation.\n"
        "- Do not repeat the exact instruction in the conversation. Instead, use your own words to convey "
        "the same information.\n"
        "- Try to make the conversation as natural as possible, and stick to the personalities in the "
        "instruction.")
    assert user_system_prompt("Be Mia.") == expected
    assert user_system_prompt(None).startswith("You are a user interacting with an agent.\nRules:\n")
