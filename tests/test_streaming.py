"""The streamed run-scope analysis writes the same bytes as the whole-file analysis."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import make_step, make_trace, save
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.cli.common import load_all
from profiler.options import Pricing, ProfileOptions
from profiler.profile import profile
from profiler.render.console import write_json
from profiler.streaming import run_traces, write_analysis_json
from profiler.trace.model import Prompt, Usage

ROOT = Path(__file__).resolve().parent.parent


def whole(path: Path, options: ProfileOptions) -> str:
    out = io.StringIO()
    write_json(profile(load_all([path]), options).analysis.to_dict(), out)
    return out.getvalue()


def streamed(path: Path, options: ProfileOptions) -> str:
    out = io.StringIO()
    runs = run_traces(path)
    assert runs is not None
    write_analysis_json(path, runs, options, out)
    return out.getvalue()


OPTIONS = ProfileOptions(providers=(), diagnose=False)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "sample_traces").glob("*.jsonl")))
@pytest.mark.parametrize("options", [OPTIONS, ProfileOptions(providers=(), diagnose=False,
                                                             pricing=Pricing.none, block_size=4,
                                                             min_repeat=8)])
def test_samples_stream_to_the_same_bytes(name, options):
    # GIVEN a sample trace WHEN analysed whole and streamed THEN the JSON documents are byte-identical
    path = ROOT / "sample_traces" / name
    assert streamed(path, options) == whole(path, options)


def test_real_agent_runs_stream_to_the_same_bytes(tmp_path, shared_data):
    # GIVEN real agent runs (mini-swe-agent on Gemini: a stand-in tokenizer, scaled calibration,
    # priced) converted to a ctxprof trace
    from profiler.importers.registry import import_sources
    from profiler.trace.io import write_trace

    sources = sorted((shared_data / "mini-swe-agent-gemini").glob("*.traj.json"))[:4]
    path = tmp_path / "real.jsonl"
    write_trace(import_sources("mini-swe-agent", sources), path)
    # WHEN analysed whole and streamed THEN the same bytes, warnings (calibration included) and all
    text = streamed(path, OPTIONS)
    assert text == whole(path, OPTIONS)
    doc = json.loads(text)
    assert len(doc["runs"]) == 4 and doc["totals"]["unit"] == "provider" and doc["warnings"]


def test_the_cli_streams_json_and_falls_back_for_other_inputs(tmp_path):
    # GIVEN a multi-run sample WHEN `ctxprof analyze -f json` runs (streamed) THEN it writes the
    # whole-file document, to stdout and to -o alike
    path = ROOT / "sample_traces" / "retry_loop.jsonl"
    out = tmp_path / "a.json"
    cmd = [sys.executable, "-m", "profiler", "analyze", "-f", "json", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout == whole(path, OPTIONS)
    assert subprocess.run(cmd + ["-o", str(out)], capture_output=True, cwd=ROOT).returncode == 0
    assert out.read_text() == res.stdout
    # AND a file that is not a ctxprof trace is not streamed
    other = tmp_path / "x.jsonl"
    other.write_text('{"messages": []}\n')
    assert run_traces(other) is None


_MODELS = st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "no-such-model", None])


@st.composite
def multi_run_trace(draw):
    steps = []
    for r in range(draw(st.integers(1, 4))):
        shared = draw(st.lists(st.integers(0, 5), min_size=0, max_size=40))
        for i in range(draw(st.integers(1, 4))):
            tokens = shared + draw(st.lists(st.integers(0, 5), max_size=30))
            reported = draw(st.none() | st.integers(0, 120))
            usage = Usage(input_tokens=reported, output_tokens=draw(st.none() | st.integers(0, 9)),
                          cache_read_tokens=None if reported is None else draw(st.integers(0, 150)))
            start = draw(st.none() | st.floats(0, 10, allow_nan=False))
            step = make_step(f"run{r}", step_id=f"s{i}", tokens=tokens, output=[1, 2], start=start,
                             model=draw(_MODELS), usage=usage)
            if draw(st.integers(0, 5)) == 0:  # no prompt content
                from dataclasses import replace

                step = replace(step, prompt=Prompt())
            steps.append(step)
    return make_trace(steps)


_files = itertools.count()


@given(trace=multi_run_trace())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_multi_run_traces_stream_to_the_same_bytes(tmp_path, trace):
    # GIVEN a generated multi-run trace (usage that scales, contradicts or under-reports; unpriced
    # models; steps without content; equal and missing start times), written as ctxprof writes it
    # (one file per example: the examples share tmp_path)
    path = save(trace, tmp_path / f"gen{next(_files)}.jsonl")
    # WHEN analysed whole and streamed THEN the documents are byte-identical
    assert streamed(path, OPTIONS) == whole(path, OPTIONS)
