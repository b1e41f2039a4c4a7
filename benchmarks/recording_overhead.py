"""Recording overhead per SDK call, at the text and hashes content levels, against no recording.

    python benchmarks/recording_overhead.py [--calls 100] [--repeat 3]

The real openai and anthropic SDKs call the local API server (no network, no sleeps), whole and
streamed, each case --calls times: once without a recorder, once under `profiler.record(content=
"text")`, once under `content="hashes"` (which tokenizes and hashes every prompt as the step is
written, in the calling thread). The server runs in its own process, so this process's CPU time is
what the SDK and the recorder cost. Prints, per call (best of --repeat), client CPU milliseconds and
wall milliseconds without recording, with each level, the overhead against no recording and the
ratio. Wall times on a shared machine are noisy; the CPU figures are the overhead. Each prompt is a ~600-token system prompt and three turns.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import anthropic  # noqa: E402
import openai  # noqa: E402

import profiler  # noqa: E402

SYSTEM = ("You are a support agent for an online shop. Answer briefly, cite the order id, and never "
          "promise refunds without checking the policy. ") * 20


CASES = ("openai chat", "openai chat stream", "anthropic messages", "anthropic messages stream")


def _cases(server: Any) -> dict[str, Callable[[list[dict[str, Any]]], None]]:
    oa = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-bench", max_retries=0)
    an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-bench", max_retries=0)

    def chat(history: list[dict[str, Any]]) -> None:
        oa.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "system", "content": SYSTEM}, *history])

    def chat_stream(history: list[dict[str, Any]]) -> None:
        for _ in oa.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "system", "content": SYSTEM},
                                                      *history]):
            pass

    def messages(history: list[dict[str, Any]]) -> None:
        an.messages.create(model="claude-haiku-4-5", max_tokens=64, system=SYSTEM, messages=history)

    def messages_stream(history: list[dict[str, Any]]) -> None:
        for _ in an.messages.create(model="claude-haiku-4-5", max_tokens=64, system=SYSTEM,
                                    messages=history, stream=True):
            pass

    return {"openai chat": chat, "openai chat stream": chat_stream,
            "anthropic messages": messages, "anthropic messages stream": messages_stream}


class _ServerProcess:
    """The local API server in its own process, so this process's CPU time is the client's alone
    (SDK plus recording); fresh per measurement, as it remembers every prompt it has seen."""

    def __enter__(self) -> "_ServerProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "profiler.testing.fake_api"],
                                     stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        self.openai_base_url = self.proc.stdout.readline().split()[-1]
        self.anthropic_base_url = self.proc.stdout.readline().split()[-1]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait()


def _time(case: str, n: int, content: str | None, tmp: Path) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) per call."""
    with _ServerProcess() as server:
        call = _cases(server)[case]  # type: ignore[arg-type]

        def loop() -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(n):
                # A fixed-size conversation: the system prompt, two earlier turns, a new question.
                call([{"role": "user", "content": "Where is order 999?"},
                      {"role": "assistant", "content": "Order 999 has shipped."},
                      {"role": "user", "content": f"Question {i}: where is order {1000 + i}?"}])
            return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n

        if content is None:
            return loop()
        trace = tmp / f"{content}-{time.monotonic_ns()}.jsonl"
        with profiler.record(trace, gpu=False, content=content, hash_key="bench"):
            return loop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for case in CASES:  # warm up imports and the tokenizer
            _time(case, 3, "hashes", tmp)
        results = {(name, c): [_time(name, args.calls, c, tmp) for _ in range(args.repeat)]
                   for name in CASES for c in (None, "text", "hashes")}
        for label, index in (("client CPU ms per call", 1), ("wall ms per call", 0)):
            print(f"\n{label}")
            print(f"{'case':<28}{'none':>9}{'text':>9}{'+text':>9}{'hashes':>9}{'+hashes':>9}"
                  f"{'text/none':>11}{'hashes/none':>13}")
            for name in CASES:
                best = {c: min(results[(name, c)][r][index] for r in range(args.repeat)) * 1e3
                        for c in (None, "text", "hashes")}
                base, text, hashes = best[None], best["text"], best["hashes"]
                print(f"{name:<28}{base:>9.3f}{text:>9.3f}{text - base:>9.3f}{hashes:>9.3f}"
                      f"{hashes - base:>9.3f}{text / base:>11.2f}{hashes / base:>13.2f}")


if __name__ == "__main__":
    main()
