"""The Ray global scope gives the single-process global-scope figures (profiler/distributed/
global_scope.py). One local Ray with 2 CPUs is started for the module."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import make_step, make_trace
from profiler.analysis import AnalysisOptions, analyze
from profiler.trace import load_trace
from profiler.trace.model import Output, Prompt, Step, Usage

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("local_ray")  # one local Ray per module (conftest)
from profiler.distributed import analyze_on_ray  # noqa: E402
from profiler.distributed.global_scope import analyze_global_scope, earliest_windows  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "sample_traces").glob("*.jsonl"))


def test_sample_traces_give_identical_global_analysis():
    # GIVEN the sample traces as files WHEN analysed in global scope on Ray and in one process
    distributed = analyze_on_ray([str(p) for p in SAMPLES], scope="global")
    local = analyze([load_trace(p) for p in SAMPLES], scope="global")
    # THEN everything is equal, and the global scope found reuse across runs
    assert distributed.to_dict() == local.to_dict()
    assert local.totals.prefix_reused_tokens > 0


def test_real_trace_global_scope_with_costs_in_small_chunks(shared_data: Path):
    from profiler.cost import apply_costs
    from profiler.importers.registry import import_sources
    from profiler.pricing import PriceTable

    # GIVEN a real trace of 200 runs sharing a system prompt (tau-bench)
    trace = import_sources("tau-bench", [shared_data / "tau-bench" / "gpt-4o-airline.json"])
    prices = PriceTable.default()
    options = AnalysisOptions(scope="global")
    # WHEN analysed in global scope on Ray, cut into many chunks, and in one process
    distributed = analyze_global_scope([trace], options, prices=prices, chunk_steps=400)
    local = apply_costs(analyze(trace, scope="global"), trace, prices)
    # THEN the figures are the same, sources and costs included
    assert distributed.to_dict() == local.to_dict()
    assert local.totals.repeated_tokens > 0 and local.totals.prefix_reused_tokens > 0


def test_earliest_windows_answers_each_sender_in_its_order():
    # GIVEN two chunks sending window hashes with the steps that hold them
    a = (np.array([5, 7, 5], dtype=np.uint64), np.array([3, 3, 4]))
    b = (np.array([7, 9], dtype=np.uint64), np.array([1, 2]))
    # WHEN reduced THEN every window gets its earliest holder, back in each sender's order
    got_a, got_b = earliest_windows(a, b)
    assert got_a.tolist() == [3, 1, 3] and got_b.tolist() == [1, 2]


SYSTEM = [list(range(4, 24)), list(range(30, 48))]  # two system prompts longer than one block


@st.composite
def global_traces(draw):
    """Runs whose prompts start with a shared system prompt, an earlier step's prompt + output (outputs
    reused as prefixes), or nothing; short prompts (under one 16-token block, some whose first block
    runs into the output); equal start times across runs; tiny vocabularies so that repeated spans
    cross partitions; a few content-free and content-less steps."""
    steps: list[Step] = []
    seqs: list[list[int]] = []
    for r in range(draw(st.integers(1, 4))):
        for i in range(draw(st.integers(0, 6))):
            run_id, start = f"r{r}", float(draw(st.integers(0, 3)))
            kind = draw(st.integers(0, 11))
            if kind == 0:
                steps.append(Step(run_id=run_id, step_id=f"h{i}", start_unix_s=start,
                                  prompt=Prompt(block_hashes=tuple(draw(st.lists(st.integers(0, 3), max_size=4))),
                                                block_size=4, num_tokens=16),
                                  output=Output(num_tokens=2)))
                continue
            if kind == 1:
                steps.append(Step(run_id=run_id, step_id=f"n{i}", start_unix_s=start,
                                  usage=Usage(input_tokens=7)))
                continue
            base = draw(st.sampled_from(["none", "system", "earlier"]))
            head: list[int] = []
            if base == "system":
                head = list(draw(st.sampled_from(SYSTEM)))
            elif base == "earlier" and seqs:
                earlier = draw(st.sampled_from(seqs))
                head = earlier[:draw(st.integers(0, len(earlier)))]
            tail = draw(st.lists(st.integers(0, 3), max_size=24))
            tokens = head + tail
            output = draw(st.lists(st.integers(0, 3), max_size=12))
            seqs.append(tokens + output)
            usage = Usage(input_tokens=len(tokens), cache_read_tokens=draw(st.integers(0, len(tokens))))
            steps.append(make_step(run_id, step_id=f"s{i}", tokens=tokens, output=output, start=start,
                                   usage=usage))
    return make_trace(steps, path="mem.jsonl")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces=st.lists(global_traces(), min_size=1, max_size=3),
       block_size=st.integers(1, 8), min_repeat=st.integers(1, 8), chunk_steps=st.integers(1, 7))
def test_generated_traces_give_identical_global_analysis(traces, block_size, min_repeat, chunk_steps):
    # GIVEN generated multi-run traces WHEN analysed in global scope on Ray (in chunks of a few steps,
    # so partitions and window buckets span tasks) and in one process THEN the results are equal
    options = AnalysisOptions(scope="global", block_size=block_size, min_repeat=min_repeat)
    distributed = analyze_global_scope(traces, options, chunk_steps=chunk_steps)
    local = analyze(traces, scope="global", block_size=block_size, min_repeat=min_repeat)
    assert distributed.to_dict() == local.to_dict()


def test_public_analyze_takes_global_scope_on_ray():
    import profiler

    local = profiler.analyze([load_trace(p) for p in SAMPLES], scope="global")
    assert profiler.analyze([str(p) for p in SAMPLES], engine="ray", scope="global").to_dict() == local.to_dict()
