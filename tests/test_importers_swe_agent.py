"""SWE-agent `.traj` files (real runs in ../shared/data/swe-agent) and mini-swe-agent trajectories (a
hand-built fixture, tests/data/mini_swe_agent/, in the shape mini-swe-agent 1.x writes: `messages` with
`extra.response` / `extra.cost` / `extra.timestamp`, `info.model_stats`, `trajectory_format`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from importer_helpers import TEST_DATA, shared

from profiler.analysis import analyze
from profiler.errors import TraceFormatError
from profiler.importers.swe_agent import _elide_old_observations, import_mini_swe_agent, import_swe_agent

PYDICOM = "pydicom__pydicom-1458"
TEST_REPO = "swe-agent__test-repo-i1"
FUNCTION_CALLING = "6e44b9__sweagenttestrepo-1c2844"
MINI = TEST_DATA / "mini_swe_agent" / "hello__hello-1.traj.json"


@pytest.fixture(scope="module")
def trace():
    return import_swe_agent(shared("swe-agent"))


def _history(name: str) -> list[dict]:
    path = next(shared("swe-agent").rglob(f"{name}.traj"))
    return json.loads(path.read_text())["history"]


def test_one_step_per_assistant_entry(trace):
    assert {r.run_id: len(r.steps) for r in trace.runs} == {PYDICOM: 12, TEST_REPO: 5, FUNCTION_CALLING: 4}


def test_third_call_prompt_is_the_history_before_it(trace):
    # GIVEN the pydicom run, whose 3rd assistant entry is history[7]
    step = trace.run(PYDICOM).steps[2]
    messages = step.prompt.messages
    # THEN its prompt is history[:7]: system, the demonstration, the issue, then two action/observation pairs
    assert len(messages) == 7
    assert [m["role"] for m in messages] == ["system", "user", "user", "assistant", "user", "assistant",
                                             "user"]
    assert messages[1]["content"].startswith("Here is a demonstration of how to correctly accomplish")
    assert messages[-1]["content"].startswith("[File: /pydicom__pydicom/reproduce_bug.py (18 lines total)]")
    assert step.output.message["content"].startswith(
        "The `reproduce_bug.py` script has been updated with the code provided in the issue.")
    assert step.attributes["action"] == "python reproduce_bug.py\n"
    # and every prompt is exactly the role/content of the entries before its assistant entry
    history = _history(PYDICOM)
    for s in trace.run(PYDICOM).steps:
        k = s.attributes["history_index"]
        assert list(s.prompt.messages) == [{"role": e["role"], "content": e["content"]} for e in history[:k]]


def test_function_calling_trajectory_keeps_tool_call_ids(trace):
    step = trace.run(FUNCTION_CALLING).steps[1]
    assistant, tool = step.prompt.messages[2], step.prompt.messages[3]
    assert assistant["tool_calls"][0]["id"] == "call_fJuazlMUN5fQDQ73G6XSpYpx"
    assert tool == {"role": "tool", "content": tool["content"],
                    "tool_call_id": "call_fJuazlMUN5fQDQ73G6XSpYpx"}
    assert step.output.message["tool_calls"][0]["id"] == "call_OhmPHGZp0XJ6JRnNkQaYcBMs"
    assert step.model == "gpt-4o"  # from the trajectory's replay_config


def test_model_stats_are_run_attributes_and_match_the_analysis(trace):
    # GIVEN SWE-agent's own totals (it counted tokens_sent with the model's tokenizer)
    result = analyze(trace)
    for run_id in (PYDICOM, TEST_REPO):
        stats = trace.run(run_id).attributes["reported_model_stats"]
        totals = next(r for r in result.runs if r.run_id == run_id).totals
        # THEN the reconstructed prompts add up to what SWE-agent reported, within 1%
        assert stats["api_calls"] == totals.steps
        assert abs(totals.input_tokens - stats["tokens_sent"]) / stats["tokens_sent"] < 0.01
    assert trace.run(PYDICOM).attributes["reported_model_stats"]["tokens_sent"] == 122612
    assert trace.run(PYDICOM).steps[0].model == "gpt-4-1106-preview"  # args.yaml says 'gpt4'


def test_header_says_what_was_reconstructed(trace):
    rec = trace.header.attributes["reconstructed"]
    assert "no call times" in rec["timestamps"]
    assert "reported_model_stats" in rec["usage"]


def test_last_n_observations_elides_all_but_first_and_last_n():
    # GIVEN a history with 8 observations (message_type "observation"), the first being the task
    history = [{"role": "system", "content": "s", "message_type": "system_prompt"}]
    for i in range(8):
        history.append({"role": "user", "content": f"obs {i}\nline 2", "message_type": "observation"})
        history.append({"role": "assistant", "content": f"act {i}", "message_type": "action"})
    out = _elide_old_observations(history, n=5, polling=1)
    texts = [e["content"] for e in out if e["message_type"] == "observation"]
    # THEN observations 1..2 are elided (8 - 5 = 3 dropped, but the first is never dropped)
    assert texts[0] == "obs 0\nline 2"
    assert texts[1:3] == ["Old environment output: (2 lines omitted)"] * 2
    assert texts[3:] == [f"obs {i}\nline 2" for i in range(3, 8)]
    assert [e["content"] for e in out if e["message_type"] == "action"] == [f"act {i}" for i in range(8)]


# ---------------------------------------------------------------------------------- mini-swe-agent

def test_mini_swe_agent_prompts_usage_and_times():
    trace = import_mini_swe_agent(MINI)
    run = trace.runs[0]
    assert run.run_id == "hello__hello-1" and len(run.steps) == 3
    data = json.loads(MINI.read_text())
    for step, k in zip(run.steps, (2, 4, 6)):
        # the prompt is every message before the assistant message, without `extra`
        assert list(step.prompt.messages) == [{kk: v for kk, v in m.items() if kk != "extra"}
                                              for m in data["messages"][:k]]
        assert step.output.message["content"] == data["messages"][k]["content"]
    second = run.steps[1]
    assert (second.usage.input_tokens, second.usage.cache_read_tokens, second.usage.output_tokens) == (
        1301, 1152, 22)
    assert second.start_unix_s == 1757000001.75  # the observation before it was added then
    assert second.end_unix_s == 1757000003.25
    assert run.steps[0].start_unix_s == 1757000000  # no earlier message time: the response's `created`
    assert second.attributes["reported_cost_usd"] == pytest.approx(0.00212)
    assert (second.provider, second.model) == ("openai", "gpt-4o-2024-08-06")
    assert run.attributes["reported_model_stats"] == {"instance_cost": 0.00696, "api_calls": 3}


def test_swe_agent_format_detects_mini_trajectories():
    trace = import_swe_agent(MINI)
    assert trace.runs[0].workflow == "mini-swe-agent"


def test_mini_importer_refuses_a_swe_agent_file():
    path = next(shared("swe-agent").rglob("*.traj"))
    with pytest.raises(TraceFormatError) as e:
        import_mini_swe_agent(path)
    assert "swe-agent" in str(e.value)


# ------------------------------------------------------------------------------------- bad input

def test_not_json(tmp_path: Path):
    path = tmp_path / "x.traj"
    path.write_text("{\n\n  nope\n}")
    with pytest.raises(TraceFormatError) as e:
        import_swe_agent(path)
    assert (e.value.path, e.value.line) == (str(path), 3)


def test_history_entry_without_role(tmp_path: Path):
    path = tmp_path / "x.traj"
    path.write_text(json.dumps({"history": [{"role": "system", "content": "s"}, {"content": "x"}]}))
    with pytest.raises(TraceFormatError) as e:
        import_swe_agent(path)
    assert e.value.field == "history[1]" and e.value.path == str(path)


def test_unknown_shape_says_what_was_expected(tmp_path: Path):
    path = tmp_path / "x.traj"
    path.write_text(json.dumps({"steps": []}))
    with pytest.raises(TraceFormatError) as e:
        import_swe_agent(path)
    assert "'history'" in str(e.value) and "'messages'" in str(e.value)
