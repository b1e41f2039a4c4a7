"""Small builders of agent-loop traces for the CI-check tests (token-id prompts: no tokenizer needed).

Step i of a run sends the system prompt, the history (every earlier user turn and answer) and a new
user turn, so its prompt begins with everything step i-1 left processed: the reuse figures are
known in closed form (see `expected_run`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from profiler.trace.io import write_trace
from profiler.trace.model import Output, Prompt, Run, Step, Trace, Usage


@dataclass(frozen=True)
class LoopShape:
    steps: int = 3
    system_tokens: int = 200
    turn_tokens: int = 50
    output_tokens: int = 10
    names: Sequence[str] = ("plan", "act")


def loop_steps(run_id: str, shape: LoopShape, *, model: str = "gpt-4o-mini", provider: str = "openai",
               cached_fraction: float | None = 0.0, t0: float = 1_700_000_000.0,
               seed: int = 0) -> list[Step]:
    # Token ids: the system prompt shares ids across runs; turns and outputs are unique per run/seed.
    base = 1_000_000 + (zlib.crc32(f"{seed}/{run_id}".encode()) % 100_000) * 10_000_000
    system = tuple(range(shape.system_tokens))
    history: tuple[int, ...] = ()
    steps = []
    for i in range(shape.steps):
        turn = tuple(base + i * 100_000 + k for k in range(shape.turn_tokens))
        out = tuple(base + i * 100_000 + 50_000 + k for k in range(shape.output_tokens))
        prompt = system + history + turn
        cached = None if cached_fraction is None else int(len(prompt) * cached_fraction)
        steps.append(Step(
            run_id=run_id, step_id=f"{run_id}-s{i}", name=shape.names[i % len(shape.names)],
            model=model, provider=provider, start_unix_s=t0 + i, end_unix_s=t0 + i + 0.5,
            prompt=Prompt(token_ids=prompt, tokenizer="o200k_base"), output=Output(token_ids=out),
            usage=Usage(input_tokens=len(prompt), cache_read_tokens=cached,
                        output_tokens=shape.output_tokens)))
        history = history + turn + out
    return steps


def make_trace(runs: Sequence[tuple[str, str | None, LoopShape]], **kwargs) -> Trace:
    """`runs`: (run_id, workflow, shape) for each run."""
    steps: list[Step] = []
    for k, (run_id, _, shape) in enumerate(runs):
        steps += loop_steps(run_id, shape, t0=1_700_000_000.0 + 100 * k, **kwargs)
    return Trace.from_steps(steps, runs=[Run(run_id=r, workflow=w) for r, w, _ in runs])


def write_loop_trace(path: Path, *, workflow: str | None = "support-agent", runs: int = 1,
                     shape: LoopShape = LoopShape(), **kwargs) -> Path:
    trace = make_trace([(f"r{i}", workflow, shape) for i in range(runs)], **kwargs)
    write_trace(trace, path)
    return path


def expected_input_tokens(shape: LoopShape) -> int:
    """Total prompt tokens of one run of `shape`."""
    total = 0
    for i in range(shape.steps):
        total += shape.system_tokens + i * (shape.turn_tokens + shape.output_tokens) + shape.turn_tokens
    return total


def expected_reused_tokens(shape: LoopShape) -> int:
    """Prefix-reused tokens of one run: step i > 0 reuses everything step i-1 sent and produced."""
    total = 0
    for i in range(1, shape.steps):
        total += shape.system_tokens + i * (shape.turn_tokens + shape.output_tokens)
    return total
