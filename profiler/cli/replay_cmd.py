"""`ctxprof replay`: re-execute a trace with a real model, cold and with KV reuse, and measure the saving.

torch and transformers are imported only when the command runs, never when the CLI starts.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from profiler.safe_text import console as safe_console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from profiler.cli.app import app, err_console
from profiler.cli.common import (
    ADDRESS_OPT,
    ENGINE_OPT,
    TRACES_ARG,
    Engine,
    Scope,
    load_all,
    output_stream,
    wrote,
)
from profiler.errors import CheckFailed


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class Mode(str, Enum):
    cold = "cold"
    reuse = "reuse"
    both = "both"



@app.command("replay")
def replay_command(
    traces: list[Path] = TRACES_ARG,
    model: str = typer.Option(..., "--model", "-m",
                              help="A preset (llama-3.2-1b, qwen2.5-0.5b, qwen2.5-1.5b, small, tiny; random "
                                   "weights) or a local Hugging Face checkpoint directory."),
    device: Device = typer.Option(Device.auto, "--device", help="cuda, cpu, or auto (cuda when available)."),
    dtype: DType = typer.Option(DType.auto, "--dtype",
                                help="Weights and activations; auto: bfloat16 on cuda, float32 on cpu."),
    mode: Mode = typer.Option(Mode.both, "--mode",
                              help="cold: prefill every step in full; reuse: radix KV cache across steps; "
                                   "both: run each and check they give the same outputs."),
    scope: Scope = typer.Option(Scope.run, "--scope",
                                help="'run': a cache per run; 'global': one cache for every step in time order."),
    capacity: Optional[int] = typer.Option(None, "--capacity", min=0,
                                           help="KV cache capacity in tokens (LRU eviction); default unbounded."),
    block_size: int = typer.Option(16, "--block-size", min=1, help="KV block size in tokens."),
    generate: bool = typer.Option(False, "--generate",
                                  help="Generate outputs greedily instead of forcing the recorded ones."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="Cap on output tokens per step (forced or generated; "
                                                      "generation defaults to 32)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Replay only the first N steps."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0,
                                         help="Untimed warm-up passes (default 2 on cuda, 1 on cpu)."),
    seed: int = typer.Option(0, "--seed", help="Seed of preset weights and of the token mapping."),
    cpu_threads: Optional[int] = typer.Option(None, "--cpu-threads", min=1,
                                              help="torch CPU threads (1 gives steadier timings on a "
                                                   "busy machine)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the full result as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON result instead of the tables."),
    engine: Engine = ENGINE_OPT,
    address: Optional[str] = ADDRESS_OPT,
) -> None:
    """Re-execute a trace with and without KV-cache reuse and measure the real saving.

    Prints per-step prefill time and time to first token in both modes, the tokens reused, the
    analyzer's prediction beside the measurement, peak GPU memory and energy (NVML). Exits 1 when
    cold and reuse outputs differ beyond the dtype's tolerance.
    """
    from profiler.replay import replay

    loaded = load_all(traces)
    for t in loaded:
        for w in t.warnings:
            err_console.print(f"ctxprof: warning: {w}", markup=False)
    if engine is Engine.ray or address is not None:
        from profiler.distributed.replay import replay_on_ray
        from profiler.options import resolve_engine

        resolve_engine(engine, address)
        # Each run goes to a worker: one GPU each where the cluster has GPUs, else one CPU.
        result = replay_on_ray(loaded, address=address, model=model, device=device.value,
                               dtype=dtype.value, mode=mode.value, scope=scope.value,
                               capacity_tokens=capacity, block_size=block_size, generate=generate,
                               max_new_tokens=max_new_tokens, max_steps=max_steps,
                               warmup_runs=warmup, seed=seed)
        _finish(result, as_json, output)
        return
    import torch
    import transformers  # noqa: F401  (checked here: a missing one is one line before any work)

    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    dev = device.value
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = dtype.value if dtype is not DType.auto else ("bfloat16" if dev == "cuda" else "float32")
    err_console.print(f"ctxprof: loading {model} on {dev} ({dt})", markup=False)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("replay", total=None)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=label)

        result = replay(loaded, model=model, device=dev, dtype=dt, mode=mode.value, scope=scope.value,
                        capacity_tokens=capacity, block_size=block_size, generate=generate,
                        max_new_tokens=max_new_tokens, max_steps=max_steps, warmup_runs=warmup,
                        seed=seed, progress=progress)
    _finish(result, as_json, output)


def _finish(result, as_json: bool, output: Optional[Path]) -> None:
    from profiler.render.console import write_json
    from profiler.render.replay import print_replay

    for w in result.warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    if as_json:
        write_json(result.to_dict(), typer.get_text_stream("stdout"))
    else:
        print_replay(result, safe_console())
    if output is not None:
        with output_stream(output) as stream:
            write_json(result.to_dict(), stream)
        wrote(output)
    if result.comparison is not None and not result.comparison.equal:
        raise CheckFailed("cold and reuse outputs differ beyond tolerance (see the 'same' column)")
