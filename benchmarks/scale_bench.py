"""Scale benchmark: analysis of a large trace, single process vs Ray, in run or global scope.

    python benchmarks/scale_bench.py                   # 20,000 steps (a couple of minutes on 2 cores)
    python benchmarks/scale_bench.py --steps 1000000   # the full-size run (needs a bigger machine)
    python benchmarks/scale_bench.py --scope global --steps 3000   # global scope, token-level steps

Global scope (`--scope global`) uses token-level steps instead (the hashes level is analysed on the
driver in the global scope, docs/scale.md): the same agent shapes with token ids, 16 distinct system
prompts (so 16 first-block partitions), each answer appended to the run's history (outputs reused as
prefixes), and a tool result quoted again later in the run (repeated spans). Everything else is as
below.

Generates `--steps` LLM steps at the hashes content level with agent-like shapes (deterministic):
runs of 5-40 steps; every prompt starts with one of 4 shared system prompts (1,500-3,000 tokens),
then the run's history, which grows by 150-450 tokens a step (tool results, answers); prompts end
in a partial 16-token block; outputs are 50-400 tokens. The steps are written as Parquet shards
(`--shards`, whole runs each) to a temporary folder, then analysed (run scope, reading included):

- single process: `load_trace` + `analyze` in a child process (its peak RSS is the memory figure);
- Ray with 1 and with 2 CPUs (workers): `profiler.distributed.analyze_on_ray` on the shard files;
  each worker's peak RSS is read in the worker after the analysis. Ray's start-up (`ray.init`) is
  timed separately and not counted in the analysis time.

It prints prompt tokens per second for each, the ratio to the single process, memory per worker, and
the projected time for 10^10 prompt tokens at that rate (linear: the analysis is linear in tokens
and runs are independent). The figures are wall-clock times on this machine, shared or not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader  # noqa: E402

BLOCK = 16
TARGET_TOKENS = 10**10


def generate(steps: int, seed: int = 11) -> list[Trace]:
    """Runs of hashes-level steps (see the module docstring), as one `Trace` of whole runs each."""
    rng = random.Random(seed)
    def hashes(n: int) -> tuple[int, ...]:
        # Random 63-bit block hashes, as content hashes look (and compress) in a real trace.
        return tuple(rng.getrandbits(63) for _ in range(n))

    systems = [hashes(rng.randint(1500, 3000) // BLOCK) for _ in range(4)]
    runs: list[Run] = []
    made = 0
    r = 0
    while made < steps:
        depth = min(rng.randint(5, 40), steps - made)
        system = systems[rng.randrange(4)]
        history: tuple[int, ...] = ()
        run_steps = []
        for i in range(depth):
            history = history + hashes(rng.randint(150, 450) // BLOCK)
            blocks = system + history
            run_steps.append(Step(
                run_id=f"run{r}", step_id=str(i), model="gpt-4o", start_unix_s=float(made + i),
                prompt=Prompt(block_hashes=blocks, block_size=BLOCK,
                              num_tokens=len(blocks) * BLOCK + rng.randint(1, BLOCK - 1)),
                output=Output(num_tokens=rng.randint(50, 400))))
        runs.append(Run(run_id=f"run{r}", workflow="agent", steps=tuple(run_steps)))
        made += depth
        r += 1
    return [Trace(header=TraceHeader(content_level="hashes", producer="scale_bench"), runs=tuple(runs))]


def generate_tokens(steps: int, seed: int = 11) -> list[Trace]:
    """Runs of token-level steps for the global scope (see the module docstring)."""
    rng = random.Random(seed)

    def tokens(n: int) -> tuple[int, ...]:
        return tuple(rng.randrange(100_000) for _ in range(n))

    systems = [tokens(rng.randint(1500, 3000)) for _ in range(16)]
    runs: list[Run] = []
    made = r = 0
    while made < steps:
        depth = min(rng.randint(5, 40), steps - made)
        system = systems[rng.randrange(len(systems))]
        history: tuple[int, ...] = ()
        quoted: tuple[int, ...] = ()
        run_steps = []
        for i in range(depth):
            result = tokens(rng.randint(100, 400))
            # Every fourth step quotes an earlier tool result again: a repeated, non-prefix span.
            history = history + result + (quoted if i % 4 == 3 else ())
            quoted = quoted or result
            answer = tokens(rng.randint(50, 200))
            run_steps.append(Step(
                run_id=f"run{r}", step_id=str(i), model="gpt-4o", start_unix_s=float(made + i),
                prompt=Prompt(token_ids=system + history, tokenizer="o200k_base"),
                output=Output(token_ids=answer)))
            history = history + answer
        runs.append(Run(run_id=f"run{r}", workflow="agent", steps=tuple(run_steps)))
        made += depth
        r += 1
    return [Trace(header=TraceHeader(content_level="tokens", producer="scale_bench"), runs=tuple(runs))]


def write_shards(trace: Trace, folder: Path, shards: int) -> list[str]:
    from profiler.trace.parquet import write_parquet

    per = -(-len(trace.runs) // shards)
    paths = []
    for k in range(shards):
        part = trace.runs[k * per:(k + 1) * per]
        if not part:
            break
        path = folder / f"shard-{k:03d}.parquet"
        write_parquet(Trace(header=trace.header, runs=part), path)
        paths.append(str(path))
    return paths


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def single_process(paths: list[str], scope: str = "run") -> dict:
    """Runs in a child process, so its peak RSS is the analysis's alone."""
    from profiler.analysis import analyze
    from profiler.trace import load_trace

    t0 = time.perf_counter()
    analysis = analyze([load_trace(p) for p in paths], scope=scope)
    return {"seconds": time.perf_counter() - t0, "tokens": analysis.totals.input_tokens,
            "reused": analysis.totals.prefix_reused_tokens, "repeated": analysis.totals.repeated_tokens,
            "rss_mib": [peak_rss_mib()]}


def on_ray(paths: list[str], workers: int, scope: str = "run") -> dict:
    import ray

    from profiler.distributed import analyze_on_ray

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    startup = time.perf_counter() - t0

    @ray.remote(num_cpus=1)
    def worker_rss() -> tuple[int, float]:
        time.sleep(0.3)  # hold the CPU so each of the pool's workers answers once
        return os.getpid(), peak_rss_mib()

    # Start the workers (and import ctxprof in them) before timing, as a long-lived cluster would.
    ray.get([worker_rss.remote() for _ in range(workers)])
    t0 = time.perf_counter()
    analysis = analyze_on_ray(paths, scope=scope, progress=False)
    seconds = time.perf_counter() - t0
    rss = dict(ray.get([worker_rss.remote() for _ in range(2 * workers)]))
    ray.shutdown()
    return {"seconds": seconds, "startup_s": startup, "tokens": analysis.totals.input_tokens,
            "reused": analysis.totals.prefix_reused_tokens, "repeated": analysis.totals.repeated_tokens,
            "rss_mib": sorted(rss.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--scope", choices=("run", "global"), default="run")
    ap.add_argument("--single", nargs="+", help=argparse.SUPPRESS)  # child-process mode
    args = ap.parse_args()
    if args.single:
        print(json.dumps(single_process(args.single, args.scope)))
        return
    t0 = time.perf_counter()
    (trace,) = (generate_tokens if args.scope == "global" else generate)(args.steps)
    tokens = sum(s.prompt.num_tokens or len(s.prompt.token_ids or ()) for s in trace.steps)
    with tempfile.TemporaryDirectory(prefix="ctxprof-scale-") as tmp:
        paths = write_shards(trace, Path(tmp), args.shards)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"{args.steps:,} steps in {len(trace.runs):,} runs, {tokens:,} prompt tokens "
              f"({tokens / args.steps:,.0f} per step), {len(paths)} Parquet shards of "
              f"{size / len(paths) / 2**20:.1f} MiB; {args.scope} scope; generated in "
              f"{time.perf_counter() - t0:.1f} s")
        del trace
        child = subprocess.run([sys.executable, __file__, "--scope", args.scope, "--single", *paths],
                               capture_output=True,
                               text=True, check=True)
        results = {"single process": json.loads(child.stdout.strip().splitlines()[-1])}
        for workers in (1, 2):
            results[f"ray, {workers} worker{'s' if workers > 1 else ''}"] = on_ray(paths, workers, args.scope)
    base = results["single process"]
    assert all(r["tokens"] == tokens and r["reused"] == base["reused"] and r["repeated"] == base["repeated"]
               for r in results.values()), \
        "the engines disagree"
    print(f"\n{'engine':<16} {'seconds':>8} {'tokens/s':>12} {'vs single':>9} {'peak MiB/worker':>18} "
          f"{'10^10 tokens':>13}")
    for name, r in results.items():
        rate = tokens / r["seconds"]
        hours = TARGET_TOKENS / rate / 3600
        rss = "/".join(f"{m:,.0f}" for m in r["rss_mib"])
        print(f"{name:<16} {r['seconds']:>8.2f} {rate:>12,.0f} {base['seconds'] / r['seconds']:>8.2f}x "
              f"{rss:>18} {hours:>11.1f} h")
    for name, r in results.items():
        if "startup_s" in r:
            print(f"Ray start-up ({name}): {r['startup_s']:.1f} s (not counted above)")
    print(f"\nAll engines: {base['reused']:,} prefix-reused and {base['repeated']:,} repeated tokens of "
          f"{tokens:,} (identical).")


if __name__ == "__main__":
    main()
