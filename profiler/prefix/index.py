"""The one prefix index of ctxprof: a prefix-closed set of prefix hashes (`BlockHash`), each with a
value, with `match` / `insert` / `serve` / `evict` and an eviction policy as a small strategy object.

Contract:
- Keys are prefix hashes from `profiler.prefix.hashing` (one per token for the analyzer, one per block
  for the engine and provider simulators, one per KV block for replay). A key is only ever inserted
  after the key of the prefix one block shorter, and only leaves are evicted, so the set stays
  prefix-closed: the longest cached prefix of a sequence is found by binary search (`match`, O(log n)
  lookups) or by a scan from the start (`match_scan`, for short block lists).
- Values are whatever the caller attaches (the ordinal of the step that first had a prefix, a last-use
  time, a KV block); `insert` keeps the first value of a key (`setdefault`), `set` overwrites.
- A bounded index (`capacity` entries) serves whole requests with `serve(hashes)`: the cached leading
  keys are used again, as many new keys as fit are inserted (never evicting the request's own keys),
  and the policy picks the victims. `LRUPolicy` is O(1) per key: least-recently-used with, among keys
  of one request, the deepest first; a key's parent is always used at least as recently as the key, so
  the global LRU victim is always a leaf and leaf-only LRU *is* plain LRU over keys, a stack algorithm
  (tests check it against the stack oracle). `FIFOPolicy` (first inserted leaf first) keeps parent links
  and a heap of leaves, O(log n) per eviction.
- Memory: one dict entry per key (plus, for FIFO, a parent link and a child count).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from itertools import repeat
from typing import Any, Callable, Protocol, Sequence

from profiler.errors import ProfilerError
from profiler.prefix.hashing import BlockHash


class EvictionPolicy(Protocol):
    """Orders an index's keys for eviction (the index asks it to admit requests and pick victims)."""

    name: str

    def admit(self, index: "PrefixIndex", keys: Sequence[BlockHash], matched: int, new: int,
              value: Any) -> None:
        """Record a request: its first `matched` keys were cached; insert the next `new` keys."""

    def evict(self, index: "PrefixIndex", count: int) -> int:
        """Remove up to `count` leaf keys not used by the current request; return how many went."""


class LRUPolicy:
    """Least recently used first; among keys used by one request, the deepest first (the tail of a
    prefix goes before its head, as SGLang and vLLM evict)."""

    name = "lru"
    ordered = True  # the index keeps its entries in an OrderedDict, least recently used first

    @staticmethod
    def priority(block: Any) -> tuple[int, int]:
        """Eviction order of a block that records its use (replay's cache): smallest first."""
        return (block.last_access, -block.end_tokens)

    def admit(self, index: "PrefixIndex", keys: Sequence[BlockHash], matched: int, new: int,
              value: Any) -> None:
        entries = index._entries
        # Recency order within the request: deepest first, the root last (most recent).
        for h in reversed(keys[matched:matched + new]):
            entries[h] = value
        move = entries.move_to_end  # type: ignore[attr-defined]
        for h in reversed(keys[:matched]):
            move(h)

    def evict(self, index: "PrefixIndex", count: int) -> int:
        entries = index._entries
        done = min(count, len(entries))
        pop = entries.popitem  # type: ignore[attr-defined]
        for _ in range(done):
            pop(False)
        return done


class FIFOPolicy:
    """First inserted leaf first, however recently it was used (a baseline for LRU); among keys
    inserted by one request, the deepest first."""

    name = "fifo"
    ordered = False

    @staticmethod
    def priority(block: Any) -> tuple[int, int]:
        """Eviction order of a block that records its creation (replay's cache): smallest first."""
        return (block.created, -block.end_tokens)

    def __init__(self) -> None:
        self._parent: dict[BlockHash, BlockHash | None] = {}
        self._children: dict[BlockHash, int] = {}
        self._key: dict[BlockHash, tuple[int, int]] = {}
        self._heap: list[tuple[tuple[int, int], BlockHash]] = []
        self._tick = 0
        self._pinned: set[BlockHash] = set()

    def admit(self, index: "PrefixIndex", keys: Sequence[BlockHash], matched: int, new: int,
              value: Any) -> None:
        self._tick += 1
        entries = index._entries
        parent = keys[matched - 1] if matched else None
        for depth in range(matched, matched + new):
            h = keys[depth]
            entries[h] = value
            self._parent[h] = parent
            self._children[h] = 0
            self._key[h] = (self._tick, -depth)
            if parent is not None:
                self._children[parent] += 1
            parent = h
        self._pinned = set(keys[:matched + new])
        if parent is not None and self._children[parent] == 0:
            heapq.heappush(self._heap, (self._key[parent], parent))

    def evict(self, index: "PrefixIndex", count: int) -> int:
        entries, heap, done = index._entries, self._heap, 0
        deferred = []
        while done < count and heap:
            key, h = heapq.heappop(heap)
            if self._key.get(h) != key or self._children.get(h) != 0:
                continue  # stale: evicted since, or no longer a leaf
            if h in self._pinned:
                deferred.append((key, h))  # offered again once the request is over
                continue
            del entries[h]
            parent = self._parent.pop(h)
            del self._children[h], self._key[h]
            done += 1
            if parent is not None:
                self._children[parent] -= 1
                if self._children[parent] == 0:
                    heapq.heappush(heap, (self._key[parent], parent))
        for item in deferred:
            heapq.heappush(heap, item)
        return done


POLICIES: dict[str, Callable[[], EvictionPolicy]] = {"lru": LRUPolicy, "fifo": FIFOPolicy}


def make_policy(name: str) -> EvictionPolicy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ProfilerError(f"unknown eviction policy {name!r}; use one of {', '.join(POLICIES)}") from None


def _consume(iterator: Any) -> None:
    deque(iterator, maxlen=0)


class PrefixIndex:
    """A prefix-closed set of prefix hashes with values; bounded by `capacity` keys when given."""

    __slots__ = ("capacity", "policy", "_entries", "evicted")

    def __init__(self, capacity: int | None = None, policy: EvictionPolicy | None = None) -> None:
        if capacity is not None and capacity < 0:
            raise ProfilerError(f"cache capacity must be >= 0 blocks, got {capacity}")
        self.capacity = capacity
        self.policy = policy or LRUPolicy()
        self._entries: dict[BlockHash, Any] = (
            OrderedDict() if capacity is not None and getattr(self.policy, "ordered", False) else {})
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: BlockHash, default: Any = None) -> Any:
        return self._entries.get(key, default)

    def entries(self) -> dict[BlockHash, Any]:
        """The key -> value dict itself, for hot loops over an unbounded index (adding keys with
        their first value keeps it prefix-closed as long as parents are added before children)."""
        if self.capacity is not None:
            raise ProfilerError("a bounded index is filled through serve()")
        return self._entries

    def set(self, key: BlockHash, value: Any) -> None:
        """Overwrite the value of a key that is held (its recency is left alone)."""
        self._entries[key] = value

    def match(self, keys: Sequence[BlockHash], accept: Callable[[Any], bool] | None = None) -> int:
        """How many leading `keys` are held (and, with `accept`, have a value it accepts; acceptance
        must be monotone along a prefix). Binary search: O(log n) lookups."""
        entries = self._entries
        lo, hi = 0, len(keys)
        if not entries:
            return 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            v = entries.get(int(keys[mid - 1]), _MISSING)
            if v is not _MISSING and (accept is None or accept(v)):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def match_scan(self, keys: Sequence[BlockHash], start: int = 0) -> int:
        """`match` by a scan from `keys[start]` (known held) on: faster for a few keys, no side effects."""
        entries = self._entries
        n, end = start, len(keys)
        while n < end and keys[n] in entries:
            n += 1
        return n

    def insert(self, keys: Sequence[BlockHash], value: Any, start: int = 0) -> None:
        """Add `keys[start:]` to an unbounded index, keeping the first value of a key already held."""
        if self.capacity is not None:
            raise ProfilerError("a bounded index is filled through serve()")
        keys = keys[start:]
        _consume(map(self._entries.setdefault, keys.tolist() if hasattr(keys, "tolist") else keys,
                      repeat(value)))

    def serve(self, keys: Sequence[BlockHash], value: Any = None, matched: int | None = None) -> int:
        """One request: use its cached leading keys (`matched` of them known to be held), insert as many of the rest as fit (evicting by
        policy, never a key of this request). Returns how many leading keys are held afterwards."""
        # `matched` (the caller's match of the prompt) may stop short of the keys' cached head when
        # the output's keys follow a fully matched prompt: continue the scan from there.
        matched = self.match_scan(keys, matched or 0)
        new = len(keys) - matched
        if self.capacity is None:
            if new:
                _consume(map(self._entries.setdefault, keys[matched:], repeat(value)))
            return len(keys)
        new = max(0, min(new, self.capacity - matched))
        self.policy.admit(self, keys, matched, new, value)
        over = len(self._entries) - self.capacity
        if over > 0:
            self.evicted += self.policy.evict(self, over)
        return matched + new

    def evict(self, count: int) -> int:
        """Evict up to `count` leaf keys chosen by the policy; returns how many went."""
        done = self.policy.evict(self, count)
        self.evicted += done
        return done


_MISSING = object()
