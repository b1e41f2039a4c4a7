"""Helpers shared by the importers: times, model routes, message identity, walking, merging."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiler.errors import TraceFormatError
from profiler.importers.common import (
    assistant_message,
    merge_traces,
    message_key,
    parse_time,
    split_model_route,
    walk,
)
from profiler.trace.model import Run, Step, Trace, TraceHeader

P = Path("log.jsonl")


@pytest.mark.parametrize("value, expected", [
    (1757000000, 1757000000.0),
    (1757000000123, 1757000000.123),           # milliseconds
    (1757000000123456, 1757000000.123456),     # microseconds
    ("1757000000.5", 1757000000.5),
    ("2025-09-04T12:00:00Z", 1756987200.0),
    ("2025-09-04T14:00:00+02:00", 1756987200.0),
    ("2025-09-04T12:00:00", 1756987200.0),     # naive = UTC
    (None, None),
])
def test_parse_time(value, expected):
    got = parse_time(value, path=P, line=1, field="t")
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@given(st.floats(min_value=1e9, max_value=4e9))
def test_parse_time_reads_seconds_and_milliseconds_alike(seconds):
    assert parse_time(seconds * 1000, path=P, line=1, field="t") == pytest.approx(seconds)


def test_parse_time_errors_name_the_field():
    with pytest.raises(TraceFormatError) as e:
        parse_time("soon", path=P, line=7, field="start_time")
    assert (e.value.line, e.value.field) == (7, "start_time")
    with pytest.raises(TraceFormatError):
        parse_time(True, path=P, line=1, field="t")


@pytest.mark.parametrize("route, expected", [
    ("litellm_proxy/anthropic/claude-sonnet-4-20250514", ("anthropic", "claude-sonnet-4-20250514")),
    ("litellm_proxy/deepseek/deepseek-chat", ("deepseek", "deepseek-chat")),
    ("openai/gpt-4o", ("openai", "gpt-4o")),
    ("gemini/gemini-2.5-pro", ("google", "gemini-2.5-pro")),
    ("gpt-4o", (None, "gpt-4o")),
    ("meta-llama/Llama-3.1-8B", (None, "meta-llama/Llama-3.1-8B")),
    (None, (None, None)),
])
def test_split_model_route(route, expected):
    assert split_model_route(route) == expected


def test_message_key_ignores_serialisation_details():
    a = {"role": "assistant", "content": "hi", "tool_calls": [
        {"index": 0, "function": {"arguments": "{}", "name": "f"}, "id": "c1", "type": "function"}]}
    b = {"content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
         "role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]}
    assert message_key(a) == message_key(b)
    assert message_key(a) != message_key({**b, "content": "hello"})
    assert assistant_message(a) == {"role": "assistant", "content": "hi", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_walk_errors(tmp_path):
    with pytest.raises(TraceFormatError, match="no such file"):
        walk([tmp_path / "missing"], (".json",))
    with pytest.raises(TraceFormatError, match="holds no .json files"):
        walk([tmp_path], (".json",))
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text("{}")
    assert [p.name for p in walk([tmp_path], (".json",))] == ["b.json", "a.json"]


def test_merge_prefixes_colliding_run_ids():
    def trace(source: str) -> Trace:
        step = Step(run_id="r", step_id="s")
        return Trace(header=TraceHeader(attributes={"sources": [source], "reconstructed": {source: "x"}}),
                     runs=(Run(run_id="r", steps=(step,)),))

    merged = merge_traces([trace("a"), trace("b")], labels=["a", "b"])
    assert [r.run_id for r in merged.runs] == ["r", "b:r"]
    assert merged.runs[1].steps[0].run_id == "b:r"
    assert merged.header.attributes["sources"] == ["a", "b"]
    assert set(merged.header.attributes["reconstructed"]) == {"a", "b"}
