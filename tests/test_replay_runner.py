"""Replay on the CPU with the tiny preset: cold vs reuse give the same outputs, reuse prefills less,
and the measured saving matches the analyzer's prediction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from profiler.errors import ConfigError  # noqa: E402
from profiler.replay import load_model, replay  # noqa: E402
from profiler.trace import load_trace  # noqa: E402
from profiler.trace.model import Output, Prompt, Step, Trace  # noqa: E402

SYSTEM = {"role": "system", "content": "You are a careful coding agent. Follow the plan. " * 6}
TOOLS = ({"type": "function", "function": {"name": "grep", "description": "Search files for text."}},)


def make_loop_trace(run_id="r1", steps=4, start=100.0, question="Fix the failing test in parser.py") -> Trace:
    """An agent loop: every step resends the system prompt, tools and the growing history."""
    history = [SYSTEM, {"role": "user", "content": question}]
    out = []
    for i in range(steps):
        answer = f"Step {i}: calling grep for 'def parse' in module {i}."
        out.append(Step(run_id=run_id, step_id=f"s{i}", name="executor", start_unix_s=start + i,
                        prompt=Prompt(messages=tuple(history), tools=TOOLS),
                        output=Output(message={"role": "assistant", "content": answer})))
        history += [{"role": "assistant", "content": answer},
                    {"role": "tool", "content": f"parser.py:{10 * i}: def parse_{i}(x):"}]
    return Trace.from_steps(out)


def make_token_trace(prefix_len=40, runs=("a", "b")) -> Trace:
    """Token-id steps: each run has two steps; all runs share their first `prefix_len` tokens."""
    shared = tuple(range(100, 100 + prefix_len))
    steps = []
    for k, run in enumerate(runs):
        own = tuple(range(1000 + 50 * k, 1000 + 50 * k + 20))
        p1, o1 = shared + own, (7, 8, 9)
        steps.append(Step(run_id=run, step_id="1", start_unix_s=10.0 * k,
                          prompt=Prompt(token_ids=p1, tokenizer="t"), output=Output(token_ids=o1)))
        steps.append(Step(run_id=run, step_id="2", start_unix_s=10.0 * k + 1,
                          prompt=Prompt(token_ids=p1 + o1 + tuple(range(3000, 3010)), tokenizer="t"),
                          output=Output(token_ids=(5, 6))))
    return Trace.from_steps(steps)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu", dtype="float32", seed=0)


def test_reuse_prefills_fewer_tokens_and_gives_the_same_outputs(tiny):
    # GIVEN an agent loop whose steps resend a growing history
    trace = make_loop_trace()
    # WHEN it is replayed cold and with KV reuse
    result = replay(trace, model=tiny, mode="both")
    # THEN both modes give the same logits (fp32 tolerance) and the same greedy tokens
    cmp = result.comparison
    assert cmp.equal and cmp.steps_compared == 4
    assert cmp.max_abs_logit_diff <= 1e-3
    assert cmp.greedy_mismatches == 0 and cmp.greedy_tokens_compared > 4 * 10
    assert all(s.check.logit_rows_compared >= 2 for s in result.steps)
    # AND reuse prefills fewer tokens, exactly what the analyzer predicts (unbounded cache)
    assert result.reuse.prefill_tokens < result.cold.prefill_tokens
    assert result.cold.reused_tokens == 0 and result.steps[0].reuse.reused_tokens == 0
    assert result.prediction.measured_saved_prefill_tokens == result.prediction.predicted_saved_prefill_tokens
    assert result.prediction.predicted_saved_prefill_tokens > 0.5 * result.prediction.prompt_tokens
    assert [s.reuse.reused_tokens for s in result.steps] == [s.predicted_reused_tokens for s in result.steps]
    assert all(s.reuse.reused_tokens % 16 == 0 for s in result.steps)
    # AND the trace-side prediction is in the same range (ctxprof's tokenization, token-exact)
    assert result.prediction.trace_block_reused_tokens == result.prediction.predicted_saved_prefill_tokens
    assert result.token_sources == {"mapped-ctxprof-tokens": 4}
    assert 0 < result.prediction.predicted_saved_flops_fraction < result.prediction.predicted_saved_token_fraction
    # AND figures that cannot be measured on a CPU are None, not 0
    assert result.cold.peak_gpu_memory_bytes is None and result.cold.energy_j is None
    assert result.options.timer == "perf_counter"
    assert all(s.cold.prefill_ms > 0 and s.cold.ttft_ms >= s.cold.prefill_ms for s in result.steps)
    json.dumps(result.to_dict())
    df = result.steps_df
    assert len(df) == 4 and (df["reuse_reused_tokens"] == df["predicted_reused_tokens"]).all()


def test_run_scope_keeps_runs_apart_and_global_scope_shares_the_cache(tiny):
    # GIVEN two runs of token ids that share a 40-token prefix
    trace = make_token_trace()
    # WHEN replayed with a cache per run, and with one cache for all
    per_run = replay(trace, model=tiny, mode="reuse", scope="run")
    shared = replay(trace, model=tiny, mode="reuse", scope="global")
    # THEN the first step of run b reuses nothing per run, and 32 tokens (2 blocks) globally
    first_b = [s for s in per_run.steps if (s.run_id, s.step_id) == ("b", "1")][0]
    assert first_b.reuse.reused_tokens == 0
    first_b_global = [s for s in shared.steps if (s.run_id, s.step_id) == ("b", "1")][0]
    assert first_b_global.reuse.reused_tokens == 32
    # AND the token ids were used as recorded; prediction and measurement agree in both scopes
    assert per_run.token_sources == {"trace-token-ids": 4}
    for r in (per_run, shared):
        assert r.prediction.measured_saved_prefill_tokens == r.prediction.predicted_saved_prefill_tokens
    assert shared.comparison is None and shared.cold is None


def test_a_small_capacity_evicts_least_recently_used_blocks(tiny):
    # GIVEN prompts A, then B, then A extended (48 distinct tokens each), and room for 64 tokens
    a, b = tuple(range(100, 148)), tuple(range(200, 248))
    steps = [Step(run_id="r", step_id=str(i), start_unix_s=float(i),
                  prompt=Prompt(token_ids=p, tokenizer="t"), output=Output(token_ids=(1, 2)))
             for i, p in enumerate([a, b, a + (1, 2) + tuple(range(300, 320))])]
    trace = Trace.from_steps(steps)
    unbounded = replay(trace, model=tiny, mode="reuse")
    small = replay(trace, model=tiny, mode="both", capacity_tokens=64)
    # THEN without a limit the third step reuses all of A; with 64 tokens B's arrival evicted the
    # two least recently used blocks (A's tail), so only A's first block is reused
    assert [s.reuse.reused_tokens for s in unbounded.steps] == [0, 0, 48]
    assert [s.reuse.reused_tokens for s in small.steps] == [0, 0, 16]
    # (then step 3's own 48 new tokens evicted all of B)
    assert small.evicted_tokens == 32 + 48
    assert all(s.reuse.cache_tokens_after <= 64 for s in small.steps)
    # AND outputs are still equal; the prediction assumes an unbounded cache
    assert small.comparison.equal
    assert small.prediction.measured_saved_prefill_tokens == 16
    assert small.prediction.predicted_saved_prefill_tokens == 48


def test_generate_mode_gives_the_same_greedy_tokens(tiny):
    trace = make_loop_trace(steps=2)
    result = replay(trace, model=tiny, generate=True, max_new_tokens=4)
    for s in result.steps:
        assert len(s.cold.output_ids) == 4
        assert s.cold.output_ids == s.reuse.output_ids
    assert result.comparison.equal and result.comparison.greedy_mismatches == 0
    assert result.reuse.reused_tokens > 0


def test_max_steps_and_forced_output_cap(tiny):
    result = replay(make_loop_trace(), model=tiny, max_steps=2, max_new_tokens=3, mode="cold")
    assert len(result.steps) == 2
    assert all(s.cold.output_tokens == 3 for s in result.steps)


def test_content_free_trace_replays_expanded_block_hashes(tiny):
    # GIVEN a content-free trace (chained block hashes, as Mooncake), the second step extending the first
    s1 = Step(run_id="r", step_id="1", start_unix_s=1.0,
              prompt=Prompt(block_hashes=(1, 2, 3), block_size=16, num_tokens=40, chained=True),
              output=Output(num_tokens=4))
    s2 = Step(run_id="r", step_id="2", start_unix_s=2.0,
              prompt=Prompt(block_hashes=(1, 2, 3, 4), block_size=16, num_tokens=60, chained=True),
              output=Output(num_tokens=4))
    result = replay(Trace.from_steps([s1, s2]), model=tiny)
    # THEN the shared whole blocks are reused (the partial third block of step 1 is not cached)
    assert result.token_sources == {"expanded-block-hashes": 2}
    assert [s.reuse.reused_tokens for s in result.steps] == [0, 32]
    assert result.comparison.equal
    assert any("block hash" in w for w in result.warnings)


def test_local_checkpoint_with_a_tokenizer_uses_its_chat_template(tiny, tmp_path):
    # GIVEN a checkpoint directory: the tiny model's weights and a character-level tokenizer with
    # a ChatML template (built here: nothing can be downloaded)
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = ["<unk>", "<|im_start|>", "<|im_end|>"] + [chr(c) for c in range(32, 127)] + ["\n"]
    tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(chars)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>",
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                         "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                         "{% endif %}")
    tiny.module.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    # WHEN a short loop is replayed with it
    result = replay(make_loop_trace(steps=2), model=str(tmp_path))
    # THEN the model's own tokenizer made the sequences, and reuse still gives equal outputs
    assert result.model.source == "checkpoint" and result.model.has_tokenizer
    assert result.token_sources == {"model-tokenizer": 2}
    assert result.comparison.equal
    assert result.steps[1].reuse.reused_tokens == result.steps[1].predicted_reused_tokens > 0


def test_unknown_models_and_missing_gpus_are_usage_errors():
    with pytest.raises(ConfigError, match="neither a preset"):
        load_model("no-such-model")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            load_model("tiny", device="cuda")
    with pytest.raises(ConfigError, match="mode"):
        replay(make_token_trace(), model="tiny", mode="warm")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_replay_times_with_cuda_events_and_measures_memory():
    result = replay(make_loop_trace(), model="small", device="cuda", dtype="bfloat16")
    assert result.options.timer == "cuda-events"
    assert result.comparison.equal
    assert result.reuse.prefill_tokens < result.cold.prefill_tokens
    assert result.cold.peak_gpu_memory_bytes and result.cold.peak_gpu_memory_bytes > 0


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_modes_agree_within_their_tolerance(dtype):
    # GIVEN the tiny preset in half precision (its tolerance is wider, see TOLERANCES)
    result = replay(make_token_trace(), model="tiny", dtype=dtype, mode="both")
    # THEN the modes still agree, and the largest difference is reported
    assert result.model.dtype == dtype
    assert result.comparison.equal and result.comparison.greedy_mismatches_beyond_tolerance == 0
    assert result.comparison.atol > 1e-3


SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"


@pytest.mark.skipif(not (SAMPLES / "react_tool_loop.jsonl").is_file(), reason="sample_traces/ absent")
def test_sample_trace_replays_with_less_prefill_and_the_same_outputs(tiny):
    # GIVEN the ReAct sample trace, truncated to its first steps and short forced outputs
    trace = load_trace(SAMPLES / "react_tool_loop.jsonl")
    # WHEN replayed in both modes with the tiny preset
    result = replay(trace, model=tiny, max_steps=4, max_new_tokens=8)
    # THEN outputs agree, reuse prefills far less, exactly as the analyzer predicts
    assert result.comparison.equal and result.comparison.greedy_mismatches == 0
    assert result.reuse.prefill_tokens < 0.5 * result.cold.prefill_tokens
    assert result.prediction.measured_saved_prefill_tokens == result.prediction.predicted_saved_prefill_tokens
    assert len(result.steps) == 4 and all(s.output_tokens <= 8 for s in result.steps)


@pytest.mark.skipif(not (SAMPLES / "timestamp_prefix.jsonl").is_file(), reason="sample_traces/ absent")
def test_a_timestamp_early_in_the_prompt_leaves_almost_nothing_to_reuse(tiny):
    # GIVEN the sample whose system prompt starts with a per-call timestamp
    result = replay(load_trace(SAMPLES / "timestamp_prefix.jsonl"), model=tiny, max_steps=4,
                    max_new_tokens=8, mode="reuse")
    # THEN the cache can reuse only the blocks before the timestamp, as predicted
    assert result.reuse.reused_tokens == result.prediction.predicted_saved_prefill_tokens
    assert result.reuse.reused_tokens < 0.05 * result.prediction.prompt_tokens


# Prompts over a 3-token alphabet in 8-token chunks: later steps often share a prefix with earlier
# prompts + outputs, and diverge at arbitrary points.
chunk = st.sampled_from([tuple([t] * 8) for t in (20, 21, 22)])
token_step = st.tuples(st.lists(chunk, min_size=1, max_size=6).map(lambda cs: sum(cs, ())),
                       st.lists(st.integers(20, 22), min_size=0, max_size=6).map(tuple))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(token_step, min_size=2, max_size=4), scope=st.sampled_from(["run", "global"]))
def test_measured_reuse_equals_the_analyzer_on_any_token_trace(tiny, steps, scope):
    # GIVEN any short token-id trace (two runs when there are more than two steps)
    trace = Trace.from_steps([
        Step(run_id="a" if i < 2 else "b", step_id=str(i), start_unix_s=float(i),
             prompt=Prompt(token_ids=p, tokenizer="t"), output=Output(token_ids=o))
        for i, (p, o) in enumerate(steps)])
    # WHEN replayed with an unbounded cache
    result = replay(trace, model=tiny, scope=scope, warmup_runs=0)
    # THEN every step reuses exactly what the analyzer predicts, and outputs agree
    assert [s.reuse.reused_tokens for s in result.steps] == [s.predicted_reused_tokens for s in result.steps]
    assert result.comparison.equal
