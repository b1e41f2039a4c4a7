"""Small builders for tests: `make_step`, `make_trace`, `write_lines`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from profiler.trace.io import write_trace
from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage

if TYPE_CHECKING:
    from profiler.cache_sim.providers import ProviderSimulation
    from profiler.diagnose import Diagnosis, Finding

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


def make_finding(**kw: Any) -> "Finding":
    """A diagnosis finding (`profiler.diagnose.Finding`), defaults from a dynamic-value break."""
    from profiler.diagnose import Finding

    values: dict[str, Any] = dict(run_id="run-1", step_id="s1", step_index=1, token_position=4,
                                  kind="dynamic_value", before_text="Time: 1", after_text="Time: 2",
                                  tokens_lost=900, usd_lost=0.01, fix="move the timestamp",
                                  detail="a timestamp", where="system prompt")
    values.update(kw)
    return Finding(**values)


def make_diagnosis(*findings: "Finding") -> "Diagnosis":
    from profiler.diagnose import Diagnosis

    return Diagnosis(findings=tuple(findings))


def make_simulation(provider: str = "openai", steps: Sequence[tuple[str, str, int, int]] = (), *,
                    cost_usd: float | None = None,
                    no_cache_cost_usd: float | None = None) -> "ProviderSimulation":
    """A provider simulation (`profiler.cache_sim.providers.ProviderSimulation`) of `steps`, each
    (run_id, step_id, input_tokens, predicted_cached_tokens), priced at `cost_usd` in all."""
    from profiler.cache_sim.providers import ProviderSimulation, ProviderStepResult, ProviderTotals

    n = max(len(steps), 1)
    results = tuple(ProviderStepResult(
        run_id=r, step_id=s, model="gpt-4o", start_unix_s=None, input_tokens=i,
        predicted_cached_tokens=c, predicted_cache_write_tokens=0, reported_cached_tokens=None,
        cost_usd=None if cost_usd is None else cost_usd / n,
        no_cache_cost_usd=None if no_cache_cost_usd is None else no_cache_cost_usd / n)
        for r, s, i, c in steps)
    return ProviderSimulation(provider=provider, options={}, steps=results,
                              totals=ProviderTotals.of(results))
