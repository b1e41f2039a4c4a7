"""Golden outputs: the console table, the Markdown report and the JSON profile of every sample trace,
compared byte for byte with tests/golden/, so that any change to what users see is a reviewed diff.

Regenerate them after an intended change (then read the diff before committing):

    CTXPROF_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

The outputs are made at a fixed width (160 columns, no terminal), with sorted JSON keys, from the
traces' paths relative to the repository root, so they do not depend on the machine.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from profiler.profile import profile
from profiler.render import render
from profiler.render.console import write_table
from profiler.trace import load_trace

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SAMPLES = sorted(p.name for p in (ROOT / "sample_traces").glob("*.jsonl"))
UPDATE = os.environ.get("CTXPROF_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module", params=SAMPLES)
def outputs(request) -> tuple[str, dict[str, str]]:
    name = request.param
    cwd = os.getcwd()
    os.chdir(ROOT)  # the trace path in the outputs is the relative one
    try:
        result = profile(load_trace(f"sample_traces/{name}"), title=f"ctxprof report: {name}")
    finally:
        os.chdir(cwd)
    texts = {}
    for suffix, write in (("table.txt", lambda s: write_table(result, s)),
                          ("md", lambda s: render(result, s, "markdown")),
                          ("json", lambda s: render(result, s, "json"))):
        buf = io.StringIO()
        write(buf)
        texts[suffix] = buf.getvalue()
    return name.removesuffix(".jsonl"), texts


@pytest.mark.parametrize("suffix", ["table.txt", "md", "json"])
def test_output_matches_its_golden_file(outputs, suffix):
    stem, texts = outputs
    path = GOLDEN / f"{stem}.{suffix}"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(texts[suffix], encoding="utf-8")
    assert path.is_file(), f"{path.name} is missing: CTXPROF_UPDATE_GOLDEN=1 python -m pytest {__file__}"
    expected = path.read_text(encoding="utf-8")
    assert texts[suffix] == expected, (f"{path.name} changed; if intended, regenerate with "
                                       "CTXPROF_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py")


def test_every_sample_trace_has_its_golden_files():
    expected = {f"{Path(n).stem}.{s}" for n in SAMPLES for s in ("table.txt", "md", "json")}
    assert {p.name for p in GOLDEN.iterdir() if p.is_file()} == expected
