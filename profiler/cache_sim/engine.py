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
once per insertion), with a heap of eviction candidates (log factor).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, NewType, Protocol, Sequence

import numpy as np

from profiler.cache_sim.presets import (
    PRESETS,
    ModelPreset,
    parse_capacity,
    resolve_preset,
)
from profiler.errors import ProfilerError
from profiler.tokens import StepTokenizer
from profiler.trace.model import Step, Trace, step_order_key

__all__ = ["BlockHash", "EngineCapacityResult", "EngineSimulation", "FIFOPolicy", "KVBlockCache",
           "LRUPolicy", "ModelPreset", "POLICIES", "PRESETS", "parse_capacity", "resolve_preset",
           "simulate_engine", "step_blocks"]

ENGINE_SCHEMA = "ctxprof.engine-cache/1"

# A block's identity: the hash of its parent block's hash and its own content (so of the whole prefix).
BlockHash = NewType("BlockHash", int)


# --- eviction policies ------------------------------------------------------------------------------

class EvictionPolicy(Protocol):
    """Chooses which evictable block goes when the cache is full.

    The cache tells the policy when a block is accessed (`touch`), when a block has become a leaf and
    so may be evicted (`candidate`), and when a block left the cache (`forget`). `pop_victim` returns
    the block to evict among those `evictable` says yes to, or None when there is none.
    """

    name: str

    def touch(self, block: BlockHash, tick: int, depth: int) -> None: ...

    def candidate(self, block: BlockHash) -> None: ...

    def forget(self, block: BlockHash) -> None: ...

    def pop_victim(self, evictable: Callable[[BlockHash], bool]) -> BlockHash | None: ...


class _HeapPolicy:
    """Candidates in a heap ordered by a key the subclass defines; entries whose key has changed since
    they were pushed (the block was used again, or left the cache) are stale and skipped."""

    name = "heap"

    def __init__(self) -> None:
        self._key: dict[BlockHash, tuple[int, int]] = {}
        self._heap: list[tuple[tuple[int, int], int, BlockHash]] = []
        self._order = itertools.count()

    def touch(self, block: BlockHash, tick: int, depth: int) -> None:
        raise NotImplementedError

    def candidate(self, block: BlockHash) -> None:
        heapq.heappush(self._heap, (self._key[block], next(self._order), block))

    def forget(self, block: BlockHash) -> None:
        self._key.pop(block, None)

    def pop_victim(self, evictable: Callable[[BlockHash], bool]) -> BlockHash | None:
        while self._heap:
            key, _, block = heapq.heappop(self._heap)
            # A pinned or no-longer-leaf block is dropped here; the cache offers it again when it
            # becomes a free leaf (at the end of the request that pinned it, or when its child goes).
            if self._key.get(block) == key and evictable(block):
                return block
        return None


class LRUPolicy(_HeapPolicy):
    """Least recently used leaf first; among blocks used by the same request, the deepest first (the
    tail of a prefix goes before its head, as SGLang and vLLM evict)."""

    name = "lru"

    def touch(self, block: BlockHash, tick: int, depth: int) -> None:
        self._key[block] = (tick, -depth)


class FIFOPolicy(_HeapPolicy):
    """First inserted leaf first, however recently it was used (a baseline for LRU)."""

    name = "fifo"

    def touch(self, block: BlockHash, tick: int, depth: int) -> None:
        self._key.setdefault(block, (tick, -depth))


POLICIES: dict[str, Callable[[], EvictionPolicy]] = {"lru": LRUPolicy, "fifo": FIFOPolicy}


def make_policy(name: str) -> EvictionPolicy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ProfilerError(f"unknown eviction policy {name!r}; use one of {', '.join(POLICIES)}") from None


# --- the cache ---------------------------------------------------------------------------------------

class KVBlockCache:
    """A prefix cache of KV blocks with a capacity in blocks (None: unbounded).

    Blocks form a tree (each block's parent is the block before it in its sequence); the cache holds
    a prefix-closed set of blocks, because a block is inserted after its parent and only leaves are
    evicted.
    """

    def __init__(self, capacity_blocks: int | None, policy: EvictionPolicy | None = None) -> None:
        if capacity_blocks is not None and capacity_blocks < 0:
            raise ProfilerError(f"cache capacity must be >= 0 blocks, got {capacity_blocks}")
        self.capacity_blocks = capacity_blocks
        self.policy = policy or LRUPolicy()
        self._parent: dict[BlockHash, BlockHash | None] = {}
        self._children: dict[BlockHash, int] = {}
        self._tick = 0
        self.evicted_blocks = 0

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, block: object) -> bool:
        return block in self._parent

    def match_prefix(self, hashes: Sequence[BlockHash]) -> int:
        """How many leading blocks of `hashes` are cached (no side effects)."""
        n = 0
        for h in hashes:
            if h not in self._parent:
                break
            n += 1
        return n

    def insert(self, hashes: Sequence[BlockHash]) -> int:
        """Serve one request's blocks: mark the cached ones used, insert the rest (evicting as needed).
        Returns how many leading blocks are cached afterwards (fewer than all when the cache cannot
        make room without evicting this request's own blocks)."""
        self._tick += 1
        bounded = self.capacity_blocks is not None
        policy = self.policy
        pinned: set[BlockHash] = set()
        parent: BlockHash | None = None
        cached = 0
        for depth, h in enumerate(hashes):
            if h not in self._parent:
                if bounded and len(self._parent) >= self.capacity_blocks:  # type: ignore[operator]
                    if not self.evict(1, pinned):
                        break
                self._parent[h] = parent
                self._children[h] = 0
                if parent is not None:
                    self._children[parent] += 1
            if bounded:
                policy.touch(h, self._tick, depth)
            pinned.add(h)
            parent = h
            cached += 1
        if bounded and parent is not None and self._children[parent] == 0:
            policy.candidate(parent)
        return cached

    def evict(self, count: int, pinned: Iterable[BlockHash] = ()) -> int:
        """Evict up to `count` leaf blocks chosen by the policy, never one in `pinned`; returns how
        many went."""
        pinned = pinned if isinstance(pinned, (set, frozenset)) else set(pinned)
        done = 0
        while done < count:
            victim = self.policy.pop_victim(
                lambda b: b in self._children and self._children[b] == 0 and b not in pinned)
            if victim is None:
                break
            parent = self._parent.pop(victim)
            del self._children[victim]
            self.policy.forget(victim)
            self.evicted_blocks += 1
            done += 1
            if parent is not None:
                self._children[parent] -= 1
                if self._children[parent] == 0:
                    self.policy.candidate(parent)
        return done


# --- steps as blocks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepBlocks:
    """One step as the engine sees it: the chained hashes of prompt + output blocks, how many of them
    are prompt blocks that can hit, and the prompt's length in tokens."""

    hashes: tuple[BlockHash, ...]
    prompt_blocks: int
    prompt_tokens: int
    block_size: int


def _salt(namespace: str) -> bytes:
    return hashlib.blake2b(namespace.encode(), digest_size=8).digest()


def chain_token_blocks(tokens: np.ndarray, block_size: int, namespace: str) -> list[BlockHash]:
    """Chained hashes of the full blocks of `tokens` (as vLLM: hash(parent hash, block tokens))."""
    n = int(tokens.size) // block_size
    data = np.ascontiguousarray(tokens[: n * block_size], dtype="<i8").tobytes()
    width = block_size * 8
    parent = _salt(namespace)
    out: list[BlockHash] = []
    for i in range(n):
        parent = hashlib.blake2b(parent + data[i * width:(i + 1) * width], digest_size=8).digest()
        out.append(BlockHash(int.from_bytes(parent, "little")))
    return out


def chain_ids(ids: Sequence[int], chained: bool, namespace: str) -> list[BlockHash]:
    """Block ids of a content-free trace as chained hashes in `namespace`: chained ids (Mooncake,
    vLLM) already identify their prefix; per-block content ids are chained here."""
    salt = int.from_bytes(_salt(namespace), "little")
    out: list[BlockHash] = []
    prev = salt
    for h in ids:
        prev = hash((salt, h)) if chained else hash((prev, h))
        out.append(BlockHash(prev))
    return out


def step_blocks(step: Step, tokenizer: StepTokenizer, block_size: int) -> StepBlocks | None:
    """The blocks of one step, or None when it has no content to hash."""
    prompt = step.prompt
    level = prompt.level
    model = step.model or ""
    if level in ("text", "tokens"):
        p = tokenizer.prompt_tokens(step)
        o = tokenizer.output_tokens(step)
        seq = np.concatenate([p, o]) if o.size else p
        hashes = chain_token_blocks(seq, block_size, f"{tokenizer.namespace(step)}|{model}")
        return StepBlocks(tuple(hashes), int(p.size) // block_size, int(p.size), block_size)
    if level == "hashes":
        bs = prompt.block_size or block_size
        ids = tuple(prompt.block_hashes or ()) + tuple(step.output.block_hashes or ())
        hashes = chain_ids(ids, prompt.chained, f"blocks/{bs}|{model}")
        return StepBlocks(tuple(hashes), len(prompt.block_hashes or ()), prompt.num_tokens or 0, bs)
    return None


def ordered_llm_steps(traces: Sequence[Trace]) -> list[Step]:
    """LLM steps of all traces by start time, ties (and missing times) in file order."""
    keyed = []
    for ti, trace in enumerate(traces):
        for run in trace.runs:
            for si, step in enumerate(run.steps):
                if step.kind != "llm":
                    continue
                start, pos = step_order_key(step, step.line if step.line is not None else si)
                keyed.append(((start, ti, pos), step))
    keyed.sort(key=lambda kv: kv[0])
    return [s for _, s in keyed]


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


def _engine_block_size(steps: Sequence[Step], requested: int) -> int:
    sizes = {s.prompt.block_size or requested for s in steps if s.prompt.level == "hashes"}
    if len(sizes) > 1:
        raise ProfilerError(f"the traces' block hashes use different block sizes ({sorted(sizes)}); "
                            "simulate them separately")
    return sizes.pop() if sizes else requested  # type: ignore[return-value]


def simulate_engine(traces: Trace | Iterable[Trace], capacities: list[int | None], *,
                    block_size: int = 16, policy: str = "lru",
                    tokenizer: StepTokenizer | None = None) -> EngineSimulation:
    """Replay the traces through a KV cache of each capacity (tokens; None = unbounded)."""
    if block_size < 1:
        raise ProfilerError(f"block size must be at least 1 token, got {block_size}")
    make_policy(policy)  # fail early on an unknown name
    for c in capacities:
        if c is not None and c < 0:
            raise ProfilerError(f"capacity must be >= 0 tokens, got {c}")
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    tok = tokenizer or StepTokenizer()
    steps = ordered_llm_steps(trace_list)
    bs = _engine_block_size(steps, block_size)
    warnings = [w for t in trace_list for w in t.warnings]
    if bs != block_size and any(s.prompt.level in ("text", "tokens") for s in steps):
        warnings.append(f"token-level steps are cut into the {bs}-token blocks of the traces' block "
                        f"hashes, not {block_size}")

    ideal = KVBlockCache(None)
    bounded = [KVBlockCache(None if c is None else c // bs, make_policy(policy)) for c in capacities]
    ideal_tally, tallies = _Tally(), [_Tally() for _ in capacities]
    total_tokens = total_blocks = skipped = simulated = 0
    for step in steps:
        blocks = step_blocks(step, tok, bs)
        if blocks is None:
            skipped += 1
            continue
        simulated += 1
        total_tokens += blocks.prompt_tokens
        total_blocks += blocks.prompt_blocks
        prompt_hashes = blocks.hashes[: blocks.prompt_blocks]
        for cache, tally in zip([ideal, *bounded], [ideal_tally, *tallies]):
            tally.add(blocks, cache.match_prefix(prompt_hashes))
            cache.insert(blocks.hashes)
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
