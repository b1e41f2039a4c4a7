"""Analysis speed against tokenization alone, at workflow depths 10, 100 and 1000 steps.

    python benchmarks/analyze_bench.py [--depths 10 100 1000] [--repeat 3]

Two synthetic agent workflows (deterministic):
- sliding: a 2,000-token system prompt and tools, then a sliding window of the last 16 messages, so
  each step has a similar size and total tokens grow linearly with depth;
- growing: the whole history is resent every step (a ReAct loop), so total tokens grow with depth^2
  (1000 steps are 42 million prompt tokens; the run takes about a minute).

Times are CPU seconds, best of --repeat runs. For each depth it prints total prompt tokens, the throughput of tokenizing every step's rendered
prompt from scratch with tiktoken (what a naive profiler does), the throughput of ctxprof's full
analysis (memoized tokenization + prefix and repeated-span indexes), their ratio, and the time per
token relative to depth 10. Analysis cost must grow linearly with total tokens: the last column stays
near 1.0 as depth grows 100x.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiler.analysis import analyze  # noqa: E402
from profiler.tokens import StepTokenizer, get_encoding, render_message_body, render_tools  # noqa: E402
from profiler.trace.model import Output, Prompt, Step, Trace  # noqa: E402

WORDS = ("cache prefix token model agent tool call result plan verify policy refund order invoice "
         "customer ticket escalate search retrieve document passage answer latency budget").split()


def text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def workflow(depth: int, mode: str, seed: int = 7) -> Trace:
    rng = random.Random(seed)
    system = {"role": "system", "content": text(rng, 1600)}
    tools = tuple({"type": "function", "function": {"name": f"tool_{i}", "description": text(rng, 40)}}
                  for i in range(6))
    history: list[dict] = [{"role": "user", "content": text(rng, 60)}]
    steps = []
    for i in range(depth):
        window = history if mode == "growing" else history[-16:]
        answer = {"role": "assistant", "content": text(rng, 30)}
        steps.append(Step(run_id="bench", step_id=str(i), model="gpt-4o", start_unix_s=float(i),
                          prompt=Prompt(messages=(system, *window), tools=tools),
                          output=Output(message=answer)))
        history = history + [answer, {"role": "tool", "content": text(rng, 40)}]
    return Trace.from_steps(steps)


def tokenize_naively(trace: Trace) -> int:
    """Render each prompt to one string and tokenize it from scratch."""
    enc = get_encoding("o200k_base")
    total = 0
    for s in trace.steps:
        parts = [render_tools(s.prompt.tools or ())]
        parts += [f"{m['role']}\n{render_message_body(m)}" for m in s.prompt.messages or ()]
        total += len(enc.encode_ordinary("\n".join(parts)))
    return total


def best_of(repeat: int, fn):
    """Best CPU time of `repeat` runs (CPU time, so other processes on the machine matter less)."""
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        value = fn()
        best = min(best, time.process_time() - t0)
    return best, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--growing-depths", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    get_encoding("o200k_base")  # load once, outside the timings

    print(f"{'workflow':<8} {'depth':>6} {'prompt tokens':>14} {'tokenize only':>15} {'full analysis':>15} "
          f"{'analysis/tokenize':>18} {'time/token vs depth 10':>23} {'max RSS':>9}")
    for mode, depths in (("sliding", args.depths), ("growing", args.growing_depths)):
        base = None
        for depth in depths:
            trace = workflow(depth, mode)
            repeat = args.repeat
            t_tok, _ = best_of(repeat, lambda: tokenize_naively(trace))
            t_an, result = best_of(repeat, lambda: analyze(trace, tokenizer=StepTokenizer()))
            tokens = result.totals.input_tokens + result.totals.output_tokens
            per_token = t_an / tokens
            base = base or per_token
            rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{mode:<8} {depth:>6} {result.totals.input_tokens:>14,} {tokens / t_tok:>11,.0f} t/s "
                  f"{tokens / t_an:>11,.0f} t/s {t_tok / t_an:>17.1f}x {per_token / base:>22.2f}x "
                  f"{rss_mib:>6,.0f} MiB")


if __name__ == "__main__":
    main()
