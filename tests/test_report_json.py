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


# --- the indented JSON writer: the standard library's text, faster ---------------------------------

import enum as _enum  # noqa: E402
import json as _json  # noqa: E402

import numpy as _np  # noqa: E402
from hypothesis import given as _given  # noqa: E402
from hypothesis import settings as _settings  # noqa: E402
from hypothesis import strategies as _st  # noqa: E402


class _Kind(str, _enum.Enum):
    run = "run"


_scalars = (_st.none() | _st.booleans() | _st.integers(-2**70, 2**70) | _st.floats(allow_nan=True)
            | _st.text() | _st.sampled_from([_Kind.run, _np.int64(7), _np.float64(1.5), _np.bool_(True), b"x"]))
_keys = _st.text() | _st.integers() | _st.floats(allow_nan=False) | _st.booleans() | _st.none()
_documents = _st.recursive(_scalars, lambda inner: _st.lists(inner, max_size=4)
                           | _st.lists(inner, max_size=3).map(tuple)
                           | _st.dictionaries(_keys, inner, max_size=4), max_leaves=30)


@_settings(max_examples=400, deadline=None)
@_given(doc=_documents, indent=_st.sampled_from([0, 2, 4]))
def test_indented_json_is_the_standard_librarys_text(doc, indent):
    from profiler.render.jsontext import dumps

    assert dumps(doc, indent=indent) == _json.dumps(doc, indent=indent, default=str)
