"""Replay across workers: each run of the input is replayed by one Ray task (`num_gpus=1` where the
cluster has GPUs, else one CPU), and the per-run results merge into one `ReplayResult`.

Contract: `replay_on_ray(traces, address=..., **replay_kwargs)` takes the arguments of
`profiler.replay.replay` and returns what it returns, with these differences: steps are listed run
by run (in input order) and indexed in that order; warm-up and timing happen on each worker; a run
scope only (a global cache is one sequence of steps and cannot be split). Totals, the cold/reuse
comparison and the prediction are recomputed from the merged steps with the same formulas.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from profiler.errors import ProfilerError
from profiler.trace.model import Trace

if TYPE_CHECKING:
    from profiler.replay.result import ReplayResult


def replay_unit(trace: Trace, kwargs: dict[str, Any], cpu_threads: int | None) -> "ReplayResult":
    """One task: replay one run (torch is imported on the worker, never on the driver)."""
    if cpu_threads is not None:
        import torch

        torch.set_num_threads(cpu_threads)
    from profiler.replay import replay

    return replay(trace, **kwargs)


def replay_on_ray(traces: Trace | Iterable[Trace], *, address: str | None = None,
                  progress: bool | None = None, **kwargs: Any) -> "ReplayResult":
    from profiler.distributed.cluster import cluster_gpus, connect
    from profiler.distributed.progress import gather

    if kwargs.get("scope", "run") != "run":
        raise ProfilerError("--engine ray replays each run on its own worker: use --scope run")
    if kwargs.get("max_steps") is not None:
        raise ProfilerError("--max-steps counts steps across runs; it does not combine with --engine ray")
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    units = [Trace(header=t.header, runs=(run,), path=t.path, warnings=t.warnings)
             for t in trace_list for run in t.runs if any(s.kind == "llm" for s in run.steps)]
    if not units:
        raise ProfilerError("the trace has no LLM steps to replay")
    ray = connect(address)
    device = kwargs.get("device", "cpu")
    use_gpu = device != "cpu" and cluster_gpus() > 0
    if device == "cuda" and not use_gpu:
        raise ProfilerError("--device cuda with --engine ray: the Ray cluster has no GPUs")
    kwargs = {**kwargs, "device": "cuda" if use_gpu else "cpu"}
    if kwargs.get("dtype") in (None, "auto"):
        kwargs["dtype"] = "bfloat16" if use_gpu else "float32"
    resources = {"num_gpus": 1} if use_gpu else {"num_cpus": 1}
    task = ray.remote(max_retries=0, **resources)(replay_unit)
    kwargs_ref = ray.put(kwargs)
    refs = [task.remote(ray.put(u), kwargs_ref, None if use_gpu else 1) for u in units]
    return merge_replays(gather(ray, refs, "replay (ray)", progress),
                         traces=[t.path or "" for t in trace_list])


def merge_replays(parts: Sequence["ReplayResult"], traces: Sequence[str]) -> "ReplayResult":
    """One result from per-run results of the same model and options (see the module contract)."""
    from profiler.replay.runner import _fraction
    from profiler.replay.result import Comparison, ModeTotals, Prediction, prefill_flops

    first = parts[0]
    steps = [replace(s, index=i) for i, s in enumerate(s for p in parts for s in p.steps)]
    sources: dict[str, int] = {}
    for p in parts:
        for k, v in p.token_sources.items():
            sources[k] = sources.get(k, 0) + v
    cold = ModeTotals.of([s.cold for s in steps]) if first.cold is not None else None
    reuse = ModeTotals.of([s.reuse for s in steps]) if first.reuse is not None else None
    info = first.model
    width = info.num_attention_heads * info.head_dim
    flops_cold = sum(prefill_flops(info.non_embedding_params, info.num_layers, width, start=0,
                                   end=s.prompt_tokens) for s in steps)
    flops_pred = sum(prefill_flops(info.non_embedding_params, info.num_layers, width,
                                   start=s.predicted_reused_tokens, end=s.prompt_tokens) for s in steps)
    prompt_total = sum(s.prompt_tokens for s in steps)
    pred_saved = sum(s.predicted_reused_tokens for s in steps)
    both = cold is not None and reuse is not None
    prediction = Prediction(
        predicted_saved_prefill_tokens=pred_saved,
        measured_saved_prefill_tokens=None if reuse is None else reuse.reused_tokens,
        trace_prefix_reused_tokens=sum(p.prediction.trace_prefix_reused_tokens for p in parts),
        trace_block_reused_tokens=sum(p.prediction.trace_block_reused_tokens for p in parts),
        prompt_tokens=prompt_total,
        predicted_saved_token_fraction=_fraction(pred_saved, prompt_total),
        predicted_saved_flops_fraction=1 - _fraction(flops_pred, flops_cold),
        measured_saved_flops_fraction=(None if reuse is None
                                       else 1 - _fraction(reuse.prefill_flops, flops_cold)),
        measured_saved_prefill_time_fraction=(1 - _fraction(reuse.prefill_ms, cold.prefill_ms)
                                              if both else None),
        measured_saved_ttft_fraction=(1 - _fraction(reuse.ttft_ms, cold.ttft_ms) if both else None),
        prefill_speedup=(cold.prefill_ms / reuse.prefill_ms if both and reuse.prefill_ms else None),
        ttft_speedup=(cold.ttft_ms / reuse.ttft_ms if both and reuse.ttft_ms else None),
    )
    comparison = None
    if first.comparison is not None:
        cs = [p.comparison for p in parts if p.comparison is not None]
        comparison = Comparison(
            atol=first.comparison.atol, rtol=first.comparison.rtol,
            steps_compared=sum(c.steps_compared for c in cs), steps_equal=sum(c.steps_equal for c in cs),
            max_abs_logit_diff=max(c.max_abs_logit_diff for c in cs),
            greedy_tokens_compared=sum(c.greedy_tokens_compared for c in cs),
            greedy_mismatches=sum(c.greedy_mismatches for c in cs),
            greedy_mismatches_beyond_tolerance=sum(c.greedy_mismatches_beyond_tolerance for c in cs))
    warnings: dict[str, None] = {}
    for p in parts:
        warnings.update(dict.fromkeys(p.warnings))
    return replace(first, token_sources=sources, steps=tuple(steps), cold=cold, reuse=reuse,
                   comparison=comparison, prediction=prediction,
                   evicted_tokens=sum(p.evicted_tokens for p in parts), traces=tuple(traces),
                   warnings=tuple(warnings))
