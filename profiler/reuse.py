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
  whose value is a slot in `_Slots`: numpy chunks holding the tokens that first followed the block
  (up to 16) and the steps that had it, so a block costs one dict entry and a row, not a Python
  object. The last partial block is matched against that row. A block continued a second way (a
  branch point) moves to a `_Block`, which scans at most 8 continuations; a block continued more
  often (many runs sharing a system prompt, best-of-N, tree search) indexes the prefix hashes inside
  it instead, so no lookup ever scans a growing list.
- Windows live in a dict from window hash to the step that first had it; a match looks up every
  window past the reused prefix (the output's too), so the insert adds only the new ones.
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
    # Windows looked up (all those of the hashed sequence from `window_start` on): their source, -1
    # where absent. Lets `insert` add only the new ones without looking them up again.
    window_start: int = 0
    window_src: np.ndarray | None = None


_G = 16  # tokens per prefix block
_FINE_AFTER = 8  # continuations a block scans before it indexes them token by token


class _Block:
    """A branch point: a block-aligned prefix followed by more than one distinct next-`_G`-token
    continuation (mixed tokens as bytes), each with the step that first had it. Up to `_FINE_AFTER`
    of them are scanned; past that (many runs continuing one system prompt, best-of-N, tree search)
    every prefix hash inside the block is indexed, so a lookup never scans more than a handful."""

    __slots__ = ("base", "conts", "fine")

    def __init__(self, base: int, first: bytes, source: int) -> None:
        self.base = base  # the prefix's own hash (0 for the empty prefix)
        self.conts: dict[bytes, int] = {first: source}  # continuation -> first step
        self.fine: dict[int, int] | None = None  # prefix hash inside the block -> first step

    def add(self, key: bytes, hashes: np.ndarray, ordinal: int) -> None:
        """`key`: the mixed tokens after the prefix (<= _G) as bytes; `hashes`: their prefix hashes."""
        conts = self.conts
        if not key or key in conts:
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
        if not block.size:
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
        best, source = 0, None
        for cont, src in self.conts.items():
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


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows,) + array.shape[1:], dtype=array.dtype)
    out[:array.shape[0]] = array
    return out


class _Slots:
    """One record per block-aligned prefix, in fixed-size numpy chunks (no Python object per block):
    the first continuation's mixed tokens (up to `_G`), its length and step, and the step that first
    reached the prefix. About 150 bytes a block, beside the index's one dict entry."""

    _CHUNK = 1 << 12

    def __init__(self) -> None:
        self.n = 0
        self._tokens: list[np.ndarray] = []  # (_CHUNK, _G) uint64 each (the first may be shorter)
        self._length: list[np.ndarray] = []  # (_CHUNK,) uint8
        self._steps: list[np.ndarray] = []  # (_CHUNK, 2) int64: first step, continuation's step

    def append(self, mixed: np.ndarray, count: int, ordinal: int) -> int:
        """Add `count` prefixes reached first by step `ordinal`; `mixed` holds their continuations
        back to back (`_G` tokens each, the last one possibly shorter or empty). Returns the first
        new slot."""
        first, done = self.n, 0
        while done < count:
            chunk, row = divmod(self.n, self._CHUNK)
            take = min(count - done, self._CHUNK - row)
            if chunk == len(self._tokens):
                # The first chunk starts small and doubles (a short run's index stays small); later
                # chunks are allocated whole, so a large index never copies what it holds.
                size = self._CHUNK if chunk else min(self._CHUNK, max(64, 2 * take))
                self._tokens.append(np.zeros((size, _G), dtype=_U64))
                self._length.append(np.zeros(size, dtype=np.uint8))
                self._steps.append(np.zeros((size, 2), dtype=np.int64))
            elif row + take > self._length[chunk].size:
                size = min(self._CHUNK, max(2 * self._length[chunk].size, row + take))
                self._tokens[chunk] = _grown(self._tokens[chunk], size)
                self._length[chunk] = _grown(self._length[chunk], size)
                self._steps[chunk] = _grown(self._steps[chunk], size)
            # Rows are never written before, so they are zeros past the continuation's tokens.
            part = mixed[done * _G: (done + take) * _G]
            self._tokens[chunk][row:row + take].reshape(-1)[:part.size] = part
            self._length[chunk][row:row + take] = _G
            self._steps[chunk][row:row + take] = ordinal
            done += take
            self.n += take
            if done == count:  # the last continuation may be short, or empty (no step had it yet)
                tail = int(part.size) - (take - 1) * _G
                self._length[chunk][row + take - 1] = tail
                if not tail:
                    self._steps[chunk][row + take - 1, 1] = -1
        return first

    def source(self, slot: int) -> int:
        chunk, row = divmod(slot, self._CHUNK)
        return int(self._steps[chunk][row, 0])

    def continuation(self, slot: int) -> tuple[np.ndarray, int]:
        """The first continuation's tokens and the step that had it (empty and -1 when none yet)."""
        chunk, row = divmod(slot, self._CHUNK)
        length = int(self._length[chunk][row])
        return self._tokens[chunk][row, :length], int(self._steps[chunk][row, 1])

    def set_continuation(self, slot: int, block: np.ndarray, ordinal: int) -> None:
        chunk, row = divmod(slot, self._CHUNK)
        self._tokens[chunk][row, :block.size] = block
        self._length[chunk][row] = block.size
        self._steps[chunk][row, 1] = ordinal


def cover_windows(prompt_len: int, prefix: int, k: int, first: int, starts_src: np.ndarray,
                  sources: np.ndarray) -> np.ndarray:
    """The repeated-span rule, given the source of each `k`-token window starting at `first`,
    `first + 1`, ... (-1: no earlier step had it): position p is covered when a window holding it
    was seen before and p lies past the reused `prefix`; `sources[p]` (updated in place) is the
    source of the latest such window. The one home of this rule (the Ray global scope uses it too)."""
    covered = np.zeros(prompt_len, dtype=bool)
    hit = np.flatnonzero(starts_src >= 0)
    if hit.size:
        # Positions from `first` on (no window starts before it): for each, the latest hit window
        # starting at or before it.
        span = prompt_len - first
        marks = np.full(span, -1, dtype=np.int64)
        marks[hit] = hit
        latest = np.maximum.accumulate(marks)
        inside = (latest >= 0) & (latest + k > np.arange(span))
        inside[:max(0, prefix - first)] = False
        covered[first:] = inside
        idx = np.flatnonzero(inside)
        sources[idx + first] = starts_src[latest[idx]]
    return covered


class ReuseIndex:
    """Earlier sequences of one scope, indexed for prefix and repeated-window lookups."""

    def __init__(self, min_repeat: int = 32, powers: Powers | None = None) -> None:
        if min_repeat < 1:
            raise ValueError("min_repeat must be >= 1")
        self.k = min_repeat
        self._powers = powers or Powers()
        # Block-aligned prefixes: the prefix hash at each block end -> its slot in `_slots` (slot 0
        # is the empty prefix), which holds the first continuation; branch points move to `_multi`.
        self._prefixes = PrefixIndex()
        self._slots = _Slots()
        self._multi: dict[int, _Block] = {}
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
            # Every window from `first` on, the output's too, so `insert` knows which are new.
            keys = h.window[first:].tolist()
            starts_src = np.fromiter(map(self._windows.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))
            covered = cover_windows(prompt_len, prefix, k, first, starts_src[:last + 1 - first], sources)
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
        if match is not None and match.window_src is not None and match.window_start == start \
                and match.window_src.size == windows.size:
            windows = windows[match.window_src < 0]
        # setdefault keeps the first step that had each window; map + deque runs the loop in C.
        _consume(map(self._windows.setdefault, windows.tolist(), repeat(ordinal)))

    def _longest_prefix(self, n: int, h: SequenceHashes) -> tuple[int, int | None]:
        slots = self._slots
        if not slots.n or n == 0:
            return 0, None
        # Whole blocks: the block-end keys are prefix-closed, so a binary search finds the last held.
        m = self._prefixes.match(h.prefix[_G - 1: n: _G])
        slot = 0 if m == 0 else self._prefixes.get(int(h.prefix[m * _G - 1]))
        end = min(n, m * _G + _G)
        extra, source = self._extend(slot, h.mixed[m * _G: end], h.prefix[m * _G: end])
        if extra == 0:
            return m * _G, (slots.source(slot) if m else None)
        return m * _G + extra, source

    def _extend(self, slot: int, block: np.ndarray, hashes: np.ndarray) -> tuple[int, int | None]:
        """Longest common prefix of `block` (mixed tokens) with any continuation of `slot`'s prefix."""
        multi = self._multi.get(slot)
        if multi is not None:
            return multi.extend(block, hashes)
        cont, source = self._slots.continuation(slot)
        common = _common_tokens(block.tobytes(), cont.tobytes())
        return (common, source) if common else (0, None)

    def _insert_prefixes(self, h: SequenceHashes, ordinal: int, reused_prefix: int) -> None:
        """Index the block-aligned prefixes of `h` from the one holding `reused_prefix` on. Node m is
        the prefix of m blocks; what followed it is `mixed[m*_G : m*_G+_G]`. The prefixes already held
        are a leading run (the set is prefix-closed): only those few are visited one by one, the new
        ones are added in one vectorised step."""
        n = int(h.mixed.size)
        slots, prefix, mixed = self._slots, h.prefix, h.mixed
        if not slots.n:
            slots.append(mixed[:0], 1, ordinal)  # the root: the empty prefix
        first, last = reused_prefix // _G, n // _G  # nodes first..last get a continuation
        lo = max(first, 1)
        keys = prefix[lo * _G - 1: last * _G: _G]  # block-end keys of nodes lo..last
        held = self._prefixes.match(keys)
        if first == 0:
            self._add_continuation(0, 0, 0, h, ordinal)
        entries = self._prefixes.entries()
        for m in range(lo, lo + held):
            key = int(keys[m - lo])
            self._add_continuation(entries[key], key, m, h, ordinal)
        if held < keys.size:
            start = slots.append(mixed[(lo + held) * _G:], int(keys.size) - held, ordinal)
            entries.update(zip(keys[held:].tolist(), range(start, slots.n)))

    def _add_continuation(self, slot: int, key: int, m: int, h: SequenceHashes, ordinal: int) -> None:
        """Record that node `slot` (prefix hash `key`, `m` blocks) was followed by `h`'s next tokens."""
        start, end = m * _G, min(int(h.mixed.size), m * _G + _G)
        if start >= end:
            return
        block = h.mixed[start:end]
        multi = self._multi.get(slot)
        if multi is None:
            cont, source = self._slots.continuation(slot)
            if not cont.size:
                self._slots.set_continuation(slot, block, ordinal)
                return
            if cont.size == block.size and np.array_equal(cont, block):
                return
            # A second distinct continuation: this node moves to a `_Block` (rare: a branch point).
            multi = self._multi[slot] = _Block(key, cont.tobytes(), source)
        multi.add(block.tobytes(), h.prefix[start:end], ordinal)

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
