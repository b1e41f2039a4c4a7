"""Engine KV-cache simulator: hand-computed eviction orders, capacity parsing, and oracles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.analysis import analyze
from profiler.cache_sim.kv_cache import (
    BlockHash,
    FIFOPolicy,
    KVBlockCache,
    LRUPolicy,
    StepBlocks,
    parse_capacity,
    simulate_engine,
    step_blocks,
)
from profiler.errors import ConfigError, ProfilerError
from profiler.tokens import StepTokenizer
from profiler.trace.model import Output, Prompt, Step, Trace

MOONCAKE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mooncake" / "synthetic_trace.jsonl"


def B(*names: str) -> list[BlockHash]:
    """Block hashes named by short strings (a path of blocks)."""
    return [BlockHash(hash(n)) for n in names]


def token_step(i: int, prompt: list[int], output: list[int] = (), run: str = "r", model: str = "m") -> Step:
    return Step(run_id=run, step_id=str(i), model=model, start_unix_s=float(i),
                prompt=Prompt(token_ids=tuple(prompt), tokenizer="toy"),
                output=Output(token_ids=tuple(output)))


def make_trace(steps: list[Step]) -> Trace:
    return Trace.from_steps(steps)


# --- the cache on its own ---------------------------------------------------------------------------

def test_lru_evicts_the_least_recently_used_leaf():
    # GIVEN a cache of 3 blocks holding path a1->a2 and block b1, then a1->a2 used again
    cache = KVBlockCache(3, LRUPolicy())
    cache.insert(B("a1", "a2"))
    cache.insert(B("b1"))
    cache.insert(B("a1", "a2"))
    # WHEN a new block c1 arrives
    cache.insert(B("c1"))
    # THEN b1 (least recently used) went, a1->a2 stayed
    assert set(B("a1", "a2", "c1")) == {h for h in B("a1", "a2", "b1", "c1") if h in cache}
    assert cache.evicted_blocks == 1
    # WHEN a1->a3 arrives (a1 is matched, a3 is new; the cache is full)
    assert cache.match_prefix(B("a1", "a3")) == 1
    cache.insert(B("a1", "a3"))
    # THEN the least recently used leaf a2 goes (c1 was used later); a1 is never a victim while a
    # cached block extends it
    assert [h in cache for h in B("a1", "a2", "a3", "c1")] == [True, False, True, True]
    # WHEN two more new blocks arrive, THEN c1 goes first (the older leaf), then a3 (older than d1);
    # a1 stays while a3 extends it
    cache.insert(B("d1"))
    assert [h in cache for h in B("a1", "a3", "c1", "d1")] == [True, True, False, True]
    cache.insert(B("e1"))
    assert [h in cache for h in B("a1", "a3", "d1", "e1")] == [True, False, True, True]
    assert cache.evicted_blocks == 4


def test_eviction_takes_leaves_only_even_when_an_inner_block_is_older():
    # GIVEN FIFO (which would evict the first-inserted block x1) and x1 extended later by x2
    cache = KVBlockCache(2, FIFOPolicy())
    cache.insert(B("x1"))
    cache.insert(B("x1", "x2"))
    # WHEN y1 needs room
    cache.insert(B("y1"))
    # THEN the leaf x2 goes, not x1 (x2 extends it); x1 goes once it is a leaf again
    assert [h in cache for h in B("x1", "x2", "y1")] == [True, False, True]
    cache.insert(B("z1"))
    assert [h in cache for h in B("x1", "y1", "z1")] == [False, True, True]


def test_a_request_longer_than_the_cache_keeps_its_head_and_never_evicts_itself():
    # GIVEN a 2-block cache holding q1
    cache = KVBlockCache(2, LRUPolicy())
    cache.insert(B("q1"))
    # WHEN a 3-block request arrives
    cached = cache.insert(B("p1", "p2", "p3"))
    # THEN q1 made room for p1, p2 stays pinned, p3 is not cached
    assert cached == 2
    assert [h in cache for h in B("q1", "p1", "p2", "p3")] == [False, True, True, False]
    assert len(cache) == 2


def test_zero_capacity_caches_nothing():
    cache = KVBlockCache(0)
    assert cache.insert(B("a", "b")) == 0
    assert len(cache) == 0


# --- capacities -------------------------------------------------------------------------------------

def test_parse_capacity_reads_tokens_and_bytes_through_presets():
    assert parse_capacity("100000", None) == 100_000
    assert parse_capacity("128k", None) == 128_000
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 head dim x 2 (K, V) x 2 bytes = 131,072 bytes/token
    assert parse_capacity("8GiB", "Llama-3.1-8B") == 8 * 2**30 // 131_072 == 65_536
    # Qwen2.5-0.5B: 24 x 2 x 64 x 2 x 2 = 12,288 bytes/token
    assert parse_capacity("512MiB", "qwen2.5-0.5b") == 512 * 2**20 // 12_288
    # Llama-3.2-1B: 16 x 8 x 64 x 2 x 2 = 32,768; an fp8 cache holds twice the tokens
    assert parse_capacity("1GiB", "meta-llama/Llama-3.2-1B-Instruct") == 32_768
    assert parse_capacity("1GiB", "llama-3.2-1b:fp8") == 65_536
    assert parse_capacity("40GB", "Mistral-7B-v0.3") == 40 * 10**9 // 131_072
    assert parse_capacity("1GiB", "qwen2.5-7b") == 2**30 // 57_344
    assert parse_capacity("1GiB", "qwen2.5-1.5b") == 2**30 // 28_672


@pytest.mark.parametrize("text,preset,words", [
    ("8GiB", None, "--model-preset"),
    ("8GiB", "gpt-9", "unknown model preset"),
    ("8 parsecs", None, "unknown unit"),
    ("lots", None, "cannot read capacity"),
    ("1GiB", "llama-3.1-8b:fp4", "unknown KV dtype"),
])
def test_parse_capacity_errors_say_what_to_do(text, preset, words):
    with pytest.raises(ConfigError, match=words):
        parse_capacity(text, preset)


# --- simulate_engine ----------------------------------------------------------------------------------

def test_hand_computed_hits_with_block_size_4():
    # GIVEN step 0 with 10 prompt tokens and 3 output tokens, step 1 sharing 9 tokens with step 0's
    # prompt, step 2 repeating step 0's prompt and output exactly
    p0 = list(range(10))
    o0 = [50, 51, 52]
    trace = make_trace([token_step(0, p0, o0), token_step(1, p0[:9] + [99, 98, 97]),
                        token_step(2, p0 + o0 + [7])])
    # WHEN simulated with 4-token blocks, unbounded and with room for one block
    sim = simulate_engine(trace, [None, 4], block_size=4)
    # THEN step 1 hits 2 full blocks (8 of its 9 shared tokens), step 2 hits the 3 full blocks of
    # step 0's prompt + output (12 tokens): 20 of 10 + 12 + 14 = 36 prompt tokens
    assert sim.total_prompt_tokens == 36
    assert sim.ideal_hit_tokens == 20 and sim.ideal_hit_blocks == 5
    assert sim.results[0].hit_tokens == 20 and sim.results[0].capacity_blocks is None
    # With one block: only the head block of the latest request survives each step:
    # step 1 hits block 0 of step 0 (4 tokens); step 2 hits block 0 again (step 1 kept it).
    assert sim.results[1].capacity_blocks == 1
    assert sim.results[1].hit_tokens == 8
    assert sim.ideal_hit_rate == pytest.approx(20 / 36)


def test_prefill_saved_keeps_the_last_prompt_token():
    # GIVEN a prompt of exactly two blocks sent twice
    trace = make_trace([token_step(0, list(range(8))), token_step(1, list(range(8)))])
    sim = simulate_engine(trace, [None], block_size=4)
    # THEN the second step hits all 8 tokens but still computes the last one for its logits
    assert sim.results[0].hit_tokens == 8
    assert sim.results[0].prefill_tokens_saved == 7


def test_models_never_share_kv():
    trace = make_trace([token_step(0, list(range(8)), model="a"), token_step(1, list(range(8)), model="b")])
    assert simulate_engine(trace, [None], block_size=4).ideal_hit_tokens == 0


def test_unknown_policy_and_bad_capacity_are_errors():
    trace = make_trace([token_step(0, [1, 2, 3])])
    with pytest.raises(ProfilerError, match="unknown eviction policy"):
        simulate_engine(trace, [None], policy="random")
    with pytest.raises(ProfilerError, match=">= 0"):
        simulate_engine(trace, [-5])


def test_hash_steps_use_the_traces_block_size_and_partial_last_blocks():
    # GIVEN content-free steps with chained ids of 512-token blocks, the last one partial
    def hstep(i: int, ids: list[int], n: int) -> Step:
        return Step(run_id="m", step_id=str(i), start_unix_s=float(i),
                    prompt=Prompt(block_hashes=tuple(ids), block_size=512, num_tokens=n, chained=True),
                    output=Output(num_tokens=5))
    trace = make_trace([hstep(0, [1, 2, 3], 1200), hstep(1, [1, 2, 3], 1200), hstep(2, [1, 2, 9], 1100)])
    sim = simulate_engine(trace, [None, 1024], block_size=16)
    # THEN blocks are 512 tokens; step 1 hits all 1,200 tokens (the partial id 3 matches too), step 2
    # hits 2 blocks (1,024 tokens)
    assert sim.block_size == 512
    assert sim.ideal_hit_tokens == 1200 + 1024
    assert sim.results[1].capacity_blocks == 2


# --- oracles --------------------------------------------------------------------------------------------

def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _sequences(draw_steps: list[tuple[list[int], list[int]]]) -> list[Step]:
    return [token_step(i, p, o) for i, (p, o) in enumerate(draw_steps)]


# Prompts built from a few shared stems, so that prefixes recur and diverge at random places.
_token = st.integers(0, 3)
_seq = st.lists(_token, min_size=0, max_size=24)
_steps = st.lists(st.tuples(st.sampled_from([[], [1, 2, 3, 0, 1, 2, 3, 0], [1, 2, 3, 1]]), _seq, _seq),
                  min_size=1, max_size=12).map(lambda xs: [(stem + tail, out) for stem, tail, out in xs])


@settings(max_examples=150, deadline=None)
@given(_steps, st.integers(1, 5))
def test_unbounded_cache_matches_brute_force_longest_common_prefix(steps, block_size):
    # GIVEN random steps; ORACLE: step i hits floor(max_j LCP(P_i, P_j + O_j) / B) blocks
    expected = 0
    for i, (p, _) in enumerate(steps):
        best = max((_lcp(p, q + o) for q, o in steps[:i]), default=0)
        expected += (best // block_size) * block_size
    trace = make_trace(_sequences(steps))
    # WHEN simulated unbounded
    sim = simulate_engine(trace, [None], block_size=block_size)
    # THEN it equals the oracle, and the analyzer's global block reuse
    assert sim.ideal_hit_tokens == expected == sim.results[0].hit_tokens
    assert analyze(trace, scope="global", block_size=block_size).totals.block_reused_tokens == expected


def _lru_oracle(hash_lists: list[StepBlocks], capacity_blocks: int) -> int:
    """LRU as a stack algorithm: the cache holds the `capacity` blocks most recently used (later
    request first, shallower block first within a request). Hits: leading prompt blocks among them."""
    rank: dict[BlockHash, tuple[int, int]] = {}
    hit = 0
    for t, sb in enumerate(hash_lists):
        held = set(sorted(rank, key=rank.__getitem__, reverse=True)[:capacity_blocks])
        n = 0
        for h in sb.hashes[: sb.prompt_blocks]:
            if h not in held:
                break
            n += 1
        hit += min(n * sb.block_size, sb.prompt_tokens)
        for depth, h in enumerate(sb.hashes):
            rank[h] = (t, -depth)
    return hit


@settings(max_examples=150, deadline=None)
@given(_steps, st.integers(1, 4), st.lists(st.integers(0, 12), min_size=1, max_size=4))
def test_bounded_lru_matches_the_stack_oracle_and_is_monotonic(steps, block_size, capacity_blocks):
    trace = make_trace(_sequences(steps))
    tok = StepTokenizer()
    blocks = [step_blocks(s, tok, block_size) for s in trace.steps]
    capacities = [c * block_size for c in sorted(capacity_blocks)]
    sim = simulate_engine(trace, capacities, block_size=block_size)
    for c, result in zip(sorted(capacity_blocks), sim.results):
        assert result.hit_tokens == _lru_oracle(blocks, c)
    hits = [r.hit_tokens for r in sim.results]
    assert hits == sorted(hits) and hits[-1] <= sim.ideal_hit_tokens


@settings(max_examples=150, deadline=None)
@given(_steps, st.integers(1, 4), st.lists(st.integers(0, 12), min_size=1, max_size=4))
def test_lru_sweep_equals_serving_each_request_through_the_generic_index(steps, block_size, capacity_blocks):
    # GIVEN random steps and capacities (some smaller than a request)
    trace = make_trace(_sequences(steps))
    tok = StepTokenizer()
    blocks = [step_blocks(s, tok, block_size) for s in trace.steps]
    # WHEN the simulator sweeps them (one tight loop per cache)
    sim = simulate_engine(trace, [c * block_size for c in capacity_blocks], block_size=block_size)
    # THEN every figure equals serving each request through `KVBlockCache.serve` with `LRUPolicy`
    for c, result in zip(capacity_blocks, sim.results):
        cache, hit = KVBlockCache(c, LRUPolicy()), 0
        hit_blocks = saved = 0
        for sb in blocks:
            m = min(cache.match_prefix(sb.hashes), sb.prompt_blocks)
            tokens = min(m * sb.block_size, sb.prompt_tokens)
            hit, hit_blocks, saved = hit + tokens, hit_blocks + m, saved + min(tokens, max(sb.prompt_tokens - 1, 0))
            cache.insert(sb.hashes)
        assert (result.hit_tokens, result.hit_blocks, result.prefill_tokens_saved, result.evicted_blocks) == (
            hit, hit_blocks, saved, cache.evicted_blocks)


# --- real data --------------------------------------------------------------------------------------------

@pytest.mark.skipif(not MOONCAKE.exists(), reason="../shared/data/mooncake is not present")
def test_mooncake_synthetic_trace_ideal_and_sweep():
    import json

    from profiler.importers.mooncake import import_mooncake

    # ORACLE: prefix of chained ids already seen, counted in tokens (the last block partial)
    seen: set[int] = set()
    hit_tokens = total = 0
    for raw in MOONCAKE.read_text().splitlines():
        r = json.loads(raw)
        n = 0
        while n < len(r["hash_ids"]) and r["hash_ids"][n] in seen:
            n += 1
        hit_tokens += min(n * 512, r["input_length"])
        total += r["input_length"]
        seen.update(r["hash_ids"])
    trace = import_mooncake(MOONCAKE)
    capacities = [b * 512 for b in (2_000, 10_000, 30_000, len(seen))]
    sim = simulate_engine(trace, capacities)
    assert (sim.ideal_hit_tokens, sim.total_prompt_tokens) == (hit_tokens, total)
    assert 0.64 < sim.ideal_hit_rate < 0.66  # the FAST'25 paper reports 66% (see docs/engine-cache.md)
    hits = [r.hit_tokens for r in sim.results]
    assert hits == sorted(hits)
    assert hits[-1] == sim.ideal_hit_tokens and sim.results[-1].evicted_blocks == 0


def test_render_and_to_dict():
    import io
    import json

    from rich.console import Console

    from profiler.render.engine_cache import render

    trace = make_trace([token_step(0, list(range(40))), token_step(1, list(range(40)))])
    sim = simulate_engine(trace, [16, None], block_size=4)
    stream = io.StringIO()
    render(sim, Console(file=stream, width=120))
    text = stream.getvalue()
    # capacities sorted, the unbounded row last, summary line with the ideal
    assert text.index(" 16 ") < text.index("unbounded")
    assert "40 of" not in text and "an unbounded cache serves 40 (50.0%" in text
    data = json.loads(json.dumps(sim.to_dict()))
    assert data["schema"] == "ctxprof.engine-cache/1"
    assert [r["capacity_tokens"] for r in data["results"]] == [16, None]
    assert data["ideal_hit_tokens"] == 40 and data["total_prompt_tokens"] == 80


def test_kv_presets_agree_with_the_replay_presets_of_the_same_model():
    # The two tables serve different jobs (KV bytes here, whole architectures for replay); where they
    # name the same model, its KV shape must be the same.
    from profiler.cache_sim.presets import KV_PRESETS as KV
    from profiler.replay.models import ARCHITECTURE_PRESETS as REPLAY

    shared = sorted(set(KV) & set(REPLAY))
    assert shared == ["llama-3.2-1b", "qwen2.5-0.5b", "qwen2.5-1.5b"]
    for name in shared:
        c = REPLAY[name].config
        head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        assert (KV[name].layers, KV[name].kv_heads, KV[name].head_dim) == (
            c["num_hidden_layers"], c["num_key_value_heads"], head_dim), name
