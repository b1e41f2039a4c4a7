"""The prefix core (`profiler.prefix`): the hash scheme, the index, and the shapes that once made the
analyzer quadratic or made its copies disagree, each against a brute-force oracle."""

from __future__ import annotations

import numpy as np
from builders import make_step, make_trace
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reuse import oracle

from profiler.analysis import analyze
from profiler.cache_sim.kv_cache import simulate_engine
from profiler.prefix import FIFOPolicy, LRUPolicy, PrefixIndex, block_hashes, namespace_salt, prefix_hashes
from profiler.trace.model import ordered_llm_steps

token = st.integers(0, 4)


def _check_against_oracle(steps, scope: str, k: int, b: int) -> None:
    trace = make_trace(steps)
    result = analyze(trace, scope=scope, block_size=b, min_repeat=k)
    ordered = [s for _, s in ordered_llm_steps([trace])]
    expected = oracle(ordered, scope, k, b)
    for m in result.steps:
        assert (m.input_tokens, m.prefix_reused_tokens, m.block_reused_tokens,
                m.repeated_tokens) == expected[(m.run_id, m.step_id)], m


@st.composite
def best_of_n(draw):
    """Runs that sample N answers to one shared prompt, then continue from one of them."""
    steps = []
    for r in range(draw(st.integers(1, 3))):
        base = draw(st.lists(token, max_size=20))
        answers = []
        for i in range(draw(st.integers(1, 5))):
            out = draw(st.lists(token, max_size=10))
            answers.append(out)
            steps.append(make_step(f"r{r}", step_id=f"r{r}n{i}", tokens=base, output=out,
                                   start=float(draw(st.integers(0, 2)))))
        pick = draw(st.sampled_from(answers))
        steps.append(make_step(f"r{r}", step_id=f"r{r}c", tokens=base + pick + draw(st.lists(token, max_size=8)),
                               start=5.0))
    return steps


@st.composite
def tree_search(draw):
    """A search tree: every step extends a random earlier node's sequence (prompt + output)."""
    nodes: list[list[int]] = [draw(st.lists(token, max_size=10))]
    steps = []
    for i in range(draw(st.integers(1, 12))):
        parent = draw(st.sampled_from(nodes))
        prompt = parent + draw(st.lists(token, max_size=6))
        out = draw(st.lists(token, max_size=6))
        nodes.append(prompt + out)
        run = draw(st.sampled_from(["a", "b"]))
        steps.append(make_step(run, step_id=f"{run}{i}", tokens=prompt, output=out,
                               start=float(draw(st.integers(0, 3)))))
    return steps


@settings(max_examples=150, deadline=None)
@given(steps=best_of_n(), scope=st.sampled_from(["run", "global"]), k=st.integers(1, 5),
       b=st.sampled_from([1, 4, 16]))
def test_best_of_n_agrees_with_the_oracle(steps, scope, k, b):
    _check_against_oracle(steps, scope, k, b)


@settings(max_examples=150, deadline=None)
@given(steps=tree_search(), scope=st.sampled_from(["run", "global"]), k=st.integers(1, 5),
       b=st.sampled_from([1, 4, 16]))
def test_tree_search_agrees_with_the_oracle(steps, scope, k, b):
    _check_against_oracle(steps, scope, k, b)


def test_equal_start_times_across_runs_order_the_same_in_analysis_and_engine():
    # GIVEN two runs whose steps all start at the same time: in file order a0, a1, b0, where b0 continues
    # a1's prompt and output (b0 is first *within its run*, a1 second within its run)
    shared = list(range(64))
    steps = [make_step("a", step_id="a0", tokens=list(range(100, 132)), start=0.0),
             make_step("a", step_id="a1", tokens=shared[:32], output=shared[32:], start=0.0),
             make_step("b", step_id="b0", tokens=shared + [7] * 8, start=0.0)]
    trace = make_trace(steps)
    # WHEN the analyzer (global scope) and the engine simulator's ideal cache see it
    reused = analyze(trace, scope="global", block_size=16).totals.block_reused_tokens
    ideal = simulate_engine(trace, [None], block_size=16).ideal_hit_tokens
    # THEN they agree (the engine once broke ties by position within a run: 32 against 64)
    assert reused == ideal == 64


def test_many_runs_sharing_a_system_prompt_match_the_shared_part_only():
    system = list(range(1000, 1040))
    steps = [make_step(f"r{i}", tokens=system + [i, i + 1, i + 2], start=float(i)) for i in range(200)]
    result = analyze(make_trace(steps), scope="global", min_repeat=64)
    assert [m.prefix_reused_tokens for m in result.steps] == [0] + [40] * 199


def test_block_hashes_identify_whole_prefixes():
    salt = namespace_salt("toy")
    a = prefix_hashes(np.array([1, 2, 3, 4, 5, 6, 7, 8]), salt)
    b = prefix_hashes(np.array([9, 2, 3, 4, 5, 6, 7, 8]), salt)
    # Equal second blocks under different first blocks are different prefixes.
    assert block_hashes(a, 4)[1] != block_hashes(b, 4)[1]
    assert prefix_hashes(np.array([1, 2]), namespace_salt("other"))[1] != a[1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), max_size=6), min_size=1, max_size=15), st.integers(0, 8),
       st.sampled_from(["lru", "fifo"]))
def test_bounded_index_stays_prefix_closed_and_within_capacity(requests, capacity, policy):
    index = PrefixIndex(capacity, LRUPolicy() if policy == "lru" else FIFOPolicy())
    held_paths: dict[int, list[int]] = {}
    for r in requests:
        keys = block_hashes(prefix_hashes(np.array(r, dtype=np.int64), 1), 1)
        for j, h in enumerate(keys):
            held_paths[h] = keys[:j + 1]
        cached = index.serve(keys)
        # THEN the request's head is cached, the capacity holds, every held key's prefix is held
        assert cached == min(len(keys), capacity) or cached >= min(len(keys), capacity)
        assert all(h in index for h in keys[:cached])
        assert len(index) <= capacity
        for h in list(index._entries):
            assert all(p in index for p in held_paths[h])


@st.composite
def branching_runs(draw):
    """Long shared prompts (several 16-token blocks) continued many ways: more continuations than a
    block scans before it indexes them token by token, continuations that extend each other, and
    sequences ending exactly on a block boundary."""
    shared = draw(st.lists(token, min_size=16, max_size=48))
    steps = []
    for i in range(draw(st.integers(2, 14))):
        cut = draw(st.sampled_from([len(shared), 16, 32, 0]))
        prompt = shared[:cut] + draw(st.lists(token, max_size=40))
        out = draw(st.lists(token, max_size=20))
        steps.append(make_step(f"r{i % 3}", step_id=f"s{i}", tokens=prompt, output=out, start=float(i)))
    return steps


@settings(max_examples=120, deadline=None)
@given(steps=branching_runs(), k=st.integers(1, 8), b=st.sampled_from([1, 16]))
def test_branch_points_agree_with_the_oracle(steps, k, b):
    # GIVEN prompts branching off shared blocks, WHEN analysed, THEN the figures equal the oracle's
    _check_against_oracle(steps, "global", k, b)
