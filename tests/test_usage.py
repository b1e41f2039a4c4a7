"""Usage normalisation: properties over every provider shape, and exact values for real shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiler.trace.model import Usage
from profiler.usage import normalize_usage


@dataclass(frozen=True)
class Truth:
    """What really happened in one request (the oracle every provider shape is rendered from)."""

    uncached: int
    read: int
    write: int
    visible_output: int
    reasoning: int

    @property
    def input(self) -> int:
        return self.uncached + self.read + self.write

    @property
    def output(self) -> int:
        return self.visible_output + self.reasoning


counts = st.integers(0, 200_000)
truths = st.builds(Truth, counts, counts, counts, st.integers(0, 20_000), st.integers(0, 20_000))
no_writes = truths.map(lambda t: Truth(t.uncached, t.read, 0, t.visible_output, t.reasoning))
no_reasoning = truths.map(lambda t: Truth(t.uncached, t.read, t.write, t.visible_output, 0))


def openai_chat(t: Truth) -> dict[str, Any]:
    return {"prompt_tokens": t.uncached + t.read, "completion_tokens": t.output,
            "total_tokens": t.uncached + t.read + t.output,
            "prompt_tokens_details": {"cached_tokens": t.read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": t.reasoning}}


def openai_responses(t: Truth) -> dict[str, Any]:
    return {"input_tokens": t.uncached + t.read, "input_tokens_details": {"cached_tokens": t.read},
            "output_tokens": t.output, "output_tokens_details": {"reasoning_tokens": t.reasoning},
            "total_tokens": t.uncached + t.read + t.output}


def anthropic(t: Truth) -> dict[str, Any]:
    return {"input_tokens": t.uncached, "cache_read_input_tokens": t.read,
            "cache_creation_input_tokens": t.write, "output_tokens": t.output}


def anthropic_by_ttl(t: Truth) -> dict[str, Any]:
    one_hour = t.write // 3
    return {"input_tokens": t.uncached, "cache_read_input_tokens": t.read, "output_tokens": t.output,
            "cache_creation": {"ephemeral_5m_input_tokens": t.write - one_hour,
                               "ephemeral_1h_input_tokens": one_hour}}


def deepseek(t: Truth) -> dict[str, Any]:
    return {"prompt_tokens": t.uncached + t.read, "completion_tokens": t.output,
            "prompt_cache_hit_tokens": t.read, "prompt_cache_miss_tokens": t.uncached,
            "completion_tokens_details": {"reasoning_tokens": t.reasoning}}


def deepseek_hit_miss_only(t: Truth) -> dict[str, Any]:
    return {"prompt_cache_hit_tokens": t.read, "prompt_cache_miss_tokens": t.uncached,
            "completion_tokens": t.output}


def gemini_sdk(t: Truth) -> dict[str, Any]:
    return {"prompt_token_count": t.uncached + t.read, "cached_content_token_count": t.read,
            "candidates_token_count": t.visible_output, "thoughts_token_count": t.reasoning,
            "total_token_count": t.uncached + t.read + t.output}


def gemini_rest(t: Truth) -> dict[str, Any]:
    return {"promptTokenCount": t.uncached + t.read, "cachedContentTokenCount": t.read,
            "candidatesTokenCount": t.visible_output, "thoughtsTokenCount": t.reasoning,
            "totalTokenCount": t.uncached + t.read + t.output}


def litellm_anthropic_inclusive(t: Truth) -> dict[str, Any]:
    # LiteLLM (recent): prompt_tokens = input + cache reads + cache writes, OpenAI-style details
    return {"prompt_tokens": t.input, "completion_tokens": t.output, "total_tokens": t.input + t.output,
            "prompt_tokens_details": {"cached_tokens": t.read, "text_tokens": None},
            "cache_creation_input_tokens": t.write, "cache_read_input_tokens": t.read}


def litellm_deepseek_zero_cached(t: Truth) -> dict[str, Any]:
    # LiteLLM sometimes reports cached_tokens 0 next to the provider's own hit count
    return {"prompt_tokens": t.uncached + t.read, "completion_tokens": t.output,
            "prompt_tokens_details": {"cached_tokens": 0}, "prompt_cache_hit_tokens": t.read,
            "prompt_cache_miss_tokens": t.uncached}


# shape -> (renderer, strategy of truths it can express, whether it reports reasoning tokens)
SHAPES: dict[str, tuple[Callable[[Truth], dict[str, Any]], Any, bool]] = {
    "openai_chat": (openai_chat, no_writes, True),
    "openai_responses": (openai_responses, no_writes, True),
    "anthropic": (anthropic, no_reasoning, False),
    "anthropic_by_ttl": (anthropic_by_ttl, no_reasoning, False),
    "deepseek": (deepseek, no_writes, True),
    "deepseek_hit_miss_only": (deepseek_hit_miss_only, no_writes, False),
    "gemini_sdk": (gemini_sdk, no_writes, True),
    "gemini_rest": (gemini_rest, no_writes, True),
    "litellm_anthropic_inclusive": (litellm_anthropic_inclusive, no_reasoning, False),
    "litellm_deepseek_zero_cached": (litellm_deepseek_zero_cached, no_writes, False),
}


@st.composite
def shaped(draw):
    name = draw(st.sampled_from(sorted(SHAPES)))
    render, strategy, has_reasoning = SHAPES[name]
    truth = draw(strategy)
    return name, truth, render(truth), has_reasoning


@given(shaped())
def test_every_shape_normalises_to_the_inclusive_truth(case):
    name, truth, raw, has_reasoning = case
    # WHEN a provider's usage is normalised
    u = normalize_usage(raw)
    # THEN input counts every prompt token, cached or not, and the parts fit inside it
    assert u.input_tokens == truth.input, name
    assert u.cache_read_tokens == truth.read, name
    assert u.input_tokens >= (u.cache_read_tokens or 0) + (u.cache_write_tokens or 0)
    if truth.write or name.startswith("anthropic") or name == "litellm_anthropic_inclusive":
        assert u.cache_write_tokens == truth.write, name
    # AND output includes reasoning; input + output is the provider's whole request
    assert u.output_tokens == truth.output, name
    assert u.input_tokens + u.output_tokens == truth.input + truth.output
    if has_reasoning:
        assert u.reasoning_tokens == truth.reasoning, name


@given(no_reasoning)
def test_anthropic_exclusive_input_becomes_inclusive(t):
    u = normalize_usage(anthropic(t), "anthropic")
    assert u.input_tokens == t.uncached + t.read + t.write
    assert (u.cache_read_tokens, u.cache_write_tokens) == (t.read, t.write)


@given(no_reasoning)
def test_litellm_prompt_tokens_without_cache_writes_get_them_added_when_provably_missing(t):
    # GIVEN LiteLLM versions whose Anthropic prompt_tokens adds only cache reads
    raw = {"prompt_tokens": t.uncached + t.read, "completion_tokens": t.output,
           "prompt_tokens_details": {"cached_tokens": t.read},
           "cache_creation_input_tokens": t.write, "cache_read_input_tokens": t.read}
    u = normalize_usage(raw)
    # THEN the parts always fit inside the input; the count is exact whenever the writes are
    # provably missing (prompt_tokens smaller than reads + writes)
    assert u.input_tokens >= u.cache_read_tokens + u.cache_write_tokens
    if t.uncached < t.write:
        assert u.input_tokens == t.input


def test_deepseek_hit_plus_miss_is_the_prompt():
    u = normalize_usage({"prompt_tokens": 7911, "completion_tokens": 59, "prompt_cache_hit_tokens": 7872,
                         "prompt_cache_miss_tokens": 39}, "deepseek")
    assert u == Usage(input_tokens=7911, cache_read_tokens=7872, output_tokens=59)


def test_gemini_thoughts_count_as_output_and_reasoning():
    u = normalize_usage({"promptTokenCount": 5000, "cachedContentTokenCount": 4096,
                         "candidatesTokenCount": 120, "thoughtsTokenCount": 800,
                         "toolUsePromptTokenCount": 30})
    assert u == Usage(input_tokens=5030, cache_read_tokens=4096, output_tokens=920, reasoning_tokens=800)


def test_negative_or_malformed_counts_are_unknown_not_trusted():
    u = normalize_usage({"prompt_tokens": -5, "completion_tokens": "12", "prompt_tokens_details": None})
    assert u.input_tokens is None and u.output_tokens == 12


def test_sdk_objects_are_dumped():
    class Details:
        def model_dump(self) -> dict[str, Any]:
            return {"prompt_tokens": 2000, "completion_tokens": 5,
                    "prompt_tokens_details": {"cached_tokens": 1920}}

    assert normalize_usage(Details()) == Usage(input_tokens=2000, cache_read_tokens=1920, output_tokens=5)


def test_already_normalised_usage_round_trips():
    u = Usage(input_tokens=10, cache_read_tokens=4, cache_write_tokens=2, output_tokens=3)
    assert normalize_usage(u.to_dict()) == u


OPENHANDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "openhands"


@pytest.mark.skipif(not OPENHANDS.is_dir(), reason="../shared/data/openhands is not present")
def test_real_litellm_usage_from_openhands():
    # GIVEN every LiteLLM usage block recorded by OpenHands (Anthropic and DeepSeek behind a proxy)
    seen = 0
    for path in sorted(OPENHANDS.glob("run*/*/*.json")):
        raw = json.loads(path.read_text())["response"].get("usage")
        if raw is None:
            continue
        seen += 1
        u = normalize_usage(raw)
        # THEN input is prompt_tokens, the cached part is the provider's own hit count, and
        # input + output is LiteLLM's total
        assert u.input_tokens == raw["prompt_tokens"]
        assert u.cache_read_tokens == (raw.get("prompt_cache_hit_tokens") or raw.get(
            "cache_read_input_tokens") or 0)
        assert u.input_tokens + u.output_tokens == raw["total_tokens"]
        assert u.input_tokens >= (u.cache_read_tokens or 0) + (u.cache_write_tokens or 0)
    assert seen == 10
