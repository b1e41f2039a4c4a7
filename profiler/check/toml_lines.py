"""TOML for the budgets file: parse with `tomllib`, and find the line each key is written on.

Contract: `parse_toml(text, source)` returns what `tomllib.loads` returns, or raises `ConfigError`
naming the file and line of a syntax error. `KeyLines(text).line(*key)` is the line where `key` (or,
failing that, its closest enclosing table) is written, for error messages; None when not found.

`tomllib` keeps no positions, so the lines come from tomllib itself rather than from a second,
hand-written TOML grammar: the text is parsed line by line as a growing prefix, and a key belongs to
the first statement after which it exists (a statement ends at the first line where the prefix parses
again, so a multi-line value belongs to the line it starts on). Budgets files are tens of lines; the
scan runs only when a line is asked for.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Iterator, Mapping

from profiler.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        line = getattr(e, "lineno", None)
        if line is None:
            m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
            line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        msg = re.sub(r"\s*\(at end of document\)", " at the end of the file", msg)
        where = source if line is None else f"{source}:{line}"
        raise ConfigError(f"{where}: invalid TOML: {msg} (fix the syntax; see docs/ci.md for the "
                          "budgets file format)") from None


def _key_paths(table: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in table.items():
        path = prefix + (key,)
        yield path
        if isinstance(value, Mapping):
            yield from _key_paths(value, path)
        elif isinstance(value, list):
            for item in value:  # arrays of tables: their keys are located at the array's line
                if isinstance(item, Mapping):
                    yield from _key_paths(item, path)


class KeyLines:
    """Lines of the keys and tables of a TOML text; `prefix` is prepended to every looked-up key
    (("tool", "ctxprof") for a pyproject.toml)."""

    def __init__(self, text: str, prefix: tuple[str, ...] = ()) -> None:
        self.prefix = prefix
        self._text = text
        self._lines: dict[tuple[str, ...], int] | None = None

    def _scan(self) -> dict[tuple[str, ...], int]:
        lines = self._text.splitlines()
        found: dict[tuple[str, ...], int] = {}
        statement_start: int | None = None  # first line of the statement being read
        for n, line in enumerate(lines, start=1):
            stripped = line.strip()
            if statement_start is None:
                if not stripped or stripped.startswith("#"):
                    continue
                statement_start = n
            try:
                data = tomllib.loads("\n".join(lines[:n]))
            except tomllib.TOMLDecodeError:
                continue  # the statement goes on over the next lines
            for path in _key_paths(data):
                found.setdefault(path, statement_start)
            statement_start = None
        return found

    def line(self, *key: str) -> int | None:
        """Line of `key`, else of its closest enclosing table that was found."""
        if self._lines is None:
            self._lines = self._scan()
        full = self.prefix + key
        for i in range(len(full), 0, -1):
            if full[:i] in self._lines:
                return self._lines[full[:i]]
        return None
