"""The trace model (profiler.trace.model): a trace refuses what analysis would report wrongly."""

from __future__ import annotations

import pytest

from builders import make_step, make_trace, write_lines
from profiler.errors import TraceFormatError
from profiler.trace import load_trace


def test_from_steps_rejects_a_step_id_used_twice_in_a_run():
    # GIVEN two steps of one run with the same id
    steps = [make_step("r1", step_id="s1", tokens=[1]), make_step("r1", step_id="s1", tokens=[2])]
    # WHEN a trace is built THEN the error names the id and the run
    with pytest.raises(TraceFormatError, match=r"duplicate step id 's1' in run 'r1'"):
        make_trace(steps, path="t.jsonl")


def test_a_duplicate_with_known_lines_names_file_and_lines():
    steps = [make_step("r1", step_id="s1", tokens=[1], line=2), make_step("r1", step_id="s1", tokens=[2], line=5)]
    with pytest.raises(TraceFormatError, match=r"^t.jsonl:5, field 'step_id': duplicate step id 's1' "
                                               r"in run 'r1' \(lines 2 and 5\)"):
        make_trace(steps, path="t.jsonl")


def test_the_same_step_id_in_two_runs_is_fine():
    trace = make_trace([make_step("r1", step_id="s1", tokens=[1]), make_step("r2", step_id="s1", tokens=[2])])
    assert [len(r.steps) for r in trace.runs] == [1, 1]


def test_the_reader_names_file_and_both_lines(tmp_path):
    # GIVEN a trace file whose lines 2 and 3 are steps with one id
    step = {"type": "step", "run_id": "r1", "step_id": "dup", "kind": "llm",
            "prompt": {"token_ids": [1, 2], "tokenizer": "test"}}
    path = write_lines(tmp_path / "t.jsonl", [step, step])
    # WHEN it is read THEN the error names the file, the line and the id
    with pytest.raises(TraceFormatError, match=rf"^{path}:3, field 'step_id': duplicate step id 'dup'.*line 2"):
        load_trace(path)
