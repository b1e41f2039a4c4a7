"""Reuse of earlier context: the prefix and repeated-span algorithms behind the analyzer's metrics.

Contract (definitions in DESIGN.md, "Metrics"): a `ReuseIndex` holds every sequence S_j = P_j + O_j
that earlier steps of a scope left processed. `match(P)` returns, for a new prompt P,

- `prefix`: the longest common prefix of P with any earlier S_j;
- `covered`: a boolean mask over P; position p is True when some window of `min_repeat` consecutive
  tokens of P containing p occurs somewhere in an earlier S_j;
- where each reused token first appeared (the step ordinal that inserted it).

`insert(S, ordinal)` adds a finished step. Both cost O(len) numpy work plus O(new tokens) hash-table
work: a sequence's prefix hashes and window hashes are computed in one vectorised pass (polynomial
rolling hashes modulo 2^64 over splitmix-mixed token ids), prefixes are looked up by binary search
(the set of stored prefixes is prefix-closed), and only the part of S that was not already reused is
inserted (whatever lies inside the reused prefix is in the index already). Hashes are 64-bit, so two
different spans collide with probability ~2^-64 per comparison; the tests compare against a
brute-force oracle.

`BlockReuseIndex` does the same at block granularity for content-free traces (block hashes only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SequenceHashes:
    """Prefix hashes (`prefix[p]` identifies seq[:p+1]) and window hashes (`window[s]` identifies
    seq[s:s+k]) of one sequence."""

    prefix: np.ndarray
    window: np.ndarray


@dataclass(frozen=True)
class Match:
    prefix: int
    covered: np.ndarray  # bool mask over the prompt: inside a repeated window
    prefix_source: int | None  # ordinal of the step that first left the reused prefix
    sources: np.ndarray  # per covered-or-prefix position, the ordinal it came from (-1: novel)


class ReuseIndex:
    """Earlier sequences of one scope, indexed for prefix and repeated-window lookups."""

    def __init__(self, min_repeat: int = 32, powers: _Powers | None = None) -> None:
        if min_repeat < 1:
            raise ValueError("min_repeat must be >= 1")
        self.k = min_repeat
        self._powers = powers or _Powers()
        self._prefixes: dict[int, int] = {}  # prefix hash -> ordinal of the step that first had it
        self._windows: dict[int, int] = {}  # window hash -> ordinal of the step that first had it

    def hashes(self, seq: np.ndarray, salt: int) -> SequenceHashes:
        n = int(seq.size)
        if n == 0:
            empty = np.zeros(0, dtype=_U64)
            return SequenceHashes(empty, empty)
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
        return SequenceHashes(prefix, window)

    def match(self, prompt_len: int, h: SequenceHashes) -> Match:
        """Reuse for a prompt of `prompt_len` tokens whose hashes (possibly of the prompt followed by
        its output) are `h`."""
        prefixes = self._prefixes
        # Largest L with prompt[:L] stored; valid because the stored set is prefix-closed.
        lo, hi = 0, prompt_len
        prefix_hashes = h.prefix
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if int(prefix_hashes[mid - 1]) in prefixes:
                lo = mid
            else:
                hi = mid - 1
        prefix = lo
        sources = np.full(prompt_len, -1, dtype=np.int64)
        prefix_source = None
        if prefix:
            prefix_source = prefixes[int(prefix_hashes[prefix - 1])]
            sources[:prefix] = prefix_source
        covered = np.zeros(prompt_len, dtype=bool)
        k = self.k
        first = max(0, prefix - k + 1)
        last = prompt_len - k  # last window start inside the prompt
        if last >= first and self._windows:
            windows = self._windows
            starts_src = np.fromiter((windows.get(w, -1) for w in h.window[first: last + 1].tolist()),
                                     dtype=np.int64, count=last + 1 - first)
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
        return Match(prefix=prefix, covered=covered, prefix_source=prefix_source, sources=sources)

    def insert(self, h: SequenceHashes, ordinal: int, reused_prefix: int = 0) -> None:
        """Add a processed sequence. Everything inside its first `reused_prefix` tokens is already
        indexed (that prefix came from an earlier sequence), so only the rest is inserted."""
        new_prefixes = h.prefix[reused_prefix:].tolist()
        self._prefixes.update(dict.fromkeys(set(new_prefixes).difference(self._prefixes), ordinal))
        start = max(0, reused_prefix - self.k + 1)
        new_windows = h.window[start:].tolist()
        self._windows.update(dict.fromkeys(set(new_windows).difference(self._windows), ordinal))

    @property
    def size(self) -> int:
        """Distinct prefixes plus distinct windows held (memory grows with this)."""
        return len(self._prefixes) + len(self._windows)


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
