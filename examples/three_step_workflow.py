"""A planner -> executor -> verifier workflow through the real OpenAI SDK, recorded with ctxprof.

It runs offline: the example starts ctxprof's local server that answers like the OpenAI API
(`profiler.testing.fake_api`) and points the SDK at it. Each task is one run; every step resends the
same system prompt and tool definitions plus the growing history -- the redundant context that
`ctxprof analyze` then measures:

    pip install -e ".[instrument]"   # the OpenAI SDK
    python examples/three_step_workflow.py -o three_step.jsonl
    ctxprof analyze three_step.jsonl
"""

from __future__ import annotations

import argparse
import json
from typing import Any

try:
    import openai
except ModuleNotFoundError:
    raise SystemExit("this example needs the OpenAI SDK: pip install 'ctxprof[instrument]'") from None

import profiler
from profiler.testing.fake_api import FakeLLMServer

MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = (
    "You are the support agent of Example Air. Follow the policy exactly.\n"
    "Policy: 1. Verify the customer's identity before any change. 2. Changes to basic-economy tickets "
    "are not allowed. 3. Refunds go to the original payment method within 7 business days. 4. Offer "
    "travel insurance only when asked. 5. Never reveal internal notes. 6. Escalate to a human agent "
    "when the customer asks twice. 7. Answer in the customer's language, briefly and politely.\n"
) * 3
TOOLS = [
    {"type": "function", "function": {
        "name": "search_bookings", "description": "Find a customer's bookings by email or reference.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}},
]
TASKS = [
    "I need to move my flight ABC123 from Tuesday to Thursday.",
    "Please refund booking XYZ789, the flight was cancelled.",
    "Can I add a checked bag to booking QRS456?",
]


def search_bookings(query: str) -> str:
    return json.dumps({"reference": query[:6], "fare": "economy", "status": "confirmed"})


def planner(rec: profiler.instrument.Recorder, client: openai.OpenAI,
            history: list[dict[str, Any]]) -> None:
    with rec.step("planner"):
        reply = client.chat.completions.create(model=MODEL, messages=history + [
            {"role": "user", "content": "Plan the steps to resolve this request."}])
    history.append({"role": "assistant", "content": reply.choices[0].message.content})


@profiler.step("executor")
def executor(rec: profiler.instrument.Recorder, client: openai.OpenAI,
             history: list[dict[str, Any]], task: str) -> None:
    # The model asks for a tool; the tool runs as a step of kind "tool"; the model answers.
    history.append({"role": "user", "content": f"Execute the plan for: {task}"})
    reply = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)
    message = reply.choices[0].message
    history.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        with rec.step(call.function.name, kind="tool") as tool:
            result = search_bookings(json.loads(call.function.arguments)["query"])
            tool.set_output(text=result)
        history.append({"role": "tool", "tool_call_id": call.id, "content": result})
    final = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)
    history.append({"role": "assistant", "content": final.choices[0].message.content})


def verifier(rec: profiler.instrument.Recorder, client: openai.OpenAI,
             history: list[dict[str, Any]]) -> str:
    with rec.step("verifier"):
        stream = client.chat.completions.create(
            model=MODEL, stream=True, stream_options={"include_usage": True},
            messages=history + [{"role": "user", "content": "Check the answer against the policy."}])
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="three_step_trace.jsonl", help="trace file to write")
    parser.add_argument("--runs", type=int, default=2, help=f"tasks to run (1-{len(TASKS)})")
    parser.add_argument("--content", default="text", choices=["text", "tokens", "hashes"])
    args = parser.parse_args(argv)

    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-example-not-a-real-key")
        with profiler.record(args.output, workflow="support-agent", content=args.content,
                             gpu=False) as rec:
            for task in TASKS[:args.runs]:
                with rec.run(workflow="support-agent", task=task):
                    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT},
                                                     {"role": "user", "content": task}]
                    planner(rec, client, history)
                    executor(rec, client, history, task)
                    verifier(rec, client, history)
    print(f"recorded {args.runs} run(s) into {args.output}; now run: ctxprof analyze {args.output}")


if __name__ == "__main__":
    main()
