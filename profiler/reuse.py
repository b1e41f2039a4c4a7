"""Reuse of earlier context: the prefix and repeated-span algorithms behind the analyzer's metrics.

Contract (definitions in DESIGN.md, "Metrics"): a `ReuseIndex` holds every sequence S_j = P_j + O_j
that earlier steps of a scope left processed. `match(P)` returns, for a new prompt P,

- `prefix`: the longest common prefix of P with any earlier S_j;
- `covered`: a boolean mask over P; position p is True when some window of `min_repeat` consecutive
  tokens of P containing p occurs somewhere in an earlier S_j;
- where each reused token first appeared (the ordinal of the step that inserted it).

`insert(S, ordinal, match)` adds a finished step. How it stays linear in total tokens, whatever the
shape of the workload (many runs sharing a system prompt, best-of-N, tree search, sliding windows):

- Hashes come from the one hash scheme (`profiler.prefix.hashing`): one vectorised pass per sequence
  gives the hash of every prefix and of every `min_repeat`-token window.
- Prefixes live in the shared `profiler.prefix.PrefixIndex`, one key per 16-token block (the prefix
  hash at the block's end, a prefix-closed set: the longest run of whole blocks is a binary search),
  whose value lists the distinct continuations that followed the block. The last partial block is
  matched by scanning at most 8 continuations; a block continued more often (many runs sharing a
  system prompt, best-of-N, tree search) indexes the prefix hashes inside it instead, so no lookup
  ever scans a growing list.
- Windows live in a dict from window hash to the step that first had it.
- Only what the index does not hold yet is inserted: nothing inside the reused prefix, no window the
  match already found.

`BlockReuseIndex` does the same at block granularity for content-free traces (block hashes only).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from profiler.prefix import PrefixIndex, id_block_hashes, sequence_hashes
from profiler.prefix.hashing import Powers, SequenceHashes, namespace_salt, rolling_extend

_U64 = np.uint64

__all__ = ["BlockMatch", "BlockReuseIndex", "Match", "ReuseIndex", "SequenceHashes", "cover_windows",
           "namespace_salt"]

_Powers = Powers  # the name the analyzer and diagnosis pass around


def _consume(iterator) -> None:
    deque(iterator, maxlen=0)


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


_G = 16  # tokens per prefix block
_FINE_AFTER = 8  # continuations a block scans before it indexes them token by token


class _Block:
    """What followed one block-aligned prefix: the distinct next-`_G`-token continuations (mixed tokens
    as bytes) with the step that first had each. Up to `_FINE_AFTER` of them are scanned; past that
    (many runs continuing one system prompt, best-of-N, tree search) every prefix hash inside the
    block is indexed, so a lookup never scans more than a handful."""

    __slots__ = ("source", "base", "conts", "fine")

    def __init__(self, source: int, base: int) -> None:
        self.source = source  # ordinal of the step that first reached this prefix
        self.base = base  # the prefix's own hash (0 for the empty prefix)
        # Most blocks are followed by one continuation only: it is kept as a (bytes, step) pair, and a
        # dict is made for the second (a dict of one entry cost ~180 bytes per distinct block).
        self.conts: tuple[bytes, int] | dict[bytes, int] | None = None
        self.fine: dict[int, int] | None = None  # prefix hash inside the block -> first step

    def add(self, key: bytes, hashes: np.ndarray, ordinal: int) -> None:
        """`key`: the mixed tokens after the prefix (<= _G) as bytes; `hashes`: their prefix hashes."""
        conts = self.conts
        if not key:
            return
        if conts is None:
            self.conts = (key, ordinal)
            return
        if type(conts) is tuple:
            if conts[0] == key:
                return
            conts = self.conts = {conts[0]: conts[1]}
        elif key in conts:
            return
        conts[key] = ordinal
        if self.fine is not None:
            _consume(map(self.fine.setdefault, hashes.tolist(), repeat(ordinal)))
        elif len(conts) > _FINE_AFTER:
            self.fine = {}
            # Earlier continuations' hashes are recomputed from their tokens (only when switching).
            for c, source in conts.items():
                hashes_c = rolling_extend(self.base, np.frombuffer(c, dtype=_U64))
                _consume(map(self.fine.setdefault, hashes_c, repeat(source)))

    def extend(self, block: np.ndarray, hashes: np.ndarray) -> tuple[int, int | None]:
        """Longest common prefix of `block` (mixed tokens) with any continuation, and its source."""
        conts = self.conts
        if not block.size or conts is None:
            return 0, None
        if self.fine is not None:
            fine = self.fine
            lo, hi = 0, int(block.size)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if int(hashes[mid - 1]) in fine:
                    lo = mid
                else:
                    hi = mid - 1
            return lo, (fine[int(hashes[lo - 1])] if lo else None)
        raw = block.tobytes()
        if type(conts) is tuple:
            n = _common_tokens(raw, conts[0])
            return (n, conts[1]) if n else (0, None)
        best, source = 0, None
        for cont, src in conts.items():
            n = _common_tokens(raw, cont)
            if n > best:
                best, source = n, src
        return best, source


def _common_tokens(a: bytes, b: bytes) -> int:
    """Number of leading 8-byte tokens two byte strings share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n // 8
    lo, hi = 0, n // 8  # binary search on the first differing token (bytes compare in C)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid * 8] == b[:mid * 8]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def cover_windows(prompt_len: int, prefix: int, k: int, first: int, starts_src: np.ndarray,
                  sources: np.ndarray) -> np.ndarray:
    """The repeated-span rule, given the source of each `k`-token window starting at `first`,
    `first + 1`, ... (-1: no earlier step had it): position p is covered when a window holding it
    was seen before and p lies past the reused `prefix`; `sources[p]` (updated in place) is the
    source of the latest such window. The one home of this rule (the Ray global scope uses it too)."""
    covered = np.zeros(prompt_len, dtype=bool)
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
    return covered


class ReuseIndex:
    """Earlier sequences of one scope, indexed for prefix and repeated-window lookups."""

    def __init__(self, min_repeat: int = 32, powers: Powers | None = None) -> None:
        if min_repeat < 1:
            raise ValueError("min_repeat must be >= 1")
        self.k = min_repeat
        self._powers = powers or Powers()
        # Block-aligned prefixes: the prefix hash at each block end -> `_Block` of what followed.
        self._prefixes = PrefixIndex()
        self._root: _Block | None = None
        self._windows: dict[int, int] = {}  # window hash -> ordinal of the step that first had it

    def hashes(self, seq: np.ndarray, salt: int) -> SequenceHashes:
        return sequence_hashes(seq, salt, self.k, self._powers)

    def match(self, prompt_len: int, h: SequenceHashes) -> Match:
        """Reuse for a prompt of `prompt_len` tokens whose hashes (possibly of the prompt followed by
        its output) are `h`."""
        prefix, prefix_source = self._longest_prefix(prompt_len, h)
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
            covered = cover_windows(prompt_len, prefix, k, first, starts_src, sources)
        return Match(prefix=prefix, covered=covered, prefix_source=prefix_source, sources=sources,
                     window_start=first, window_src=starts_src)

    def insert(self, h: SequenceHashes, ordinal: int, match: Match | None = None) -> None:
        """Add a processed sequence (hashed with `hashes`), given its prompt's `match`. Everything
        inside the reused prefix is indexed already (it came from an earlier sequence), and so is
        every window the match found, so only the rest is inserted."""
        reused_prefix = match.prefix if match is not None else 0
        self._insert_prefixes(h, ordinal, reused_prefix)
        start = max(0, reused_prefix - self.k + 1)
        windows = h.window[start:]
        if match is not None and match.window_src is not None and match.window_start == start:
            looked_up = match.window_src.size
            windows = np.concatenate([windows[:looked_up][match.window_src < 0], windows[looked_up:]])
        # setdefault keeps the first step that had each key; map + deque runs the loop in C.
        _consume(map(self._windows.setdefault, windows.tolist(), repeat(ordinal)))

    def _block(self, m: int, h: SequenceHashes) -> _Block | None:
        return self._root if m == 0 else self._prefixes.get(int(h.prefix[m * _G - 1]))

    def _longest_prefix(self, n: int, h: SequenceHashes) -> tuple[int, int | None]:
        if self._root is None or n == 0:
            return 0, None
        # Whole blocks: the block-end keys are prefix-closed, so a binary search finds the last held.
        m = self._prefixes.match(h.prefix[_G - 1: n: _G])
        node = self._block(m, h)
        assert node is not None
        end = min(n, m * _G + _G)
        extra, source = node.extend(h.mixed[m * _G: end], h.prefix[m * _G: end])
        if extra == 0:
            return m * _G, (node.source if m else None)
        return m * _G + extra, source

    def _insert_prefixes(self, h: SequenceHashes, ordinal: int, reused_prefix: int) -> None:
        n = int(h.mixed.size)
        if self._root is None:
            self._root = _Block(ordinal, 0)
        # One conversion per sequence (block-end keys as ints, tokens as bytes), not per block.
        entries, prefix = self._prefixes.entries(), h.prefix
        raw = h.mixed.tobytes()
        first = reused_prefix // _G
        ends = prefix[max(first, 1) * _G - 1::_G].tolist()
        for m in range(first, n // _G + 1):
            if m == 0:
                node = self._root
            else:
                key = ends[m - max(first, 1)]
                node = entries.get(key)
                if node is None:
                    node = entries[key] = _Block(ordinal, key)
            start, end = m * _G, min(n, m * _G + _G)
            node.add(raw[start * 8: end * 8], prefix[start:end], ordinal)

    @property
    def size(self) -> int:
        """Block-aligned prefixes plus distinct windows held (memory grows with this)."""
        return len(self._prefixes) + len(self._windows)


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
        self._chains = PrefixIndex()  # chained block hash -> ordinal of the step that first had it
        self._contents: dict[int, int] = {}

    def match(self, block_hashes: tuple[int, ...], chained: bool) -> BlockMatch:
        chain = id_block_hashes(block_hashes, chained, 0)
        n = self._chains.match_scan(chain)
        repeated = sum(1 for h in block_hashes[n:] if h in self._contents)
        return BlockMatch(n, repeated, self._chains.get(chain[n - 1]) if n else None)

    def insert(self, block_hashes: tuple[int, ...], chained: bool, ordinal: int) -> None:
        self._chains.insert(id_block_hashes(block_hashes, chained, 0), ordinal)
        for h in block_hashes:
            self._contents.setdefault(h, ordinal)
