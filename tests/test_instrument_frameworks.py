"""Framework-aware names and nesting with the real `openai-agents` and `langchain-openai` packages
driving the real openai SDK against the local API server; each step is compared with what the server
received and sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

import profiler
from profiler.instrument import frameworks
from profiler.testing.fake_api import FakeLLMServer
from profiler.usage import normalize_usage
from recording_helpers import records

agents = pytest.importorskip("agents")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(chunk_delay_s=0.0, first_token_delay_s=0.001) as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def agents_tracing() -> Iterator[None]:
    # Only our processor: the default one would export to the OpenAI backend.
    agents.set_trace_processors([frameworks.agents_processor()])
    yield


def _chat_model(server: FakeLLMServer) -> Any:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    return agents.OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)


def _assert_matches_server(steps: list[dict[str, Any]], served: list[Any]) -> None:
    llm = [s for s in steps if s["kind"] == "llm"]
    assert len(llm) == len(served)
    for step, sent in zip(sorted(llm, key=lambda s: s["start_unix_s"]), served):
        assert step["usage"] == normalize_usage(sent.usage, "openai").to_dict() or (
            step["attributes"].get("usage_absent"))
        assert step["prompt"]["messages"]


def test_a_multi_agent_handoff_names_each_step_after_its_agent(server: FakeLLMServer,
                                                               tmp_path: Path) -> None:
    # GIVEN a triage agent that hands off to a billing agent (the server calls the handoff tool)
    billing = agents.Agent(name="Billing agent", instructions="Answer billing questions.",
                           model=_chat_model(server))
    triage = agents.Agent(name="Triage agent", instructions="Route the user.", handoffs=[billing],
                          model=_chat_model(server))
    trace = tmp_path / "t.jsonl"
    before = len(server.log)
    # WHEN it runs under a recorder (no change to the agent code)
    with profiler.record(trace, gpu=False):
        result = agents.Runner.run_sync(triage, "My invoice is wrong.",
                                        run_config=agents.RunConfig(workflow_name="support desk"))
    assert result.final_output
    steps = records(trace, "step")
    runs = records(trace, "run")
    # THEN each model call is named after its agent, the handoff is a step, the run is the workflow
    llm = [s for s in steps if s["kind"] == "llm"]
    assert [s["name"] for s in llm] == ["Triage agent", "Billing agent"]
    assert all(s["attributes"]["framework"] == "openai-agents" for s in llm)
    handoffs = [s for s in steps if s["name"].startswith("handoff")]
    assert [h["name"] for h in handoffs] == ["handoff Triage agent -> Billing agent"]
    workflow_run = next(r for r in runs if r.get("workflow") == "support desk")
    assert all(s["run_id"] == workflow_run["run_id"] for s in steps)
    _assert_matches_server(steps, server.log[before:])
    assert llm[-1]["output"]["message"]["content"] == server.log[-1].reply


def test_agent_tool_calls_are_tool_steps_and_streamed_runs_record_output(server: FakeLLMServer,
                                                                         tmp_path: Path) -> None:
    @agents.function_tool
    def lookup_order(query: str) -> str:
        """Look an order up."""
        return f"order for {query}: shipped"

    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    agent = agents.Agent(name="Orders agent", instructions="Help with orders.", tools=[lookup_order],
                         model=agents.OpenAIChatCompletionsModel(model="gpt-4o-mini",
                                                                  openai_client=client))
    responder = agents.Agent(name="Writer", instructions="Write.",
                             model=agents.OpenAIResponsesModel(model="gpt-4o-mini",
                                                               openai_client=client))
    trace = tmp_path / "t.jsonl"
    before = len(server.log)

    async def main() -> None:
        await agents.Runner.run(agent, "Where is order 42?")
        streamed = agents.Runner.run_streamed(responder, "Write a haiku.")
        async for _ in streamed.stream_events():
            pass

    with profiler.record(trace, gpu=False):
        asyncio.run(main())
    steps = records(trace, "step")
    tools = [s for s in steps if s["kind"] == "tool"]
    assert [t["name"] for t in tools] == ["lookup_order"]
    assert "shipped" in tools[0]["output"]["text"]
    llm = [s for s in steps if s["kind"] == "llm"]
    assert [s["name"] for s in llm] == ["Orders agent", "Orders agent", "Writer"]
    # the streamed Responses call (with_streaming_response) has its output, usage and TTFT
    writer = llm[-1]
    assert writer["output"]["message"]["content"] == server.log[-1].reply
    assert writer["usage"] == normalize_usage(server.log[-1].usage, "openai").to_dict()
    assert writer["ttft_ms"] is not None
    _assert_matches_server(steps, server.log[before:])


def test_langchain_chains_and_tools_name_the_steps(server: FakeLLMServer, tmp_path: Path) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def search_docs(query: str) -> str:
        """Search the docs."""
        return f"docs about {query}"

    llm = ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-test",
                     streaming=True, max_retries=0)
    summarize = (ChatPromptTemplate.from_messages([("user", "Summarise: {text}")]) | llm).with_config(
        run_name="summarizer")
    research = RunnableLambda(lambda q: search_docs.invoke(q)).with_config(run_name="researcher")
    pipeline = (research | (lambda docs: {"text": docs}) | summarize).with_config(
        run_name="report pipeline")
    trace = tmp_path / "t.jsonl"
    before = len(server.log)
    with profiler.record(trace, gpu=False):
        out = pipeline.invoke("cache reuse")
    assert out.content == server.log[-1].reply
    steps = records(trace, "step")
    tool_steps = [s for s in steps if s["kind"] == "tool"]
    assert [t["name"] for t in tool_steps] == ["search_docs"]
    assert tool_steps[0]["attributes"]["framework_path"] == "report pipeline/researcher"
    llm_steps = [s for s in steps if s["kind"] == "llm"]
    assert [s["name"] for s in llm_steps] == ["summarizer"]
    assert llm_steps[0]["attributes"]["framework_path"] == "report pipeline/summarizer"
    # the LangChain run ids they ran under: the tool under the researcher, the call under the
    # summarizer's sequence (different runs of one pipeline invocation)
    assert tool_steps[0]["attributes"]["framework_parent_id"] != (
        llm_steps[0]["attributes"]["framework_parent_id"])
    assert llm_steps[0]["output"]["message"]["content"] == server.log[-1].reply
    # LangChain streams without asking for usage against a custom base_url: marked, not a silent null
    served = server.log[before:]
    assert len(served) == 1
    if served[0].usage:
        assert llm_steps[0]["usage"] == normalize_usage(served[0].usage, "openai").to_dict()
    else:
        assert "usage_absent" in llm_steps[0]["attributes"]


@pytest.mark.parametrize("content", ["text", "hashes"])
def test_framework_steps_keep_no_text_at_the_hashes_level(server: FakeLLMServer, tmp_path: Path,
                                                          content: str) -> None:
    # GIVEN an agent whose tool returns private text and a user message with private text
    @agents.function_tool
    def lookup_patient(query: str) -> str:
        """Look a patient up."""
        return "PLANTEDRECORD diagnosis on file"

    agent = agents.Agent(name="Clinic agent", instructions="Help.", tools=[lookup_patient],
                         model=_chat_model(server))
    trace = tmp_path / f"{content}.jsonl"
    with profiler.record(trace, gpu=False, content=content):
        agents.Runner.run_sync(agent, "PLANTEDUSER Jane Roe asks about her results")
    text = trace.read_text()
    # THEN the text level has it (the grep can fail) and the hashes level has none of it
    found = [p for p in ("PLANTEDRECORD", "PLANTEDUSER", "Jane Roe") if p in text]
    assert found == ([] if content == "hashes" else ["PLANTEDRECORD", "PLANTEDUSER", "Jane Roe"])
    names = [s["name"] for s in records(trace, "step")]
    assert names == ["Clinic agent", "lookup_patient", "Clinic agent"]
