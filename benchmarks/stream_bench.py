"""Streamed run-scope analysis: peak memory stays flat as a trace file grows.

    python benchmarks/stream_bench.py [--steps 250000] [--run-steps 50] [--in-memory] [--cli]

Writes hashes-level trace files of `steps`, 2x and 4x that many steps (generated line by line, never
held in memory; runs of `--run-steps` steps with a shared system prefix and a growing history, each
closed by a `run_end` record), then analyses each in a fresh interpreter with
`analyze_each_run(iter_run_traces(path))`, keeping only the running totals, and prints the file size,
steps, CPU seconds, steps/s and peak RSS (VmHWM from /proc/self/status, which unlike ru_maxrss is the
child's own) side by side with the ratio to the smallest file. `--in-memory` adds the same for
`analyze(load_trace(path))`, whose memory grows with the file. `--cli` adds the command itself,
`ctxprof analyze --format json -o out.json` (streamed: JSON parse to JSON written, priced), and for
contrast `--format csv`, which still reads the file whole; each in a fresh interpreter, its peak the
child's own VmHWM.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(ROOT))

CHILD = r'''
import json, sys, time
from profiler.analysis import analyze, analyze_each_run
from profiler.trace.io import iter_run_traces, load_trace
t0 = time.process_time()
steps = tokens = reused = 0
if sys.argv[2] == "stream":
    parts = analyze_each_run(iter_run_traces(sys.argv[1]))
else:
    parts = [analyze(load_trace(sys.argv[1]))]
for a in parts:
    steps += a.totals.steps
    tokens += a.totals.input_tokens
    reused += a.totals.prefix_reused_tokens
cpu = time.process_time() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"steps": steps, "tokens": tokens, "reused": reused, "cpu_s": cpu, "peak_kib": hwm}))
'''

# The command in a fresh interpreter: argv after the script is the command line; prints the
# totals' step count (from the JSON written, when it is JSON), CPU seconds and VmHWM.
CLI_CHILD = r'''
import json, runpy, sys, time
out, argv = sys.argv[1], sys.argv[2:]
t0 = time.process_time()
sys.argv = ["ctxprof", *argv, "-o", out]
try:
    runpy.run_module("profiler", run_name="__main__")
except SystemExit as e:
    if e.code not in (0, None):
        raise
cpu = time.process_time() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"cpu_s": cpu, "peak_kib": hwm}))
'''


def write_file(path: Path, steps: int, run_steps: int, seed: int = 1) -> None:
    """A hashes-level trace, line by line: runs share a 32-block system prefix, each step adds a block
    of history, and a run ends with a run_end record."""
    rng = random.Random(seed)
    system = list(range(1, 33))
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"type": "header", "format": "ctxprof-trace", "schema_version": 1}) + "\n")
        done, run = 0, 0
        while done < steps:
            rid = f"run{run}"
            f.write(json.dumps({"type": "run", "run_id": rid}) + "\n")
            history: list[int] = []
            for i in range(min(run_steps, steps - done)):
                history.append(rng.getrandbits(48))
                blocks = system + history
                f.write(json.dumps({"type": "step", "run_id": rid, "step_id": str(i), "kind": "llm",
                                    "model": "m", "start_unix_s": float(done),
                                    "prompt": {"block_hashes": blocks, "block_size": 16,
                                               "num_tokens": 16 * len(blocks)},
                                    "output": {"num_tokens": 16}}, separators=(",", ":")) + "\n")
                done += 1
            f.write(json.dumps({"type": "run_end", "run_id": rid, "status": "ok"}) + "\n")
            run += 1


def measure(path: Path, mode: str, steps: int = 0) -> dict:
    if mode.startswith("cli-"):
        fmt = mode[len("cli-"):]
        out_path = path.with_suffix(f".out.{fmt}")
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
        res = subprocess.run([sys.executable, "-c", CLI_CHILD, str(out_path), "analyze", "--format", fmt,
                              str(path)], check=True, capture_output=True, text=True, env=env)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        out_path.unlink()
        return r | {"steps": steps}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=250_000, help="steps of the smallest file (then 2x, 4x)")
    ap.add_argument("--run-steps", type=int, default=50)
    ap.add_argument("--in-memory", action="store_true", help="also time analyze(load_trace(...))")
    ap.add_argument("--cli", action="store_true",
                    help="also the command: ctxprof analyze --format json (streamed) and csv (whole)")
    args = ap.parse_args()
    modes = (["stream"] + (["in-memory"] if args.in_memory else [])
             + (["cli-json", "cli-csv"] if args.cli else []))
    print(f"{'mode':<10} {'steps':>10} {'file MB':>9} {'CPU s':>8} {'steps/s':>9} {'peak RSS MiB':>13} "
          f"{'size vs smallest':>17} {'peak vs smallest':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for factor in (1, 2, 4):
            path = Path(tmp) / f"hashes-{factor}.jsonl"
            write_file(path, args.steps * factor, args.run_steps)
            files.append((path, args.steps * factor))
        for mode in modes:
            base = None
            for path, steps in files:
                r = measure(path, mode, steps)
                size = path.stat().st_size / 1e6
                base = base or (size, r["peak_kib"])
                print(f"{mode:<10} {r['steps']:>10,} {size:>9,.0f} {r['cpu_s']:>8.1f} "
                      f"{r['steps'] / r['cpu_s']:>9,.0f} {r['peak_kib'] / 1024:>13,.0f} "
                      f"{size / base[0]:>16.1f}x {r['peak_kib'] / base[1]:>16.2f}x", flush=True)


if __name__ == "__main__":
    main()
