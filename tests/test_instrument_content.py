"""Content levels: text, token ids, block hashes -- and that content-free traces still analyse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import profiler
from profiler.analysis import analyze
from profiler.instrument.content import ContentEncoder, block_hashes, key_id
from profiler.tokens import StepTokenizer
from profiler.trace import load_trace
from profiler.trace.model import Output, Prompt, Step

SYSTEM = "You are the planner of a travel agency. Follow the booking policy in every answer. " * 12


def record_workflow(path: Path, content: str, *, hash_key: bytes | None = b"k" * 32,
                    steps: int = 3) -> None:
    """A run whose every step resends the system prompt and the growing history (recorded by hand)."""
    history = [{"role": "system", "content": SYSTEM}]
    with profiler.record(path, content=content, hash_key=hash_key, gpu=False, instrument=False) as rec:
        for i in range(steps):
            history.append({"role": "user", "content": f"Question {i}: what about booking {i * 7}?"})
            with rec.step(f"step{i}") as s:
                s.model = "gpt-4o"
                s.set_prompt(list(history))
                answer = {"role": "assistant", "content": f"Answer {i}: booking {i * 7} is confirmed."}
                s.set_output(answer)
                s.set_usage(input_tokens=100 + i, output_tokens=10)
            history.append(answer)


def metrics(path: Path) -> list[tuple[int, int, int]]:
    a = analyze(load_trace(path))
    return [(m.input_tokens, m.prefix_reused_tokens, m.output_tokens) for m in a.steps]


def test_tokens_level_stores_ids_and_analyses_exactly_like_text(tmp_path: Path) -> None:
    record_workflow(tmp_path / "text.jsonl", "text")
    record_workflow(tmp_path / "tokens.jsonl", "tokens")
    trace = load_trace(tmp_path / "tokens.jsonl")
    assert trace.header.content_level == "tokens"
    step = trace.steps[0]
    assert step.prompt.messages is None and step.prompt.tokenizer == "o200k_base"
    assert "booking" not in (tmp_path / "tokens.jsonl").read_text()
    assert metrics(tmp_path / "tokens.jsonl") == metrics(tmp_path / "text.jsonl")


def test_hashes_level_is_content_free_and_analyses_to_the_block_rounded_prefix(tmp_path: Path) -> None:
    # GIVEN the same workflow recorded as text and as block hashes
    record_workflow(tmp_path / "text.jsonl", "text")
    record_workflow(tmp_path / "hashes.jsonl", "hashes")
    text = (tmp_path / "hashes.jsonl").read_text()
    # THEN no content is written, only hashes and counts
    assert "booking" not in text and "planner" not in text and "Answer" not in text
    trace = load_trace(tmp_path / "hashes.jsonl")
    assert trace.header.content_level == "hashes"
    assert trace.header.attributes["hash_key_id"] == key_id(b"k" * 32)
    s = trace.steps[1]
    assert s.prompt.block_size == 16 and len(s.prompt.block_hashes) == s.prompt.num_tokens // 16
    # AND the analysis agrees with the text analysis, up to whole blocks of the shared prefix
    exact = analyze(load_trace(tmp_path / "text.jsonl")).steps
    hashed = analyze(trace).steps
    for e, h in zip(exact, hashed):
        assert h.content_level == "hashes"
        assert h.input_tokens == e.input_tokens and h.output_tokens == e.output_tokens
        assert h.prefix_reused_tokens == (e.prefix_reused_tokens // 16) * 16
    assert hashed[2].prefix_reused_tokens > 0.8 * hashed[2].input_tokens


def test_block_hashes_depend_on_the_key(tmp_path: Path) -> None:
    tokens = np.arange(64)
    a = block_hashes(tokens, 16, b"key-one", "o200k_base")
    b = block_hashes(tokens, 16, b"key-two", "o200k_base")
    c = block_hashes(tokens, 16, b"key-one", "cl100k_base")
    assert len(a) == 4 and not set(a) & set(b) and not set(a) & set(c)
    assert all(0 <= h < 2**63 for h in a)


@settings(max_examples=40, deadline=None)
@given(prompt=st.lists(st.integers(0, 50), max_size=70), output=st.lists(st.integers(0, 50), max_size=40),
       bs=st.integers(1, 8))
def test_prompt_and_output_hashes_concatenate_to_the_blocks_of_the_whole_sequence(
        prompt: list[int], output: list[int], bs: int) -> None:
    # Oracle: hash the full blocks of P + O directly.
    enc = ContentEncoder("hashes", block_size=bs, hash_key=b"secret")
    step = Step(run_id="r", step_id="1", prompt=Prompt(token_ids=tuple(prompt), tokenizer="t"),
                output=Output(token_ids=tuple(output)))
    out = enc.encode(step)
    whole = block_hashes(prompt + output, bs, b"secret", "t")
    assert out.prompt.block_hashes + out.output.block_hashes == tuple(whole)
    assert len(out.prompt.block_hashes) == len(prompt) // bs
    assert out.prompt.num_tokens == len(prompt) and out.output.num_tokens == len(output)


def test_hash_key_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXPROF_HASH_KEY", "team-secret")
    record_workflow(tmp_path / "a.jsonl", "hashes", hash_key=None, steps=1)
    record_workflow(tmp_path / "b.jsonl", "hashes", hash_key=None, steps=1)
    a, b = load_trace(tmp_path / "a.jsonl"), load_trace(tmp_path / "b.jsonl")
    assert a.steps[0].prompt.block_hashes == b.steps[0].prompt.block_hashes
    assert "team-secret" not in (tmp_path / "a.jsonl").read_text()


def test_tokens_level_uses_the_given_tokenizer(tmp_path: Path) -> None:
    tok = StepTokenizer(default_encoding="cl100k_base")
    with profiler.record(tmp_path / "t.jsonl", content="tokens", tokenizer=tok, gpu=False,
                         instrument=False) as rec:
        with rec.step("x") as s:  # no model: the default encoding applies
            s.set_prompt([{"role": "user", "content": "hello"}])
    assert load_trace(tmp_path / "t.jsonl").steps[0].prompt.tokenizer == "cl100k_base"
