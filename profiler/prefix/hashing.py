"""The one hash scheme of ctxprof: how a token sequence (or a content-free trace's block ids) becomes
prefix, window and block identities.

Contract:
- `namespace_salt(namespace)`: a 64-bit salt per id space (tokenizer, model...), so ids of different
  vocabularies or models never match.
- `sequence_hashes(seq, salt, window, powers)` -> `SequenceHashes`: tokens mixed with the salt
  (splitmix64), `prefix[p]` identifying `seq[:p+1]` and `window[s]` identifying `seq[s:s+window]`, all
  by one vectorised polynomial rolling hash modulo 2^64 (O(n) numpy work, no Python loop).
- `prefix_hashes(seq, salt)`: the prefix hashes only.
- `block_hashes(prefix, block_size)`: the `BlockHash` of every full block, which is the prefix hash at
  the block's end: equal block hashes mean equal prefixes, as vLLM's chained block hashes.
- `id_block_hashes(ids, chained, salt)`: the same for a content-free step's block ids (per-block
  content ids are chained by the rolling hash; chained ids already identify their prefix and are only
  mixed with the salt).

Hashes are 64-bit, so two different spans collide with probability ~2^-64 per comparison; the tests
compare every metric against brute-force oracles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NewType, Sequence

import numpy as np

# A block's identity: the hash of the whole prefix that ends with it.
BlockHash = NewType("BlockHash", int)

_U64 = np.uint64
_MASK = (1 << 64) - 1
_BASE = 0x9E3779B97F4A7C15 | 1  # odd, so invertible modulo 2^64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_WINDOW_SALT = _U64(0x5BD1E9955BD1E995)  # keeps windows apart from prefixes of the same length


def splitmix(x: np.ndarray) -> np.ndarray:
    """Mix ids so the polynomial hash has no structure to collide on (wrapping uint64)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def namespace_salt(namespace: str) -> int:
    """A 64-bit salt per id space, so ids of different tokenizers (or models) never match."""
    return int.from_bytes(hashlib.blake2b(namespace.encode(), digest_size=8).digest(), "little")


class Powers:
    """BASE^q and BASE^-q modulo 2^64 for q < n, grown on demand (shared by every hash of a run)."""

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


_POWERS = Powers()


@dataclass(frozen=True)
class SequenceHashes:
    """Mixed tokens (`mixed[p]`: token p salted by its id space), prefix hashes (`prefix[p]`
    identifies seq[:p+1]) and window hashes (`window[s]` identifies seq[s:s+k]) of one sequence."""

    mixed: np.ndarray
    prefix: np.ndarray
    window: np.ndarray


_EMPTY = np.zeros(0, dtype=_U64)


def sequence_hashes(seq: np.ndarray, salt: int, window: int = 0,
                    powers: Powers | None = None) -> SequenceHashes:
    """Prefix hashes of `seq` and, when `window` > 0, the hashes of its `window`-token windows."""
    n = int(seq.size)
    if n == 0:
        return SequenceHashes(_EMPTY, _EMPTY, _EMPTY)
    powers = powers or _POWERS
    powers.ensure(n)
    with np.errstate(over="ignore"):
        x = splitmix(np.asarray(seq).astype(_U64) ^ _U64(salt & _MASK))
        # H[p] = sum_{q<=p} x[q] B^(p-q) = B^p * sum_{q<=p} x[q] B^-q  (all modulo 2^64)
        c = np.cumsum(x * powers.neg[:n], dtype=_U64)
        prefix = c * powers.pos[:n]
        k = window
        if k > 0 and n >= k:
            lo = np.concatenate([np.zeros(1, dtype=_U64), c[: n - k]])
            windows = (c[k - 1:] - lo) * powers.pos[k - 1: n]
            windows ^= _WINDOW_SALT
        else:
            windows = _EMPTY
    return SequenceHashes(x, prefix, windows)


def prefix_hashes(seq: np.ndarray, salt: int) -> np.ndarray:
    """`prefix[p]` identifies `seq[:p+1]` in the id space of `salt`."""
    return sequence_hashes(seq, salt).prefix


def block_hashes(prefix: np.ndarray, block_size: int) -> list[BlockHash]:
    """The hash of every full `block_size`-token block: the prefix hash at its end."""
    return prefix[block_size - 1::block_size].tolist()


def _ids_array(ids: Sequence[int]) -> np.ndarray:
    try:
        return np.fromiter(ids, dtype=_U64, count=len(ids))
    except (OverflowError, ValueError, TypeError):  # negative or wider than 64 bits
        return np.fromiter((int(i) & _MASK for i in ids), dtype=_U64, count=len(ids))


def id_block_hashes(ids: Sequence[int], chained: bool, salt: int) -> list[BlockHash]:
    """Block hashes of a content-free step's block ids in the id space of `salt`."""
    if not ids:
        return []
    arr = _ids_array(ids)
    if chained:
        # Chained ids (Mooncake, vLLM) already identify their prefix: only salt them.
        return splitmix(arr ^ _U64(salt & _MASK)).tolist()
    return sequence_hashes(arr, salt).prefix.tolist()


def chained_id_block_hashes_many(id_lists: Sequence[Sequence[int]], salt: int) -> list[list[BlockHash]]:
    """`id_block_hashes(ids, True, salt)` of many steps in one vectorised pass (numpy's per-call cost
    would otherwise dominate for the short id lists of serving traces)."""
    flat = [i for ids in id_lists for i in ids]
    if not flat:
        return [[] for _ in id_lists]
    mixed = splitmix(_ids_array(flat) ^ _U64(salt & _MASK)).tolist()
    out, pos = [], 0
    for ids in id_lists:
        out.append(mixed[pos:pos + len(ids)])
        pos += len(ids)
    return out


def rolling_extend(prefix_hash: int, mixed: np.ndarray) -> list[int]:
    """The prefix hashes of a prefix (whose hash is `prefix_hash`, 0 for the empty prefix) followed by
    the mixed tokens `mixed`: H(p) = H(p-1) * BASE + x[p] modulo 2^64, as `sequence_hashes` computes."""
    out, h = [], prefix_hash & _MASK
    for x in mixed.tolist():
        h = (h * _BASE + x) & _MASK
        out.append(h)
    return out
