"""The pytest plugin (`ctxprof_trace` fixture), exercised in inner pytest runs with pytester."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

# Inner runs (pytester.runpytest) unload the modules they imported; numpy's C extension cannot be
# loaded twice in one process, so ctxprof's analysis modules are imported once here, up front.
import profiler.analysis  # noqa: F401,E402
import profiler.check  # noqa: F401,E402
import profiler.render.check_report  # noqa: F401,E402

try:  # the cost model and its price data, when this ctxprof has them
    import profiler.cost  # noqa: F401
    import genai_prices  # noqa: F401
except ImportError:
    pass

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

# A team's "workflow": an agent loop that resends its system prompt and growing history, recorded with
# TraceWriter (any writer fills ctxprof_trace.path). Step i sends 250 + 60 i tokens.
AGENT = """
from profiler.trace.io import TraceWriter
from profiler.trace.model import Output, Prompt, Run, Step, Usage


def run_agent(path, steps, workflow="support-agent", model="gpt-4o-mini"):
    system = tuple(range(200))
    history = ()
    with TraceWriter(path) as w:
        w.write_run(Run(run_id="r1", workflow=workflow))
        for i in range(steps):
            turn = tuple(range(10_000 + i * 1000, 10_050 + i * 1000))
            out = tuple(range(50_000 + i * 1000, 50_010 + i * 1000))
            prompt = system + history + turn
            w.write_step(Step(run_id="r1", step_id=f"s{i}", name="plan", model=model,
                              start_unix_s=1e9 + i, end_unix_s=1e9 + i + 0.5,
                              prompt=Prompt(token_ids=prompt, tokenizer="o200k_base"),
                              output=Output(token_ids=out),
                              usage=Usage(input_tokens=len(prompt), cache_read_tokens=0,
                                          output_tokens=len(out))))
            history += turn + out
"""


def plugin_args() -> list[str]:
    """Load the plugin explicitly unless its entry point is installed (and autoloading is on)."""
    quiet = ["-p", "no:cacheprovider"]  # inner runs need no cache; it keeps them quick
    installed = any(ep.value == "profiler.pytest_plugin" for ep in entry_points(group="pytest11"))
    if installed and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return quiet
    return [*quiet, "-p", "profiler.pytest_plugin"]


@pytest.fixture
def inner(pytester):
    pytester.makepyfile(agent=AGENT)
    return pytester


def test_workflow_within_limits_passes(inner):
    # GIVEN a team's test that records a 3-step run (930 input tokens) and asserts on it
    inner.makepyfile(test_agent="""
        from agent import run_agent

        def test_cheap(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3)
            analysis = ctxprof_trace.analyze()
            assert analysis.totals.input_tokens == 930
            result = ctxprof_trace.assert_max(input_tokens_per_run=1000, steps_per_run=3)
            assert result.passed and len(result.rows) == 2
    """)
    # WHEN its suite runs THEN the test passes
    inner.runpytest(*plugin_args()).assert_outcomes(passed=1)


def test_failure_lists_every_failing_metric(inner):
    # GIVEN a 5-step run (1,850 input tokens, redundancy 75.7%) and three limits, two of them too low
    inner.makepyfile(test_agent="""
        from agent import run_agent

        def test_expensive(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=5)
            ctxprof_trace.assert_max(input_tokens_per_run=1000, redundancy_ratio=0.5, steps_per_run=10)
    """)
    # WHEN the suite runs
    result = inner.runpytest(*plugin_args())
    # THEN the test fails and its message lists the two failing metrics, not the one within limits
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ctxprof budget exceeded (2 of 3 check(s) failed)*",
        "*support-agent: input_tokens_per_run = 1,850 exceeds the budget 1,000*",
        "*support-agent: redundancy_ratio = 75.7% exceeds the budget 50.0%*",
    ])
    assert "steps_per_run = 5" not in result.stdout.str()


def test_assert_within_reads_the_budgets_file_named_in_ini(inner):
    # GIVEN a shared budgets file (with limits for another workflow too), named by the ini option
    inner.makefile(".toml", ctxprof="""
        [budgets]
        steps_per_run = 10

        [budgets.workflow."support-agent"]
        input_tokens_per_run = 1500

        [budgets.workflow."billing-agent"]
        input_tokens_per_run = 100
    """)
    inner.makeini("[pytest]\nctxprof_budget = ctxprof.toml\n")
    inner.makepyfile(test_agent="""
        from agent import run_agent

        def test_small(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3)
            ctxprof_trace.assert_within()

        def test_big(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=5)
            ctxprof_trace.assert_within()
    """)
    # WHEN the suite runs THEN the 3-step run passes and the 5-step run fails its workflow's budget
    result = inner.runpytest(*plugin_args())
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*input_tokens_per_run = 1,850 exceeds the budget 1,500*"])


def test_typo_in_a_budget_dict_names_the_metric(inner):
    inner.makepyfile(test_agent="""
        from agent import run_agent

        def test_typo(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3)
            ctxprof_trace.assert_within({"budgets": {"input_token_per_run": 1000}})
    """)
    result = inner.runpytest(*plugin_args())
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ConfigError: budgets dict: unknown metric 'input_token_per_run'*"
                                 "did you mean 'input_tokens_per_run'*"])


def test_nothing_recorded_is_a_clear_failure(inner):
    inner.makepyfile(test_agent="""
        def test_forgot(ctxprof_trace):
            ctxprof_trace.assert_max(steps_per_run=3)
    """)
    result = inner.runpytest(*plugin_args())
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no ctxprof trace was recorded at *ctxprof-trace.jsonl*"])


def test_unknown_cost_fails_unless_allowed(inner):
    # GIVEN a model no price table knows
    inner.makepyfile(test_agent="""
        from agent import run_agent

        def test_strict(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3, model="in-house-model-x")
            ctxprof_trace.assert_max(cost_per_run_usd=1.0)

        def test_lenient(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3, model="in-house-model-x")
            ctxprof_trace.assert_max(cost_per_run_usd=1.0, allow_unknown=True)
    """)
    result = inner.runpytest(*plugin_args())
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*cost_per_run_usd is unknown*"])


def test_cost_limits_use_the_price_table(inner):
    # GIVEN a priced model: 930 input and 30 output tokens of gpt-4o-mini cost well under a cent
    inner.makepyfile(test_agent="""
        from agent import run_agent

        def test_priced(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3, model="gpt-4o-mini")
            result = ctxprof_trace.assert_max(cost_per_run_usd=0.01)
            assert 0 < result.rows[0].current < 0.01

        def test_too_dear(ctxprof_trace):
            run_agent(ctxprof_trace.path, steps=3, model="gpt-4o-mini")
            ctxprof_trace.assert_max(cost_per_run_usd=0.000001)
    """)
    result = inner.runpytest(*plugin_args())
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*cost_per_run_usd = $0.0* exceeds the budget $0.0000*"])


def test_importing_the_plugin_is_cheap():
    # GIVEN a fresh interpreter WHEN the plugin is imported THEN no heavy library comes with it
    code = ("import sys, profiler.pytest_plugin; "
            "print(','.join(m for m in ('numpy', 'pandas', 'torch', 'tiktoken', 'rich', 'profiler.analysis')"
            " if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == ""


def test_plugin_is_registered_as_a_pytest11_entry_point():
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"ctxprof": "profiler.pytest_plugin"}
