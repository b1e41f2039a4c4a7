"""The replay engine: re-execute a trace's steps with a real model, cold and with KV reuse.

Contract: `replay(traces, model=..., ...)` -> `ReplayResult` (see `profiler.replay.result`).

- Steps are replayed in the analyzer's order (`scope="run"`: run by run, each run in start order, with
  a fresh cache per run; `scope="global"`: every step of the input by start time, one shared cache).
- `cold` prefills every prompt in full. `reuse` looks the prompt up in a `RadixCache` of KV blocks,
  builds a transformers `DynamicCache` from the matched per-layer K/V slices, prefills only the rest,
  and after the step inserts the KV of prompt + output (whole blocks) back into the tree, evicting
  least recently used blocks beyond `capacity_tokens`. The last prompt token is always computed (its
  logits give the first output token), so at most `floor((n - 1) / B) * B` tokens are reused.
- Outputs: teacher forcing by default (the recorded output ids are fed in one forward after the
  prompt, so both modes do the same work and leave the same sequence in the cache), or greedy
  generation with `generate=True` (one forward per token, `max_new_tokens`).
- Timing: CUDA events on a GPU (after `warmup_runs` untimed passes), `time.perf_counter` on a CPU.
  `prefill_ms` is the prompt forward alone; `ttft_ms` adds the cache lookup and KV assembly and ends
  when the first token is known; `decode_ms` is the output forward(s). Peak GPU memory is
  `torch.cuda.max_memory_allocated` per step (it includes the KV the tree holds); energy is NVML's
  total-energy counter read around each step, `None` where NVML is not available.
- With `mode="both"`, cold runs first and keeps, per step, the greedy token at every position, its
  top-8 logits, and the full logit rows at up to 16 positions; reuse is checked against them (see
  `TOLERANCES`).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from profiler.errors import ConfigError, ProfilerError
from profiler.replay.models import DTYPES, LoadedModel, ModelInfo, load_model
from profiler.replay.radix import LRUPolicy, RadixCache
from profiler.replay.result import (
    Check,
    Comparison,
    ModeStep,
    ModeTotals,
    Prediction,
    ReplayOptions,
    ReplayResult,
    StepReplay,
    prefill_flops,
)
from profiler.replay.sequences import SequenceBuilder, StepSequence
from profiler.trace.model import Output, Prompt, Step, Trace, ordered_llm_steps

MODES = ("cold", "reuse", "both")
SCOPES = ("run", "global")

# Logits of the two modes agree when |cold - reuse| <= atol + rtol * max|cold row| at every compared
# position. The reuse path runs attention over a cache built by concatenation and a shorter query, so
# the kernels accumulate in a different order: a few ulps of the logit scale per layer. fp32 is held
# to 1e-3 absolute; fp16 (10-bit mantissa) and bf16 (7-bit mantissa) to a few of their epsilons.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-3, 1e-4),
    "float16": (2e-2, 1e-2),
    "bfloat16": (1e-1, 3e-2),
}

_TOPK = 8
_ROWS = 16
ProgressFn = Callable[[str, int, int], None]


# -- KV storage ---------------------------------------------------------------------------------

class KVSegment:
    """Per-layer K and V tensors (`[batch, kv_heads, tokens, head_dim]`) of a run of tokens. Slicing
    copies, so a cached block never keeps a whole step's KV alive."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: Sequence[Any], values: Sequence[Any]) -> None:
        self.keys = list(keys)
        self.values = list(values)

    def __len__(self) -> int:
        return int(self.keys[0].shape[-2]) if self.keys else 0

    def __getitem__(self, s: slice) -> "KVSegment":
        if not isinstance(s, slice):
            raise TypeError("KVSegment supports slices only")
        return KVSegment([k[:, :, s, :].clone() for k in self.keys],
                         [v[:, :, s, :].clone() for v in self.values])


class _CacheAPI:
    """The installed transformers' names for the KV cache (`cache=` since 5.x, `past_key_values=`
    before) and how a `DynamicCache` is built from per-layer tensors and read back."""

    def __init__(self, module: Any) -> None:
        params = inspect.signature(module.forward).parameters
        self.kwarg = "cache" if "cache" in params else "past_key_values"
        self.config = module.config

    def new(self, kv: list[tuple[Any, Any]] | None = None) -> Any:
        from transformers import DynamicCache

        try:
            if kv:
                return DynamicCache(ddp_cache_data=kv, config=self.config)
            return DynamicCache(config=self.config)
        except TypeError:  # transformers 4.x
            if kv:
                return DynamicCache.from_legacy_cache(tuple(kv))
            return DynamicCache()

    @staticmethod
    def layers(cache: Any) -> tuple[list[Any], list[Any]]:
        if hasattr(cache, "layers"):
            return [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers]
        return list(cache.key_cache), list(cache.value_cache)


def _assemble(values: Sequence[KVSegment], length: int) -> list[tuple[Any, Any]]:
    """Per-layer (K, V) of the first `length` tokens held by `values` (segments in order)."""
    import torch

    taken, parts = 0, []
    for seg in values:
        if taken >= length:
            break
        n = min(len(seg), length - taken)
        parts.append((seg, n))
        taken += n
    out = []
    for layer in range(len(values[0].keys)):
        ks = [seg.keys[layer][:, :, :n, :] for seg, n in parts]
        vs = [seg.values[layer][:, :, :n, :] for seg, n in parts]
        out.append((torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)))
    return out


# -- timing and energy --------------------------------------------------------------------------

class _Clock:
    """Marks on the device timeline: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device == "cuda"
        self._torch = torch
        self.name = "cuda-events" if self.cuda else "perf_counter"

    def mark(self) -> Any:
        if self.cuda:
            e = self._torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def ms(self, a: Any, b: Any) -> float:
        if self.cuda:
            return float(a.elapsed_time(b))
        return (b - a) * 1000.0


class _Energy:
    """NVML's total energy counter of the GPU (Volta and later); `read_j()` is None without it."""

    def __init__(self, device: str) -> None:
        self._nvml = None
        self._handle = None
        if device != "cuda":
            return
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            handle = None
            uuid = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "uuid", None)
            if uuid is not None:  # NVML numbers GPUs ignoring CUDA_VISIBLE_DEVICES; the UUID is exact
                try:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
                except pynvml.NVMLError:
                    handle = None
            if handle is None:
                handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self._nvml, self._handle = pynvml, handle
        except Exception:  # no pynvml, no driver, or a GPU without the energy counter
            self._nvml = None

    def read_j(self) -> float | None:
        if self._nvml is None:
            return None
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0


# -- per-step records kept for the cold/reuse check ---------------------------------------------

@dataclass
class _Outputs:
    greedy: np.ndarray  # greedy token at every position (first token, then each output position)
    rows: dict[int, Any]  # position -> full logit row (float32, CPU)
    topk_values: Any = None  # [positions, k] (cold only)
    topk_ids: Any = None
    row_absmax: Any = None  # [positions]


def _keep_outputs(logits: Any, greedy: Any, *, with_topk: bool) -> _Outputs:
    """Compact record of a step's logits (`[positions, vocab]`) for comparing modes."""
    import torch

    n = int(logits.shape[0])
    positions = sorted(set(np.linspace(0, n - 1, num=min(n, _ROWS)).round().astype(int).tolist()))
    rows = {p: logits[p].float().cpu() for p in positions}
    out = _Outputs(greedy=greedy.cpu().numpy(), rows=rows)
    if with_topk:
        v, i = torch.topk(logits.float(), k=min(_TOPK, logits.shape[-1]), dim=-1)
        out.topk_values, out.topk_ids = v.cpu(), i.cpu()
        out.row_absmax = logits.float().abs().amax(dim=-1).cpu()
    return out


def _compare(cold: _Outputs, reuse: _Outputs, atol: float, rtol: float, *, generate: bool) -> Check:
    n = min(cold.greedy.size, reuse.greedy.size)
    same = cold.greedy[:n] == reuse.greedy[:n]
    if generate and not same.all():
        # After the first divergence the contexts differ; compare up to it.
        n = int(np.argmin(same)) + 1
        same = same[:n]
    mismatches = int((~same).sum())
    beyond = 0
    for p in np.nonzero(~same)[0].tolist():
        tol = atol + rtol * float(cold.row_absmax[p])
        other = int(reuse.greedy[p])
        ids = cold.topk_ids[p].tolist()
        vals = cold.topk_values[p]
        if other in ids:
            margin = float(vals[0] - vals[ids.index(other)])
        else:
            margin = float(vals[0] - vals[-1])  # a lower bound of the real margin
        beyond += margin > tol
    max_diff, within, compared = 0.0, True, 0
    for p, row in cold.rows.items():
        if p >= n or p not in reuse.rows:
            continue
        diff = float((row - reuse.rows[p]).abs().max())
        max_diff = max(max_diff, diff)
        within &= diff <= atol + rtol * float(row.abs().max())
        compared += 1
    return Check(positions_compared=n, logit_rows_compared=compared, max_abs_logit_diff=max_diff,
                 logits_within_tolerance=bool(within), greedy_tokens_equal=int(same.sum()),
                 greedy_mismatches=mismatches, greedy_mismatches_beyond_tolerance=int(beyond))


# -- the engine ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Item:
    trace_index: int
    step: Step
    seq: StepSequence


class _Runner:
    def __init__(self, loaded: LoadedModel, *, device: str, dtype: str, block_size: int,
                 capacity_tokens: int | None, generate: bool, max_new_tokens: int | None) -> None:
        import torch

        self.torch = torch
        self.model = loaded.module
        self.info = loaded.info
        self.eos = loaded.eos_token_id
        self.device = device
        self.block_size = block_size
        self.capacity_tokens = capacity_tokens
        self.generate = generate
        self.max_new_tokens = max_new_tokens
        self.api = _CacheAPI(self.model)
        self.clock = _Clock(device)
        self.energy = _Energy(device)
        self.attention_width = self.info.num_attention_heads * self.info.head_dim
        self.evicted_tokens = 0

    def _forward(self, ids: Any, cache: Any, logits_to_keep: int = 0) -> Any:
        kwargs = {self.api.kwarg: cache, "use_cache": True}
        if logits_to_keep:
            kwargs["logits_to_keep"] = logits_to_keep
        return self.model(input_ids=ids, **kwargs)

    def _ids(self, arr: np.ndarray) -> Any:
        return self.torch.as_tensor(np.ascontiguousarray(arr), dtype=self.torch.long,
                                    device=self.device).unsqueeze(0)

    def warmup(self, seq: StepSequence, runs: int) -> None:
        """Untimed passes (kernel selection, allocator, lazy initialisation) over a first prompt."""
        prompt = seq.prompt_ids[:512]
        half = (prompt.size // 2 // self.block_size) * self.block_size
        for _ in range(runs):
            cache = self.api.new()
            self._forward(self._ids(prompt), cache, logits_to_keep=1)
            if seq.output_ids.size:
                self._forward(self._ids(seq.output_ids[:64]), cache)
            if half:
                keys, values = _CacheAPI.layers(cache)
                kv = [(k[:, :, :half, :], v[:, :, :half, :]) for k, v in zip(keys, values)]
                self._forward(self._ids(prompt[half:]), self.api.new(kv), logits_to_keep=1)
        self.clock.sync()

    def run_mode(self, mode: str, items: list[_Item], scope: str, *, keep: str | None,
                 progress: ProgressFn | None, done: int, total: int
                 ) -> tuple[list[ModeStep], list[_Outputs | None]]:
        torch = self.torch
        tree: RadixCache | None = None
        tree_key: Any = object()
        steps: list[ModeStep] = []
        kept: list[_Outputs | None] = []
        for item in items:
            if mode == "reuse":
                key = None if scope == "global" else (item.trace_index, item.step.run_id)
                if key != tree_key:
                    if tree is not None:
                        self.evicted_tokens += tree.evicted_tokens
                    tree = RadixCache(self.capacity_tokens, self.block_size, LRUPolicy())
                    tree_key = key
            step, outputs = self._step(item.seq, tree, keep=keep)
            steps.append(step)
            kept.append(outputs)
            done += 1
            if progress is not None:
                progress(f"{mode} {item.step.run_id}/{item.step.step_id}", done, total)
        if tree is not None:
            self.evicted_tokens += tree.evicted_tokens
        del tree
        if self.device == "cuda":
            torch.cuda.empty_cache()
        return steps, kept

    def _step(self, seq: StepSequence, tree: RadixCache | None, *, keep: str | None
              ) -> tuple[ModeStep, _Outputs | None]:
        torch = self.torch
        clock = self.clock
        prompt = seq.prompt_ids
        n = int(prompt.size)
        if n == 0:
            raise ProfilerError(f"step {seq.run_id}/{seq.step_id} has an empty prompt; nothing to replay")
        forced = seq.output_ids if self.max_new_tokens is None else seq.output_ids[:self.max_new_tokens]
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        clock.sync()
        energy0 = self.energy.read_j()

        t0 = clock.mark()
        match, reused = None, 0
        if tree is not None:
            match = tree.match_prefix(prompt, lock=True)
            reused = min(match.length_tokens, ((n - 1) // self.block_size) * self.block_size)
        cache = self.api.new(_assemble(match.values, reused) if reused else None)
        t1 = clock.mark()
        out = self._forward(self._ids(prompt[reused:]), cache, logits_to_keep=1)
        t2 = clock.mark()
        first_logits = out.logits[0, -1]
        first = first_logits.argmax()
        t3 = clock.mark()

        fed: np.ndarray
        if self.generate:
            limit = self.max_new_tokens if self.max_new_tokens is not None else 32
            rows, tokens, token = [first_logits], [first], first
            for _ in range(limit - 1):
                if self.eos is not None and int(token) == self.eos:
                    break
                step_out = self._forward(token.view(1, 1), cache)
                rows.append(step_out.logits[0, -1])
                token = step_out.logits[0, -1].argmax()
                tokens.append(token)
            generated = torch.stack(tokens)
            logits = torch.stack(rows)
            greedy = generated
            fed = generated[:-1].cpu().numpy()
            output_ids = tuple(int(t) for t in generated.tolist())
            output_count = len(output_ids)
        else:
            if forced.size:
                dec = self._forward(self._ids(forced), cache)
                logits = torch.cat([first_logits[None], dec.logits[0]], dim=0)
            else:
                logits = first_logits[None]
            greedy = logits.argmax(dim=-1)
            fed = forced
            output_ids = ()
            output_count = int(forced.size)
        t4 = clock.mark()

        inserted_tokens_after = 0
        if tree is not None:
            keys, values = _CacheAPI.layers(cache)
            sequence = np.concatenate([prompt, fed]) if fed.size else prompt
            tree.insert(sequence, KVSegment(keys, values))
            tree.unlock(match)
            inserted_tokens_after = tree.total_tokens
        t5 = clock.mark()
        outputs = None if keep is None else _keep_outputs(logits, greedy, with_topk=keep == "topk")
        clock.sync()
        energy1 = self.energy.read_j()
        peak = int(torch.cuda.max_memory_allocated()) if self.device == "cuda" else None
        del cache, out
        return ModeStep(
            prefill_tokens=n - reused, reused_tokens=reused, output_tokens=output_count,
            prefill_ms=clock.ms(t1, t2), ttft_ms=clock.ms(t0, t3), decode_ms=clock.ms(t3, t4),
            cache_lookup_ms=clock.ms(t0, t1), cache_insert_ms=clock.ms(t4, t5),
            prefill_flops=prefill_flops(self.info.non_embedding_params, self.info.num_layers,
                                        self.attention_width, start=reused, end=n),
            peak_gpu_memory_bytes=peak,
            energy_j=None if energy0 is None or energy1 is None else energy1 - energy0,
            cache_tokens_after=inserted_tokens_after, first_token=int(first),
            output_ids=output_ids), outputs


def _ordered(traces: list[Trace], scope: str) -> list[tuple[int, Step]]:
    """LLM steps in the analyzer's order for `scope` (see `profiler.analysis.analyze`)."""
    if scope == "run":
        return [(ti, s) for ti, t in enumerate(traces) for r in t.runs for s in r.steps if s.kind == "llm"]
    return ordered_llm_steps(traces)


def _subset(traces: list[Trace], chosen: list[_Item], token_space: str | None) -> list[Trace]:
    """The traces restricted to the replayed steps; with `token_space`, each step's content replaced
    by its replayed token ids (so the analyzer sees exactly what the engine runs)."""
    by_key = {(it.trace_index, it.step.run_id, it.step.step_id): it for it in chosen}
    out = []
    for ti, trace in enumerate(traces):
        runs = []
        for run in trace.runs:
            steps = []
            for s in run.steps:
                it = by_key.get((ti, s.run_id, s.step_id))
                if it is None:
                    continue
                if token_space is not None:
                    s = replace(s, prompt=Prompt(token_ids=tuple(it.seq.prompt_ids.tolist()),
                                                 tokenizer=token_space),
                                output=Output(token_ids=tuple(it.seq.output_ids.tolist())))
                steps.append(s)
            runs.append(replace(run, steps=tuple(steps)))
        out.append(replace(trace, runs=tuple(runs)))
    return out


def _fraction(saved: float, whole: float) -> float:
    return saved / whole if whole else 0.0


def replay(traces: Trace | Iterable[Trace], *, model: str | LoadedModel = "tiny", device: str = "cpu",
           dtype: str = "float32", mode: str = "both", scope: str = "run",
           capacity_tokens: int | None = None, block_size: int = 16, generate: bool = False,
           max_new_tokens: int | None = None, max_steps: int | None = None, warmup_runs: int | None = None,
           seed: int = 0, progress: ProgressFn | None = None) -> ReplayResult:
    """Replay `traces` with `model` (a preset name, a checkpoint directory, or a `LoadedModel`).

    In stages: plan (the token sequence of each step), measure (prefill each step cold and/or with
    the reuse cache), compare (cold against reuse outputs), predict (the analyzer's figures on the
    same sequences, beside what was measured)."""
    _check_options(mode=mode, scope=scope, dtype=dtype, block_size=block_size,
                   capacity_tokens=capacity_tokens, max_new_tokens=max_new_tokens)
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device, dtype=dtype,
                                                                       seed=seed)
    device, dtype = loaded.info.device, loaded.info.dtype
    items, sources, warnings = _plan(trace_list, SequenceBuilder(loaded.vocab, seed=seed,
                                                                 block_size=block_size),
                                     scope=scope, max_steps=max_steps, max_new_tokens=max_new_tokens,
                                     generate=generate)
    runner = _Runner(loaded, device=device, dtype=dtype, block_size=block_size,
                     capacity_tokens=capacity_tokens, generate=generate, max_new_tokens=max_new_tokens)
    warmup = warmup_runs if warmup_runs is not None else (2 if device == "cuda" else 1)
    results, kept = _measure(runner, items, mode=mode, scope=scope, warmup=warmup, progress=progress)
    checks, comparison = _compare_modes(kept, items, mode=mode, dtype=dtype, generate=generate)
    if comparison is not None and not comparison.equal:
        warnings.append(f"cold and reuse outputs differ beyond tolerance in "
                        f"{comparison.steps_compared - comparison.steps_equal} step(s) "
                        f"(largest logit difference {comparison.max_abs_logit_diff:.3g})")
    if generate:
        warnings.append("outputs were generated greedily: the cache holds generated, not recorded, "
                        "outputs, so measured reuse can differ from the prediction")
    step_records, prediction, cold, reuse = _predict(trace_list, items, results, checks, loaded.info,
                                                     scope=scope, block_size=block_size)
    options = ReplayOptions(mode=mode, scope=scope, capacity_tokens=capacity_tokens,
                            block_size=block_size, generate=generate, max_new_tokens=max_new_tokens,
                            max_steps=max_steps, warmup_runs=warmup, timer=runner.clock.name,
                            eviction_policy="lru", seed=seed)
    return ReplayResult(model=loaded.info, options=options, token_sources=sources,
                        steps=tuple(step_records), cold=cold, reuse=reuse, comparison=comparison,
                        prediction=prediction, evicted_tokens=runner.evicted_tokens,
                        traces=tuple(t.path or "" for t in trace_list), warnings=tuple(warnings))


def _check_options(*, mode: str, scope: str, dtype: str, block_size: int, capacity_tokens: int | None,
                   max_new_tokens: int | None) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}: use cold, reuse or both")
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}: use run or global")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if block_size < 1:
        raise ConfigError(f"--block-size must be at least 1, got {block_size}")
    if capacity_tokens is not None and capacity_tokens < 0:
        raise ConfigError(f"--capacity must be >= 0 tokens, got {capacity_tokens}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")


def _plan(trace_list: list[Trace], builder: SequenceBuilder, *, scope: str, max_steps: int | None,
          max_new_tokens: int | None, generate: bool) -> tuple[list[_Item], dict[str, int], list[str]]:
    """Stage 1: the steps to replay, in replay order, each with its token sequence; how many came
    from each token source; and the warnings those sources call for."""
    ordered = _ordered(trace_list, scope)
    if max_steps is not None:
        ordered = ordered[:max_steps]
    if not ordered:
        raise ProfilerError("the trace has no LLM steps to replay")
    items = []
    for ti, step in ordered:
        seq = builder.build(step)
        if max_new_tokens is not None and not generate:
            seq = replace(seq, output_ids=seq.output_ids[:max_new_tokens])
        items.append(_Item(ti, step, seq))

    warnings: list[str] = []
    sources: dict[str, int] = {}
    for it in items:
        sources[it.seq.source] = sources.get(it.seq.source, 0) + 1
    if "mapped-ctxprof-tokens" in sources or "mapped-token-ids" in sources:
        warnings.append("token ids were hashed into the model's vocabulary (equal tokens stay equal; "
                        "distinct tokens collide with probability ~1/vocabulary)")
    if "expanded-block-hashes" in sources:
        warnings.append("content-free steps: each block hash was expanded into block_size token ids "
                        "(equal hash -> equal ids); outputs without hashes are step-unique filler")
    fillers = sum(1 for it in items if not it.seq.output_recorded)
    if fillers:
        warnings.append(f"{fillers} step(s) recorded only an output length: their outputs are "
                        "step-unique filler tokens")
    return items, sources, warnings


def _measure(runner: "_Runner", items: list[_Item], *, mode: str, scope: str, warmup: int,
             progress: ProgressFn | None) -> tuple[dict[str, list[ModeStep]],
                                                   dict[str, list[_Outputs | None]]]:
    """Stage 2: prefill (and decode) every step in each mode; per mode the measured steps and the
    outputs kept for the comparison."""
    import torch

    modes = ["cold", "reuse"] if mode == "both" else [mode]
    total = len(items) * len(modes)
    results: dict[str, list[ModeStep]] = {}
    kept: dict[str, list[_Outputs | None]] = {}
    with torch.inference_mode():
        runner.warmup(items[0].seq, warmup)
        done = 0
        for m in modes:
            keep = None if mode != "both" else ("topk" if m == "cold" else "rows")
            results[m], kept[m] = runner.run_mode(m, items, scope, keep=keep, progress=progress,
                                                  done=done, total=total)
            done += len(items)
    return results, kept


def _compare_modes(kept: dict[str, list[_Outputs | None]], items: list[_Item], *, mode: str,
                   dtype: str, generate: bool) -> tuple[list[Check | None], Comparison | None]:
    """Stage 3: cold against reuse outputs, step by step, within the dtype's tolerance."""
    atol, rtol = TOLERANCES[dtype]
    if mode != "both":
        return [None] * len(items), None
    checks: list[Check | None] = [_compare(c, r, atol, rtol, generate=generate)  # type: ignore[arg-type]
                                  for c, r in zip(kept["cold"], kept["reuse"])]
    done_checks = [c for c in checks if c is not None]
    comparison = Comparison(
        atol=atol, rtol=rtol, steps_compared=len(done_checks),
        steps_equal=sum(1 for c in done_checks if c.equal),
        max_abs_logit_diff=max((c.max_abs_logit_diff for c in done_checks), default=0.0),
        greedy_tokens_compared=sum(c.positions_compared for c in done_checks),
        greedy_mismatches=sum(c.greedy_mismatches for c in done_checks),
        greedy_mismatches_beyond_tolerance=sum(c.greedy_mismatches_beyond_tolerance
                                               for c in done_checks))
    return checks, comparison


def _predict(trace_list: list[Trace], items: list[_Item], results: dict[str, list[ModeStep]],
             checks: list[Check | None], info: ModelInfo, *, scope: str, block_size: int
             ) -> tuple[list[StepReplay], Prediction, ModeTotals | None, ModeTotals | None]:
    """Stage 4: the analyzer's prediction, on the replayed sequences and on the original trace,
    beside what was measured; one record per step and the totals of each mode."""
    from profiler.analysis import analyze

    space = f"replay:{info.name}"
    predicted = analyze(_subset(trace_list, items, space), scope=scope, block_size=block_size)
    original = analyze(_subset(trace_list, items, None), scope=scope, block_size=block_size)
    # Analysis runs come in input order (trace by trace, run by run), as `_subset` keeps them.
    run_keys = [(ti, run.run_id) for ti, t in enumerate(trace_list) for run in t.runs]
    pred_by_key = {}
    for (ti, _), rp, ro in zip(run_keys, predicted.runs, original.runs):
        for sp, so in zip(rp.steps, ro.steps):
            pred_by_key[(ti, sp.run_id, sp.step_id)] = (sp, so)
    step_records = []
    for index, it in enumerate(items):
        sp, so = pred_by_key[(it.trace_index, it.step.run_id, it.step.step_id)]
        n = it.seq.prompt_tokens
        can_skip = min(sp.block_reused_tokens, ((n - 1) // block_size) * block_size)
        step_records.append(StepReplay(
            run_id=it.step.run_id, step_id=it.step.step_id, name=it.step.name, index=index,
            token_source=it.seq.source, prompt_tokens=n, output_tokens=it.seq.output_tokens,
            output_recorded=it.seq.output_recorded, predicted_reused_tokens=can_skip,
            analyzer_prefix_reused_tokens=so.prefix_reused_tokens,
            cold=results.get("cold", [None] * len(items))[index],
            reuse=results.get("reuse", [None] * len(items))[index], check=checks[index]))

    cold = ModeTotals.of(results["cold"]) if "cold" in results else None
    reuse = ModeTotals.of(results["reuse"]) if "reuse" in results else None
    prompt_total = sum(it.seq.prompt_tokens for it in items)
    pred_saved = sum(s.predicted_reused_tokens for s in step_records)
    width = info.num_attention_heads * info.head_dim
    flops_cold = sum(prefill_flops(info.non_embedding_params, info.num_layers, width, start=0,
                                   end=s.prompt_tokens) for s in step_records)
    flops_pred = sum(prefill_flops(info.non_embedding_params, info.num_layers, width,
                                   start=s.predicted_reused_tokens, end=s.prompt_tokens)
                     for s in step_records)
    measured_flops = None if reuse is None else 1 - _fraction(reuse.prefill_flops, flops_cold)
    both = cold is not None and reuse is not None
    prediction = Prediction(
        predicted_saved_prefill_tokens=pred_saved,
        measured_saved_prefill_tokens=None if reuse is None else reuse.reused_tokens,
        trace_prefix_reused_tokens=original.totals.prefix_reused_tokens,
        trace_block_reused_tokens=original.totals.block_reused_tokens,
        prompt_tokens=prompt_total,
        predicted_saved_token_fraction=_fraction(pred_saved, prompt_total),
        predicted_saved_flops_fraction=1 - _fraction(flops_pred, flops_cold),
        measured_saved_flops_fraction=measured_flops,
        measured_saved_prefill_time_fraction=(1 - _fraction(reuse.prefill_ms, cold.prefill_ms)
                                              if both else None),
        measured_saved_ttft_fraction=(1 - _fraction(reuse.ttft_ms, cold.ttft_ms) if both else None),
        prefill_speedup=(cold.prefill_ms / reuse.prefill_ms if both and reuse.prefill_ms else None),
        ttft_speedup=(cold.ttft_ms / reuse.ttft_ms if both and reuse.ttft_ms else None),
    )
    return step_records, prediction, cold, reuse
