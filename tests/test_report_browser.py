"""The HTML report in a real browser (headless Chromium): charts render, no script error, no injection.

Skipped where no Chromium is installed (Debian: `apt-get install -y chromium`).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("plotly")

from builders import make_diagnosis, make_finding, make_simulation  # noqa: E402
from profiler.profile import profile  # noqa: E402
from profiler.render import render  # noqa: E402
from report_traces import make_agent_run, make_trace  # noqa: E402

pytestmark = pytest.mark.browser

HOSTILE = "</script><script>document.body.setAttribute('data-pwned','1')</script><!--"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    browser = find_browser()
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--virtual-time-budget=15000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=180)


def dump_dom(page: Path, profile: Path) -> str:
    result = chromium(["--dump-dom", page.as_uri()], profile)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def write_report(path: Path, data) -> Path:
    buf = io.StringIO()
    render(data, buf, "html")
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def report_data():
    """Two runs (one with a per-call timestamp that breaks its prefix), markup in every text field,
    one diagnosis finding and one cache scenario, so that every chart has something to draw."""
    trace = make_trace(make_agent_run("run-1", steps=6, user_text=HOSTILE),
                       make_agent_run("run-2", steps=6, stamp_system=True, step_name=HOSTILE,
                                      start_unix_s=1_700_000_100.0))
    data = profile(trace, title=f"Agent loop {HOSTILE}")
    finding = make_finding(run_id="run-2", step_id="s1", step_index=1, token_position=3,
                           before_text=f"Time: 1700000100.000. {HOSTILE}",
                           after_text="Time: 1700000102.000.", tokens_lost=700, usd_lost=None,
                           fix="Move the timestamp to the end of the prompt.", detail=HOSTILE)
    scenario = make_simulation("openai", [("run-1", "s1", data.analysis.totals.input_tokens,
                                           data.analysis.totals.prefix_reused_tokens)],
                               cost_usd=0.5, no_cache_cost_usd=1.0)
    return replace(data, diagnosis=make_diagnosis(finding), simulations=(scenario,))


def rendered_charts(dom: str) -> int:
    m = re.search(r'data-charts-rendered="(\d+)"', dom)
    return int(m.group(1)) if m else 0


def test_report_renders_its_charts_without_script_errors(tmp_path):
    # GIVEN a report written to disk
    page = write_report(tmp_path / "report.html", report_data())
    # WHEN headless Chromium loads it (offline: everything is in the file)
    dom = dump_dom(page, tmp_path / "profile")
    # THEN every chart was drawn by plotly (SVG elements present), no script error was shown, and
    # nothing from the trace ran
    assert rendered_charts(dom) == 5
    assert dom.count('class="main-svg"') >= 5
    assert '<pre id="ctxprof-errors"' not in dom
    assert 'data-pwned="1"' not in dom
    assert "<title>Agent loop &lt;/script&gt;" in dom
    # AND a screenshot is saved for a person to look at
    shot = tmp_path / "report.png"
    result = chromium([f"--screenshot={shot}", "--window-size=1400,3400", page.as_uri()],
                      tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


def test_a_script_error_is_caught_by_the_check(tmp_path):
    # GIVEN a report with a failing script added after rendering (the check's negative control)
    page = write_report(tmp_path / "report.html", report_data())
    broken = page.read_text(encoding="utf-8").replace(
        "</body>", "<script>throw new Error('deliberate failure');</script></body>")
    page.write_text(broken, encoding="utf-8")
    # WHEN Chromium loads it
    dom = dump_dom(page, tmp_path / "profile")
    # THEN the page shows the error where the check looks for it
    assert '<pre id="ctxprof-errors"' in dom
    assert "deliberate failure" in dom


SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sample_traces").glob("*.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_each_sample_trace_report_opens_offline_with_every_section(sample, tmp_path):
    # GIVEN the report of a bundled sample trace, written by the command line
    from profiler.cli.app import main

    out = tmp_path / "report.html"
    with pytest.raises(SystemExit) as exc:
        main(["report", str(sample), "-o", str(out)])
    assert exc.value.code == 0
    # WHEN Chromium opens it with no network
    dom = dump_dom(out, tmp_path / "profile")
    # THEN every section is there, every chart drew, and no script failed
    from profiler.render.html import SECTIONS

    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in dom
    charts = dom.count('id="chart-')
    assert charts >= 4 and rendered_charts(dom) == charts
    assert '<pre id="ctxprof-errors"' not in dom
