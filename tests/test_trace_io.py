"""Trace file reading and writing: round trips, crash safety, clear errors."""

from __future__ import annotations

import gzip
import json
import threading

import pytest
from builders import make_step, make_trace, save, write_lines

from profiler.errors import TraceFormatError, UnsupportedVersionError
from profiler.trace.io import TraceWriter, iter_records, load_trace
from profiler.trace.model import SCHEMA_VERSION, GpuStats, Run, TraceHeader, Usage


def test_round_trip_keeps_every_field(tmp_path):
    # GIVEN a trace with runs, text, token and usage content
    steps = [
        make_step("a", messages=[{"role": "system", "content": "hi"}], answer="yo",
                  usage=Usage(input_tokens=10, cache_read_tokens=4, output_tokens=2), ttft_ms=12.5,
                  gpu=GpuStats(device="H100", energy_j=3.5), attributes={"k": [1, 2]}),
        make_step("a", tokens=[1, 2, 3], output=[4]),
        make_step("b", tokens=[5, 6], output=[]),
    ]
    trace = make_trace(steps, runs=[Run(run_id="a", workflow="wf")])
    # WHEN it is written and read back
    loaded = load_trace(save(trace, tmp_path / "t.jsonl"))
    # THEN the steps are equal and the run keeps its workflow
    assert loaded.steps == trace.steps
    assert loaded.run("a").workflow == "wf"
    assert loaded.header.schema_version == SCHEMA_VERSION == 2


def test_gzip_round_trip(tmp_path):
    trace = make_trace([make_step(tokens=[1, 2, 3], output=[4])])
    path = save(trace, tmp_path / "t.jsonl.gz")
    assert gzip.open(path, "rt").readline().startswith('{"type":"header"')
    assert load_trace(path).steps == trace.steps


def test_steps_are_ordered_by_start_then_file_order(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [
        {"type": "step", "run_id": "r", "step_id": "late", "start_unix_s": 5},
        {"type": "step", "run_id": "r", "step_id": "tie-1", "start_unix_s": 1},
        {"type": "step", "run_id": "r", "step_id": "tie-2", "start_unix_s": 1},
    ])
    assert [s.step_id for s in load_trace(path).steps] == ["tie-1", "tie-2", "late"]


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    # GIVEN a trace whose writer died in the middle of its last line
    path = write_lines(tmp_path / "t.jsonl", [
        {"type": "step", "run_id": "r", "step_id": "1"},
        '{"type": "step", "run_id": "r", "st',
    ], newline_at_end=False)
    # WHEN it is loaded
    trace = load_trace(path)
    # THEN the complete step survives and the torn line is reported
    assert [s.step_id for s in trace.steps] == ["1"]
    assert len(trace.warnings) == 1 and ":3:" in trace.warnings[0] and "torn" in trace.warnings[0]


def test_a_bad_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [
        '{"type": "step", "run_id": "r", "st',
        {"type": "step", "run_id": "r", "step_id": "2"},
    ])
    with pytest.raises(TraceFormatError, match=r"t\.jsonl:2: not valid JSON"):
        load_trace(path)


@pytest.mark.parametrize("record, field", [
    ({"type": "step", "run_id": "r"}, "step_id"),
    ({"type": "step", "run_id": "r", "step_id": "1", "start_unix_s": "noon"}, "start_unix_s"),
    ({"type": "step", "run_id": "r", "step_id": "1", "usage": {"input_tokens": -3}}, "usage.input_tokens"),
    ({"type": "step", "run_id": "r", "step_id": "1", "usage": {"input_tokens": True}}, "usage.input_tokens"),
    ({"type": "step", "run_id": "r", "step_id": "1", "prompt": {"messages": [{"content": "x"}]}},
     "prompt.messages[0]"),
    ({"type": "step", "run_id": "r", "step_id": "1", "prompt": {"token_ids": [1, "2"]}}, "prompt.token_ids"),
    ({"type": "step", "run_id": "r", "step_id": "1", "kind": "banana"}, "kind"),
    ({"type": "step", "run_id": "r", "step_id": "1", "prompt": {"messages": [], "response_format": "json"}},
     "prompt.response_format"),
    ({"step_id": "1"}, "type"),
])
def test_wrong_types_name_the_field(tmp_path, record, field):
    path = write_lines(tmp_path / "t.jsonl", [record])
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert info.value.line == 2
    assert info.value.field == field
    assert str(info.value).startswith(f"{path}:2, field '{field}'")


def test_newer_schema_is_refused_with_an_upgrade_hint(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [], header={"type": "header", "format": "ctxprof-trace",
                                                          "schema_version": 99})
    with pytest.raises(UnsupportedVersionError, match="upgrade ctxprof"):
        load_trace(path)


def test_older_schema_is_migrated(tmp_path, monkeypatch):
    # GIVEN a (hypothetical) version-0 record shape and a migration from it
    from profiler.trace import io as trace_io

    monkeypatch.setitem(trace_io.MIGRATIONS, 0, lambda r: {**r, "step_id": r.pop("id", r.get("step_id"))})
    monkeypatch.setattr(trace_io, "parse_header", lambda rec, path, lineno: TraceHeader(schema_version=0))
    path = write_lines(tmp_path / "t.jsonl", [{"type": "step", "run_id": "r", "id": "old"}],
                       header={"type": "header", "format": "ctxprof-trace", "schema_version": 0})
    # WHEN it is read, THEN the migrated field is there
    assert [s.step_id for s in load_trace(path).steps] == ["old"]


@pytest.mark.parametrize("content, message", [
    ("this is not json\n", "not JSON"),
    ('{"hello": 1}\n', "not a ctxprof trace"),
    ("", "is empty"),
])
def test_files_that_are_not_traces(tmp_path, content, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(TraceFormatError, match=message):
        load_trace(path)


def test_missing_file(tmp_path):
    with pytest.raises(TraceFormatError, match="no such file"):
        load_trace(tmp_path / "nope.jsonl")


def test_duplicate_step_ids_are_an_error(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"type": "step", "run_id": "r", "step_id": "1"},
                                              {"type": "step", "run_id": "r", "step_id": "1"}])
    with pytest.raises(TraceFormatError, match="duplicate step id '1' in run 'r' \\(first on line 2\\)"):
        load_trace(path)


def test_writer_appends_after_a_torn_line_without_corrupting(tmp_path):
    # GIVEN a trace left with a torn last line by a crashed writer
    path = write_lines(tmp_path / "t.jsonl", [{"type": "step", "run_id": "r", "step_id": "1"}, '{"type": "st'],
                       newline_at_end=False)
    # WHEN a new writer appends a step
    with TraceWriter(path) as w:
        w.write_step(make_step("r", step_id="2", tokens=[1]))
    # THEN the torn line is gone and both complete steps read back
    assert [s.step_id for s in load_trace(path).steps] == ["1", "2"]


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path)
    big = "x" * 20_000  # longer than a pipe buffer, so unlocked writes would interleave

    def work(t: int) -> None:
        for i in range(50):
            writer.write_step(make_step(f"run-{t}", step_id=str(i), messages=[{"role": "user", "content": big}]))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    writer.close()
    trace = load_trace(path)
    assert len(trace.steps) == 400
    assert all(len(r.steps) == 50 for r in trace.runs)


def test_iter_records_streams_header_first(tmp_path):
    path = save(make_trace([make_step(tokens=[1])]), tmp_path / "t.jsonl")
    records = list(iter_records(path))
    assert records[0][1]["format"] == "ctxprof-trace"
    assert [(n, r["type"]) for n, r in records[1:]] == [(2, "run"), (3, "step")]
    assert json.loads(path.read_text().splitlines()[0])["producer"]["name"] == "ctxprof"


def test_a_response_format_round_trips_and_older_files_load_without_one(tmp_path):
    from dataclasses import replace

    from profiler.trace.model import Prompt

    # GIVEN a step whose prompt carries a structured-output format, and one written before the field
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    step = make_step("a", messages=[{"role": "user", "content": "hi"}], answer="{}")
    with_format = replace(step, prompt=replace(step.prompt, response_format=fmt))
    # WHEN written and read back
    loaded = load_trace(save(make_trace([with_format]), tmp_path / "t.jsonl"))
    # THEN the format survives, and a prompt without the key reads as None
    assert loaded.steps[0].prompt.response_format == fmt
    assert Prompt.from_dict({"messages": [{"role": "user", "content": "hi"}]}).response_format is None


# --- shared history (schema 2: `messages_from` / `tools_from`) -----------------------------------

def _conversation(run: str, turns: int, tools: list[dict] | None = None, start: float = 0.0) -> list:
    """A growing conversation: each step's prompt is the previous one plus an answer and a result."""
    history = [{"role": "system", "content": "You are a careful agent."}, {"role": "user", "content": "go"}]
    steps = []
    for i in range(turns):
        steps.append(make_step(run, step_id=f"{run}{i}", messages=list(history), tools=tools,
                               answer=f"step {i}", start=start + i))
        history += [{"role": "assistant", "content": f"step {i}"}, {"role": "tool", "content": f"result {i}"}]
    return steps


def _raw_steps(path):
    return [json.loads(line) for line in path.read_text().splitlines()[1:] if '"type":"step"' in line]


def test_a_growing_run_is_written_as_its_new_messages_and_read_back_whole(tmp_path):
    # GIVEN two interleaved growing conversations with the same tools
    tools = [{"type": "function", "function": {"name": "search", "description": "find " * 50}}]
    a, b = _conversation("a", 30, tools), _conversation("b", 30, tools, start=0.5)
    trace = make_trace([s for pair in zip(a, b) for s in pair])
    # WHEN it is written
    path = save(trace, tmp_path / "t.jsonl")
    # THEN every step after a run's first refers to the step before it in its run, with only its
    # new messages written, and the tools by reference
    raw = _raw_steps(path)
    for run, steps in (("a", a), ("b", b)):
        mine = [r for r in raw if r["run_id"] == run]
        assert "messages_from" not in mine[0]["prompt"] and mine[0]["prompt"]["tools"]
        for before, r in zip(steps, mine[1:]):
            assert r["prompt"]["messages_from"] == {"step_id": before.step_id, "count": len(before.prompt.messages)}
            assert len(r["prompt"]["messages"]) == 2 and r["prompt"]["tools_from"] == {"step_id": before.step_id}
    # AND the file is a fraction of the prompts written whole
    whole = sum(len(json.dumps(s.to_dict())) for s in trace.steps)
    assert path.stat().st_size < whole / 5
    # AND reading gives the same steps, sharing the message objects with the step before
    loaded = load_trace(path)
    assert loaded.steps == trace.steps
    s0, s1 = loaded.run("a").steps[:2]
    assert s1.prompt.messages[0] is s0.prompt.messages[0] and s1.prompt.tools is s0.prompt.tools


def test_a_prompt_that_drops_or_rewrites_history_refers_to_the_shared_head_only(tmp_path):
    # GIVEN a sliding window (the oldest messages dropped), a rewritten message, and a retry
    base = [{"role": "system", "content": "sys"}] + [{"role": "user", "content": f"m{i}"} for i in range(6)]
    prompts = [base, base[:3] + [{"role": "user", "content": "rewritten"}] + base[4:],
               [base[0]] + base[3:], [base[0]] + base[3:], [{"role": "user", "content": "fresh"}]]
    steps = [make_step("r", step_id=f"s{i}", messages=p, start=float(i)) for i, p in enumerate(prompts)]
    path = save(make_trace(steps), tmp_path / "t.jsonl")
    # THEN each step refers to as many leading messages as it shares with the previous one
    counts = [r["prompt"].get("messages_from", {}).get("count", 0) for r in _raw_steps(path)]
    assert counts == [0, 3, 1, 5, 0]
    assert load_trace(path).steps == tuple(steps)


def test_streaming_a_run_by_run_read_resolves_references_and_forgets_ended_runs(tmp_path):
    from profiler.trace.io import iter_run_traces

    steps = _conversation("a", 5) + _conversation("b", 5, start=10.0)
    trace = make_trace(steps, runs=[Run(run_id="a", end_unix_s=5.0), Run(run_id="b", end_unix_s=20.0)])
    path = save(trace, tmp_path / "t.jsonl")
    runs = list(iter_run_traces(path))
    assert [s for t in runs for s in t.steps] == list(trace.steps)


def test_steps_reordered_or_removed_are_refused_naming_the_line_and_field(tmp_path):
    # GIVEN a written growing run whose lines are then swapped, or whose step is removed
    path = save(make_trace(_conversation("a", 4)), tmp_path / "t.jsonl")
    lines = path.read_text().splitlines()
    steps = [i for i, line in enumerate(lines) if '"type":"step"' in line]
    swapped = list(lines)
    swapped[steps[1]], swapped[steps[2]] = lines[steps[2]], lines[steps[1]]
    (tmp_path / "swapped.jsonl").write_text("\n".join(swapped) + "\n")
    removed = [line for i, line in enumerate(lines) if i != steps[0]]
    (tmp_path / "removed.jsonl").write_text("\n".join(removed) + "\n")
    # WHEN read, THEN one clear error names the line, the field and what to do
    with pytest.raises(TraceFormatError) as e:
        load_trace(tmp_path / "swapped.jsonl")
    assert e.value.line == steps[1] + 1 and e.value.field == "prompt.messages_from.step_id"
    assert "'a1'" in e.value.reason and "'a0'" in e.value.reason and "order" in e.value.hint
    with pytest.raises(TraceFormatError) as e:
        load_trace(tmp_path / "removed.jsonl")
    assert "no step of this run comes before" in e.value.reason


@pytest.mark.parametrize("ref, reason", [
    ({"step_id": "s0", "count": 5}, "between 1 and the 2 message(s)"),
    ({"step_id": "s0", "count": 0}, "between 1 and the 2 message(s)"),
    ({"step_id": "s0", "count": "2"}, "expected an integer"),
    ({"count": 1}, "is required"),
    ("s0", "expected an object"),
])
def test_bad_references_are_refused_clearly(tmp_path, ref, reason):
    first = {"type": "step", "run_id": "r", "step_id": "s0",
             "prompt": {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}}
    second = {"type": "step", "run_id": "r", "step_id": "s1", "prompt": {"messages_from": ref, "messages": []}}
    path = write_lines(tmp_path / "t.jsonl", [first, second],
                       header={"type": "header", "format": "ctxprof-trace", "schema_version": 2})
    with pytest.raises(TraceFormatError) as e:
        load_trace(path)
    assert e.value.line == 3 and e.value.field.startswith("prompt.messages_from") and reason in e.value.reason


def test_tools_from_a_step_without_tools_is_refused(tmp_path):
    first = {"type": "step", "run_id": "r", "step_id": "s0", "prompt": {"messages": []}}
    second = {"type": "step", "run_id": "r", "step_id": "s1",
              "prompt": {"messages": [], "tools_from": {"step_id": "s0"}}}
    path = write_lines(tmp_path / "t.jsonl", [first, second])
    with pytest.raises(TraceFormatError, match="has no tools") as e:
        load_trace(path)
    assert e.value.field == "prompt.tools_from"


def test_appending_to_a_file_starts_each_run_whole_and_a_torn_reference_is_skipped(tmp_path):
    # GIVEN a run written by one writer, continued by a second writer appending to the same file
    steps = _conversation("a", 4)
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as w:
        for s in steps[:2]:
            w.write_step(s)
    with TraceWriter(path) as w:
        for s in steps[2:]:
            w.write_step(s)
    raw = _raw_steps(path)
    # THEN the second writer's first step is whole, its second refers to it
    assert ["messages_from" in r["prompt"] for r in raw] == [False, True, False, True]
    assert load_trace(path).steps == tuple(steps)
    # AND a crash that tears the last (referring) line loses that line only
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 1] + text.rstrip("\n").rsplit("\n", 1)[1][:40])
    loaded = load_trace(path)
    assert loaded.steps == tuple(steps[:3]) and "torn" in loaded.warnings[0]


def test_a_version_1_file_reads_as_before(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [
        {"type": "step", "run_id": "r", "step_id": "s0", "prompt": {"messages": [{"role": "user", "content": "a"}]}},
        {"type": "step", "run_id": "r", "step_id": "s1",
         "prompt": {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}}])
    loaded = load_trace(path)
    assert loaded.header.schema_version == 1 and len(loaded.steps[1].prompt.messages) == 2


def test_appending_to_a_version_1_file_writes_whole_prompts(tmp_path):
    # GIVEN a file an older ctxprof wrote (version 1), WHEN a writer appends a growing run to it
    path = write_lines(tmp_path / "t.jsonl", [])
    with TraceWriter(path) as w:
        for s in _conversation("a", 3):
            w.write_step(s)
    # THEN no step refers to another (a version-1 reader would misread it), and it reads back whole
    assert not any("messages_from" in r["prompt"] or "tools_from" in r["prompt"] for r in _raw_steps(path))
    assert [len(s.prompt.messages) for s in load_trace(path).steps] == [2, 4, 6]


def test_steps_written_as_records_break_no_reference(tmp_path):
    # GIVEN a run whose steps are written partly as plain records (`write`) and partly as steps
    steps = _conversation("a", 4)
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as w:
        w.write_step(steps[0])
        w.write(steps[1].to_dict())
        w.write_step(steps[2])
        w.write_step(steps[3])
    # THEN a step after a plain record is written whole, the next refers to it, and all read back
    assert ["messages_from" in r["prompt"] for r in _raw_steps(path)] == [False, False, False, True]
    assert load_trace(path).steps == tuple(steps)
