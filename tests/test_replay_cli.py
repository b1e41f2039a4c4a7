"""`ctxprof replay` end to end on the CPU, and the promise that other commands never import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.cli.app import main
from profiler.trace.io import write_trace
from profiler.trace.model import Output, Prompt, Step, Trace


def make_token_trace() -> Trace:
    shared = tuple(range(10, 60))
    steps = [Step(run_id="r", step_id=str(i), start_unix_s=float(i),
                  prompt=Prompt(token_ids=shared + tuple(range(100, 100 + 10 * i)), tokenizer="t"),
                  output=Output(token_ids=(1, 2, 3)))
             for i in range(3)]
    return Trace.from_steps(steps)


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def test_analyze_and_the_cli_never_import_torch(tmp_path: Path):
    # GIVEN a trace and a fresh interpreter
    path = tmp_path / "t.jsonl"
    write_trace(make_token_trace(), path)
    code = (
        "import sys\n"
        "from profiler.cli.app import main\n"
        "try:\n"
        f"    main(['analyze', {str(path)!r}, '--format', 'json', '-o', {str(tmp_path / 'a.json')!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "import profiler.replay\n"
        "print(sorted(m for m in ('torch', 'transformers', 'pynvml') if m in sys.modules))\n"
    )
    # WHEN `ctxprof analyze` runs (every subcommand, replay included, is registered) and the
    # replay package is imported
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    # THEN neither torch nor transformers nor pynvml was imported
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_replay_command_prints_tables_and_writes_json(tmp_path: Path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    path = tmp_path / "t.jsonl"
    write_trace(make_token_trace(), path)
    out_json = tmp_path / "replay.json"
    # WHEN replayed with the tiny preset in both modes
    threads = torch.get_num_threads()
    try:
        code = run_cli(["replay", str(path), "--model", "tiny", "--device", "cpu", "--cpu-threads", "1",
                        "-o", str(out_json)])
    finally:
        torch.set_num_threads(threads)  # --cpu-threads is process-wide
    captured = capsys.readouterr()
    # THEN it succeeds, prints the summary and the check, and writes the JSON result
    assert code == 0, captured.err
    assert "predicted (analyzer) vs measured (replay)" in captured.out
    assert "outputs: the same in 3/3 steps" in captured.out
    assert f"Wrote {out_json}" in captured.err
    data = json.loads(out_json.read_text())
    assert data["schema"] == "ctxprof.replay/1"
    assert data["token_sources"] == {"trace-token-ids": 3}
    # each later prompt shares 50 (step 1) or 60 (step 2) tokens with what came before: 3 whole blocks
    assert data["totals"]["reuse"]["reused_tokens"] == 48 + 48
    assert data["prediction"]["predicted_saved_prefill_tokens"] == 96


def test_replay_command_refuses_an_unknown_model_with_one_line(tmp_path: Path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "t.jsonl"
    write_trace(make_token_trace(), path)
    code = run_cli(["replay", str(path), "--model", "gpt-17", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "neither a preset" in err and "Traceback" not in err
