"""Mooncake block-hash traces: hand-checked records, errors naming file/line/field, registry."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from profiler.analysis import analyze
from profiler.errors import TraceFormatError
from profiler.importers import IMPORTERS
from profiler.importers.mooncake import import_mooncake
from profiler.trace.io import load_trace, write_trace

MOONCAKE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mooncake" / "synthetic_trace.jsonl"


def write_lines(tmp_path: Path, lines: list[str], name: str = "mc.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def record(ts: int, n_in: int, n_out: int, ids: list[int]) -> str:
    return json.dumps({"timestamp": ts, "input_length": n_in, "output_length": n_out, "hash_ids": ids})


@pytest.mark.skipif(not MOONCAKE.exists(), reason="../shared/data/mooncake is not present")
def test_first_records_of_the_synthetic_trace():
    # GIVEN the released synthetic trace, whose first lines read (checked by hand):
    #   {"timestamp": 0, "input_length": 40160, "output_length": 6, "hash_ids": [0, ..., 78]}
    #   {"timestamp": 0, "input_length": 36640, "output_length": 4, "hash_ids": [79, ..., 150]}
    #   {"timestamp": 40, "input_length": 23769, "output_length": 3, "hash_ids": [151, ..., 197]}
    trace = import_mooncake(MOONCAKE)
    # THEN it is one run of 3,993 content-free steps in file order
    assert [r.run_id for r in trace.runs] == ["synthetic_trace"]
    steps = trace.runs[0].steps
    assert len(steps) == 3993
    s0, s1, s2 = steps[:3]
    assert (s0.step_id, s0.start_unix_s, s0.prompt.num_tokens, s0.output.num_tokens) == ("1", 0.0, 40160, 6)
    assert s0.prompt.block_hashes == tuple(range(79))  # ceil(40160 / 512) = 79 blocks, the last partial
    assert (s0.prompt.block_size, s0.prompt.chained, s0.prompt.level) == (512, True, "hashes")
    assert s1.prompt.block_hashes == tuple(range(79, 151)) and s1.prompt.num_tokens == 36640
    assert (s2.start_unix_s, s2.prompt.num_tokens, s2.output.num_tokens) == (0.04, 23769, 3)
    assert s2.prompt.block_hashes == tuple(range(151, 198))
    assert s0.usage.input_tokens == 40160 and s0.usage.cache_read_tokens is None
    assert trace.header.content_level == "hashes"
    assert "reconstructed" in trace.header.attributes


def test_reuse_of_chained_ids_and_round_trip(tmp_path):
    # GIVEN three requests: the second shares the first two blocks of the first
    path = write_lines(tmp_path, [record(0, 1500, 10, [1, 2, 3]), record(500, 1100, 5, [1, 2, 4]),
                                  record(900, 200, 1, [5])])
    trace = import_mooncake(path)
    # WHEN analysed (one run: run scope sees what a shared cache sees)
    metrics = analyze(trace).steps
    # THEN the second step reuses 2 blocks = 1,024 tokens
    assert [m.prefix_reused_tokens for m in metrics] == [0, 1024, 0]
    assert [m.input_tokens for m in metrics] == [1500, 1100, 200]
    # AND the trace survives writing and reading back
    out = tmp_path / "as-ctxprof.jsonl"
    write_trace(trace, out)
    again = load_trace(out)
    assert [s.prompt for s in again.steps] == [s.prompt for s in trace.steps]
    assert [s.start_unix_s for s in again.steps] == [0.0, 0.5, 0.9]


@pytest.mark.parametrize("line,field,words", [
    ("{not json", None, "not valid JSON"),
    ("[1, 2]", None, "expected a JSON object"),
    (json.dumps({"timestamp": 5, "output_length": 1, "hash_ids": []}), "input_length", "required"),
    (json.dumps({"timestamp": 5, "input_length": 10, "output_length": -1, "hash_ids": []}),
     "output_length", ">= 0"),
    (json.dumps({"timestamp": "soon", "input_length": 10, "output_length": 1, "hash_ids": []}),
     "timestamp", "milliseconds"),
    (json.dumps({"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": [1, "x"]}),
     "hash_ids", "item 1"),
    (json.dumps({"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": 7}),
     "hash_ids", "list of block ids"),
    (json.dumps({"timestamp": 5, "input_length": 600, "output_length": 1, "hash_ids": [1, 2, 3]}),
     "hash_ids", "more than 600 input tokens"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, line, field, words):
    # GIVEN a good first line and a bad second line
    path = write_lines(tmp_path, [record(0, 512, 1, [1]), line])
    # WHEN imported THEN the error names the file, line 2 and the field
    with pytest.raises(TraceFormatError) as err:
        import_mooncake(path)
    e = err.value
    assert (e.path, e.line, e.field) == (str(path), 2, field)
    assert words in str(e) and f"{path}:2" in str(e)


def test_missing_file_is_a_trace_format_error(tmp_path):
    with pytest.raises(TraceFormatError, match="no such file"):
        import_mooncake(tmp_path / "absent.jsonl")


def test_registered_as_an_importer():
    module, func = IMPORTERS["mooncake"].split(":")
    assert getattr(importlib.import_module(module), func) is import_mooncake
