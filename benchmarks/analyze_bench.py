"""Analysis speed, end to end and per workload shape, beside a naive peer, with ratios in one run.

    python benchmarks/analyze_bench.py [--data ../shared/data] [--quick] [--large]

To time another checkout of the code (e.g. an older commit), run with `PYTHONPATH=<checkout>` and a
working directory outside it: the script then imports `profiler` from there, and the CLI it times is
`python -m profiler` from there too.

Tables (CPU seconds, best of repeats: end to end those of the child process; in process, small cases
are repeated until they take at least --min-seconds, so their figures are stable):

1. Real traces (../shared/data imported into ctxprof traces in a temp folder) end to end through the CLI:
   `python -m profiler analyze TRACE -f json -o OUT` (interpreter start, JSON parse, encoding load,
   analysis, pricing, JSON written), beside the naive peer in a fresh interpreter: read the trace,
   load the encoding, render every prompt and tokenize it in full, and take the longest common prefix
   against every earlier prompt + output of the run. Both must give the same prefix figures (checked).
2. The same on long synthetic runs of realistic text (words drawn, Zipf-distributed, from the real
   traces' own text; syllable words when the data is absent).
3. Workload shapes, in process: per-token time of `analyze` relative to the smallest size of each
   shape and to size 100 (flat <= 1.3x is linear): many runs sharing a system prompt in global scope;
   sliding-window, growing-history, best-of-N and tree-search runs at growing depth. The shares of
   prompt tokens reused as a prefix and repeated elsewhere say which path the tokens took (a sliding
   window at depth 10 has not started sliding: its prompts still grow). Max RSS is printed beside.
4. Index memory: bytes per distinct 16-token block held by the analyzer's prefix index (traced
   allocations) beside the block's own 16 prefix hashes (128 bytes), bytes per repeated-window entry,
   and both together per block.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from profiler.analysis import analyze  # noqa: E402
from profiler.encodings import get_encoding  # noqa: E402
from profiler.trace.io import write_trace  # noqa: E402
from profiler.trace.model import Output, Prompt, Step, Trace  # noqa: E402

REAL = [("mini-swe-agent", "mini-swe-agent-gemini"), ("swe-agent", "swe-agent"),
        ("openhands", "openhands"), ("tau-bench", "tau-bench")]

# The naive peer, run in a fresh interpreter: what a profiler without memoization or indexes does.
PEER = r'''
import json, sys, time
import numpy as np
from profiler.trace.io import load_trace
from profiler.encodings import encoding_for_model, get_encoding
from profiler.chat import render_message_body, render_tools, role_header as _role_header
trace = load_trace(sys.argv[1])
enc = n = None
def use(step):
    global enc, n
    enc = get_encoding(step.prompt.tokenizer or encoding_for_model(step.model)[0])
    n = enc.n_vocab
def ids(text):
    return enc.encode_ordinary(text)
def block(header, body):
    return [n] + ids(header + "\n") + ids(body) + [n + 1] + ids("\n")
def prompt(step):
    p = step.prompt
    if p.level == "tokens":
        return list(p.token_ids)
    if p.messages is None:
        return ids(p.text or "")
    out = []
    if p.tools:
        out += block("tools", render_tools(p.tools))
    for m in p.messages:
        out += block(_role_header(m), render_message_body(m))
    return out + [n] + ids("assistant\n")
def output(step):
    o = step.output
    if o.token_ids is not None:
        return list(o.token_ids)
    if o.message is None and o.text is None:
        return []
    if step.prompt.messages is None:
        return ids(o.text or "")
    m = o.message if o.message is not None else {"role": "assistant", "content": o.text}
    return ids(render_message_body(m)) + [n + 1]
figures = {}
for run in trace.runs:
    earlier = []
    for s in run.steps:
        if s.kind != "llm" or s.prompt.level not in ("text", "tokens"):
            continue
        use(s)
        p = np.asarray(prompt(s), dtype=np.int64)
        best = 0
        for e in earlier:
            m = min(p.size, e.size)
            diff = np.flatnonzero(p[:m] != e[:m])
            best = max(best, int(diff[0]) if diff.size else m)
        figures[run.run_id + "/" + s.step_id] = [int(p.size), best]
        earlier.append(np.concatenate([p, np.asarray(output(s), dtype=np.int64)]))
json.dump(figures, open(sys.argv[2], "w"))
'''


def cpu(fn, min_seconds: float = 0.0, repeat: int = 1):
    """Best CPU time of `repeat` runs (more while the total is under `min_seconds`); CPU time, so that
    other processes on a shared machine matter less."""
    best, value, spent, runs = float("inf"), None, 0.0, 0
    while runs < repeat or spent < min_seconds:
        t0 = time.process_time()
        value = fn()
        dt = time.process_time() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best, value


def child_cpu(fn):
    """CPU seconds (user + system) of the child processes `fn` runs: steadier than wall time on a
    shared machine, and the work is single-threaded."""
    def timed():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        fn()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return timed


def run_cli(trace: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "profiler", "analyze", str(trace), "-f", "json", "-o", str(out)],
                   check=True, capture_output=True)


def run_peer(trace: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-c", PEER, str(trace), str(out)], check=True, capture_output=True)


def same_prefix_figures(cli_out: Path, peer_out: Path) -> bool:
    ours = json.loads(cli_out.read_text())
    peer = json.loads(peer_out.read_text())
    mine = {f"{r['run_id']}/{s['step_id']}": [s["input_tokens"], s["prefix_reused_tokens"]]
            for r in ours["runs"] for s in r["steps"] if f"{r['run_id']}/{s['step_id']}" in peer}
    return mine == peer and len(mine) == len(peer)


def end_to_end(name: str, trace: Path, tmp: Path, repeat: int) -> None:
    cli_out, peer_out = tmp / f"{name}.cli.json", tmp / f"{name}.peer.json"
    t_cli = min(child_cpu(lambda: run_cli(trace, cli_out))() for _ in range(repeat))
    t_peer = min(child_cpu(lambda: run_peer(trace, peer_out))() for _ in range(repeat))
    data = json.loads(cli_out.read_text())
    tokens = data["totals"]["input_tokens"]
    ok = same_prefix_figures(cli_out, peer_out)
    print(f"{name:<28} {data['totals']['steps']:>6} {tokens:>12,} {trace.stat().st_size / 1e6:>8.1f} "
          f"{t_cli:>9.2f} s {t_peer:>9.2f} s {t_peer / t_cli:>8.1f}x  {'identical' if ok else 'DIFFERENT'}",
          flush=True)


# --- realistic text ------------------------------------------------------------------------------

def vocabulary(data: Path, rng: random.Random) -> tuple[list[str], list[float]]:
    """Words with Zipf weights: from the real traces' text when present."""
    counts: Counter[str] = Counter()
    for path in sorted(data.glob("**/*.json"))[:40]:
        try:
            counts.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9]", path.read_text()[:400_000]))
        except (OSError, UnicodeDecodeError):
            continue
    words = [w for w, _ in counts.most_common(20_000)]
    if len(words) < 1000:
        syll = ["ka", "lo", "re", "mi", "tu", "sen", "dor", "pha", "qui", "ex", "an", "ti", "ver", "ol"]
        words = sorted({"".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(20_000)})
    weights = [1.0 / (i + 1) for i in range(len(words))]
    return words, weights


class Text:
    def __init__(self, data: Path, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words, weights = vocabulary(data, self.rng)
        self.cum = np.cumsum(weights)

    def __call__(self, n_words: int) -> str:
        idx = np.searchsorted(self.cum, np.asarray([self.rng.random() for _ in range(n_words)]) * self.cum[-1])
        return " ".join(self.words[i] for i in idx)


def _step(run: str, i: int, messages: list[dict], tools: tuple, answer: dict, start: float) -> Step:
    return Step(run_id=run, step_id=str(i), model="gpt-4o", start_unix_s=start,
                prompt=Prompt(messages=tuple(messages), tools=tools), output=Output(message=answer))


def shape(kind: str, size: int, text: Text) -> Trace:
    """One synthetic workload of `size` (depth, or runs for `global`)."""
    rng = random.Random(size)
    system = {"role": "system", "content": text(800)}
    tools = tuple({"type": "function", "function": {"name": f"tool_{i}", "description": text(30)}}
                  for i in range(4))
    steps: list[Step] = []
    if kind == "global":  # many short runs sharing one system prompt
        for r in range(size):
            user = {"role": "user", "content": text(40)}
            steps.append(_step(f"r{r}", 0, [system, user], tools, {"role": "assistant", "content": text(20)},
                               float(r)))
        return Trace.from_steps(steps)
    history = [{"role": "user", "content": text(60)}]
    if kind == "best-of-n":  # N samples of each prompt, then the history continues with one
        i = 0
        while i < size:
            answers = [{"role": "assistant", "content": text(30)} for _ in range(4)]
            for a in answers:
                if i < size:
                    steps.append(_step("bench", i, [system, *history[-16:]], tools, a, float(i)))
                    i += 1
            history = history + [rng.choice(answers), {"role": "tool", "content": text(40)}]
        return Trace.from_steps(steps)
    if kind == "tree":  # tree search: each step extends a random earlier node (bounded depth)
        nodes = [history]
        for i in range(size):
            parent = rng.choice(nodes[-64:])
            answer = {"role": "assistant", "content": text(30)}
            steps.append(_step("bench", i, [system, *parent[-16:]], tools, answer, float(i)))
            nodes.append(parent + [answer, {"role": "tool", "content": text(40)}])
        return Trace.from_steps(steps)
    for i in range(size):
        window = history if kind == "growing" else history[-16:]
        answer = {"role": "assistant", "content": text(30)}
        steps.append(_step("bench", i, [system, *window], tools, answer, float(i)))
        history = history + [answer, {"role": "tool", "content": text(40)}]
    return Trace.from_steps(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a couple of minutes)")
    ap.add_argument("--large", action="store_true",
                    help="up to 100,000 runs and depth 2,000, and a 1,000-step growing run end to end")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--end-to-end-only", action="store_true", help="table 1 and 2 only")
    ap.add_argument("--repeat", type=int, default=2, help="end-to-end repeats (best is kept)")
    args = ap.parse_args()
    import profiler
    print(f"profiler from {Path(profiler.__file__).parent.parent}")
    get_encoding("o200k_base")
    text = Text(args.data)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"\n{'end to end (CLI vs naive peer)':<28} {'steps':>6} {'prompt tok':>12} {'file MB':>8} "
              f"{'ctxprof':>11} {'naive peer':>11} {'speedup':>9}  prefix figures   (CPU s)")
        if not args.skip_real and args.data.exists():
            from profiler.importers.registry import import_sources
            for fmt, folder in REAL:
                src = args.data / folder
                if not src.exists():
                    continue
                path = tmp / f"{folder}.jsonl"
                write_trace(import_sources(fmt, [src]), path)
                end_to_end(f"real: {folder}", path, tmp, args.repeat)
        synthetic = [("sliding", 300 if args.quick else 1000), ("growing", 150 if args.quick else 400)]
        if args.large:
            synthetic.append(("growing", 1000))  # the peer alone takes about a minute
        for kind, depth in synthetic:
            path = tmp / f"{kind}{depth}.jsonl"
            write_trace(shape(kind, depth, text), path)
            end_to_end(f"synthetic: {kind} {depth}", path, tmp, args.repeat)
    if args.end_to_end_only:
        return

    print(f"\n{'shape':<10} {'size':>7} {'prompt tokens':>14} {'prefix':>7} {'repeated':>9} {'analyze':>9} "
          f"{'tokens/s':>11} {'time/token vs smallest':>23} {'vs size 100':>12} {'max RSS':>9}")
    sizes = {
        "global": [10, 100, 1000, 10_000] + ([100_000] if args.large else []),
        "sliding": [10, 100, 1000] + ([2000] if args.large else []),
        "growing": [10, 100, 300] + ([1000] if args.large else []),
        "best-of-n": [10, 100, 1000] + ([2000] if args.large else []),
        "tree": [10, 100, 1000] + ([2000] if args.large else []),
    }
    if args.quick:
        sizes = {k: v[:3] for k, v in sizes.items()}
    for kind, values in sizes.items():
        base = at_100 = None
        for size in values:
            trace = shape(kind, size, text)
            scope = "global" if kind == "global" else "run"
            t, result = cpu(lambda: analyze(trace, scope=scope), min_seconds=args.min_seconds, repeat=2)
            totals = result.totals
            tokens = totals.input_tokens + totals.output_tokens
            per_token = t / tokens
            base = base or per_token
            if size == 100:
                at_100 = per_token
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            # The prefix / repeated shares say which path the tokens took: a prefix is matched per
            # block, a repeated span needs a window lookup per token.
            print(f"{kind:<10} {size:>7,} {totals.input_tokens:>14,} "
                  f"{totals.prefix_reused_tokens / totals.input_tokens:>7.0%} "
                  f"{totals.repeated_tokens / totals.input_tokens:>9.0%} {t:>7.2f} s {tokens / t:>11,.0f} "
                  f"{per_token / base:>22.2f}x {(f'{per_token / at_100:.2f}x' if at_100 else ''):>12} "
                  f"{rss:>6,.0f} MiB", flush=True)
    index_memory()


def index_memory() -> None:
    """Bytes the reuse index allocates per distinct block: 200 steps of a sliding 8,000-token window
    of random tokens (every step a new prefix chain, the worst case for prefix entries). Measured
    twice, with and without repeated-window entries, to split the prefix blocks from the windows."""
    import tracemalloc

    from profiler.reuse import ReuseIndex, namespace_salt

    rng = np.random.default_rng(1)
    history, seqs = rng.integers(0, 200_000, 2000), []
    for _ in range(200):
        history = np.concatenate([history, rng.integers(0, 200_000, 400)])
        seqs.append(history[-8000:].copy())

    def held(k: int) -> tuple[int, ReuseIndex]:
        index = ReuseIndex(k)
        hashed = [index.hashes(s, namespace_salt("bench")) for s in seqs]
        tracemalloc.start()
        for i, h in enumerate(hashed):
            index.insert(h, i, index.match(int(h.mixed.size), h))
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return size, index

    total, index = held(32)
    prefixes_only, _ = held(1 << 40)  # no sequence is that long: no windows
    blocks, windows = len(index._prefixes), len(index._windows)
    print(f"\nindex memory: {total / 2**20:,.0f} MiB for {blocks:,} distinct 16-token blocks and {windows:,} "
          f"distinct windows: {prefixes_only / blocks:,.0f} bytes per block "
          f"({prefixes_only / blocks / 128:.1f}x the block's own 16 prefix hashes, 128 bytes), "
          f"{(total - prefixes_only) / windows:,.0f} bytes per window (its hash is 8 bytes); "
          f"{total / blocks:,.0f} bytes per block all told")


if __name__ == "__main__":
    main()
