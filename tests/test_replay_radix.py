"""The radix tree of KV blocks against a brute-force oracle (a set of cached block prefixes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.replay.radix import FIFOPolicy, LRUPolicy, RadixCache


class OracleCache:
    """Every cached block is stored as the whole token prefix ending with it; LRU is a linear scan."""

    def __init__(self, capacity_tokens: int | None, block_size: int) -> None:
        self.capacity = capacity_tokens
        self.bs = block_size
        self.blocks: dict[tuple[int, ...], int] = {}  # prefix -> last access
        self.clock = 0

    @property
    def total_tokens(self) -> int:
        return len(self.blocks) * self.bs

    def _prefixes(self, tokens: tuple[int, ...]) -> list[tuple[int, ...]]:
        n = len(tokens) // self.bs
        return [tokens[:(i + 1) * self.bs] for i in range(n)]

    def _matched(self, tokens: tuple[int, ...]) -> list[tuple[int, ...]]:
        out = []
        for p in self._prefixes(tokens):
            if p not in self.blocks:
                break
            out.append(p)
        return out

    def match(self, tokens: tuple[int, ...]) -> int:
        self.clock += 1
        matched = self._matched(tokens)
        for p in matched:
            self.blocks[p] = self.clock
        return len(matched) * self.bs

    def insert(self, tokens: tuple[int, ...]) -> int:
        self.clock += 1
        prefixes = self._prefixes(tokens)
        matched = self._matched(tokens)
        for p in matched:
            self.blocks[p] = self.clock
        missing = prefixes[len(matched):]
        if not missing:
            return 0
        if self.capacity is not None:
            over = self.total_tokens + len(missing) * self.bs - self.capacity
            if over > 0:
                self.evict(over, protected=set(matched))
            room = (self.capacity - self.total_tokens) // self.bs
            missing = missing[:max(room, 0)]
        for p in missing:
            self.blocks[p] = self.clock
        return len(missing) * self.bs

    def evict(self, num_tokens: int, protected: set = frozenset()) -> int:
        removed = 0
        while removed < num_tokens:
            leaves = [p for p in self.blocks if p not in protected and not any(
                len(q) == len(p) + self.bs and q[:len(p)] == p for q in self.blocks)]
            if not leaves:
                break
            victim = min(leaves, key=lambda p: (self.blocks[p], -len(p)))
            del self.blocks[victim]
            removed += self.bs
        return removed

    def block_set(self) -> set[tuple[int, ...]]:
        return set(self.blocks)


def tree_blocks(tree: RadixCache) -> set[tuple[int, ...]]:
    bs = tree.block_size
    return {seq[:i] for seq in tree.sequences() for i in range(bs, len(seq) + 1, bs)}


seqs = st.lists(st.integers(0, 2), min_size=0, max_size=14).map(tuple)
ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), seqs),
    st.tuples(st.just("match"), seqs),
    st.tuples(st.just("evict"), st.integers(1, 8)),
), min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(ops=ops, capacity=st.sampled_from([None, 0, 2, 4, 6, 10, 16]), bs=st.sampled_from([1, 2, 3]))
def test_tree_matches_the_oracle_under_any_sequence_of_operations(ops, capacity, bs):
    # GIVEN a radix tree and the brute-force oracle with the same capacity and block size
    tree, oracle = RadixCache(capacity, bs, LRUPolicy()), OracleCache(capacity, bs)
    for op, arg in ops:
        # WHEN the same operation is applied to both (the value of a token is the token itself)
        if op == "insert":
            assert tree.insert(arg, arg) == oracle.insert(arg)
        elif op == "match":
            m = tree.match_prefix(arg)
            assert m.length_tokens == oracle.match(arg)
            # THEN the values along the match are exactly the matched tokens
            assert sum(m.values, ()) == arg[:m.length_tokens]
        else:
            assert tree.evict(arg) == oracle.evict(arg)
        # THEN both hold the same blocks, within capacity
        assert tree_blocks(tree) == oracle.block_set()
        assert tree.total_tokens == oracle.total_tokens
        if capacity is not None:
            assert tree.total_tokens <= capacity


def test_match_returns_the_longest_block_aligned_prefix():
    # GIVEN two cached sequences sharing their first two blocks
    tree = RadixCache(None, block_size=4)
    a = tuple(range(12))
    b = tuple(range(8)) + (90, 91, 92, 93, 94)
    tree.insert(a, a)
    tree.insert(b, b)
    # WHEN prompts diverge from them at various points
    # THEN only whole common blocks match
    assert tree.match_prefix(a + (5,)).length_tokens == 12
    assert tree.match_prefix(tuple(range(10))).length_tokens == 8
    assert tree.match_prefix(tuple(range(7)) + (99,)).length_tokens == 4
    assert tree.match_prefix(b).length_tokens == 12  # b's partial last block was never cached
    assert tree.match_prefix((7, 7, 7, 7)).length_tokens == 0
    assert tree.total_tokens == 16


def test_lru_evicts_the_least_recently_used_leaf_first():
    # GIVEN three sequences with a shared first block, the oldest then touched again
    tree = RadixCache(None, block_size=2)
    s1, s2, s3 = (0, 0, 1, 1), (0, 0, 2, 2), (0, 0, 3, 3)
    for s in (s1, s2, s3):
        tree.insert(s, s)
    tree.match_prefix(s1)
    # WHEN two tokens must go
    assert tree.evict(2) == 2
    # THEN the least recently used leaf (s2's tail) went; s1 (hit) and s3 (newest) stay
    assert tree.sequences() == [s1, s3]
    tree.evict(2)
    assert tree.sequences() == [s1]
    # AND the shared block goes only once nothing below it is left
    tree.evict(2)
    assert tree.sequences() == [(0, 0)]
    tree.evict(10)
    assert tree.sequences() == [] and tree.total_tokens == 0 and tree.evicted_tokens == 8


def test_fifo_ignores_hits():
    tree = RadixCache(None, block_size=2, policy=FIFOPolicy())
    s1, s2 = (1, 1, 1, 1), (2, 2, 2, 2)
    tree.insert(s1, s1)
    tree.insert(s2, s2)
    tree.match_prefix(s1)
    tree.evict(4)
    assert tree.sequences() == [s2]


def test_eviction_trims_a_leaf_one_block_at_a_time():
    # GIVEN one long cached sequence
    tree = RadixCache(None, block_size=4)
    s = tuple(range(16))
    tree.insert(s, s)
    # WHEN five tokens must go
    assert tree.evict(5) == 8
    # THEN the two tail blocks went and the rest still matches
    assert tree.match_prefix(s).length_tokens == 8


def test_capacity_evicts_old_blocks_and_inserts_what_fits():
    # GIVEN a cache of 8 tokens holding one sequence
    tree = RadixCache(8, block_size=4)
    a, b = tuple(range(8)), tuple(range(100, 112))
    tree.insert(a, a)
    # WHEN a longer unrelated sequence arrives
    added = tree.insert(b, b)
    # THEN the old one is evicted and only what fits of the new one is stored
    assert added == 8 and tree.total_tokens == 8
    assert tree.sequences() == [b[:8]]


def test_locked_prefix_survives_eviction():
    # GIVEN a matched and locked prefix (a step in flight) and an unlocked sequence
    tree = RadixCache(12, block_size=4)
    a, b = tuple(range(8)), tuple(range(50, 54))
    tree.insert(a, a)
    tree.insert(b, b)
    match = tree.match_prefix(a, lock=True)
    tree.match_prefix(b)  # b is now more recent, a would be the LRU victim
    # WHEN room is needed
    tree.evict(12)
    # THEN only the unlocked sequence could go
    assert tree.sequences() == [a]
    assert tree.evictable_tokens == 0
    tree.unlock(match)
    assert tree.evictable_tokens == 8
    tree.evict(8)
    assert tree.total_tokens == 0


def test_insert_never_evicts_the_path_it_extends():
    # GIVEN a full cache whose only content is the prefix of the next insert
    tree = RadixCache(8, block_size=4)
    a = tuple(range(8))
    tree.insert(a, a)
    # WHEN a longer sequence with that prefix is inserted
    added = tree.insert(a + (8, 9, 10, 11), a + (8, 9, 10, 11))
    # THEN the prefix stays and nothing new fits
    assert added == 0 and tree.sequences() == [a]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        RadixCache(None, block_size=0)
    with pytest.raises(ValueError):
        RadixCache(-1)
    with pytest.raises(ValueError):
        RadixCache(None, 2).insert((1, 2, 3, 4), (1, 2))
