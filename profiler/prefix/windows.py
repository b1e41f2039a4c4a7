"""The repeated-window table: window hash -> the first step that had the window, for whole batches.

Contract:
- `WindowTable.get_many(keys)` returns, for a uint64 array of window hashes, the value stored for
  each (-1 where absent); `setdefault_many(keys, value)` stores `value` for every key not held yet
  (the first value of a key is kept, as `dict.setdefault`). Values are non-negative int64.
- Both take a whole sequence's windows at once and run as a few vectorised numpy passes, with no
  probing loop: keys live in buckets of `_WIDTH` slots (two flat arrays, keys and values, plus a fill
  count per bucket), at most half full on average, doubled when they would pass that. A lookup
  gathers each key's bucket and compares it whole; an insert sorts the new keys (which drops
  duplicates and groups them by bucket), ranks them within their bucket and writes them after the
  bucket's fill. The rare key whose bucket is full goes to a small overflow
  dict. A window costs 32 to 64 bytes instead of a dict entry with two int objects (~100 bytes).
- A small table is a plain dict (numpy's per-call cost would dominate small batches); past
  `_SMALL` windows it moves to the arrays, where large tables are both faster (fewer cache misses
  than a dict of int objects) and three times smaller.
- Keys are hashes from `profiler.prefix.hashing` (already mixed), so their top bits pick the bucket.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat

import numpy as np

_WIDTH = 8  # slots per bucket
_EMPTY = -1
_SMALL = 1 << 15  # windows held in a dict before the table moves to arrays


class WindowTable:
    """Window hash -> first step, held in numpy arrays (see the module docstring)."""

    __slots__ = ("_small", "_limit", "_keys", "_values", "_fill", "_shift", "_overflow", "size")

    def __init__(self, small: int | None = None) -> None:
        self._small: dict[int, int] | None = {}
        self._limit = _SMALL if small is None else small  # windows in the dict before the arrays
        self.size = 0

    def _allocate(self, capacity: int) -> None:
        buckets = 1 << max(1, (max(capacity // _WIDTH, 1) - 1).bit_length())
        self._keys = np.zeros((buckets, _WIDTH), dtype=np.uint64)
        self._values = np.full((buckets, _WIDTH), _EMPTY, dtype=np.int64)
        self._fill = np.zeros(buckets, dtype=np.int64)
        # A key's bucket is its top bits, so sorting keys also groups them by bucket.
        self._shift = np.uint64(64 - (buckets.bit_length() - 1))
        self._overflow: dict[int, int] = {}

    def __len__(self) -> int:
        return self.size

    def _bucket(self, keys: np.ndarray) -> np.ndarray:
        return (keys >> self._shift).astype(np.intp)

    def get_many(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, -1 where the table does not hold it."""
        if self._small is not None:
            return np.fromiter(map(self._small.get, keys.tolist(), repeat(_EMPTY)), dtype=np.int64,
                               count=keys.size)
        if not keys.size:
            return np.full(keys.size, _EMPTY, dtype=np.int64)
        b = self._bucket(keys)
        # A held key's slot holds its value (>= 0); empty slots hold -1, so the row's maximum over
        # matching slots is the value, or -1 (an empty slot's zero bits may "match" a zero key).
        out = np.where(self._keys[b] == keys[:, None], self._values[b], _EMPTY).max(axis=1)
        if self._overflow:
            spill = np.flatnonzero((out < 0) & (self._fill[b] == _WIDTH))
            if spill.size:
                get = self._overflow.get
                out[spill] = [get(k, _EMPTY) for k in keys[spill].tolist()]
        return out

    def setdefault_many(self, keys: np.ndarray, value: int, absent: bool = False) -> None:
        """Store `value` for every key of `keys` the table does not hold yet. `absent`: the caller
        has just looked every key up (`get_many`) and found none, which saves a lookup here."""
        if not keys.size:
            return
        small = self._small
        if small is not None:
            deque(map(small.setdefault, keys.tolist(), repeat(value)), maxlen=0)  # the loop runs in C
            self.size = len(small)
            if self.size > self._limit:
                self._small = None
                held = np.fromiter(small, dtype=np.uint64, count=len(small))
                values = np.fromiter(small.values(), dtype=np.int64, count=len(small))
                self._allocate(4 * len(small))
                self.size = 0
                order = np.argsort(held)
                self._place(held[order], values[order])
            return
        keys = np.sort(keys)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        if not absent:
            keys = keys[self.get_many(keys) < 0]
        if not keys.size:
            return
        if 2 * (self.size + keys.size) > self._keys.size:
            self._grow(self.size + keys.size)
        self._place(keys, np.full(keys.size, value, dtype=np.int64))

    def _place(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Insert distinct keys, sorted, that the table does not hold."""
        if not keys.size:
            return
        n = int(keys.size)
        b = self._bucket(keys)  # sorted too: buckets are the keys' top bits
        first_of_bucket = np.empty(n, dtype=bool)
        first_of_bucket[0] = True
        np.not_equal(b[1:], b[:-1], out=first_of_bucket[1:])
        last_of_bucket = np.empty(n, dtype=bool)
        last_of_bucket[-1] = True
        last_of_bucket[:-1] = first_of_bucket[1:]
        at = np.arange(n)
        rank = at - np.maximum.accumulate(np.where(first_of_bucket, at, 0))
        col = self._fill[b] + rank
        ends = b[last_of_bucket]
        self._fill[ends] = np.minimum(_WIDTH, col[last_of_bucket] + 1)
        if int(col[last_of_bucket].max()) >= _WIDTH:  # some bucket is full: its extra keys spill
            fits = col < _WIDTH
            self._overflow.update(zip(keys[~fits].tolist(), vals[~fits].tolist()))
            b, col, keys, vals = b[fits], col[fits], keys[fits], vals[fits]
        self._keys[b, col] = keys
        self._values[b, col] = vals
        self.size += n

    def _grow(self, needed: int) -> None:
        held = self._values != _EMPTY
        keys, vals = self._keys[held], self._values[held]
        spilled = self._overflow
        capacity = self._keys.size
        while 2 * needed > capacity:
            capacity *= 2
        self._allocate(capacity)
        self.size = 0
        if spilled:
            keys = np.concatenate([keys, np.fromiter(spilled, dtype=np.uint64, count=len(spilled))])
            vals = np.concatenate([vals, np.fromiter(spilled.values(), dtype=np.int64, count=len(spilled))])
        order = np.argsort(keys)
        self._place(keys[order], vals[order])
