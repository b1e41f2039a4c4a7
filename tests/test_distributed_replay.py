"""`replay --engine ray`: runs replayed on CPU workers with the tiny preset (no GPU here; on a GPU
cluster each task asks for `num_gpus=1`) merge into the single-process result's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.cli.app import main
from profiler.errors import ProfilerError
from profiler.trace.io import write_trace
from profiler.trace.model import Output, Prompt, Step, Trace

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("local_ray")  # one local Ray per module (conftest)
pytest.importorskip("torch")
pytest.importorskip("transformers")
from profiler.distributed.replay import replay_on_ray  # noqa: E402
from profiler.replay import replay  # noqa: E402

TOKEN_FIELDS = ("run_id", "step_id", "prompt_tokens", "output_tokens", "predicted_reused_tokens",
                "analyzer_prefix_reused_tokens")


def two_run_trace() -> Trace:
    shared = tuple(range(10, 50))
    steps = [Step(run_id=run, step_id=f"{run}{i}", start_unix_s=float(i),
                  prompt=Prompt(token_ids=shared + tuple(range(100, 100 + 8 * i)) + (k,), tokenizer="t"),
                  output=Output(token_ids=(1, 2, 3)))
             for k, run in enumerate(("a", "b")) for i in range(3)]
    return Trace.from_steps(steps)


def test_runs_on_workers_merge_to_the_single_process_figures():
    trace = two_run_trace()
    kwargs = dict(model="tiny", device="cpu", dtype="float32", mode="both", warmup_runs=0)
    # WHEN replayed run by run on Ray workers and in one process
    merged = replay_on_ray(trace, **kwargs)
    local = replay(trace, **kwargs)
    # THEN the token figures of every step, the totals of tokens and the prediction agree
    by_key = {(s.run_id, s.step_id): s for s in local.steps}
    assert len(merged.steps) == len(local.steps)
    for s in merged.steps:
        other = by_key[(s.run_id, s.step_id)]
        assert [getattr(s, f) for f in TOKEN_FIELDS] == [getattr(other, f) for f in TOKEN_FIELDS]
        assert (s.reuse.reused_tokens, s.cold.prefill_tokens) == (other.reuse.reused_tokens,
                                                                  other.cold.prefill_tokens)
    assert merged.reuse.reused_tokens == local.reuse.reused_tokens > 0
    assert merged.prediction.predicted_saved_prefill_tokens == local.prediction.predicted_saved_prefill_tokens
    assert merged.prediction.predicted_saved_flops_fraction == pytest.approx(
        local.prediction.predicted_saved_flops_fraction)
    assert merged.comparison.equal and merged.comparison.steps_compared == 6
    assert [s.index for s in merged.steps] == list(range(6))


def test_global_scope_and_max_steps_are_refused():
    with pytest.raises(ProfilerError, match="--scope run"):
        replay_on_ray(two_run_trace(), model="tiny", scope="global")
    with pytest.raises(ProfilerError, match="--max-steps"):
        replay_on_ray(two_run_trace(), model="tiny", max_steps=2)


def test_cli_replay_engine_ray_writes_the_usual_json(tmp_path: Path, capsys):
    path = tmp_path / "t.jsonl"
    write_trace(two_run_trace(), path)
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(path), "--model", "tiny", "--device", "cpu", "--warmup", "0",
              "--engine", "ray", "--json", "-o", str(out)])
    assert exc.value.code in (0, None)
    result = json.loads(out.read_text())
    assert result["schema"] == "ctxprof.replay/1"
    assert result["totals"]["reuse"]["reused_tokens"] > 0
    assert {s["run_id"] for s in result["steps"]} == {"a", "b"}
