"""Errors ctxprof raises for user mistakes and unusable input.

Every message names where the problem is (file, line, field where known) and says what to do next.
The CLI maps these to exit codes in one place (`profiler.cli.app`): `CheckFailed` -> 1, every other
`ProfilerError` -> 2. Library code never prints or exits.
"""

from __future__ import annotations

import os
from typing import Iterable


class ProfilerError(Exception):
    """Base class for every error ctxprof reports to a user."""


class TraceFormatError(ProfilerError):
    """A trace file (or one of its records) does not follow the trace format."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.hint = hint
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        elif line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        text = (": ".join([", ".join(where), message]) if where else message)
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class UnsupportedVersionError(TraceFormatError):
    """The trace was written by a newer ctxprof than this one."""


class TokenizerError(ProfilerError):
    """A tokenizer could not be loaded offline."""


class PricingError(ProfilerError):
    """A price table could not be read."""


class ConfigError(ProfilerError):
    """A configuration file (budgets, price file) is invalid."""


class CheckFailed(ProfilerError):
    """A CI check ran and found a budget exceeded or a regression (exit code 1)."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate to a mistyped `word`, else ''."""
    import difflib

    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def read_config_text(path: "os.PathLike[str] | str", what: str, if_missing: str) -> str:
    """The text of a user's file (`what`: "the baseline"), or a `ConfigError` naming the file and,
    when it does not exist, saying what to do (`if_missing`)."""
    from pathlib import Path

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found ({if_missing})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what}: {e}") from None


class OutputError(ProfilerError):
    """An output file cannot be written (a folder, a missing parent folder, a full disk)."""
