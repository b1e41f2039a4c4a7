"""The Ray engine gives the single-process figures (profiler/distributed). One local Ray with 2 CPUs
is started for the module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import make_step, make_trace, save
from profiler.analysis import analyze
from profiler.cli.app import main
from profiler.errors import ProfilerError
from profiler.trace import load_trace
from profiler.trace.model import Step, Usage

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("local_ray")  # one local Ray per module (conftest)
pytest.importorskip("pyarrow")
from profiler.distributed import analyze_on_ray  # noqa: E402
from profiler.distributed.run_scope import split_runs  # noqa: E402
from profiler.trace.parquet import write_parquet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "sample_traces").glob("*.jsonl"))


def run_cli(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


def test_sample_traces_give_identical_analysis():
    # GIVEN the sample traces as files WHEN analysed on Ray and in one process
    distributed = analyze_on_ray([str(p) for p in SAMPLES])
    local = analyze([load_trace(p) for p in SAMPLES])
    # THEN everything is equal: runs, steps, totals, file names, warnings
    assert distributed.to_dict() == local.to_dict()


def test_real_multi_run_trace_gives_identical_analysis_with_costs(shared_data: Path, tmp_path: Path):
    from profiler.cost import apply_costs
    from profiler.importers.registry import import_sources
    from profiler.pricing import PriceTable

    # GIVEN a real trace of 200 runs (tau-bench), as a Parquet file
    trace = import_sources("tau-bench", [shared_data / "tau-bench" / "gpt-4o-airline.json"])
    path = tmp_path / "tau.parquet"
    write_parquet(trace, path)
    loaded = load_trace(path)
    prices = PriceTable.default()
    # WHEN analysed and priced on Ray and in one process
    distributed = analyze_on_ray(str(path), prices=prices)
    local = apply_costs(analyze(loaded), loaded, prices)
    # THEN the figures are the same, costs included
    assert distributed.to_dict()["runs"] == local.to_dict()["runs"]
    assert distributed.totals == local.totals
    assert local.totals.cost_actual_usd is not None


@st.composite
def multi_run_traces(draw):
    """Runs of token-level steps over a tiny vocabulary (so prefixes and repeats are common), with
    equal start times across runs, tool steps and reported usage."""
    steps: list[Step] = []
    for r in range(draw(st.integers(1, 5))):
        for i in range(draw(st.integers(0, 5))):
            run_id = f"r{r}"
            start = float(draw(st.integers(0, 3)))
            if draw(st.integers(0, 9)) == 0:
                steps.append(Step(run_id=run_id, step_id=f"t{i}", kind="tool", start_unix_s=start))
                continue
            tokens = draw(st.lists(st.integers(0, 3), max_size=60))
            usage = Usage(input_tokens=len(tokens), cache_read_tokens=draw(st.integers(0, len(tokens))))
            steps.append(make_step(run_id, step_id=f"s{i}", tokens=tokens, output=[1, 2], start=start,
                                   usage=usage))
    return make_trace(steps, path="mem.jsonl")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces=st.lists(multi_run_traces(), min_size=1, max_size=3),
       block_size=st.integers(1, 8), min_repeat=st.integers(1, 8))
def test_generated_multi_run_traces_give_identical_analysis(traces, block_size, min_repeat):
    # GIVEN in-memory traces of several runs WHEN analysed on Ray (split into groups of runs) and
    # in one process THEN the results are equal
    kwargs = {"block_size": block_size, "min_repeat": min_repeat}
    assert analyze_on_ray(traces, **kwargs).to_dict() == analyze(traces, **kwargs).to_dict()


def test_split_runs_keeps_whole_runs_in_order():
    trace = make_trace([make_step(f"r{i % 4}", tokens=[1, 2]) for i in range(12)])
    parts = split_runs(trace, target_steps=5)
    assert [r.run_id for p in parts for r in p.runs] == [r.run_id for r in trace.runs]
    assert all(sum(len(r.steps) for r in p.runs) <= 6 for p in parts)


def test_folders_globs_and_file_uris(tmp_path: Path):
    # GIVEN a folder holding a JSONL and a Parquet copy of two samples
    folder = tmp_path / "lake" / "day=1"
    folder.mkdir(parents=True)
    a = save(load_trace(SAMPLES[0]), folder / "a.jsonl")
    write_parquet(load_trace(SAMPLES[1]), folder / "b.parquet")
    expected = analyze([load_trace(a), load_trace(folder / "b.parquet")])
    # WHEN read as a folder, a glob and file:// URIs THEN each gives the single-process totals
    for inputs in ([str(tmp_path / "lake")], [str(folder / "*")],
                   [f"file://{a}", f"file://{folder / 'b.parquet'}"]):
        assert analyze_on_ray(inputs).totals == expected.totals, inputs


def test_missing_input_is_one_clear_error(tmp_path: Path):
    with pytest.raises(ProfilerError, match="no such file or folder"):
        analyze_on_ray([str(tmp_path / "nope.jsonl")])
    with pytest.raises(ProfilerError, match="no trace files found"):
        analyze_on_ray([str(tmp_path / "*.parquet")])
    with pytest.raises(ProfilerError, match="not found"):
        analyze_on_ray([f"file://{tmp_path}/nope.parquet"])


def test_bad_trace_in_a_task_comes_back_as_its_own_error(tmp_path: Path):
    # GIVEN a file that is not a trace WHEN a task reads it THEN the error names the file, as locally
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ProfilerError, match="bad.jsonl") as exc:
        analyze_on_ray([str(bad)])
    assert "Traceback" not in str(exc.value)


def test_unreachable_cluster_is_one_clear_error():
    from profiler.distributed.cluster import _check_reachable

    # GIVEN an address where nothing listens WHEN connecting THEN one line, at once (Ray itself
    # would retry for minutes)
    with pytest.raises(ProfilerError, match=r"cannot reach a Ray cluster at 127.0.0.1:1: "):
        _check_reachable("127.0.0.1:1")
    with pytest.raises(ProfilerError, match="cannot reach"):
        _check_reachable("ray://127.0.0.1:1")


def test_public_analyze_takes_the_engine():
    import profiler

    local = profiler.analyze([load_trace(p) for p in SAMPLES])
    assert profiler.analyze([str(p) for p in SAMPLES], engine="ray").to_dict() == local.to_dict()
    with pytest.raises(ProfilerError, match="add --engine ray"):
        profiler.analyze([], address="auto")


@pytest.mark.parametrize("command", [["analyze", "-f", "json"], ["baseline"]])
def test_cli_engine_ray_prints_the_local_result(command, capsys):
    # WHEN the command runs with each engine THEN the JSON output is the same
    outputs = []
    for engine in ("local", "ray"):
        assert run_cli(command[0], *SAMPLES, *command[1:], "--engine", engine) == 0
        result = json.loads(capsys.readouterr().out)
        result.pop("created_unix_s", None)  # the baseline's own time stamp
        outputs.append(result)
    assert outputs[0] == outputs[1]


def test_cli_check_and_report_on_ray(tmp_path: Path, capsys):
    budgets = tmp_path / "ctxprof.toml"
    budgets.write_text("[budgets]\nredundancy_ratio = 0.99\n", encoding="utf-8")
    assert run_cli("check", *SAMPLES, "--budget", budgets, "--engine", "ray") == 0
    out = tmp_path / "r.json"
    assert run_cli("report", *SAMPLES, "-o", out, "--engine", "ray") == 0
    local = tmp_path / "l.json"
    assert run_cli("report", *SAMPLES, "-o", local) == 0
    ray_report, local_report = json.loads(out.read_text()), json.loads(local.read_text())
    for key in ("headline", "costs", "analysis"):
        assert ray_report[key] == local_report[key], key


@pytest.mark.parametrize("args", [
    ["analyze", "-f", "json"],
    ["analyze", "--scope", "global", "-f", "json"],
    ["simulate", "--cache", "engine", "--replicas", "1,2", "-f", "json"],
])
def test_single_process_path_never_imports_ray(tmp_path: Path, args: list[str]):
    # GIVEN a fresh interpreter WHEN a command runs on a sample with the local engine THEN ray was
    # not imported
    command, *rest = args
    code = ("import sys\nfrom profiler.cli.app import main\n"
            f"try:\n    main([{command!r}, {str(SAMPLES[0])!r}, *{rest!r},"
            f" '-o', {str(tmp_path / 'a.json')!r}])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_fleet_replicas_on_ray_give_the_sequential_figures():
    from profiler.cache_sim.fleet import simulate_fleet

    # GIVEN the sample traces WHEN a fleet sweep runs sequentially and as Ray tasks (one per replica)
    traces = [load_trace(p) for p in SAMPLES]
    kwargs = {"replicas": [1, 3], "capacity_tokens": 20_000, "target_hit_rate": 0.3}
    # THEN every figure is the same
    assert (simulate_fleet(traces, engine="ray", **kwargs).to_dict()
            == simulate_fleet(traces, **kwargs).to_dict())


def test_cli_simulate_fleet_on_ray(capsys):
    for engine in ("local", "ray"):
        assert run_cli("simulate", *SAMPLES, "--cache", "engine", "--replicas", "1,2", "-f", "json",
                       "--engine", engine) == 0
    local, distributed = capsys.readouterr().out.split("\n}\n", 1)
    assert json.loads(local + "}") == json.loads(distributed)


def test_cli_analyze_global_scope_on_ray(capsys):
    for engine in ("local", "ray"):
        assert run_cli("analyze", *SAMPLES, "--scope", "global", "-f", "json", "--engine", engine) == 0
    local, distributed = capsys.readouterr().out.split("\n}\n", 1)
    assert json.loads(local + "}") == json.loads(distributed)
