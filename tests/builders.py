"""Small builders for tests: `make_step`, `make_trace`, `write_lines`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from profiler.trace.io import write_trace
from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage

_counter = iter(range(10**9))


def make_step(run_id: str = "r1", *, step_id: str | None = None, tokens: Sequence[int] | None = None,
              output: Sequence[int] | None = None, messages: Sequence[dict] | None = None,
              tools: Sequence[dict] | None = None, answer: str | None = None, start: float | None = None,
              model: str | None = "gpt-4o", usage: Usage | None = None, **kw: Any) -> Step:
    n = next(_counter)
    if tokens is not None:
        prompt = Prompt(token_ids=tuple(tokens), tokenizer="test")
        out = Output(token_ids=tuple(output or ()))
    else:
        prompt = Prompt(messages=tuple(messages or ()), tools=None if tools is None else tuple(tools))
        out = Output(message=None if answer is None else {"role": "assistant", "content": answer})
    return Step(run_id=run_id, step_id=step_id or f"s{n}", start_unix_s=float(n) if start is None else start,
                model=model, prompt=prompt, output=out, usage=usage or Usage(), **kw)


def make_trace(steps: Iterable[Step], *, runs: Iterable[Run] = (), path: str | None = None) -> Trace:
    return Trace.from_steps(list(steps), runs=runs, header=TraceHeader(), path=path)


def save(trace: Trace, path: Path) -> Path:
    write_trace(trace, path)
    return path


def write_lines(path: Path, lines: Sequence[Any], *, header: dict | None = None,
                newline_at_end: bool = True) -> Path:
    """Write raw JSONL (dicts are dumped, strings written as they are), header first by default."""
    rows = [header if header is not None else {"type": "header", "format": "ctxprof-trace",
                                               "schema_version": 1}] + list(lines)
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows)
    path.write_text(text + ("\n" if newline_at_end else ""), encoding="utf-8")
    return path
