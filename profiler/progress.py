"""Progress of long work on a terminal: steps and tokens done, rate, ETA, on one redrawn line.

Contract: `Progress(label, total_steps, stream=..., is_tty=...)` is a callable `(steps, tokens)` that
library code receives as an optional callback (`analyze(..., progress=p)`), knowing nothing of
terminals; the CLI creates it with the stream and TTY flag it owns (stderr) and `close()`s it. When
`is_tty` is false it writes nothing at all, so piped and redirected output stays clean. Redraws are
throttled to `min_interval_s`, so the cost per step is a couple of additions.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

ProgressFn = Callable[[int, int], None]


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


class Progress:
    """Counts steps and tokens and redraws one status line on a terminal stream."""

    def __init__(self, label: str, total_steps: int | None, *, stream: TextIO, is_tty: bool,
                 min_interval_s: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 unit: str = "steps") -> None:
        self.label = label
        self.unit = unit  # what is counted: "steps" (with tokens), or e.g. "tasks" of a cluster
        self.total_steps = total_steps
        self.stream = stream
        self.enabled = is_tty
        self.steps = 0
        self.tokens = 0
        self._clock = clock
        self._start = clock()
        self._next_draw = self._start
        self._interval = min_interval_s
        self._drawn = False

    def __call__(self, steps: int = 1, tokens: int = 0) -> None:
        self.steps += steps
        self.tokens += tokens
        if self.enabled:
            now = self._clock()
            if now >= self._next_draw:
                self._next_draw = now + self._interval
                self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The status line: label, steps (of total), tokens, rate, ETA."""
        elapsed = max((self._clock() if now is None else now) - self._start, 1e-9)
        rate = self.tokens / elapsed
        parts = [self.label]
        if self.total_steps:
            parts.append(f"{self.steps:,}/{self.total_steps:,} {self.unit} "
                         f"({self.steps / self.total_steps:.0%})")
        else:
            parts.append(f"{self.steps:,} {self.unit}")
        if self.unit == "steps":
            parts.append(f"{_count(self.tokens)} tokens")
            parts.append(f"{_count(rate)} tokens/s")
        if self.total_steps and self.steps:
            remaining = elapsed / self.steps * (self.total_steps - self.steps)
            parts.append(f"ETA {_duration(remaining)}")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[2K" + self.line(now))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Clear the line (the command's own output follows)."""
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        self._drawn = False
