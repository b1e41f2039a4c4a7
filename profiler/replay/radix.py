"""The replay engine's cache of KV blocks, as SGLang's RadixAttention cache, with a token capacity:
the shared prefix index (`profiler.prefix.PrefixIndex`) with a value (the KV of the block) on each key.

Contract:
- Keys are token ids; only whole blocks of `block_size` tokens are stored (a sequence's partial last
  block is never cached, as vLLM / SGLang with a page size). Each block is one key of the index (the
  prefix hash at the block's end, from the one hash scheme) holding a `value` of `block_size` tokens
  that supports `len()` and slicing (`value[a:b]`): the KV tensors of those tokens in the replay
  engine, a tuple of tokens in tests.
- `match_prefix(tokens)` returns the longest cached block-aligned prefix of `tokens` and the values
  along it, one per block; `lock=True` protects the matched blocks from eviction until `unlock(match)`.
- `insert(tokens, value)` caches the full blocks of `tokens` (`value` covers all of `tokens`; the
  cache slices out the blocks it does not hold yet), evicting unlocked leaves first when the capacity
  would be exceeded, and stores as many new blocks as fit. It returns the number of tokens added.
- `evict(num_tokens)` removes leaf blocks, least valuable first according to the eviction policy (the
  core's `LRUPolicy` by default, `FIFOPolicy`), until at least `num_tokens` tokens are gone or nothing
  unlocked is left, one block at a time, so the cache never drops more than it needs.

Time is a logical counter owned by each cache (one tick per `match_prefix` / `insert`), never the wall
clock, so a cache's behaviour is a pure function of its calls.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from profiler.prefix import BlockHash, FIFOPolicy, LRUPolicy, PrefixIndex, block_hashes, prefix_hashes

__all__ = ["FIFOPolicy", "LRUPolicy", "PrefixMatch", "RadixCache"]


class _Run:
    """The value of blocks inserted together, sliced once (slicing KV copies it): `live` of its
    blocks, always its leading ones (only leaves are evicted), are still cached."""

    __slots__ = ("value", "live")

    def __init__(self, value: Any, blocks: int) -> None:
        self.value = value
        self.live = blocks


class _Block:
    """One cached block: its tokens, where its value lies (block `offset` of `run`), its parent block,
    and what eviction needs."""

    __slots__ = ("parent", "tokens", "run", "offset", "last_access", "created", "lock_ref", "children",
                 "end_tokens")

    def __init__(self, parent: BlockHash | None, tokens: tuple[int, ...], run: _Run, offset: int,
                 clock: int, end_tokens: int) -> None:
        self.parent = parent
        self.tokens = tokens
        self.run = run
        self.offset = offset
        self.last_access = clock
        self.created = clock
        self.lock_ref = 0
        self.children = 0
        self.end_tokens = end_tokens  # tokens from the start of the sequence to the end of this block


@dataclass(frozen=True)
class PrefixMatch:
    """The cached prefix of a sequence: `length_tokens` tokens, held by `values` in order (one per
    block); `node` names the matched blocks (for `unlock`)."""

    length_tokens: int
    values: tuple[Any, ...]
    node: tuple[BlockHash, ...]
    locked: bool = False


class RadixCache:
    """Capacity-bounded cache of token blocks with values (see the module docstring)."""

    def __init__(self, capacity_tokens: int | None = None, block_size: int = 16,
                 policy: Any = None) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        if capacity_tokens is not None and capacity_tokens < 0:
            raise ValueError(f"capacity_tokens must be >= 0, got {capacity_tokens}")
        self.capacity_tokens = capacity_tokens
        self.block_size = block_size
        self.policy = policy or LRUPolicy()
        self.reset()

    def reset(self) -> None:
        self._index = PrefixIndex()  # block hash -> _Block
        self.total_tokens = 0
        self.evicted_tokens = 0
        self._clock = 0

    # -- queries -------------------------------------------------------------------------------

    def _keys(self, tokens: Sequence[int]) -> list[BlockHash]:
        n = (len(tokens) // self.block_size) * self.block_size
        if n == 0:
            return []
        return block_hashes(prefix_hashes(np.asarray(tokens[:n], dtype=np.int64), 0), self.block_size)

    def _touch(self, keys: Sequence[BlockHash]) -> list[_Block]:
        get = self._index.get
        path = [get(h) for h in keys]
        for b in path:
            b.last_access = self._clock
        return path

    def match_prefix(self, tokens: Sequence[int], *, lock: bool = False) -> PrefixMatch:
        """The longest cached block-aligned prefix of `tokens` (marks it used now)."""
        self._clock += 1
        keys = self._keys(tokens)
        matched = tuple(keys[:self._index.match_scan(keys)])
        path = self._touch(matched)
        if lock:
            for b in path:
                b.lock_ref += 1
        return PrefixMatch(length_tokens=len(matched) * self.block_size,
                           values=self._values(path), node=matched, locked=lock)

    def _values(self, path: list[_Block]) -> tuple[Any, ...]:
        """The values along a path, one per run of consecutive blocks inserted together."""
        bs, out, i = self.block_size, [], 0
        while i < len(path):
            run, a = path[i].run, path[i].offset
            j = i + 1
            while j < len(path) and path[j].run is run:
                j += 1
            b = a + (j - i)
            whole = a == 0 and b * bs == len(run.value)
            out.append(run.value if whole else run.value[a * bs:b * bs])
            i = j
        return tuple(out)

    def unlock(self, match: PrefixMatch) -> None:
        if match.locked:
            for h in match.node:
                b = self._index.get(h)
                b.lock_ref -= 1
                assert b.lock_ref >= 0, "unlock without a matching lock"

    # -- updates -------------------------------------------------------------------------------

    def insert(self, tokens: Sequence[int], value: Any) -> int:
        """Cache the full blocks of `tokens`; `value[i]` belongs to `tokens[i]`. Returns the number
        of tokens added (fewer than missing when the capacity does not allow more)."""
        if len(value) < len(tokens):
            raise ValueError(f"value covers {len(value)} tokens, the sequence has {len(tokens)}")
        self._clock += 1
        bs = self.block_size
        keys = self._keys(tokens)
        m = self._index.match_scan(keys)
        path = self._touch(keys[:m])
        missing = len(keys) - m
        if missing == 0:
            return 0
        if self.capacity_tokens is not None:
            # The path being extended is in use: protect it while making room.
            for b in path:
                b.lock_ref += 1
            try:
                over = self.total_tokens + missing * bs - self.capacity_tokens
                if over > 0:
                    self.evict(over)
            finally:
                for b in path:
                    b.lock_ref -= 1
            room = (self.capacity_tokens - self.total_tokens) // bs
            missing = min(missing, max(room, 0))
            if missing <= 0:
                return 0
        parent = keys[m - 1] if m else None
        run = _Run(value[m * bs:(m + missing) * bs], missing)
        for i in range(m, m + missing):
            h = keys[i]
            self._index.insert([h], _Block(parent, tuple(int(t) for t in tokens[i * bs:(i + 1) * bs]),
                                           run, i - m, self._clock, (i + 1) * bs))
            if parent is not None:
                self._index.get(parent).children += 1
            parent = h
        self.total_tokens += missing * bs
        return missing * bs

    def evict(self, num_tokens: int) -> int:
        """Remove at least `num_tokens` tokens of unlocked leaf blocks (fewer if not enough are
        unlocked). Returns the number of tokens removed."""
        entries = self._index._entries
        priority = self.policy.priority
        heap = [(priority(b), i, h) for i, (h, b) in enumerate(entries.items())
                if b.children == 0 and b.lock_ref == 0]
        heapq.heapify(heap)
        tie = len(heap)
        removed = 0
        trimmed: dict[int, _Run] = {}
        while removed < num_tokens and heap:
            _, _, h = heapq.heappop(heap)
            b = entries.pop(h)
            b.run.live -= 1
            trimmed[id(b.run)] = b.run
            removed += self.block_size
            self.total_tokens -= self.block_size
            if b.parent is not None:
                parent = entries[b.parent]
                parent.children -= 1
                if parent.children == 0 and parent.lock_ref == 0:
                    tie += 1
                    heapq.heappush(heap, (priority(parent), tie, b.parent))
        # Keep only the live blocks' values, so evicted KV is freed (a run gone entirely is freed by
        # dropping its last reference).
        for run in trimmed.values():
            if run.live and run.live * self.block_size < len(run.value):
                run.value = run.value[:run.live * self.block_size]
        self.evicted_tokens += removed
        return removed

    # -- inspection ----------------------------------------------------------------------------

    @property
    def evictable_tokens(self) -> int:
        return sum(self.block_size for b in self._index._entries.values() if b.lock_ref == 0)

    def sequences(self) -> list[tuple[int, ...]]:
        """Every root-to-leaf token sequence held (for tests and debugging)."""
        entries = self._index._entries
        out: list[tuple[int, ...]] = []
        for b in entries.values():
            if b.children:
                continue
            parts = []
            node: _Block | None = b
            while node is not None:
                parts.append(node.tokens)
                node = entries[node.parent] if node.parent is not None else None
            out.append(tuple(t for part in reversed(parts) for t in part))
        return sorted(out)
