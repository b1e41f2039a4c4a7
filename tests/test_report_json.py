"""The JSON report: the whole Profile, sorted keys, strict JSON."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from profiler.profile import profile
from profiler.render import render
from report_traces import make_agent_run, make_trace


def test_json_report_is_strict_json_with_every_section():
    # GIVEN report data with one NaN slipped into a cost figure
    data = profile(make_trace(make_agent_run("r1", steps=3)))
    data = replace(data, warnings=("w",))
    step = replace(data.analysis.runs[0].steps[0], cost_actual_usd=float("nan"))
    run = replace(data.analysis.runs[0], steps=(step, *data.analysis.runs[0].steps[1:]))
    data = replace(data, analysis=replace(data.analysis, runs=(run,)))
    # WHEN rendered as JSON
    buf = io.StringIO()
    render(data, buf, "json")
    # THEN it parses strictly, NaN became null, and every section is there
    doc = json.loads(buf.getvalue(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert doc["schema"] == "ctxprof.profile/1"
    assert doc["analysis"]["runs"][0]["steps"][0]["cost_actual_usd"] is None
    assert doc["headline"]["steps"] == 3
    assert doc["reuse_matrix"]["labels"][0].startswith("0 ")
    assert doc["warnings"] == ["w"]
    assert set(doc) == {"schema", "title", "options", "units", "headline", "analysis", "costs",
                        "simulations", "engine", "diagnosis", "reuse_matrix", "unavailable", "warnings"}
