"""The analyzer's reuse metrics against a brute-force oracle (hypothesis), plus exact cases."""

from __future__ import annotations

import numpy as np
from builders import make_step, make_trace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.analysis import analyze
from profiler.reuse import ReuseIndex, namespace_salt


def oracle(steps, scope: str, k: int, b: int):
    """Definitions of DESIGN.md, computed the slow, obvious way. `steps` are in analysis order."""
    out = {}
    for i, s in enumerate(steps):
        p = list(s.prompt.token_ids)
        earlier = [list(t.prompt.token_ids) + list(t.output.token_ids) for t in steps[:i]
                   if scope == "global" or t.run_id == s.run_id]

        def lcp(a, c):
            n = 0
            while n < len(a) and n < len(c) and a[n] == c[n]:
                n += 1
            return n

        prefix = max((lcp(p, e) for e in earlier), default=0)
        windows = {tuple(e[j:j + k]) for e in earlier for j in range(len(e) - k + 1)}
        repeated = sum(
            1 for pos in range(prefix, len(p))
            if any(tuple(p[st_:st_ + k]) in windows
                   for st_ in range(max(0, pos - k + 1), min(pos, len(p) - k) + 1)))
        out[(s.run_id, s.step_id)] = (len(p), prefix, (prefix // b) * b, repeated)
    return out


# Small vocabularies make accidental repeats common; the shapes mirror real workflows.
token = st.integers(0, 5)
seq = st.lists(token, max_size=40)


@st.composite
def workflows(draw):
    """Steps of 1-3 runs: fresh prompts, growing histories, retries, shrinking histories."""
    steps = []
    histories: dict[str, list[int]] = {}
    n = draw(st.integers(1, 10))
    for i in range(n):
        run = draw(st.sampled_from(["a", "b", "c"]))
        hist = histories.get(run, [])
        kind = draw(st.sampled_from(["grow", "retry", "shrink", "fresh", "interleave"]))
        if kind == "grow" or not hist:
            prompt = hist + draw(seq)
        elif kind == "retry":
            prompt = list(steps[-1].prompt.token_ids) if steps else hist
        elif kind == "shrink":
            cut = draw(st.integers(0, len(hist)))
            prompt = hist[:cut] + draw(seq)
        elif kind == "interleave":
            # another role's message inserted in the middle of the history
            cut = draw(st.integers(0, len(hist)))
            prompt = hist[:cut] + draw(seq) + hist[cut:]
        else:
            prompt = draw(seq)
        output = draw(st.lists(token, max_size=8))
        histories[run] = prompt + output
        # Equal start times exercise the file-order tie break.
        start = float(draw(st.integers(0, 3))) + i * draw(st.sampled_from([0, 1]))
        steps.append(make_step(run, step_id=f"{run}{i}", tokens=prompt, output=output, start=start))
    return steps


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=workflows(), scope=st.sampled_from(["run", "global"]), k=st.integers(1, 6),
       b=st.sampled_from([1, 2, 4, 16]))
def test_analyzer_agrees_with_brute_force_oracle(steps, scope, k, b):
    # GIVEN a random workflow, WHEN it is analysed
    trace = make_trace(steps)
    result = analyze(trace, scope=scope, block_size=b, min_repeat=k)
    in_trace = list(trace.steps)
    ordered = sorted(in_trace, key=lambda s: (s.start_unix_s, in_trace.index(s)))
    expected = oracle(ordered, scope, k, b)
    # THEN every step's metrics equal the oracle's
    for m in result.steps:
        inp, prefix, block, repeated = expected[(m.run_id, m.step_id)]
        assert (m.input_tokens, m.prefix_reused_tokens, m.block_reused_tokens, m.repeated_tokens) == (
            inp, prefix, block, repeated), m
        assert m.novel_tokens == inp - prefix - repeated
        assert 0.0 <= m.redundancy_ratio <= 1.0


def test_retry_with_identical_prompt_is_fully_reused():
    steps = [make_step("r", tokens=list(range(100)), output=[7, 8]),
             make_step("r", tokens=list(range(100)), output=[9])]
    second = analyze(make_trace(steps)).steps[1]
    assert (second.prefix_reused_tokens, second.repeated_tokens, second.novel_tokens) == (100, 0, 0)


def test_growing_history_reuses_prompt_and_output():
    first = make_step("r", tokens=list(range(50)), output=[1000, 1001])
    second = make_step("r", tokens=list(range(50)) + [1000, 1001] + [5, 6, 7])
    m = analyze(make_trace([first, second])).steps[1]
    assert m.prefix_reused_tokens == 52 and m.novel_tokens == 3


def test_reordered_passages_are_repeated_not_prefix():
    a, b, c = (list(range(i * 100, i * 100 + 40)) for i in range(3))
    steps = [make_step("r", tokens=[1] + a + b + c), make_step("r", tokens=[1] + c + a + b)]
    m = analyze(make_trace(steps), min_repeat=32).steps[1]
    assert m.prefix_reused_tokens == 1
    assert m.repeated_tokens == 120


def test_run_scope_isolates_runs_and_global_does_not():
    steps = [make_step("a", tokens=list(range(64))), make_step("b", tokens=list(range(64)))]
    assert analyze(make_trace(steps)).steps[1].prefix_reused_tokens == 0
    g = analyze(make_trace(steps), scope="global")
    assert [m.prefix_reused_tokens for m in g.steps] == [0, 64]
    assert g.steps[1].sources[0].run_id == "a"


def test_different_tokenizers_never_match():
    index = ReuseIndex(min_repeat=4)
    seq = np.arange(20)
    index.insert(index.hashes(seq, namespace_salt("o200k_base")), 0)  # nothing matched: no match
    assert index.match(20, index.hashes(seq, namespace_salt("cl100k_base"))).prefix == 0
    assert index.match(20, index.hashes(seq, namespace_salt("o200k_base"))).prefix == 20


def test_sources_name_the_step_the_context_came_from():
    doc = list(range(500, 560))
    steps = [make_step("r", step_id="planner", tokens=[1, 2] + doc),
             make_step("r", step_id="other", tokens=[9, 9, 9]),
             make_step("r", step_id="verifier", tokens=[1, 2] + doc + [3])]
    m = analyze(make_trace(steps)).steps[2]
    assert [(s.step_id, s.prefix_tokens, s.repeated_tokens) for s in m.sources] == [("planner", 62, 0)]
