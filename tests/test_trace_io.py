"""Trace file reading and writing: round trips, crash safety, clear errors."""

from __future__ import annotations

import gzip
import json
import threading

import pytest
from builders import make_step, make_trace, save, write_lines

from profiler.errors import TraceFormatError, UnsupportedVersionError
from profiler.trace.io import TraceWriter, iter_records, load_trace
from profiler.trace.model import GpuStats, Run, TraceHeader, Usage


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
    assert loaded.header.schema_version == 1


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
