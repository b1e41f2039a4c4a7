"""`ctxprof import`: writes a loadable trace, says what it wrote, refuses to overwrite, maps bad input
to exit 2; formats written elsewhere (mooncake, otel) are loaded lazily from the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from importer_helpers import TEST_DATA, shared

from profiler.cli.app import main
from profiler.errors import ConfigError
from profiler.importers import IMPORTERS
from profiler.importers.registry import (
    accepted_options,
    formats,
    import_sources,
    load_importer,
)
from profiler.trace.io import load_trace

MINI = TEST_DATA / "mini_swe_agent" / "hello__hello-1.traj.json"


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0)


def test_import_writes_a_loadable_trace_and_says_so(tmp_path, capsys):
    out = tmp_path / "mini.jsonl"
    assert run_cli(["import", "mini-swe-agent", str(MINI), "-o", str(out)]) == 0
    assert f"Wrote {out} (1 runs, 3 steps)" in capsys.readouterr().err
    trace = load_trace(out)
    assert len(trace.steps) == 3
    assert trace.header.attributes["source_format"] == "mini-swe-agent"
    assert "reconstructed" in trace.header.attributes


def test_output_is_replaced_on_success_and_kept_on_failure(tmp_path, capsys):
    # GIVEN an existing output file
    out = tmp_path / "t.jsonl"
    out.write_text("keep me")
    bad = tmp_path / "x.traj"
    bad.write_text("{oops")
    # WHEN an import fails THEN the old file is untouched and no temporary file is left
    assert run_cli(["import", "swe-agent", str(bad), "-o", str(out)]) == 2
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl", "x.traj"]
    # WHEN it succeeds (twice, as a README example is run again) THEN the file is replaced
    assert run_cli(["import", "swe-agent", str(MINI), "-o", str(out)]) == 0
    assert run_cli(["import", "swe-agent", str(MINI), "-o", str(out)]) == 0
    assert len(load_trace(out).steps) == 3
    # AND --force is still accepted (scripts written for older versions)
    assert run_cli(["import", "swe-agent", str(MINI), "-o", str(out), "--force"]) == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.traj"
    bad.write_text("{oops")
    out = tmp_path / "t.jsonl"
    assert run_cli(["import", "swe-agent", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ctxprof: error:") and f"{bad}:1" in err and "\n" not in err
    assert not out.exists()


def test_unknown_format_and_misplaced_option(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    assert run_cli(["import", "nope", str(MINI), "-o", str(out)]) == 2
    assert "use one of" in capsys.readouterr().err
    assert run_cli(["import", "mini-swe-agent", str(MINI), "-o", str(out), "--tools", "x.json"]) == 2
    assert "--tools does not apply to the mini-swe-agent format" in capsys.readouterr().err


def test_gz_output(tmp_path):
    out = tmp_path / "t.jsonl.gz"
    assert run_cli(["import", "mini-swe-agent", str(MINI), "-o", str(out)]) == 0
    assert len(load_trace(out).steps) == 3


def test_openai_log_options_reach_the_importer(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"hi {i}"}]},
             "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}]},
             "metadata": {"sid": "same"}} for i in range(3)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "t.jsonl"
    assert run_cli(["import", "openai-log", str(log), "-o", str(out), "--run-key", "metadata.sid"]) == 0
    assert [r.run_id for r in load_trace(out).runs] == ["metadata.sid=same"]


def test_registry_lists_every_format():
    assert {"openai-log", "openhands", "swe-agent", "mini-swe-agent", "tau-bench"} <= set(IMPORTERS)
    assert {"mooncake", "otel"} <= set(formats())
    assert accepted_options("tau-bench") == {"tools", "include_user", "model", "user_model"}
    assert accepted_options("openai-log") == {"run_key", "window_s"}


def test_library_functions_are_importable_by_name():
    from profiler.importers.openai_logs import import_openai_logs
    from profiler.importers.openhands import import_openhands
    from profiler.importers.swe_agent import import_mini_swe_agent, import_swe_agent
    from profiler.importers.tau_bench import import_tau_bench

    assert all(callable(f) for f in (import_openai_logs, import_openhands, import_swe_agent,
                                     import_mini_swe_agent, import_tau_bench))


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_every_format_loads(name):
    assert callable(load_importer(name))


def test_a_format_whose_module_is_missing_says_so(monkeypatch):
    monkeypatch.setitem(IMPORTERS, "ghost", "profiler.importers.no_such_module:import_ghost")
    with pytest.raises(ConfigError, match="not available"):
        import_sources("ghost", [MINI])


def test_format_modules_are_not_imported_until_used():
    # GIVEN a fresh interpreter that registers every subcommand (as `ctxprof analyze` does)
    code = ("import sys; from profiler.cli import app; app._register(); "
            "print(sorted(m for m in sys.modules if m.startswith('profiler.importers.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    loaded = eval(out.stdout)
    # THEN no format's module is loaded
    assert not [m for m in loaded if m.rsplit(".", 1)[1] in {
        "openai_logs", "openhands", "swe_agent", "tau_bench", "mooncake", "otel"}], loaded


@pytest.mark.parametrize("name, source", [("mooncake", "mooncake"), ("otel", "otlp_genai_example.json")])
def test_optional_formats_import_the_real_files(tmp_path, name, source):
    out = tmp_path / f"{name}.jsonl"
    assert run_cli(["import", name, str(shared(source)), "-o", str(out)]) == 0
    assert load_trace(out).steps


def test_cli_imports_every_real_source(tmp_path):
    for fmt, source in (("openhands", "openhands"), ("swe-agent", "swe-agent"), ("tau-bench", "tau-bench")):
        out = tmp_path / f"{fmt}.jsonl"
        assert run_cli(["import", fmt, str(shared(source)), "-o", str(out)]) == 0
        assert load_trace(out).steps


def test_single_path_importers_get_each_file_of_a_folder_and_one_merged_trace(tmp_path, monkeypatch):
    # GIVEN a format whose importer takes one path, and a folder with two copies of a trajectory
    monkeypatch.setitem(IMPORTERS, "single", "single_path_importer:import_single")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.json").write_text(MINI.read_text())
    (tmp_path / "LICENSE").write_text("not data")
    # WHEN imported through the registry
    trace = import_sources("single", [tmp_path])
    # THEN each data file was imported once and the runs merged, colliding run ids made unique
    assert [r.run_id for r in trace.runs] == ["x", f"{(tmp_path / 'b' / 'x.json').as_posix()}:x"]
    assert len(trace.steps) == 6 and len({(s.run_id, s.step_id) for s in trace.steps}) == 6
    assert accepted_options("single") == set()
    with pytest.raises(ConfigError, match="takes no options"):
        import_sources("single", [tmp_path], {"model": "x"})
