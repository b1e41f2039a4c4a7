"""TOML for the budgets file: parse with `tomllib`, and find the line each key is written on.

Contract: `parse_toml(text, source)` returns what `tomllib.loads` returns, or raises `ConfigError`
naming the file and line of a syntax error. `KeyLines(text).line(*key)` is the line where `key` (or,
failing that, its closest enclosing table) is written, for error messages; None when not found.

`tomllib` keeps no positions, so the lines come from tomllib itself rather than from a second,
hand-written TOML grammar: each statement (a table header, or a key and its value, which may span
lines) is parsed on its own; it ends at the first line where its text parses. A header sets the table
that the keys of the following statements belong to, and a key is located on the first line of its
statement. Time grows with the file's length; the scan runs only when a line is asked for.
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


def _header_path(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The key path of a table header parsed on its own (`[a."b"]` -> ("a", "b"); `[[a]]` -> ("a",))."""
    path: list[str] = []
    node: Any = data
    while True:
        if isinstance(node, list):
            node = node[-1] if node else {}
        if not isinstance(node, Mapping) or len(node) != 1:
            return tuple(path)
        key = next(iter(node))
        path.append(key)
        node = node[key]


class KeyLines:
    """Lines of the keys and tables of a TOML text; `prefix` is prepended to every looked-up key
    (("tool", "ctxprof") for a pyproject.toml)."""

    def __init__(self, text: str, prefix: tuple[str, ...] = ()) -> None:
        self.prefix = prefix
        self._text = text
        self._lines: dict[tuple[str, ...], int] | None = None

    def _scan(self) -> dict[tuple[str, ...], int]:
        found: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()  # the table the following keys belong to
        statement: list[str] = []  # the lines of the statement being read
        start = 0  # its first line
        for n, line in enumerate(self._text.splitlines(), start=1):
            if not statement:
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                start = n
            statement.append(line)
            try:
                # A statement parses on its own: TOML syntax does not depend on what came before.
                data = tomllib.loads("\n".join(statement))
            except tomllib.TOMLDecodeError:
                continue  # the statement goes on over the next lines
            if statement[0].lstrip().startswith("["):
                table = _header_path(data)
                paths = [table[:i] for i in range(1, len(table) + 1)]
            else:
                paths = [table + path for path in _key_paths(data)]
            for path in paths:
                found.setdefault(path, start)
            statement = []
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
