"""Small trace builders for the report tests: an agent loop whose context grows step by step."""

from __future__ import annotations

from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage

SYSTEM = ("You are a careful software agent. Plan, act with tools, then verify. " * 12).strip()
TOOLS = (
    {"type": "function", "function": {"name": "run_shell", "description": "Run a shell command. " * 8,
                                      "parameters": {"type": "object",
                                                     "properties": {"cmd": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "read_file", "description": "Read a file. " * 8,
                                      "parameters": {"type": "object",
                                                     "properties": {"path": {"type": "string"}}}}},
)


def make_agent_run(run_id: str = "run-1", *, steps: int = 5, start_unix_s: float = 1_700_000_000.0,
                   user_text: str = "Fix the failing test in tests/test_io.py.",
                   model: str = "gpt-4o-mini", provider: str = "openai", cached: bool = True,
                   step_name: str | None = None, stamp_system: bool = False) -> list[Step]:
    """`steps` LLM calls of one run; each prompt is the previous prompt plus its reply and a tool result.

    `stamp_system` puts a per-call timestamp at the start of the system prompt (which breaks prefix
    reuse while the rest repeats). Usage reports cache reads of the previous prompt when `cached`.
    """
    history: list[dict] = [{"role": "user", "content": user_text}]
    out = []
    previous_input = 0
    t = start_unix_s
    for i in range(steps):
        system = f"Time: {t:.3f}. {SYSTEM}" if stamp_system else SYSTEM
        messages = ({"role": "system", "content": system}, *history)
        reply = f"Step {i}: I will inspect the repository and run the tests again. " * 3
        input_tokens = 400 + 120 * i
        out.append(Step(
            run_id=run_id, step_id=f"s{i}", name=step_name or ("plan" if i == 0 else f"act-{i}"),
            model=model, provider=provider, start_unix_s=t, end_unix_s=t + 1.5,
            prompt=Prompt(messages=messages, tools=TOOLS),
            output=Output(message={"role": "assistant", "content": reply}),
            usage=Usage(input_tokens=input_tokens, cache_read_tokens=_cache_read(previous_input, cached,
                                                                                  stamp_system),
                        output_tokens=40)))
        previous_input = input_tokens
        history = [*history, {"role": "assistant", "content": reply},
                   {"role": "user", "content": f"Tool output {i}: " + "ok test passed. " * (10 + i)}]
        t += 2.0
    return out


def make_trace(*runs: list[Step], path: str | None = None) -> Trace:
    steps = [s for r in runs for s in r]
    run_records = [Run(run_id=r[0].run_id, workflow="agent-loop") for r in runs if r]
    return Trace.from_steps(steps, header=TraceHeader(content_level="text"), runs=run_records, path=path)


def _cache_read(previous_input: int, cached: bool, stamp_system: bool) -> int | None:
    """What an OpenAI-like provider reports: the previous prompt in 128-token steps, none when the
    prompt's first tokens change every call."""
    if not cached:
        return None
    return 0 if stamp_system else (previous_input // 128) * 128
