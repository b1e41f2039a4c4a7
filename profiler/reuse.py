"""Reuse of earlier context: the prefix and repeated-span algorithms behind the analyzer's metrics.

Contract (definitions in DESIGN.md, "Metrics"): a `ReuseIndex` holds every sequence S_j = P_j + O_j
that earlier steps of a scope left processed. `match(P)` returns, for a new prompt P,

- `prefix`: the longest common prefix of P with any earlier S_j;
- `covered`: a boolean mask over P; position p is True when some window of `min_repeat` consecutive
  tokens of P containing p occurs somewhere in an earlier S_j;
- where each reused token first appeared (the ordinal of the step that inserted it).

`insert(S, ordinal, match)` adds a finished step. How it stays linear in total tokens:

- Tokens are mixed (splitmix64, salted by tokenizer so ids of different vocabularies never match), and
  one vectorised pass computes the polynomial rolling hashes (mod 2^64) of every prefix and of every
  `min_repeat`-token window.
- Prefixes live in a trie of 16-token nodes (as vLLM's chained block hashes): one dict entry per 16
  tokens, keyed by the hash of the prefix up to the node; each node keeps the distinct continuations
  that followed it. The longest prefix is a binary search over nodes (the node set is prefix-closed)
  plus one comparison of the last partial block.
- Windows live in a dict from window hash to the step that first had it.
- Only what the index does not hold yet is inserted: nothing inside the reused prefix, no window the
  match already found.

Hashes are 64-bit, so two different spans collide with probability ~2^-64 per comparison; the tests
compare every metric against a brute-force oracle.

`BlockReuseIndex` does the same at block granularity for content-free traces (block hashes only).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from itertools import repeat

import numpy as np

_U64 = np.uint64
_BASE = 0x9E3779B97F4A7C15 | 1  # odd, so invertible modulo 2^64
_BASE_INV = pow(_BASE, -1, 1 << 64)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """Mix token ids so the polynomial hash has no structure to collide on (wrapping uint64)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _consume(iterator) -> None:
    deque(iterator, maxlen=0)


def namespace_salt(namespace: str) -> int:
    """A 64-bit salt per token id space, so ids of different tokenizers never match."""
    return int.from_bytes(hashlib.blake2b(namespace.encode(), digest_size=8).digest(), "little")


class _Powers:
    """BASE^q and BASE^-q modulo 2^64 for q < n, grown on demand."""

    def __init__(self) -> None:
        self.pos = np.ones(1, dtype=_U64)
        self.neg = np.ones(1, dtype=_U64)

    def ensure(self, n: int) -> None:
        if n <= self.pos.size:
            return
        size = max(n, 2 * self.pos.size)
        with np.errstate(over="ignore"):
            self.pos = np.cumprod(np.full(size, _BASE, dtype=_U64)) * _U64(_BASE_INV)
            self.neg = np.cumprod(np.full(size, _BASE_INV, dtype=_U64)) * _U64(_BASE)
        self.pos[0] = self.neg[0] = 1


_G = 16  # tokens per prefix-trie node
_ROOT = -1  # key of the trie's root (hash keys are non-negative)
_PAD = np.uint64(0xFFFFFFFFFFFFFFFF)  # pads short continuations (a mixed token equals it w.p. 2^-64)


class _Node:
    """A prefix-trie node: the distinct continuations (up to 16 mixed tokens, as bytes) seen after its
    prefix, each with the step that first had it."""

    __slots__ = ("source", "conts", "_matrix", "_rows", "_sources")

    def __init__(self, source: int) -> None:
        self.source = source  # ordinal of the step that first reached this node
        self.conts: dict[bytes, int] = {}
        self._matrix: np.ndarray | None = None  # rows of continuations, grown by doubling
        self._rows = 0
        self._sources: list[int] = []

    def add(self, continuation: bytes, ordinal: int) -> None:
        if not continuation or continuation in self.conts:
            return
        self.conts[continuation] = ordinal
        if self._matrix is not None:
            self._append(continuation, ordinal)

    def _append(self, continuation: bytes, ordinal: int) -> None:
        assert self._matrix is not None
        if self._rows == self._matrix.shape[0]:
            grown = np.full((2 * self._rows, _G), _PAD, dtype=_U64)
            grown[: self._rows] = self._matrix
            self._matrix = grown
        row = np.frombuffer(continuation, dtype=_U64)
        self._matrix[self._rows, : row.size] = row
        self._rows += 1
        self._sources.append(ordinal)

    def extend(self, block: np.ndarray) -> tuple[int, int | None]:
        """Longest common prefix of `block` with any continuation, and that continuation's source."""
        if block.size == 0 or not self.conts:
            return 0, None
        if len(self.conts) == 1:
            ((cont, source),) = self.conts.items()
            return _common_tokens(block.tobytes(), cont), source
        if self._matrix is None:
            self._matrix = np.full((max(4, len(self.conts)), _G), _PAD, dtype=_U64)
            for cont, source in self.conts.items():
                self._append(cont, source)
        equal = self._matrix[: self._rows, : block.size] == block
        lengths = np.logical_and.accumulate(equal, axis=1).sum(axis=1)
        best = int(lengths.argmax())
        return int(lengths[best]), self._sources[best]


def _common_tokens(a: bytes, b: bytes) -> int:
    """Number of leading 8-byte tokens two byte strings share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n // 8
    i = 0
    while a[i] == b[i]:
        i += 1
    return i // 8


@dataclass(frozen=True)
class SequenceHashes:
    """Mixed tokens (`mixed[p]`: token p salted by its id space), prefix hashes (`prefix[p]`
    identifies seq[:p+1]) and window hashes (`window[s]` identifies seq[s:s+k]) of one sequence."""

    mixed: np.ndarray
    prefix: np.ndarray
    window: np.ndarray


@dataclass(frozen=True)
class Match:
    prefix: int
    covered: np.ndarray  # bool mask over the prompt: inside a repeated window
    prefix_source: int | None  # ordinal of the step that first left the reused prefix
    sources: np.ndarray  # per covered-or-prefix position, the ordinal it came from (-1: novel)
    # Windows looked up (starting at `window_start`): their source, -1 where absent. Lets `insert`
    # skip the windows it already knows are indexed.
    window_start: int = 0
    window_src: np.ndarray | None = None


class ReuseIndex:
    """Earlier sequences of one scope, indexed for prefix and repeated-window lookups."""

    def __init__(self, min_repeat: int = 32, powers: _Powers | None = None) -> None:
        if min_repeat < 1:
            raise ValueError("min_repeat must be >= 1")
        self.k = min_repeat
        self._powers = powers or _Powers()
        # Prefixes live in a trie of 16-token nodes keyed by the hash of the prefix up to the node;
        # each node keeps the distinct next-16-token continuations seen after it. Storing one key per
        # 16 tokens (not per token) keeps the table small and the lookups in cache.
        self._nodes: dict[int, _Node] = {}
        self._windows: dict[int, int] = {}  # window hash -> ordinal of the step that first had it

    def hashes(self, seq: np.ndarray, salt: int) -> SequenceHashes:
        n = int(seq.size)
        if n == 0:
            empty = np.zeros(0, dtype=_U64)
            return SequenceHashes(empty, empty, empty)
        self._powers.ensure(n)
        with np.errstate(over="ignore"):
            x = _splitmix(seq.astype(_U64) ^ _U64(salt))
            # H[p] = sum_{q<=p} x[q] B^(p-q) = B^p * sum_{q<=p} x[q] B^-q  (all modulo 2^64)
            c = np.cumsum(x * self._powers.neg[:n], dtype=_U64)
            prefix = c * self._powers.pos[:n]
            k = self.k
            if n >= k:
                lo = np.concatenate([np.zeros(1, dtype=_U64), c[: n - k]])
                window = (c[k - 1:] - lo) * self._powers.pos[k - 1: n]
                # Salt windows apart from prefixes of the same length.
                window ^= _U64(0x5BD1E9955BD1E995)
            else:
                window = np.zeros(0, dtype=_U64)
        return SequenceHashes(x, prefix, window)

    def match(self, prompt_len: int, h: SequenceHashes) -> Match:
        """Reuse for a prompt of `prompt_len` tokens whose hashes (possibly of the prompt followed by
        its output) are `h`."""
        prefix, prefix_source = self._longest_prefix(prompt_len, h.prefix, h.mixed)
        sources = np.full(prompt_len, -1, dtype=np.int64)
        if prefix:
            sources[:prefix] = prefix_source
        covered = np.zeros(prompt_len, dtype=bool)
        k = self.k
        first = max(0, prefix - k + 1)
        last = prompt_len - k  # last window start inside the prompt
        starts_src = None
        if last >= first and self._windows:
            windows = self._windows
            keys = h.window[first: last + 1].tolist()
            starts_src = np.fromiter(map(windows.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))
            hit = np.flatnonzero(starts_src >= 0)
            if hit.size:
                # For each position, the latest hit window starting at or before it.
                marks = np.full(prompt_len, -1, dtype=np.int64)
                marks[hit + first] = hit + first
                latest = np.maximum.accumulate(marks)
                pos = np.arange(prompt_len)
                covered = (latest >= 0) & (latest + k > pos)
                covered[:prefix] = False
                idx = np.flatnonzero(covered)
                sources[idx] = starts_src[latest[idx] - first]
        return Match(prefix=prefix, covered=covered, prefix_source=prefix_source, sources=sources,
                     window_start=first, window_src=starts_src)

    def insert(self, h: SequenceHashes, ordinal: int, match: Match | None = None) -> None:
        """Add a processed sequence (hashed with `hashes`), given its prompt's `match`. Everything
        inside the reused prefix is indexed already (it came from an earlier sequence), and so is
        every window the match found, so only the rest is inserted."""
        reused_prefix = match.prefix if match is not None else 0
        self._insert_prefixes(h.mixed, h.prefix, ordinal, reused_prefix)
        start = max(0, reused_prefix - self.k + 1)
        windows = h.window[start:]
        if match is not None and match.window_src is not None and match.window_start == start:
            looked_up = match.window_src.size
            windows = np.concatenate([windows[:looked_up][match.window_src < 0], windows[looked_up:]])
        # setdefault keeps the first step that had each key; map + deque runs the loop in C.
        _consume(map(self._windows.setdefault, windows.tolist(), repeat(ordinal)))

    def _node_key(self, prefix_hashes: np.ndarray, m: int) -> int:
        return _ROOT if m == 0 else int(prefix_hashes[m * _G - 1])

    def _longest_prefix(self, n: int, prefix_hashes: np.ndarray,
                        mixed: np.ndarray) -> tuple[int, int | None]:
        """Longest prefix of the first `n` tokens shared with a stored sequence, and its source."""
        nodes = self._nodes
        if _ROOT not in nodes:
            return 0, None
        # Largest m with a node at 16*m tokens; nodes are prefix-closed, so binary search is valid.
        lo, hi = 0, n // _G
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._node_key(prefix_hashes, mid) in nodes:
                lo = mid
            else:
                hi = mid - 1
        node = nodes[self._node_key(prefix_hashes, lo)]
        extra, source = node.extend(mixed[lo * _G: min(n, lo * _G + _G)])
        if extra == 0:
            return lo * _G, (node.source if lo else None)
        return lo * _G + extra, source

    def _insert_prefixes(self, seq: np.ndarray, prefix_hashes: np.ndarray, ordinal: int,
                         reused_prefix: int) -> None:
        nodes = self._nodes
        for m in range(reused_prefix // _G, seq.size // _G + 1):
            key = self._node_key(prefix_hashes, m)
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = _Node(ordinal)
            node.add(seq[m * _G: m * _G + _G].tobytes(), ordinal)

    @property
    def size(self) -> int:
        """Prefix-trie nodes plus distinct windows held (memory grows with this)."""
        return len(self._nodes) + len(self._windows)


def _chain(block_hashes: tuple[int, ...] | list[int], chained: bool) -> list[int]:
    if chained:
        return list(block_hashes)
    out, prev = [], 0
    for h in block_hashes:
        prev = hash((prev, h))
        out.append(prev)
    return out


@dataclass(frozen=True)
class BlockMatch:
    prefix_blocks: int
    repeated_blocks: int
    prefix_source: int | None


class BlockReuseIndex:
    """Reuse at block granularity for content-free steps (block hashes only).

    A prefix is the run of leading blocks whose chained hash an earlier step had; a repeated block is a
    later block whose content hash an earlier step had. Both are block-granular lower bounds of the
    token-level metrics. Chained-only hashes (Mooncake, vLLM) carry no content identity of their own,
    so for them a repeated block is one whose chained id recurs outside the prefix.
    """

    def __init__(self) -> None:
        self._chains: dict[int, int] = {}
        self._contents: dict[int, int] = {}

    def match(self, block_hashes: tuple[int, ...], chained: bool) -> BlockMatch:
        chain = _chain(block_hashes, chained)
        n = 0
        while n < len(chain) and chain[n] in self._chains:
            n += 1
        repeated = sum(1 for h in block_hashes[n:] if h in self._contents)
        return BlockMatch(n, repeated, self._chains[chain[n - 1]] if n else None)

    def insert(self, block_hashes: tuple[int, ...], chained: bool, ordinal: int) -> None:
        for h in _chain(block_hashes, chained):
            self._chains.setdefault(h, ordinal)
        for h in block_hashes:
            self._contents.setdefault(h, ordinal)
