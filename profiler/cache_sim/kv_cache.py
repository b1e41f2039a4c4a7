"""Engine KV-cache simulation: what a serving engine's prefix cache (vLLM automatic prefix caching,
SGLang RadixAttention) would have served of a trace at a given capacity.

Contract:
- `simulate_engine(traces, capacities, block_size=16, policy="lru")` replays every LLM step of the
  input in start-time order (ties: file order) through one shared cache per capacity (global scope, as
  one serving engine sees all requests) and returns an `EngineSimulation`: per capacity the prompt
  tokens served from the cache (`hit_tokens`), the prefill tokens saved and the blocks evicted, beside
  the ideal (unbounded) cache. Capacity `None` is unbounded.
- `KVBlockCache` is the cache itself, usable on its own: `match_prefix(hashes)`, `insert(hashes)`,
  `evict(...)`, with the eviction policy a small strategy object (`LRUPolicy`, `FIFOPolicy`).
- `parse_capacity(text, preset)` reads "100000" (tokens) or "8GiB" (bytes of a model preset's KV).

The model (one step): the prompt is cut into blocks of `block_size` tokens, each identified by a
chained hash (`BlockHash`: the hash of its parent's hash and its own tokens, so equal hashes mean
equal prefixes, as in vLLM). The prompt's blocks are matched from the start while they are cached;
the matched full blocks are the hit. Then the blocks of prompt + output are inserted (the engine keeps
what it computed), evicting blocks when the cache is full. Only *leaf* blocks are evictable (a block
that a cached block extends is in use by that prefix, as in SGLang's radix tree), the policy picks
which leaf, and the blocks of the request being served are pinned. Only full blocks are cached for
token-level steps (vLLM never shares a partial block). Content-free steps (block hashes only, e.g.
Mooncake traces) use the trace's own hashes and block size; their last block may be partial, and a
match of it counts its real token count.

`prefill_tokens_saved` is the hit less one token when the whole prompt hit: an engine always
recomputes the last prompt token to get the logits of the first output token (vLLM does this).

KV of different models and tokenizers never match (the hashes are salted with both). Nothing depends
on wall-clock time: recency is the step's position in the replay. Costs are linear in the total number
of tokens (each step's tokens are hashed once per step, each block is inserted and evicted at most
once per insertion). The cache is the shared `profiler.prefix.PrefixIndex`: LRU eviction is O(1) per
block (leaf-only LRU is plain LRU over blocks, see `profiler.prefix.index`), FIFO a heap of leaves.
An LRU sweep hashes every step once, then replays the hashes through each capacity's cache in one
tight loop per cache (`_LRUSweep`), within a small factor of a bare OrderedDict LRU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from profiler.cache_sim.presets import (
    KV_PRESETS,
    ModelPreset,
    parse_capacity,
    resolve_preset,
)
from profiler.errors import ProfilerError
from profiler.tokens import StepTokenizer
from profiler.prefix import (
    POLICIES,
    BlockHash,
    EvictionPolicy,
    FIFOPolicy,
    LRUPolicy,
    PrefixIndex,
    block_hashes,
    chained_id_block_hashes_many,
    id_block_hashes,
    make_policy,
    namespace_salt,
    prefix_hashes,
)
from profiler.trace.model import Step, Trace, ordered_llm_steps

__all__ = ["BlockHash", "EvictionPolicy", "EngineCapacityResult", "EngineSimulation", "FIFOPolicy", "KVBlockCache",
           "LRUPolicy", "ModelPreset", "POLICIES", "KV_PRESETS", "parse_capacity", "resolve_preset",
           "simulate_engine", "step_blocks"]

ENGINE_SCHEMA = "ctxprof.engine-cache/1"


# --- the cache ---------------------------------------------------------------------------------------

class KVBlockCache(PrefixIndex):
    """A prefix cache of KV blocks with a capacity in blocks (None: unbounded): the shared
    `PrefixIndex` with the engine's vocabulary. `insert(hashes)` serves one request (cached blocks are
    used again, the rest inserted as far as the capacity allows, evicting leaves by policy, never the
    request's own blocks) and returns how many leading blocks are cached afterwards."""

    def __init__(self, capacity_blocks: int | None, policy: EvictionPolicy | None = None) -> None:
        super().__init__(capacity_blocks, policy)

    @property
    def capacity_blocks(self) -> int | None:
        return self.capacity

    @property
    def evicted_blocks(self) -> int:
        return self.evicted

    def match_prefix(self, hashes: Sequence[BlockHash]) -> int:
        """How many leading blocks of `hashes` are cached (no side effects)."""
        return self.match_scan(hashes)

    def insert(self, hashes: Sequence[BlockHash], value: Any = None, start: int = 0) -> int:  # type: ignore[override]
        return self.serve(list(hashes[start:]) if start else list(hashes), value)


# --- steps as blocks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepBlocks:
    """One step as the engine sees it: the chained hashes of prompt + output blocks, how many of them
    are prompt blocks that can hit, and the prompt's length in tokens."""

    hashes: Sequence[BlockHash]
    prompt_blocks: int
    prompt_tokens: int
    block_size: int


def step_blocks(step: Step, tokenizer: StepTokenizer, block_size: int) -> StepBlocks | None:
    """The blocks of one step, or None when it has no content to hash."""
    prompt = step.prompt
    level = prompt.level
    model = step.model or ""
    if level in ("text", "tokens"):
        p = tokenizer.prompt_tokens(step)
        o = tokenizer.output_tokens(step)
        seq = np.concatenate([p, o]) if o.size else p
        prefix = prefix_hashes(seq, namespace_salt(f"{tokenizer.namespace(step)}|{model}"))
        hashes = block_hashes(prefix, block_size)
        return StepBlocks(hashes, int(p.size) // block_size, int(p.size), block_size)
    if level == "hashes":
        bs = prompt.block_size or block_size
        ids = tuple(prompt.block_hashes or ()) + tuple(step.output.block_hashes or ())
        hashes = id_block_hashes(ids, prompt.chained, namespace_salt(f"blocks/{bs}|{model}"))
        return StepBlocks(hashes, len(prompt.block_hashes or ()), prompt.num_tokens or 0, bs)
    return None


# --- results -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineCapacityResult:
    capacity_tokens: int | None  # None: unbounded
    hit_tokens: int
    hit_rate: float  # hit_tokens / total prompt tokens
    prefill_tokens_saved: int
    evicted_blocks: int
    hit_blocks: int = 0
    capacity_blocks: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EngineSimulation:
    block_size: int
    policy: str
    total_prompt_tokens: int
    ideal_hit_tokens: int
    ideal_hit_rate: float
    results: tuple[EngineCapacityResult, ...]
    steps: int = 0
    skipped_steps: int = 0  # LLM steps with no content to hash (left out)
    total_prompt_blocks: int = 0
    ideal_hit_blocks: int = 0
    warnings: tuple[str, ...] = field(default=())

    @property
    def ideal_block_hit_rate(self) -> float:
        return self.ideal_hit_blocks / self.total_prompt_blocks if self.total_prompt_blocks else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ENGINE_SCHEMA,
            "block_size": self.block_size,
            "policy": self.policy,
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "total_prompt_tokens": self.total_prompt_tokens,
            "total_prompt_blocks": self.total_prompt_blocks,
            "ideal_hit_tokens": self.ideal_hit_tokens,
            "ideal_hit_rate": self.ideal_hit_rate,
            "ideal_hit_blocks": self.ideal_hit_blocks,
            "ideal_block_hit_rate": self.ideal_block_hit_rate,
            "results": [r.to_dict() for r in self.results],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "engine simulation") -> "EngineSimulation":
        """The inverse of `to_dict`; a malformed field raises `ProfilerError` naming it."""
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, where)
        return record_from_dict(cls, d, where, nested={
            "results": tuple(record_from_dict(EngineCapacityResult, r, f"{where}.results[{i}]")
                             for i, r in enumerate(expect_list(d, "results", where))),
            "warnings": tuple(str(w) for w in expect_list(d, "warnings", where))})


class _Tally:
    def __init__(self) -> None:
        self.hit_tokens = 0
        self.hit_blocks = 0
        self.saved = 0

    def add(self, blocks: StepBlocks, matched: int) -> None:
        hit = min(matched * blocks.block_size, blocks.prompt_tokens)
        self.hit_tokens += hit
        self.hit_blocks += matched
        self.saved += min(hit, max(blocks.prompt_tokens - 1, 0))


class _LRUSweep:
    """Every capacity of a sweep under LRU, one cache at a time: the steps' block hashes are collected
    in order (`step`), then each cache replays all of them in one tight loop over its ordered dict
    (`close`) doing what `PrefixIndex.serve` with `LRUPolicy` does (deepest new block first, the
    request's head most recent, least recent evicted first, never more than the capacity, never the
    request's own blocks). One cache at a time keeps its dict hot in the CPU cache and drops the
    half-dozen method calls per cache and request that made a sweep twice a bare OrderedDict LRU.
    Tests compare it with the generic `serve` path and with a stack-distance LRU oracle."""

    def __init__(self, caches: list[tuple[KVBlockCache, _Tally]]) -> None:
        self.caches = caches
        self.hashes: list[Sequence[BlockHash]] = []
        self.shape: list[tuple[int, int, int]] = []  # (prompt blocks, prompt tokens, block size)

    def step(self, blocks: StepBlocks) -> None:
        self.hashes.append(blocks.hashes)
        self.shape.append((blocks.prompt_blocks, blocks.prompt_tokens, blocks.block_size))

    def close(self) -> None:
        if not self.shape:
            return
        pb, pt, bs = (np.asarray(col, dtype=np.int64) for col in zip(*self.shape))
        for cache, tally in self.caches:
            matched = np.asarray(self._replay(cache), dtype=np.int64)
            blocks = np.minimum(matched, pb)
            hit = np.minimum(blocks * bs, pt)
            tally.hit_tokens += int(hit.sum())
            tally.hit_blocks += int(blocks.sum())
            tally.saved += int(np.minimum(hit, np.maximum(pt - 1, 0)).sum())

    def _replay(self, cache: KVBlockCache) -> list[int]:
        entries, cap, out = cache._entries, cache.capacity, []
        record = out.append
        if cap is None:
            for hashes in self.hashes:
                n, m = len(hashes), 0
                while m < n and hashes[m] in entries:
                    m += 1
                record(m)
                for h in hashes[m:]:
                    entries[h] = None
            return out
        move, pop, evicted = entries.move_to_end, entries.popitem, 0  # type: ignore[attr-defined]
        for hashes in self.hashes:
            n, m = len(hashes), 0
            while m < n and hashes[m] in entries:
                m += 1
            record(m)
            for h in reversed(hashes[m:n if n <= cap else (cap if cap > m else m)]):
                entries[h] = None
            if m:
                for h in reversed(hashes[:m]):
                    move(h)
            over = len(entries) - cap
            if over > 0:
                evicted += over
                for _ in range(over):
                    pop(False)
        cache.evicted += evicted
        return out


def _prehash_chained(steps: Sequence[Step], bs: int) -> dict[int, StepBlocks]:
    """The blocks of every content-free step with chained ids, hashed in one pass per namespace."""
    groups: dict[str, list[Step]] = {}
    for s in steps:
        if s.prompt.level == "hashes" and s.prompt.chained:
            groups.setdefault(f"blocks/{s.prompt.block_size or bs}|{s.model or ''}", []).append(s)
    out: dict[int, StepBlocks] = {}
    for namespace, group in groups.items():
        ids = [tuple(s.prompt.block_hashes or ()) + tuple(s.output.block_hashes or ()) for s in group]
        for s, hashes in zip(group, chained_id_block_hashes_many(ids, namespace_salt(namespace))):
            out[id(s)] = StepBlocks(hashes, len(s.prompt.block_hashes or ()), s.prompt.num_tokens or 0,
                                    s.prompt.block_size or bs)
    return out


def _engine_block_size(steps: Sequence[Step], requested: int) -> int:
    sizes = {s.prompt.block_size or requested for s in steps if s.prompt.level == "hashes"}
    if len(sizes) > 1:
        raise ProfilerError(f"the traces' block hashes use different block sizes ({sorted(sizes)}); "
                            "simulate them separately")
    return sizes.pop() if sizes else requested  # type: ignore[return-value]


def simulate_engine(traces: Trace | Iterable[Trace], capacities: list[int | None], *,
                    block_size: int = 16, policy: str = "lru",
                    tokenizer: StepTokenizer | None = None,
                    progress: Callable[[int, int], None] | None = None) -> EngineSimulation:
    """Replay the traces through a KV cache of each capacity (tokens; None = unbounded).
    `progress`, when given, is called with (steps, tokens) done after each step."""
    if block_size < 1:
        raise ProfilerError(f"block size must be at least 1 token, got {block_size}")
    make_policy(policy)  # fail early on an unknown name
    for c in capacities:
        if c is not None and c < 0:
            raise ProfilerError(f"capacity must be >= 0 tokens, got {c}")
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    tok = tokenizer or StepTokenizer()
    steps = [step for _, step in ordered_llm_steps(trace_list)]
    bs = _engine_block_size(steps, block_size)
    warnings = [w for t in trace_list for w in t.warnings]
    if bs != block_size and any(s.prompt.level in ("text", "tokens") for s in steps):
        warnings.append(f"token-level steps are cut into the {bs}-token blocks of the traces' block "
                        f"hashes, not {block_size}")

    ideal = KVBlockCache(None)
    bounded = [KVBlockCache(None if c is None else c // bs, make_policy(policy)) for c in capacities]
    ideal_tally, tallies = _Tally(), [_Tally() for _ in capacities]
    caches = list(zip([ideal, *bounded], [ideal_tally, *tallies]))
    prehashed = _prehash_chained(steps, bs)
    lru_sweep = _LRUSweep(caches) if policy == "lru" else None
    total_tokens = total_blocks = skipped = simulated = 0
    for step in steps:
        blocks = prehashed.pop(id(step), None) or step_blocks(step, tok, bs)
        if blocks is None:
            skipped += 1
            continue
        simulated += 1
        total_tokens += blocks.prompt_tokens
        total_blocks += blocks.prompt_blocks
        hashes = blocks.hashes
        prompt_blocks = blocks.prompt_blocks
        if lru_sweep is not None:
            lru_sweep.step(blocks)
        else:
            for cache, tally in caches:
                matched = cache.match_scan(hashes)
                tally.add(blocks, min(matched, prompt_blocks))
                cache.serve(hashes, matched=matched)
        if progress is not None:
            progress(1, blocks.prompt_tokens)
    if lru_sweep is not None:
        lru_sweep.close()
    if skipped:
        warnings.append(f"{skipped} LLM step(s) have no prompt content to hash and were left out")

    def rate(n: int) -> float:
        return n / total_tokens if total_tokens else 0.0

    results = tuple(
        EngineCapacityResult(capacity_tokens=c, hit_tokens=t.hit_tokens, hit_rate=rate(t.hit_tokens),
                             prefill_tokens_saved=t.saved, evicted_blocks=cache.evicted_blocks,
                             hit_blocks=t.hit_blocks, capacity_blocks=cache.capacity_blocks)
        for c, t, cache in zip(capacities, tallies, bounded))
    return EngineSimulation(block_size=bs, policy=policy, total_prompt_tokens=total_tokens,
                            ideal_hit_tokens=ideal_tally.hit_tokens,
                            ideal_hit_rate=rate(ideal_tally.hit_tokens), results=results,
                            steps=simulated, skipped_steps=skipped, total_prompt_blocks=total_blocks,
                            ideal_hit_blocks=ideal_tally.hit_blocks, warnings=tuple(warnings))
