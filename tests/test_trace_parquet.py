"""Parquet traces: the same records as JSONL, so every reader and the analysis agree figure for
figure (profiler/trace/parquet.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_step, make_trace, save
from profiler.analysis import analyze
from profiler.cli.app import main
from profiler.errors import ProfilerError, TraceFormatError
from profiler.trace import load_trace
from profiler.trace.model import GpuStats, Output, Prompt, Run, Step, Usage

pytest.importorskip("pyarrow")
from profiler.trace.parquet import is_parquet, write_parquet  # noqa: E402

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "sample_traces").glob("*.jsonl"))


def run_cli(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


def figures(analysis) -> dict:
    """The analysis as data, without the file names (which differ between the two files)."""
    d = analysis.to_dict()
    d.pop("traces")
    for run in d["runs"]:
        run.pop("trace")
    return d


def roundtrip(trace, tmp_path: Path, name: str = "t.parquet"):
    path = tmp_path / name
    write_parquet(trace, path)
    return load_trace(path)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_sample_traces_roundtrip_with_identical_figures(sample: Path, tmp_path: Path):
    # GIVEN a sample trace (text level) WHEN written as Parquet and read back
    original = load_trace(sample)
    back = roundtrip(original, tmp_path)
    # THEN header, runs and steps are equal, and both scopes give the same figures
    assert back.header == original.header
    assert back.runs == original.runs
    for scope in ("run", "global"):
        assert figures(analyze(back, scope=scope)) == figures(analyze(original, scope=scope))


def test_real_traces_roundtrip(shared_data: Path, tmp_path: Path):
    from profiler.importers.registry import import_sources

    # GIVEN real traces: tau-bench (200 runs, text level) and Mooncake (chained block hashes)
    for fmt, rel in (("tau-bench", "tau-bench/gpt-4o-airline.json"),
                     ("mooncake", "mooncake/synthetic_trace.jsonl")):
        original = import_sources(fmt, [shared_data / rel])
        jsonl = save(original, tmp_path / f"{fmt}.jsonl")
        from_jsonl = load_trace(jsonl)
        # WHEN the JSONL file is exported with the CLI and the Parquet file read back
        out = tmp_path / f"{fmt}.parquet"
        assert run_cli("export", jsonl, "--format", "parquet", "-o", out) == 0
        back = load_trace(out)
        # THEN the runs are equal and the analysis (run scope, and global for the shared cache
        # trace) gives the same figures
        assert back.runs == from_jsonl.runs
        scope = "global" if fmt == "mooncake" else "run"
        assert figures(analyze(back, scope=scope)) == figures(analyze(from_jsonl, scope=scope))


def test_all_content_levels_and_every_field_survive(tmp_path: Path):
    # GIVEN steps at the three content levels, with unsigned 64-bit hashes, usage, GPU figures,
    # attributes, an integer TTFT, a run with an end and a run without steps
    steps = [
        make_step("a", step_id="1", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                  tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}], answer="yo",
                  usage=Usage(input_tokens=10, cache_read_tokens=2, output_tokens=3), ttft_ms=120,
                  attributes={"k": [1, 2.5, None]}, gpu=GpuStats(device="H100", energy_j=1.5)),
        make_step("a", step_id="2", tokens=[1, 2, 3], output=[4], parent_step_id="1"),
        Step(run_id="b", step_id="3", start_unix_s=5.0,
             prompt=Prompt(block_hashes=(2**64 - 1, 7), block_size=16, num_tokens=40, chained=True),
             output=Output(num_tokens=5, finish_reason="stop")),
        Step(run_id="b", step_id="4", kind="tool", name="search", start_unix_s=6.0, end_unix_s=6.5),
    ]
    runs = [Run(run_id="a", workflow="wf", attributes={"x": 1}, end_unix_s=9.0, status="ok"),
            Run(run_id="empty", workflow="none")]
    original = make_trace(steps, runs=runs)
    # WHEN written as Parquet and read back
    back = roundtrip(original, tmp_path)
    # THEN everything is equal, types included
    assert back.runs == original.runs
    assert back.header == original.header
    got = {s.step_id: s for s in back.steps}
    assert isinstance(got["1"].ttft_ms, int)
    assert got["3"].prompt.block_hashes == (2**64 - 1, 7)


def test_file_order_is_kept_for_ties(tmp_path: Path):
    # GIVEN two runs whose steps have no start times and are interleaved in the file
    path = tmp_path / "t.jsonl"
    from builders import write_lines

    lines = [make_step(r, step_id=f"{r}{i}", tokens=list(range(40)) + [i], start=None).to_dict()
             for i in range(3) for r in ("x", "y")]
    for line in lines:
        line.pop("start_unix_s", None)
    write_lines(path, lines)
    original = load_trace(path)
    # WHEN converted THEN the global scope (which breaks ties by file order) gives the same figures
    back = roundtrip(original, tmp_path)
    assert figures(analyze(back, scope="global")) == figures(analyze(original, scope="global"))


def test_cli_analyze_reads_parquet(tmp_path: Path, capsys):
    # GIVEN a sample exported to Parquet
    out = tmp_path / "s.parquet"
    assert run_cli("export", SAMPLES[0], "--format", "parquet", "-o", out) == 0
    capsys.readouterr()
    # WHEN both files are analysed as JSON
    import json

    assert run_cli("analyze", SAMPLES[0], "-f", "json", "--pricing", "none") == 0
    a = json.loads(capsys.readouterr().out)
    assert run_cli("analyze", out, "-f", "json", "--pricing", "none") == 0
    b = json.loads(capsys.readouterr().out)
    # THEN the totals agree
    assert a["totals"] == b["totals"]


def test_export_parquet_needs_an_output_file(capsys):
    # WHEN Parquet would go to standard output THEN a one-line error, exit 2
    assert run_cli("export", SAMPLES[0], "--format", "parquet") == 2
    assert "-o trace.parquet" in capsys.readouterr().err


def test_parquet_without_ctxprof_metadata_is_refused(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # GIVEN a Parquet file some other tool wrote
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    # THEN it is recognised as Parquet but refused with a hint
    assert is_parquet(path)
    with pytest.raises(TraceFormatError, match="not a ctxprof trace"):
        load_trace(path)


def test_parquet_is_recognised_by_content_whatever_its_name(tmp_path: Path):
    trace = load_trace(SAMPLES[0])
    path = tmp_path / "trace.data"
    write_parquet(trace, path)
    assert load_trace(path).runs == trace.runs


def test_recording_never_appends_to_a_parquet_file(tmp_path: Path):
    from profiler.trace.io import TraceWriter

    # GIVEN a Parquet trace WHEN a writer would append to it (or to any .parquet name)
    path = tmp_path / "t.parquet"
    write_parquet(load_trace(SAMPLES[0]), path)
    before = path.read_bytes()
    for target in (path, tmp_path / "new.parquet"):
        with pytest.raises(TraceFormatError, match="cannot be appended"):
            TraceWriter(target)
    # THEN the file is untouched
    assert path.read_bytes() == before


def test_missing_pyarrow_is_a_one_line_error_naming_the_extra(tmp_path: Path):
    # GIVEN a Python where pyarrow cannot be imported
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from profiler.trace.parquet import require_pyarrow\n"
            "try:\n    require_pyarrow()\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # THEN the error names the extra
    assert out.stdout.strip() == "ProfilerError Parquet traces need pyarrow: pip install 'ctxprof[parquet]'"
    assert issubclass(TraceFormatError, ProfilerError)
