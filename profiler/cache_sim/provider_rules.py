"""Provider prompt-cache rules as data: per model, the minimum cacheable prompt, the chunk (increment)
a hit is counted in, the time an unused entry lives, and where each figure comes from.

Contract: `RULES` is a tuple of `CacheRule` rows, first match wins on the model name within a
provider (`rule_for(provider, model)`); the simulator (`profiler.cache_sim.providers`) reads its
tables from here and holds the mechanism only. Every row names its source and the date the source was
read; rows derived from recorded traffic say so in `basis`. docs/costs-and-caches.md explains the
rules and the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENAI_GUIDE = "https://platform.openai.com/docs/guides/prompt-caching"
ANTHROPIC_GUIDE = "https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching"
GEMINI_GUIDE = "https://ai.google.dev/gemini-api/docs/caching"
VERTEX_GUIDE = "https://cloud.google.com/vertex-ai/generative-ai/docs/context-cache/context-cache-overview"
DEEPSEEK_GUIDE = "https://api-docs.deepseek.com/guides/kv_cache"
GEMINI_3_PRO_TRACES = "../shared/data/mini-swe-agent-gemini (222 cached calls of Gemini 3 Pro, Nov 2025)"


@dataclass(frozen=True)
class CacheRule:
    """One provider/model cache rule.

    `model_pattern` is a lower-case substring of the model name ("" matches every model of the
    provider). `min_tokens`: shorter prompts are neither cached nor served from cache. `chunk_tokens`:
    a hit counts whole chunks (1: token granularity). `ttl_s`: how long an unused entry lives (None:
    the provider's breakpoint decides, as for Anthropic)."""

    provider: str
    model_pattern: str
    min_tokens: int
    chunk_tokens: int
    ttl_s: float | None
    source: str
    checked: str  # date the source was read (YYYY-MM-DD)
    basis: str = "documented"  # "documented", "observed" (recorded traffic) or "assumed"


RULES: tuple[CacheRule, ...] = (
    # OpenAI: automatic caching from 1,024 tokens, hits in 128-token increments; entries stay 5-10
    # minutes without use (up to an hour off-peak); the simulator's default is the lower bound.
    CacheRule("openai", "", 1024, 128, 300.0, OPENAI_GUIDE, "2026-12-01"),
    # Anthropic: minimum cacheable length per model (the breakpoint's prefix must be at least this
    # long); TTL from the cache_control mark (5 min default, "1h").
    CacheRule("anthropic", "opus-4-6", 4096, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "opus-4.6", 4096, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "opus-4-5", 4096, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "opus-4.5", 4096, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "haiku-4-5", 4096, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "haiku-4.5", 4096, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "sonnet-4-6", 2048, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "sonnet-4.6", 2048, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "3-5-haiku", 2048, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "haiku-3-5", 2048, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "3-haiku", 2048, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    CacheRule("anthropic", "haiku-3", 2048, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    # Sonnet 4.5 / 4 / 3.7, Opus 4.1 / 4 and the rest.
    CacheRule("anthropic", "", 1024, 1, None, ANTHROPIC_GUIDE, "2026-12-01"),
    # Gemini implicit caching. Google publishes minimums only (and has changed them between page
    # versions); chunking and TTL are not published. Gemini 3 Pro's recorded usage shows cached
    # counts in chunks of about 2,048 tokens from the first chunk on (see docs/costs-and-caches.md).
    CacheRule("gemini", "gemini-3-pro", 2048, 2048, 300.0, GEMINI_3_PRO_TRACES, "2026-12-01", "observed"),
    CacheRule("gemini", "gemini-2.5", 2048, 1, 300.0, GEMINI_GUIDE, "2026-12-01"),
    CacheRule("gemini", "gemini-2.", 2048, 1, 300.0, GEMINI_GUIDE, "2026-12-01", "assumed"),
    # Gemini 3.x Flash, 3.1 Pro and later: 4,096 in the 2026-10-13 page.
    CacheRule("gemini", "gemini-", 4096, 1, 300.0, GEMINI_GUIDE, "2026-12-01"),
    CacheRule("gemini", "", 4096, 1, 300.0, GEMINI_GUIDE, "2026-12-01", "assumed"),
    # DeepSeek: context caching on disk. The older guide counted hits in 64-token storage units; the
    # current one describes prefix units persisted at request boundaries, detected common prefixes
    # and fixed intervals, without sizes. Unused entries are cleared "within a few hours to a few
    # days"; the simulator assumes one hour.
    CacheRule("deepseek", "", 64, 64, 3600.0, DEEPSEEK_GUIDE, "2026-12-01"),
)

# What the simulator did before the Gemini rows above (kept for before/after comparisons).
GEMINI_LEGACY = CacheRule("gemini", "", 4096, 1, 300.0, GEMINI_GUIDE, "2026-10-13")


def rules_for(provider: str) -> tuple[CacheRule, ...]:
    return tuple(r for r in RULES if r.provider == provider)


def rule_for(provider: str, model: str | None) -> CacheRule:
    """The first rule of `provider` whose pattern is in the model name (lower-cased)."""
    name = (model or "").lower()
    for rule in RULES:
        if rule.provider == provider and rule.model_pattern in name:
            return rule
    raise KeyError(f"no cache rule for provider {provider!r}")


def min_tokens_table(provider: str) -> tuple[tuple[str, int], ...]:
    """(pattern, min_tokens) rows of a provider, the patterned ones (the catch-all is the default)."""
    return tuple((r.model_pattern, r.min_tokens) for r in rules_for(provider) if r.model_pattern)


__all__ = ["CacheRule", "GEMINI_LEGACY", "RULES", "min_tokens_table", "rule_for", "rules_for"]
