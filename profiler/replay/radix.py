"""A radix tree of KV blocks, as SGLang's RadixAttention cache, with a token capacity.

Contract:
- Keys are token ids; the tree stores whole blocks of `block_size` tokens only (a sequence's partial
  last block is never cached, as vLLM / SGLang with a page size). Each node holds a run of blocks
  (`key`, a tuple of token ids whose length is a multiple of the block size) and a `value` of the
  same length that supports `len()` and slicing (`value[a:b]`): the KV tensors of those tokens in the
  replay engine, a tuple of positions in tests.
- `match_prefix(tokens)` returns the longest cached block-aligned prefix of `tokens` and the values
  along it, splitting a node where the match ends inside it; `lock=True` protects the matched path
  from eviction until `unlock(match)`.
- `insert(tokens, value)` caches the full blocks of `tokens` (`value` covers all of `tokens`; the
  tree slices out the part it does not hold yet), evicting unlocked leaves first when the capacity
  would be exceeded, and stores as many new blocks as fit. It returns the number of tokens added.
- `evict(num_tokens)` removes leaf blocks, least valuable first according to the eviction policy
  (least recently used by default), until at least `num_tokens` tokens are gone or nothing unlocked
  is left. Eviction trims a leaf from its tail one block at a time, so the cache never drops more
  than it needs.

Time is a logical counter owned by each tree (one tick per `match_prefix` / `insert`), never the wall
clock, so a tree's behaviour is a pure function of its calls.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


class EvictionPolicy(Protocol):
    """Orders leaf nodes for eviction: the smallest priority is evicted first."""

    name: str

    def priority(self, node: "Node") -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class LRUPolicy:
    """Least recently used first; among blocks used at the same time, the deepest first."""

    name: str = "lru"

    def priority(self, node: "Node") -> tuple[Any, ...]:
        return (node.last_access, -node.end_tokens)


@dataclass(frozen=True)
class FIFOPolicy:
    """First inserted first (ignores later hits); deepest first among blocks inserted together."""

    name: str = "fifo"

    def priority(self, node: "Node") -> tuple[Any, ...]:
        return (node.created, -node.end_tokens)


@dataclass(eq=False)
class Node:
    key: tuple[int, ...] = ()
    value: Any = None
    parent: "Node | None" = None
    children: dict[tuple[int, ...], "Node"] = field(default_factory=dict)
    last_access: int = 0
    created: int = 0
    lock_ref: int = 0
    # Tokens from the root to the end of this node.
    end_tokens: int = 0


@dataclass(frozen=True)
class PrefixMatch:
    """The cached prefix of a sequence: `length_tokens` tokens, held by `values` in order."""

    length_tokens: int
    values: tuple[Any, ...]
    node: Node
    locked: bool = False


class RadixCache:
    """Capacity-bounded radix tree of token blocks (see the module docstring)."""

    def __init__(self, capacity_tokens: int | None = None, block_size: int = 16,
                 policy: EvictionPolicy | None = None) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        if capacity_tokens is not None and capacity_tokens < 0:
            raise ValueError(f"capacity_tokens must be >= 0, got {capacity_tokens}")
        self.capacity_tokens = capacity_tokens
        self.block_size = block_size
        self.policy: EvictionPolicy = policy or LRUPolicy()
        self.reset()

    def reset(self) -> None:
        self.root = Node()
        self.root.lock_ref = 1  # the root is never evicted
        self.total_tokens = 0
        self.evicted_tokens = 0
        self._clock = 0

    # -- queries -------------------------------------------------------------------------------

    def _block_key(self, tokens: Sequence[int], start: int) -> tuple[int, ...]:
        return tuple(tokens[start:start + self.block_size])

    def _full_blocks(self, tokens: Sequence[int]) -> tuple[int, ...]:
        n = (len(tokens) // self.block_size) * self.block_size
        return tuple(int(t) for t in tokens[:n])

    def _walk(self, tokens: tuple[int, ...]) -> tuple[Node, int, list[Node]]:
        """Follow `tokens` (whole blocks) down the tree, splitting the last node where the match ends
        inside it. Returns the deepest matched node, the matched length and the path below the root."""
        node, pos, path = self.root, 0, []
        while pos < len(tokens):
            child = node.children.get(self._block_key(tokens, pos))
            if child is None:
                break
            matched = self._common_blocks(child.key, tokens, pos)
            if matched < len(child.key):
                child = self._split(child, matched)
            path.append(child)
            node, pos = child, pos + matched
            if matched < len(child.key):
                break
        return node, pos, path

    def _common_blocks(self, key: tuple[int, ...], tokens: tuple[int, ...], start: int) -> int:
        bs, n = self.block_size, 0
        while n < len(key) and start + n + bs <= len(tokens) and (
                key[n:n + bs] == tokens[start + n:start + n + bs]):
            n += bs
        return n

    def _split(self, node: Node, at: int) -> Node:
        """Split `node` after its first `at` tokens; return the new upper node."""
        parent = node.parent
        assert parent is not None and 0 < at < len(node.key)
        upper = Node(key=node.key[:at], value=node.value[:at], parent=parent,
                     last_access=node.last_access, created=node.created, lock_ref=node.lock_ref,
                     end_tokens=node.end_tokens - len(node.key) + at)
        parent.children[self._block_key(node.key, 0)] = upper
        node.key, node.value, node.parent = node.key[at:], node.value[at:], upper
        upper.children[self._block_key(node.key, 0)] = node
        return upper

    def match_prefix(self, tokens: Sequence[int], *, lock: bool = False) -> PrefixMatch:
        """The longest cached block-aligned prefix of `tokens` (marks it used now)."""
        self._clock += 1
        node, length, path = self._walk(self._full_blocks(tokens))
        for n in path:
            n.last_access = self._clock
        if lock:
            self._lock(node, +1)
        return PrefixMatch(length_tokens=length, values=tuple(n.value for n in path), node=node,
                           locked=lock)

    def unlock(self, match: PrefixMatch) -> None:
        if match.locked:
            self._lock(match.node, -1)

    def _lock(self, node: Node, delta: int) -> None:
        n: Node | None = node
        while n is not None and n is not self.root:
            n.lock_ref += delta
            assert n.lock_ref >= 0, "unlock without a matching lock"
            n = n.parent

    # -- updates -------------------------------------------------------------------------------

    def insert(self, tokens: Sequence[int], value: Any) -> int:
        """Cache the full blocks of `tokens`; `value[i]` belongs to `tokens[i]`. Returns the number
        of tokens added (fewer than missing when the capacity does not allow more)."""
        if len(value) < len(tokens):
            raise ValueError(f"value covers {len(value)} tokens, the sequence has {len(tokens)}")
        self._clock += 1
        key = self._full_blocks(tokens)
        node, pos, path = self._walk(key)
        for n in path:
            n.last_access = self._clock
        missing = len(key) - pos
        if missing == 0:
            return 0
        if self.capacity_tokens is not None:
            # The path being extended is in use: protect it while making room.
            self._lock(node, +1)
            try:
                over = self.total_tokens + missing - self.capacity_tokens
                if over > 0:
                    self.evict(over)
            finally:
                self._lock(node, -1)
            room = self.capacity_tokens - self.total_tokens
            missing = min(missing, (max(room, 0) // self.block_size) * self.block_size)
            if missing <= 0:
                return 0
        new = Node(key=key[pos:pos + missing], value=value[pos:pos + missing], parent=node,
                   last_access=self._clock, created=self._clock, end_tokens=pos + missing)
        node.children[self._block_key(new.key, 0)] = new
        self.total_tokens += missing
        return missing

    def evict(self, num_tokens: int) -> int:
        """Remove at least `num_tokens` tokens of unlocked leaf blocks (fewer if not enough are
        unlocked). Returns the number of tokens removed."""
        heap = [(self.policy.priority(n), i, n) for i, n in enumerate(self._leaves())
                if n.lock_ref == 0]
        heapq.heapify(heap)
        tie = len(heap)
        removed = 0
        while removed < num_tokens and heap:
            _, _, leaf = heapq.heappop(heap)
            if leaf.children or leaf.lock_ref:  # stale entry
                continue
            need_blocks = -(-(num_tokens - removed) // self.block_size)
            drop = min(len(leaf.key), need_blocks * self.block_size)
            removed += drop
            self.total_tokens -= drop
            if drop < len(leaf.key):
                keep = len(leaf.key) - drop
                leaf.key, leaf.value = leaf.key[:keep], leaf.value[:keep]
                leaf.end_tokens -= drop
                continue
            parent = leaf.parent
            assert parent is not None
            del parent.children[self._block_key(leaf.key, 0)]
            leaf.parent = None
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                tie += 1
                heapq.heappush(heap, (self.policy.priority(parent), tie, parent))
        self.evicted_tokens += removed
        return removed

    def _leaves(self) -> list[Node]:
        out, stack = [], list(self.root.children.values())
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            else:
                out.append(n)
        return out

    # -- inspection ----------------------------------------------------------------------------

    @property
    def evictable_tokens(self) -> int:
        total, stack = 0, list(self.root.children.values())
        while stack:
            n = stack.pop()
            if n.lock_ref == 0:
                total += len(n.key)
            stack.extend(n.children.values())
        return total

    def sequences(self) -> list[tuple[int, ...]]:
        """Every root-to-leaf token sequence held (for tests and debugging)."""
        out: list[tuple[int, ...]] = []
        stack: list[tuple[Node, tuple[int, ...]]] = [(c, ()) for c in self.root.children.values()]
        while stack:
            n, prefix = stack.pop()
            seq = prefix + n.key
            if n.children:
                stack.extend((c, seq) for c in n.children.values())
            else:
                out.append(seq)
        return sorted(out)
