"""Write the bundled sample traces (deterministic: fixed seed, fixed clock).

    python sample_traces/generate.py [OUTPUT_DIR]

Five workflows, each with the redundancy pattern it is known for:

- planner_executor_verifier.jsonl: three runs of planner -> executor -> verifier sharing a policy
  document and tool definitions (gpt-4o, OpenAI usage with automatic-cache hits).
- react_tool_loop.jsonl: a ReAct agent whose history grows by a tool call and result every step
  (claude-sonnet-4, Anthropic usage with cache reads/writes and a `cache_control` breakpoint).
- rag_chain.jsonl: a RAG chain whose retrieved passages recur in a different order in later steps,
  so they repeat without being a reusable prefix (gpt-4.1).
- retry_loop.jsonl: a structured-output step retried with the identical prompt after validation
  failures (gpt-4o-mini).
- timestamp_prefix.jsonl: a support agent whose system prompt starts with the current time, which
  defeats prefix caching at every step (gpt-4o; the provider reports almost no cache hits).

Provider usage is derived from ctxprof's own token counts with each provider's documented caching
rule, so reported and ideal figures are consistent and the gaps are the ones each workflow causes.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiler.trace.io import write_trace  # noqa: E402
from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage  # noqa: E402

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z

WORDS = """
account access agent alert allocate analysis api application approval archive audit authentication
backup balance batch billing boundary budget cache capacity certificate change channel checkout client
cluster compliance configuration connection consumer contract credential customer dashboard database
deadline deployment detection device discount dispute document domain escalation estimate event
exception export failover feature firewall forecast gateway governance incident index inventory invoice
latency ledger license limit load log maintenance metric migration monitor network notification order
outage owner partition payment permission pipeline policy priority procurement quota rate record
recovery refund region release replica report request reservation resolution retention review risk
rollback route schedule schema secret segment service session settlement shipment signature snapshot
storage subscription supplier support tenant threshold ticket token transaction transfer upgrade usage
vendor version warehouse window workflow workload
""".split()
VERBS = ("must", "should", "may", "will", "can", "cannot", "must not", "is expected to", "is allowed to")


def sentence(rng: random.Random) -> str:
    w = [rng.choice(WORDS) for _ in range(rng.randint(7, 16))]
    w.insert(rng.randint(2, 4), rng.choice(VERBS))
    return " ".join(w).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def document(rng: random.Random, title: str, sections: int) -> str:
    body = [f"# {title}"]
    for i in range(1, sections + 1):
        body.append(f"## {i}. {rng.choice(WORDS).capitalize()} {rng.choice(WORDS)}")
        body.append(paragraph(rng, rng.randint(4, 8)))
    return "\n\n".join(body)


def tool(name: str, description: str, params: dict[str, str]) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {k: {"type": "string", "description": v}
                                                         for k, v in params.items()},
                       "required": list(params)}}}


TOOLS = [
    tool("search_orders", "Search customer orders by customer id, status or date range.",
         {"customer_id": "Customer identifier", "status": "Order status filter"}),
    tool("get_invoice", "Fetch an invoice with its line items and payment state.",
         {"invoice_id": "Invoice identifier"}),
    tool("issue_refund", "Issue a refund for an order after policy checks.",
         {"order_id": "Order identifier", "amount": "Amount in USD", "reason": "Reason code"}),
    tool("escalate", "Escalate a ticket to a human agent with a summary.",
         {"ticket_id": "Ticket identifier", "summary": "Short summary for the human agent"}),
    tool("lookup_policy", "Look up a section of the support policy by keyword.",
         {"keyword": "Keyword to search for"}),
]


def openai_usage(input_tokens: int, output_tokens: int, ideal_prefix: int, hit: bool) -> Usage:
    """OpenAI automatic caching: >= 1024-token prompts, cached in 128-token increments."""
    cached = (ideal_prefix // 128) * 128 if hit and ideal_prefix >= 1024 else 0
    return Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens)


def with_usage(steps: list[Step], usage_for) -> list[Step]:
    """Fill usage from ctxprof's own analysis of the steps (run scope)."""
    from profiler.analysis import analyze

    trace = Trace.from_steps(steps)
    metrics = {(m.run_id, m.step_id): m for m in analyze(trace).steps}
    out = []
    for i, s in enumerate(steps):
        m = metrics[(s.run_id, s.step_id)]
        out.append(replace(s, usage=usage_for(i, s, m)))
    return out


def planner_executor_verifier(rng: random.Random) -> Trace:
    policy = document(rng, "Refund and escalation policy", 22)
    system = ("You are part of a three-agent support workflow. Follow the policy exactly and cite "
              "section numbers.\n\n" + policy)
    steps, runs, t = [], [], T0
    for r in range(3):
        run_id = f"pev-{r + 1}"
        runs.append(Run(run_id=run_id, workflow="support-triage", start_unix_s=t))
        task = f"Ticket #{4810 + r}: " + paragraph(rng, 6)
        plan = "Plan:\n" + "\n".join(f"{i}. {sentence(rng)}" for i in range(1, 7))
        result = "Execution log:\n" + "\n".join(f"- {sentence(rng)}" for _ in range(10))
        verdict = "Verdict: approved. " + paragraph(rng, 2)
        calls = [
            ("planner", [{"role": "system", "content": system},
                         {"role": "user", "content": f"Plan the resolution of this ticket.\n\n{task}"}], plan),
            ("executor", [{"role": "system", "content": system},
                          {"role": "user", "content": f"Execute this plan for the ticket.\n\n{task}\n\n{plan}"}],
             result),
            ("verifier", [{"role": "system", "content": system},
                          {"role": "user", "content": f"Verify the execution against the policy.\n\n{task}\n\n"
                                                      f"{plan}\n\n{result}"}], verdict),
        ]
        for i, (name, messages, answer) in enumerate(calls):
            latency = rng.uniform(2.0, 6.0)
            steps.append(Step(run_id=run_id, step_id=f"{run_id}-{i}", name=name, model="gpt-4o-2024-08-06",
                              provider="openai", start_unix_s=t, end_unix_s=t + latency,
                              ttft_ms=rng.uniform(300, 900),
                              prompt=Prompt(messages=tuple(messages),
                                            tools=tuple(TOOLS) if name == "executor" else None),
                              output=Output(message={"role": "assistant", "content": answer},
                                            finish_reason="stop")))
            t += latency + rng.uniform(0.5, 2.0)
        t += 600  # runs are ten minutes apart: the provider cache has expired in between
    # Planner/verifier share the system prompt; the executor puts tools first, which breaks that prefix.
    steps = with_usage(steps, lambda i, s, m: openai_usage(m.input_tokens, m.output_tokens,
                                                            m.prefix_reused_tokens, hit=True))
    return Trace.from_steps(steps, runs=runs, header=TraceHeader(attributes={"sample": "planner_executor_verifier"}))


def react_tool_loop(rng: random.Random) -> Trace:
    system = ("You are a support agent that solves tickets with tools. Think step by step, call one "
              "tool at a time, and stop when the ticket is resolved.\n\n" + document(rng, "Agent handbook", 8))
    run_id = "react-1"
    history: list[dict] = [
        {"role": "system", "content": [{"type": "text", "text": system,
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Ticket #5120: " + paragraph(rng, 5)},
    ]
    steps, t = [], T0 + 3600
    tool_names = [tl["function"]["name"] for tl in TOOLS]
    for i in range(12):
        final = i == 11
        if final:
            answer = {"role": "assistant", "content": "Resolved. " + paragraph(rng, 3)}
        else:
            call_id = f"call_{i:03d}"
            answer = {"role": "assistant", "content": "Thought: " + sentence(rng),
                      "tool_calls": [{"id": call_id, "type": "function", "function": {
                          "name": rng.choice(tool_names),
                          "arguments": json.dumps({"customer_id": f"C{rng.randint(1000, 9999)}"})}}]}
        latency = rng.uniform(1.5, 4.0)
        steps.append(Step(run_id=run_id, step_id=f"{run_id}-{i}", name="agent", model="claude-sonnet-4-20250514",
                          provider="anthropic", start_unix_s=t, end_unix_s=t + latency,
                          ttft_ms=rng.uniform(400, 1200),
                          prompt=Prompt(messages=tuple(history), tools=tuple(TOOLS)),
                          output=Output(message=answer, finish_reason="stop" if final else "tool_use")))
        t += latency
        if not final:
            history = history + [answer, {"role": "tool", "tool_call_id": answer["tool_calls"][0]["id"],
                                          "content": json.dumps({"rows": [paragraph(rng, 1) for _ in range(
                                              rng.randint(3, 9))]})}]
            t += rng.uniform(0.2, 1.5)

    from profiler.tokens import StepTokenizer

    # One breakpoint after the system prompt: tools + system are written once, then read.
    head = replace(steps[0], prompt=Prompt(messages=tuple(history[:1]), tools=tuple(TOOLS)))
    cacheable = int(StepTokenizer().prompt_tokens(head).size) - 2  # less the generation prompt

    def anthropic_usage(i: int, s: Step, m) -> Usage:
        if i == 0:
            return Usage(input_tokens=m.input_tokens, cache_read_tokens=0, cache_write_tokens=cacheable,
                         output_tokens=m.output_tokens)
        return Usage(input_tokens=m.input_tokens, cache_read_tokens=cacheable, cache_write_tokens=0,
                     output_tokens=m.output_tokens)

    steps = with_usage(steps, anthropic_usage)
    return Trace.from_steps(steps, runs=[Run(run_id=run_id, workflow="react-support-agent", start_unix_s=T0 + 3600)],
                            header=TraceHeader(attributes={"sample": "react_tool_loop"}))


def rag_chain(rng: random.Random) -> Trace:
    passages = [f"[doc-{k}] " + paragraph(rng, rng.randint(12, 18)) for k in range(12)]
    system = "You answer questions about the company's operations using only the provided passages."
    steps, runs, t = [], [], T0 + 7200
    for r in range(2):
        run_id = f"rag-{r + 1}"
        runs.append(Run(run_id=run_id, workflow="rag-qa", start_unix_s=t))
        question = "Question: " + sentence(rng)
        retrieved = rng.sample(passages, 6)
        calls = []
        calls.append(("rewrite", [{"role": "system", "content": system},
                                  {"role": "user", "content": f"Rewrite the question for retrieval.\n{question}"}],
                      "Rewritten: " + sentence(rng)))
        for hop in range(3):
            order = retrieved[:]
            rng.shuffle(order)  # the reranker returns the same passages in another order each hop
            ctx = "\n\n".join(order[: 4 + hop])
            calls.append((f"answer-hop-{hop + 1}",
                          [{"role": "system", "content": system},
                           {"role": "user", "content": f"Passages:\n{ctx}\n\n{question}"}],
                          "Answer: " + paragraph(rng, 2)))
        calls.append(("cite-check", [{"role": "system", "content": system},
                                     {"role": "user", "content": "Check every citation.\n\n" + "\n\n".join(retrieved)}],
                      "All citations verified."))
        for i, (name, messages, answer) in enumerate(calls):
            latency = rng.uniform(1.0, 3.0)
            steps.append(Step(run_id=run_id, step_id=f"{run_id}-{i}", name=name, model="gpt-4.1-2025-04-14",
                              provider="openai", start_unix_s=t, end_unix_s=t + latency,
                              prompt=Prompt(messages=tuple(messages)),
                              output=Output(message={"role": "assistant", "content": answer})))
            t += latency + 0.3
    steps = with_usage(steps, lambda i, s, m: openai_usage(m.input_tokens, m.output_tokens,
                                                            m.prefix_reused_tokens, hit=True))
    return Trace.from_steps(steps, runs=runs, header=TraceHeader(attributes={"sample": "rag_chain"}))


def retry_loop(rng: random.Random) -> Trace:
    schema = json.dumps({"type": "object", "properties": {
        k: {"type": "string", "description": sentence(rng)} for k in WORDS[:40]}}, indent=2)
    system = "Extract the fields defined by this JSON schema from the contract. Reply with JSON only.\n" + schema
    contract = document(rng, "Master services agreement", 10)
    run_id = "retry-1"
    messages = ({"role": "system", "content": system}, {"role": "user", "content": contract})
    steps, t = [], T0 + 10800
    for attempt in range(5):
        ok = attempt == 4
        answer = json.dumps({k: rng.choice(WORDS) for k in WORDS[:40]}) if ok else "{\"" + rng.choice(WORDS) + "\": "
        latency = rng.uniform(3.0, 8.0)
        steps.append(Step(run_id=run_id, step_id=f"{run_id}-{attempt}", name="extract", model="gpt-4o-mini-2024-07-18",
                          provider="openai", start_unix_s=t, end_unix_s=t + latency,
                          prompt=Prompt(messages=messages),
                          output=Output(message={"role": "assistant", "content": answer},
                                        finish_reason="stop" if ok else "length"),
                          attributes={"attempt": attempt + 1, "valid_json": ok}))
        t += latency + 1.0
    steps = with_usage(steps, lambda i, s, m: openai_usage(m.input_tokens, m.output_tokens,
                                                            m.prefix_reused_tokens, hit=True))
    return Trace.from_steps(steps, runs=[Run(run_id=run_id, workflow="contract-extraction", start_unix_s=T0 + 10800)],
                            header=TraceHeader(attributes={"sample": "retry_loop"}))


def timestamp_prefix(rng: random.Random) -> Trace:
    handbook = document(rng, "Support handbook", 12)
    run_id = "ts-1"
    steps, t = [], T0 + 14400
    history: list[dict] = [{"role": "user", "content": "Ticket #6001: " + paragraph(rng, 4)}]
    for i in range(8):
        import datetime as _dt

        now = _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        system = f"Current time: {now}\nYou are a helpful support agent.\n\n{handbook}"
        answer = {"role": "assistant", "content": paragraph(rng, 2)}
        latency = rng.uniform(1.5, 3.5)
        steps.append(Step(run_id=run_id, step_id=f"{run_id}-{i}", name="support-agent", model="gpt-4o-2024-08-06",
                          provider="openai", start_unix_s=t, end_unix_s=t + latency,
                          prompt=Prompt(messages=({"role": "system", "content": system}, *history)),
                          output=Output(message=answer, finish_reason="stop")))
        history = history + [answer, {"role": "user", "content": paragraph(rng, 2)}]
        t += latency + rng.uniform(5, 20)
    # The timestamp is in the first ~10 tokens: the provider never finds a 1,024-token prefix.
    steps = with_usage(steps, lambda i, s, m: openai_usage(m.input_tokens, m.output_tokens,
                                                            m.prefix_reused_tokens, hit=True))
    return Trace.from_steps(steps, runs=[Run(run_id=run_id, workflow="support-agent", start_unix_s=T0 + 14400)],
                            header=TraceHeader(attributes={"sample": "timestamp_prefix"}))


SAMPLES = {
    "planner_executor_verifier.jsonl": planner_executor_verifier,
    "react_tool_loop.jsonl": react_tool_loop,
    "rag_chain.jsonl": rag_chain,
    "retry_loop.jsonl": retry_loop,
    "timestamp_prefix.jsonl": timestamp_prefix,
}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, build) in enumerate(SAMPLES.items()):
        trace = build(random.Random(1000 + i))
        header = replace(trace.header, created_unix_s=T0, producer="ctxprof sample_traces/generate.py",
                         producer_version="1")
        path = out_dir / name
        path.unlink(missing_ok=True)
        write_trace(replace(trace, header=header), path)
        print(f"Wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
