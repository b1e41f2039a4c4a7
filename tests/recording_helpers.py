"""Helpers for the recording tests: a local API server fixture, trace readers, a hand-driven clock.

Kept out of conftest.py on purpose: test modules import what they use, fixtures included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from profiler.testing.fake_api import FakeLLMServer

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def fake_api() -> Iterator[FakeLLMServer]:
    """A local server answering like the OpenAI and Anthropic APIs (real SDKs talk to it over HTTP)."""
    with FakeLLMServer(chunk_delay_s=0.0005, first_token_delay_s=0.005) as server:
        yield server


def records(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The file's records as written, except that a step's prompt is given whole: the parts it shares
    with the previous step of its run (`messages_from` / `tools_from`) are resolved as a reader does."""
    from profiler.trace.model import Step

    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    previous: dict[str, Any] = {}
    for r in out:
        if r.get("type") == "step":
            step = Step.from_dict(r, previous=previous.get(str(r.get("run_id"))))
            previous[step.run_id] = (step.step_id, step.prompt)
            if "prompt" in r:
                r["prompt"] = step.prompt.to_dict()
    return [r for r in out if kind is None or r.get("type") == kind]


class FakeClock:
    """A clock tests advance by hand (unix seconds)."""

    def __init__(self, start: float = 1_700_000_000.0, tick: float = 0.0) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
