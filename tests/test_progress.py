"""The progress line: silent off a terminal, steps/tokens/rate/ETA on one, and wired into analyze."""

from __future__ import annotations

import io

from builders import make_step, make_trace

from profiler.analysis import analyze
from profiler.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_silent_when_not_a_terminal():
    # GIVEN a stream that is not a TTY
    stream = io.StringIO()
    bar = Progress("analyze", 10, stream=stream, is_tty=False)
    # WHEN work is reported and the bar closed
    for _ in range(10):
        bar(1, 100)
    bar.close()
    # THEN nothing was written, yet the counts are kept
    assert stream.getvalue() == "" and (bar.steps, bar.tokens) == (10, 1000)


def test_line_shows_steps_tokens_rate_and_eta():
    clock = Clock()
    stream = io.StringIO()
    bar = Progress("analyze", 4, stream=stream, is_tty=True, clock=clock, min_interval_s=0.0)
    clock.t = 2.0
    bar(1, 2_000_000)
    line = bar.line()
    assert "1/4 steps (25%)" in line and "2.0M tokens" in line and "1.0M tokens/s" in line
    assert "ETA 0:06" in line
    assert stream.getvalue().startswith("\r")
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[2K")


def test_analyze_reports_every_step_and_its_tokens():
    steps = [make_step("r", tokens=list(range(50))), make_step("r", tokens=list(range(70)))]
    seen = []
    analyze(make_trace(steps), progress=lambda s, t: seen.append((s, t)))
    assert seen == [(1, 50), (1, 70)]
