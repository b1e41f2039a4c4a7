"""Token sequences for replay: vocabulary mapping, block-hash expansion, and which source is used."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.errors import ProfilerError
from profiler.replay.sequences import (
    SequenceBuilder,
    Vocabulary,
    expand_block_hashes,
    map_token_ids,
)
from profiler.trace.model import Output, Prompt, Step, Usage

VOCAB = Vocabulary(size=1000, special_ids=tuple(range(990, 1000)))
ALLOWED = VOCAB.allowed_ids()


def make_step(step_id="s0", **kw) -> Step:
    return Step(run_id="r", step_id=step_id, **kw)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 2**40), min_size=1, max_size=200))
def test_mapping_keeps_equal_tokens_equal_and_avoids_special_ids(ids):
    # GIVEN token ids of some tokenizer (larger than the model's vocabulary)
    arr = np.array(ids, dtype=np.int64)
    # WHEN they are mapped into the model's vocabulary
    mapped = map_token_ids(arr, namespace="o200k_base", allowed=ALLOWED, seed=3)
    # THEN equal tokens map to equal ids, every id is an ordinary id of the vocabulary
    for i in range(len(ids)):
        for j in range(i + 1, min(len(ids), i + 20)):
            if ids[i] == ids[j]:
                assert mapped[i] == mapped[j]
    assert set(mapped.tolist()) <= set(ALLOWED.tolist())
    # AND the mapping is a function: the same input maps the same way again, piece by piece
    again = np.concatenate([map_token_ids(arr[:5], namespace="o200k_base", allowed=ALLOWED, seed=3),
                            map_token_ids(arr[5:], namespace="o200k_base", allowed=ALLOWED, seed=3)])
    assert (again == mapped).all()


def test_mapping_spreads_distinct_tokens():
    # GIVEN 300 distinct tokens and a vocabulary of 100k ids
    allowed = np.arange(100_000)
    mapped = map_token_ids(np.arange(300), namespace="x", allowed=allowed)
    # THEN (almost) all stay distinct, and another seed or namespace maps differently
    assert len(set(mapped.tolist())) >= 298
    assert (map_token_ids(np.arange(300), namespace="y", allowed=allowed) != mapped).mean() > 0.99
    assert (map_token_ids(np.arange(300), namespace="x", allowed=allowed, seed=1) != mapped).mean() > 0.99


def test_block_hashes_expand_to_equal_ids_for_equal_hashes():
    a = expand_block_hashes([11, 22, 33], 16, allowed=ALLOWED)
    b = expand_block_hashes([11, 22, 44], 16, allowed=ALLOWED)
    assert a.shape == (48,)
    assert (a[:32] == b[:32]).all() and (a[32:] != b[32:]).any()
    assert (expand_block_hashes([-5, 2**70], 4, allowed=ALLOWED) ==
            expand_block_hashes([-5, 2**70], 4, allowed=ALLOWED)).all()


def test_token_ids_that_fit_are_used_as_recorded():
    step = make_step(prompt=Prompt(token_ids=(1, 2, 3), tokenizer="t"), output=Output(token_ids=(4, 5)))
    seq = SequenceBuilder(VOCAB).build(step)
    assert seq.source == "trace-token-ids"
    assert seq.prompt_ids.tolist() == [1, 2, 3] and seq.output_ids.tolist() == [4, 5]


def test_token_ids_beyond_the_vocabulary_are_mapped_consistently():
    s1 = make_step("a", prompt=Prompt(token_ids=(5000, 7, 5000), tokenizer="big"))
    s2 = make_step("b", prompt=Prompt(token_ids=(5000, 7, 8), tokenizer="big"))
    b = SequenceBuilder(VOCAB)
    q1, q2 = b.build(s1), b.build(s2)
    assert q1.source == "mapped-token-ids"
    assert q1.prompt_ids[0] == q1.prompt_ids[2] == q2.prompt_ids[0]
    assert q1.prompt_ids[:2].tolist() == q2.prompt_ids[:2].tolist()
    assert max(q1.prompt_ids.max(), q2.prompt_ids.max()) < 990


def test_text_steps_map_ctxprof_tokens_and_keep_the_shared_prefix():
    # GIVEN two steps of a loop: the second resends the first's messages and its answer
    system = {"role": "system", "content": "You are a helpful assistant. " * 10}
    user = {"role": "user", "content": "What is 2 + 2?"}
    answer = {"role": "assistant", "content": "It is 4."}
    s1 = make_step("a", prompt=Prompt(messages=(system, user)), output=Output(message=answer))
    s2 = make_step("b", prompt=Prompt(messages=(system, user, answer, {"role": "user", "content": "Why?"})))
    b = SequenceBuilder(VOCAB)
    q1, q2 = b.build(s1), b.build(s2)
    # THEN the sources say so and step 2's prompt starts with all of step 1's prompt + output
    assert q1.source == q2.source == "mapped-ctxprof-tokens"
    left = np.concatenate([q1.prompt_ids, q1.output_ids])
    assert q2.prompt_ids[:left.size].tolist() == left.tolist()


def test_hash_steps_expand_and_truncate_to_num_tokens():
    step = make_step(prompt=Prompt(block_hashes=(1, 2, 3), block_size=16, num_tokens=40),
                     output=Output(num_tokens=5))
    seq = SequenceBuilder(VOCAB).build(step)
    assert seq.source == "expanded-block-hashes"
    assert seq.prompt_tokens == 40
    # Only a recorded length: step-unique filler of that length
    assert seq.output_tokens == 5 and not seq.output_recorded


def test_output_length_only_gives_step_unique_filler():
    b = SequenceBuilder(VOCAB)
    s1 = make_step("a", prompt=Prompt(text="hello"), usage=Usage(output_tokens=6))
    s2 = make_step("b", prompt=Prompt(text="hello"), usage=Usage(output_tokens=6))
    q1, q2 = b.build(s1), b.build(s2)
    assert q1.output_tokens == 6 and not q1.output_recorded
    assert q1.output_ids.tolist() != q2.output_ids.tolist()


def test_a_step_without_content_is_refused_with_its_name():
    with pytest.raises(ProfilerError, match="r/s0.*no prompt content"):
        SequenceBuilder(VOCAB).build(make_step(usage=Usage(input_tokens=10)))
