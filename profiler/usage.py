"""Normalise provider-reported token usage to one inclusive schema (`profiler.trace.Usage`).

Providers disagree on what "input tokens" means:

- OpenAI chat completions (and LiteLLM, which reshapes every provider to it): `prompt_tokens` *includes*
  `prompt_tokens_details.cached_tokens`; `completion_tokens` includes reasoning tokens.
- OpenAI Responses API: `input_tokens` includes `input_tokens_details.cached_tokens`.
- Anthropic: `input_tokens` *excludes* `cache_read_input_tokens` and `cache_creation_input_tokens`,
  which are reported beside it.
- DeepSeek: `prompt_tokens` = `prompt_cache_hit_tokens` + `prompt_cache_miss_tokens`.
- LiteLLM reshaping Anthropic: `prompt_tokens` includes cache reads and, depending on the LiteLLM
  version, cache writes; a count too small to include them gets them added.
- Gemini: `prompt_token_count` includes `cached_content_token_count`; `candidates_token_count`
  excludes `thoughts_token_count` (camelCase in REST responses).

The result always has `input_tokens` = every prompt token (cached or not), `cache_read_tokens` <=
`input_tokens`, `output_tokens` including reasoning. This is done once, on the way in.
"""

from __future__ import annotations

from typing import Any, Mapping

from profiler.trace.model import Usage


def _int(value: Any) -> int | None:
    """A token count, or None for anything that is not a non-negative whole number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer():
        return int(value) if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _get(d: Mapping[str, Any] | None, *keys: str) -> int | None:
    """First integer found under any of `keys` (dotted paths allowed)."""
    if not d:
        return None
    for key in keys:
        node: Any = d
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        value = _int(node)
        if value is not None:
            return value
    return None


def _as_mapping(raw: Any) -> Mapping[str, Any] | None:
    """Accept dicts, and SDK objects (pydantic models) by dumping them."""
    if raw is None or isinstance(raw, Mapping):
        return raw
    for method in ("model_dump", "to_dict", "dict"):
        fn = getattr(raw, method, None)
        if callable(fn):
            try:
                out = fn()
            except TypeError:
                continue
            if isinstance(out, Mapping):
                return out
    if hasattr(raw, "__dict__"):
        return {k: v for k, v in vars(raw).items() if not k.startswith("_")}
    return None


def normalize_usage(raw: Any, provider: str | None = None) -> Usage:
    """Turn one provider usage object (dict or SDK object) into a normalised `Usage`."""
    d = _as_mapping(raw)
    if not d:
        return Usage()
    provider = (provider or "").lower()

    # Already normalised (a ctxprof trace, or an importer that did the work).
    if "cache_read_tokens" in d or "cache_write_tokens" in d:
        return Usage(**{k: _int(d.get(k)) for k in Usage.__dataclass_fields__})

    # Gemini (snake_case from the Python SDK, camelCase from REST).
    prompt = _get(d, "prompt_token_count", "promptTokenCount")
    if prompt is not None or "candidates_token_count" in d or "candidatesTokenCount" in d:
        candidates = _get(d, "candidates_token_count", "candidatesTokenCount")
        thoughts = _get(d, "thoughts_token_count", "thoughtsTokenCount")
        output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
        # Tokens of tool-use prompts (code execution, search) are billed as input beside the prompt.
        tool_use = _get(d, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
        if prompt is not None and tool_use:
            prompt += tool_use
        return Usage(input_tokens=prompt,
                     cache_read_tokens=_get(d, "cached_content_token_count", "cachedContentTokenCount"),
                     output_tokens=output, reasoning_tokens=thoughts)

    cache_write = _get(d, "cache_creation_input_tokens")
    if cache_write is None:
        # Anthropic's newer breakdown by TTL.
        c5 = _get(d, "cache_creation.ephemeral_5m_input_tokens")
        c1 = _get(d, "cache_creation.ephemeral_1h_input_tokens")
        if c5 is not None or c1 is not None:
            cache_write = (c5 or 0) + (c1 or 0)

    # OpenAI chat completions, LiteLLM, DeepSeek: prompt_tokens is inclusive.
    hit, miss = _get(d, "prompt_cache_hit_tokens"), _get(d, "prompt_cache_miss_tokens")
    prompt_tokens = _get(d, "prompt_tokens")
    if prompt_tokens is None and hit is not None and miss is not None:
        prompt_tokens = hit + miss  # DeepSeek: every prompt token is a cache hit or a miss
    if prompt_tokens is not None or "prompt_tokens" in d:
        cache_read = _get(d, "prompt_tokens_details.cached_tokens", "prompt_cache_hit_tokens",
                          "cache_read_input_tokens")
        if cache_read == 0:
            # LiteLLM fills cached_tokens with 0 while the provider-specific field has the real figure.
            cache_read = max(cache_read, _get(d, "prompt_cache_hit_tokens", "cache_read_input_tokens") or 0)
        if cache_write is None:
            cache_write = _get(d, "prompt_tokens_details.cache_creation_tokens")
        input_tokens = prompt_tokens
        # LiteLLM versions disagree on whether an Anthropic prompt_tokens includes cache writes (some
        # add only cache reads; its Anthropic-messages logging path adds neither). When the count is
        # too small to include them, add what is missing; when it is large enough it is taken as
        # inclusive (the OpenAI convention), which is the case a prompt_tokens alone cannot disprove.
        read, write = cache_read or 0, cache_write or 0
        if input_tokens is not None and input_tokens < read:
            input_tokens += read + write
        elif input_tokens is not None and input_tokens < read + write:
            input_tokens += write
        return Usage(input_tokens=input_tokens, cache_read_tokens=cache_read,
                     cache_write_tokens=cache_write, output_tokens=_get(d, "completion_tokens"),
                     reasoning_tokens=_get(d, "completion_tokens_details.reasoning_tokens"))

    anthropic_shaped = (provider == "anthropic" or "cache_read_input_tokens" in d
                        or "cache_creation_input_tokens" in d or "cache_creation" in d)
    if anthropic_shaped:
        uncached = _get(d, "input_tokens")
        cache_read = _get(d, "cache_read_input_tokens")
        total = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
        return Usage(input_tokens=total, cache_read_tokens=cache_read, cache_write_tokens=cache_write,
                     output_tokens=_get(d, "output_tokens"))

    # OpenAI Responses API (input_tokens inclusive of cached tokens).
    return Usage(input_tokens=_get(d, "input_tokens"),
                 cache_read_tokens=_get(d, "input_tokens_details.cached_tokens"),
                 output_tokens=_get(d, "output_tokens"),
                 reasoning_tokens=_get(d, "output_tokens_details.reasoning_tokens"))
