"""Indented JSON text, byte for byte what `json.dumps(value, indent=2, default=str)` writes, faster.

The standard library encodes indented JSON in pure Python (its C encoder only runs without
`indent`), one generator step per value; an analysis document has tens of fields per step and
thousands of steps. `dumps(value, indent)` builds the same text recursively with the C functions for
strings and `repr` for numbers, joining each container once.

Contract: for every value `json.dumps(value, indent=indent, default=str)` accepts (dicts with str,
int, float, bool or None keys; lists and tuples; str, int, float, bool, None; anything else through
`str`), `dumps` returns the same string (tests compare them on random documents).
"""

from __future__ import annotations

import json
from typing import Any

_encode_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # the C function
_INF = float("inf")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    return float.__repr__(value)


def _scalar(value: Any) -> str | None:
    """The JSON text of None, a bool or a number; None for anything else."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    return None


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _encode_str(key)
    text = _scalar(key)  # a non-string key is written as the string of its JSON text
    if text is None:
        raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
    return '"' + text + '"'


def _encode(value: Any, pad: str, step: str) -> str:
    if isinstance(value, str):
        return _encode_str(value)
    text = _scalar(value)
    if text is not None:
        return text
    inner = pad + step
    if isinstance(value, dict):
        if not value:
            return "{}"
        sep = ",\n" + inner
        return "{\n" + inner + sep.join(
            [_key(k) + ": " + _encode(v, inner, step) for k, v in value.items()]) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        sep = ",\n" + inner
        return "[\n" + inner + sep.join([_encode(v, inner, step) for v in value]) + "\n" + pad + "]"
    return _encode(str(value), pad, step)  # default=str


def dumps(value: Any, indent: int = 2) -> str:
    """`json.dumps(value, indent=indent, default=str)`, the same text."""
    return _encode(value, "", " " * indent)
