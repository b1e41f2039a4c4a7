"""`from_dict` for the frozen result dataclasses: the inverse of their `to_dict`, validated.

Contract: `record_from_dict(cls, d, where)` builds `cls` from a JSON-shaped mapping whose keys are
the dataclass's field names. A missing required field, or a value whose JSON type does not match the
field's annotation (`int`, `float`, `str`, `bool`, each optionally `| None`), raises `ProfilerError`
naming `where` and the field. Keys the class does not know are ignored (a newer writer may add
fields). Nested records and tuples are the caller's job: it converts those fields first and passes
them in `nested`.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Mapping, TypeVar

from profiler.errors import ProfilerError

T = TypeVar("T")

_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,),
                                        "bool": (bool,)}


def expect_mapping(d: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ProfilerError(f"{where}: expected an object, got {type(d).__name__}")
    return d


def expect_list(d: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = d.get(name, [])
    if not isinstance(value, list):
        raise ProfilerError(f"{where}: field '{name}' must be a list, got {type(value).__name__}")
    return value


def record_from_dict(cls: type[T], d: Any, where: str, nested: Mapping[str, Any] | None = None) -> T:
    d = expect_mapping(d, where)
    nested = nested or {}
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in nested:
            kwargs[f.name] = nested[f.name]
            continue
        if f.name not in d:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ProfilerError(f"{where}: field '{f.name}' is missing")
            continue
        kwargs[f.name] = _scalar(d[f.name], str(f.type), f"{where}: field '{f.name}'")
    return cls(**kwargs)


def _scalar(value: Any, annotation: str, where: str) -> Any:
    parts = [p.strip() for p in annotation.split("|")]
    if value is None:
        if "None" in parts:
            return None
        raise ProfilerError(f"{where} must not be null")
    for name in parts:
        types = _SCALARS.get(name)
        if types is None:
            continue
        # bool is an int in Python but not a number in a record.
        if isinstance(value, types) and (name == "bool" or not isinstance(value, bool)):
            return float(value) if name == "float" else value
    expected = " or ".join(p for p in parts if p != "None")
    raise ProfilerError(f"{where} must be {expected}, got {value!r}")
