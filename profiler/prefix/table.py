"""A compact hash table of 64-bit hashes to int64 values in two numpy arrays (open addressing, linear
probing, load <= 1/2): 24 bytes or less per entry instead of a Python dict entry and int object
(~100 bytes). Batch operations are vectorised; single lookups cost a few numpy scalar reads.

Contract: `setdefault_many(keys, value)` adds the keys not held yet with `value` (a key held keeps its
value, as `dict.setdefault`); `get_many(keys)` returns each key's value or -1; `get(key)` one value or
None. Keys are hashes: key 0 is stored as 1 (0 marks an empty slot), which merges two keys with
probability 2^-64.
"""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
_GOLDEN = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


class HashTable:
    __slots__ = ("_keys", "_vals", "_bits", "_n")

    def __init__(self, bits: int = 10) -> None:
        self._bits = bits
        self._keys = np.zeros(1 << bits, dtype=_U64)
        self._vals = np.zeros(1 << bits, dtype=np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._vals.nbytes)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((keys * _U64(_GOLDEN)) >> _U64(64 - self._bits)).astype(np.int64)

    @staticmethod
    def _clean(keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=_U64)
        if (keys == 0).any():
            keys = keys.copy()
            keys[keys == 0] = 1
        return keys

    def get(self, key: int) -> int | None:
        key = (key & _M64) or 1
        mask = (1 << self._bits) - 1
        slot = ((key * _GOLDEN) & _M64) >> (64 - self._bits)
        keys = self._keys
        while True:
            cur = int(keys[slot])
            if cur == key:
                return int(self._vals[slot])
            if cur == 0:
                return None
            slot = (slot + 1) & mask

    def __contains__(self, key: int) -> bool:
        return self.get(key) is not None

    def get_many(self, keys: np.ndarray) -> np.ndarray:
        keys = self._clean(keys)
        out = np.full(keys.size, -1, dtype=np.int64)
        if not self._n or not keys.size:
            return out
        mask = (1 << self._bits) - 1
        pos = self._slots(keys)
        todo = np.arange(keys.size)
        while todo.size:
            p = pos[todo]
            cur = self._keys[p]
            hit = cur == keys[todo]
            out[todo[hit]] = self._vals[p[hit]]
            go_on = ~hit & (cur != 0)
            todo = todo[go_on]
            pos[todo] = (p[go_on] + 1) & mask
        return out

    def setdefault_many(self, keys: np.ndarray, value: int) -> None:
        keys = np.unique(self._clean(keys))
        if self._n and keys.size:
            keys = keys[self.get_many(keys) < 0]  # a key held keeps its value
        if not keys.size:
            return
        while 2 * (self._n + keys.size) > (1 << self._bits):
            self._grow()
        self._insert_new(keys, np.full(keys.size, value, dtype=np.int64))

    def _grow(self) -> None:
        live = self._keys != 0
        keys, vals = self._keys[live], self._vals[live]
        self._bits += 1
        self._keys = np.zeros(1 << self._bits, dtype=_U64)
        self._vals = np.zeros(1 << self._bits, dtype=np.int64)
        self._n = 0
        self._insert_new(keys, vals)

    def _insert_new(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Insert distinct keys that are not held (with room for them)."""
        mask = (1 << self._bits) - 1
        pos = self._slots(keys)
        todo = np.arange(keys.size)
        table = self._keys
        while todo.size:
            p = pos[todo]
            empty = table[p] == 0
            claimed = np.zeros(todo.size, dtype=bool)
            e_slots = p[empty]
            if e_slots.size:
                # Where several keys want one empty slot, the first claims it; the others find it
                # taken in the next round and probe on.
                uniq, first = np.unique(e_slots, return_index=True)
                winners = np.flatnonzero(empty)[first]
                table[uniq] = keys[todo[winners]]
                self._vals[uniq] = vals[todo[winners]]
                self._n += int(uniq.size)
                claimed[winners] = True
            occupied = ~empty
            pos[todo[occupied]] = (p[occupied] + 1) & mask
            todo = todo[~claimed]
