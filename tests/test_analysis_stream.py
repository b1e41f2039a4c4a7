"""Streamed run-scope analysis (`iter_run_traces` + `analyze_each_run`) against the in-memory one."""

from __future__ import annotations

import json

import pytest
from builders import write_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.analysis import analyze, analyze_each_run
from profiler.errors import TraceFormatError
from profiler.trace.io import iter_run_traces, load_trace

_STEMS = [[], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 9, 9]]


def _step_record(run: str, i: int, start: float, kind: str, stem: list[int], tail: list[int]) -> dict:
    record = {"type": "step", "run_id": run, "step_id": f"s{i}", "kind": "llm", "model": "m",
              "start_unix_s": start}
    if kind == "tokens":
        record["prompt"] = {"token_ids": stem + tail, "tokenizer": "toy"}
        record["output"] = {"token_ids": tail[:3]}
    elif kind == "text":
        record["prompt"] = {"messages": [{"role": "system", "content": "be brief " * len(stem)},
                                         {"role": "user", "content": " ".join(map(str, tail))}]}
        record["output"] = {"message": {"role": "assistant", "content": "ok"}}
    else:
        record["prompt"] = {"block_hashes": stem + tail, "block_size": 4, "num_tokens": 4 * len(stem + tail)}
    return record


# Steps of up to 4 runs, in a random file order, with equal start times now and then; each run gets a
# run_end record right after its last step or (for some runs) none at all.
_steps = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4), st.sampled_from(["tokens", "text", "hashes"]),
                            st.sampled_from(_STEMS), st.lists(st.integers(0, 5), max_size=10)),
                  min_size=1, max_size=16)


@settings(max_examples=60, deadline=None)
@given(_steps, st.sets(st.integers(0, 3)))
def test_streamed_analysis_equals_the_in_memory_analysis(tmp_path_factory, steps, ended):
    # GIVEN a trace file whose runs interleave, some closed by run_end records
    lines, last = [], {}
    for i, (run, start, kind, stem, tail) in enumerate(steps):
        lines.append(_step_record(f"r{run}", i, float(start), kind, stem, tail))
        last[f"r{run}"] = len(lines)
    for at, run in sorted(((pos, run) for run, pos in last.items() if int(run[1:]) in ended), reverse=True):
        lines.insert(at, {"type": "run_end", "run_id": run, "status": "ok"})
    path = write_lines(tmp_path_factory.mktemp("s") / "t.jsonl",
                       [{"type": "run", "run_id": r} for r in last] + lines)
    # WHEN it is analysed run by run from the file, and whole
    streamed = {r.run_id: r for a in analyze_each_run(iter_run_traces(path)) for r in a.runs}
    whole = analyze(load_trace(path), scope="run")
    # THEN every run's figures are identical
    assert set(streamed) == {r.run_id for r in whole.runs}
    for run in whole.runs:
        assert streamed[run.run_id].steps == run.steps
        assert streamed[run.run_id].totals == run.totals


def test_runs_are_released_as_their_run_end_is_read(tmp_path):
    # GIVEN two runs, the first ended before the second starts
    path = write_lines(tmp_path / "t.jsonl", [
        {"type": "run", "run_id": "a"}, _step_record("a", 0, 0.0, "hashes", [1, 2], []),
        {"type": "run_end", "run_id": "a", "status": "ok"},
        {"type": "run", "run_id": "b"}, _step_record("b", 1, 1.0, "hashes", [1, 2], [])])
    runs = iter_run_traces(path)
    # WHEN the first trace is taken
    first = next(runs)
    # THEN it is run a, complete with its end, before the reader has seen run b's step
    assert [r.run_id for r in first.runs] == ["a"] and first.runs[0].status == "ok"
    assert [r.run_id for r in next(runs).runs] == ["b"]


def test_a_step_after_its_runs_end_is_an_error_naming_the_line(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [
        _step_record("a", 0, 0.0, "hashes", [1], []), {"type": "run_end", "run_id": "a"},
        _step_record("a", 1, 1.0, "hashes", [1], [])])
    with pytest.raises(TraceFormatError, match="after the run's run_end") as e:
        list(iter_run_traces(path))
    assert e.value.line == 4


def test_the_last_trace_carries_the_files_warnings(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [_step_record("a", 0, 0.0, "hashes", [1], []),
                                              {"type": "mystery"}])
    traces = list(iter_run_traces(path))
    assert any("unknown type 'mystery'" in w for w in traces[-1].warnings)
    assert json.loads(path.read_text().splitlines()[1])["run_id"] == "a"
