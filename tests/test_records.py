"""`from_dict` of the analysis records (profiler.records, `Analysis.from_dict`): the inverse of
`to_dict`, and a clear error for a malformed document."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_step, make_trace
from profiler.analysis import Analysis, analyze
from profiler.errors import ProfilerError
from profiler.trace.model import Usage

token_lists = st.lists(st.integers(min_value=0, max_value=40), min_size=0, max_size=60)
costs = st.one_of(st.none(), st.floats(min_value=0, max_value=10, allow_nan=False))


@st.composite
def analyses(draw) -> Analysis:
    runs = draw(st.integers(min_value=1, max_value=3))
    steps = []
    for r in range(runs):
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            cached = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=20)))
            usage = Usage(input_tokens=None if cached is None else 80, cache_read_tokens=cached)
            steps.append(make_step(f"run{r}", tokens=draw(token_lists), usage=usage,
                                   name=draw(st.one_of(st.none(), st.sampled_from(["plan", "act"])))))
    analysis = analyze(make_trace(steps), scope=draw(st.sampled_from(["run", "global"])),
                       min_repeat=draw(st.integers(min_value=1, max_value=8)),
                       block_size=draw(st.integers(min_value=1, max_value=8)))
    # Costs are filled in by pricing; any value, known or not, must survive the round trip.
    runs_out = tuple(dataclasses.replace(run, steps=tuple(
        dataclasses.replace(s, cost_actual_usd=draw(costs), cost_redundant_usd=draw(costs))
        for s in run.steps)) for run in analysis.runs)
    return dataclasses.replace(analysis, runs=runs_out, warnings=tuple(draw(st.lists(st.text(max_size=5),
                                                                                      max_size=2))))


@settings(max_examples=40, deadline=None)
@given(analyses())
def test_from_dict_inverts_to_dict_through_json(analysis):
    # GIVEN any analysis WHEN written as JSON and read back THEN it is the same analysis
    data = json.loads(json.dumps(analysis.to_dict()))
    assert Analysis.from_dict(data) == analysis


def test_a_document_of_another_schema_is_refused():
    with pytest.raises(ProfilerError, match=r"^a.json: field 'schema' is 'x'"):
        Analysis.from_dict({"schema": "x"}, source="a.json")


def test_a_missing_or_mistyped_field_is_named_with_its_place():
    # GIVEN a real analysis document
    data = analyze(make_trace([make_step(tokens=[1, 2, 3])])).to_dict()
    # WHEN a step loses a field, or a count becomes a string or a bool
    missing = json.loads(json.dumps(data))
    del missing["runs"][0]["steps"][0]["novel_tokens"]
    as_text = json.loads(json.dumps(data))
    as_text["runs"][0]["steps"][0]["input_tokens"] = "3"
    as_bool = json.loads(json.dumps(data))
    as_bool["totals"]["steps"] = True
    # THEN each error names the document, the record and the field
    with pytest.raises(ProfilerError, match=r"^a.json: runs\[0\]\.steps\[0\]: field 'novel_tokens' is missing"):
        Analysis.from_dict(missing, source="a.json")
    with pytest.raises(ProfilerError, match=r"runs\[0\]\.steps\[0\]: field 'input_tokens' must be int, got '3'"):
        Analysis.from_dict(as_text, source="a.json")
    with pytest.raises(ProfilerError, match=r"totals: field 'steps' must be int, got True"):
        Analysis.from_dict(as_bool, source="a.json")


def test_unknown_keys_from_a_newer_writer_are_ignored():
    data = analyze(make_trace([make_step(tokens=[1, 2, 3])])).to_dict()
    data["runs"][0]["steps"][0]["a_field_of_the_future"] = 1
    assert Analysis.from_dict(data).runs[0].steps[0].input_tokens == 3
