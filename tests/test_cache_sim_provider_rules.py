"""The provider cache-rule tables: every row sourced and dated, a catch-all per provider, first match
wins, and the simulator's lookups read them."""

from __future__ import annotations

import re

from profiler.cache_sim.provider_rules import RULES, rule_for, rules_for
from profiler.cache_sim.providers import anthropic_min_tokens, gemini_chunk_tokens, gemini_min_tokens


def test_every_row_names_a_source_and_the_date_it_was_read():
    for rule in RULES:
        assert rule.source and re.fullmatch(r"\d{4}-\d{2}-\d{2}", rule.checked), rule
        assert rule.basis in ("documented", "observed", "assumed")
        assert rule.min_tokens >= 1 and rule.chunk_tokens >= 1


def test_each_provider_ends_with_a_catch_all_and_patterns_are_lower_case():
    for provider in ("openai", "anthropic", "gemini", "deepseek"):
        rows = rules_for(provider)
        assert rows[-1].model_pattern == ""
        assert all(r.model_pattern == r.model_pattern.lower() for r in rows)


def test_first_match_wins_and_the_simulator_lookups_agree():
    assert rule_for("gemini", "google/gemini-3-pro-preview").chunk_tokens == 2048
    assert gemini_chunk_tokens("gemini-2.5-flash") == 1
    assert gemini_min_tokens("gemini-2.5-pro") == rule_for("gemini", "gemini-2.5-pro").min_tokens == 2048
    assert anthropic_min_tokens("claude-opus-4-5-20251101") == 4096
    assert anthropic_min_tokens("claude-sonnet-4-5-20250929") == 1024
    assert anthropic_min_tokens("claude-3-5-haiku-latest") == 2048
