"""Replay benchmark: cold vs KV-reuse prefill on a real multi-step trace.

    python benchmarks/replay_bench.py                       # GPU: llama-3.2-1b preset, bf16
    python benchmarks/replay_bench.py --device cpu          # CPU: the `small` preset, fp32
    python benchmarks/replay_bench.py --trace my.jsonl --model qwen2.5-1.5b --max-steps 20

The trace is `--trace`, else `sample_traces/react_tool_loop.jsonl` (or another sample with text
content), else the first tau-bench airline conversation of `../shared/data` turned into a ctxprof
trace (the prompt of the k-th assistant message is the conversation before it plus the tool
definitions). Each configuration is replayed `--repeats` times with the same weights; the medians of the totals are printed: cold vs reuse
prefill time and time to first token, the speedup, the analyzer's predicted saving beside the measured
one, energy (NVML), peak GPU memory, and whether both modes gave the same outputs.

Without a GPU it says so and runs on the CPU with a small preset (`--model` overrides), one thread by
default for steadier timings on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.trace import Trace, load_trace  # noqa: E402
from profiler.trace.model import Output, Prompt, Step  # noqa: E402

TAU_BENCH = ROOT.parent / "shared" / "data" / "tau-bench"


def tau_bench_trace(conversation: int = 0) -> Trace:
    """One tau-bench airline conversation as a ctxprof trace: one step per assistant message."""
    records = json.loads((TAU_BENCH / "gpt-4o-airline.json").read_text())
    tools = tuple(json.loads((TAU_BENCH / "airline_tools_info.json").read_text()))
    traj = records[conversation]["traj"]
    steps = []
    for k, message in enumerate(traj):
        if message.get("role") != "assistant":
            continue
        steps.append(Step(run_id=f"tau-airline-{conversation}", step_id=str(k), name="agent",
                          model="gpt-4o", start_unix_s=float(k),
                          prompt=Prompt(messages=tuple(traj[:k]), tools=tools),
                          output=Output(message=message)))
    return Trace.from_steps(steps, path=str(TAU_BENCH / "gpt-4o-airline.json") + f"#{conversation}")


def pick_trace(path: str | None) -> Trace:
    if path:
        return load_trace(path)
    samples = sorted((ROOT / "sample_traces").glob("*.jsonl")) if (ROOT / "sample_traces").is_dir() else []
    # The ReAct tool loop first: the typical agent shape (growing history over a long system prompt).
    samples.sort(key=lambda p: p.name != "react_tool_loop.jsonl")
    for p in samples:
        trace = load_trace(p)
        if any(s.prompt.level == "text" for s in trace.steps):
            return trace
    if (TAU_BENCH / "gpt-4o-airline.json").is_file():
        return tau_bench_trace()
    sys.exit("no trace: pass --trace, or provide sample_traces/ or ../shared/data/tau-bench")


def median(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}{unit}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace")
    ap.add_argument("--model", help="preset or checkpoint (default: llama-3.2-1b on GPU, small on CPU)")
    ap.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    ap.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--capacity", type=int, default=None, help="KV cache capacity in tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-threads", type=int, default=1)
    ap.add_argument("--json", help="write the last replay's full result and the medians here")
    args = ap.parse_args()

    import torch

    from profiler.replay import load_model, replay

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        if not torch.cuda.is_available():
            print("no CUDA GPU here: running on the CPU (figures are a smoke test, not GPU timings)")
        torch.set_num_threads(args.cpu_threads)
    model = args.model or ("llama-3.2-1b" if device == "cuda" else "small")
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    trace = pick_trace(args.trace)
    loaded = load_model(model, device=device, dtype=dtype, seed=0)
    info = loaded.info
    print(f"device: {info.device_name}; model: {model} ({info.params / 1e6:,.0f}M parameters, {dtype}); "
          f"trace: {trace.path}")

    results = []
    for i in range(args.repeats):
        results.append(replay(trace, model=loaded, mode="both", capacity_tokens=args.capacity,
                              max_steps=args.max_steps, max_new_tokens=args.max_new_tokens))
        r = results[-1]
        print(f"  repeat {i + 1}: cold prefill {r.cold.prefill_ms:,.1f} ms, reuse prefill "
              f"{r.reuse.prefill_ms:,.1f} ms")
    last = results[-1]
    p = last.prediction
    cold_prefill = median([r.cold.prefill_ms for r in results])
    reuse_prefill = median([r.reuse.prefill_ms for r in results])
    cold_ttft = median([r.cold.ttft_ms for r in results])
    reuse_ttft = median([r.reuse.ttft_ms for r in results])
    cold_energy = median([r.cold.energy_j for r in results])
    reuse_energy = median([r.reuse.energy_j for r in results])
    summary = {
        "device": info.device_name, "model": model, "dtype": dtype, "trace": trace.path,
        "steps": len(last.steps), "prompt_tokens": p.prompt_tokens, "repeats": args.repeats,
        "timer": last.options.timer,
        "cold_prefill_ms": cold_prefill, "reuse_prefill_ms": reuse_prefill,
        "prefill_speedup": cold_prefill / reuse_prefill if reuse_prefill else None,
        "cold_ttft_ms": cold_ttft, "reuse_ttft_ms": reuse_ttft,
        "ttft_speedup": cold_ttft / reuse_ttft if reuse_ttft else None,
        "predicted_saved_prefill_tokens": p.predicted_saved_prefill_tokens,
        "measured_saved_prefill_tokens": p.measured_saved_prefill_tokens,
        "predicted_saved_flops_fraction": p.predicted_saved_flops_fraction,
        "measured_saved_prefill_time_fraction": 1 - reuse_prefill / cold_prefill if cold_prefill else None,
        "cold_energy_j": cold_energy, "reuse_energy_j": reuse_energy,
        "cold_peak_gpu_memory_bytes": last.cold.peak_gpu_memory_bytes,
        "reuse_peak_gpu_memory_bytes": last.reuse.peak_gpu_memory_bytes,
        "outputs_equal": all(r.comparison.equal for r in results),
        "max_abs_logit_diff": max(r.comparison.max_abs_logit_diff for r in results),
        "token_sources": last.token_sources,
    }
    print(f"steps: {summary['steps']}, prompt tokens: {p.prompt_tokens:,} "
          f"({', '.join(f'{k}: {v}' for k, v in last.token_sources.items())}); timer: {last.options.timer}; "
          f"medians of {args.repeats}")
    print(f"prefill            cold {fmt(cold_prefill, ' ms')}   reuse {fmt(reuse_prefill, ' ms')}   "
          f"speedup {fmt(summary['prefill_speedup'], 'x', 2)}")
    print(f"time to 1st token  cold {fmt(cold_ttft, ' ms')}   reuse {fmt(reuse_ttft, ' ms')}   "
          f"speedup {fmt(summary['ttft_speedup'], 'x', 2)}")
    print(f"prefill tokens saved: predicted {p.predicted_saved_prefill_tokens:,}, measured "
          f"{p.measured_saved_prefill_tokens:,} of {p.prompt_tokens:,}")
    print(f"prefill saved: predicted {p.predicted_saved_flops_fraction:.1%} of FLOPs, measured "
          f"{fmt(100 * summary['measured_saved_prefill_time_fraction'], '%')} of time")
    print(f"energy             cold {fmt(cold_energy, ' J')}   reuse {fmt(reuse_energy, ' J')}"
          + ("" if cold_energy is not None else "   (no NVML energy counter)"))
    if last.cold.peak_gpu_memory_bytes is not None:
        print(f"peak GPU memory    cold {last.cold.peak_gpu_memory_bytes / 2**20:,.0f} MiB   reuse "
              f"{last.reuse.peak_gpu_memory_bytes / 2**20:,.0f} MiB")
    print(f"outputs equal in both modes: {'yes' if summary['outputs_equal'] else 'NO'} "
          f"(largest logit difference {summary['max_abs_logit_diff']:.3g})")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "last": last.to_dict()}, indent=2))
        print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
