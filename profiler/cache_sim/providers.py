"""Provider prompt-cache simulators: what OpenAI, Anthropic, Gemini and DeepSeek would have served from
their caches for the requests of a trace, and what that would cost.

Contract: `simulate_provider(traces, provider, *, prices=None, tokenizer=None, ttl_s=None, **options)`
replays every LLM step of `traces` in start-time order (ties: file order) against one simulated cache
shared by all of them (a provider cache is shared by every request of one organisation / key), and
returns a `ProviderSimulation`: per step the predicted cached (read) and cache-write tokens, the
provider-reported cached tokens where the trace has them, the predicted cost and the no-cache cost.

The rules (tables in `profiler.cache_sim.provider_rules`; sources in docs/costs-and-caches.md):

- openai: automatic prefix caching for prompts of at least 1,024 tokens; a hit covers the longest
  cached prefix in 128-token increments (cached = largest multiple of 128 <= matched prefix; 0 below
  1,024); an entry expires after `ttl_s` (default 300 s) without use, and every use refreshes it.
  No write premium; cached tokens at genai-prices' cache-read price.
- anthropic: explicit `cache_control` breakpoints read from the prompt (content blocks, messages,
  tools); more than 4 make the API refuse the request (HTTP 400), so such a step is simulated as
  uncached and reported in the warnings. A breakpoint caches the prefix up to it, if at least the
  model's minimum cacheable length (table `ANTHROPIC_MIN_TOKENS`). A request reads the longest
  cached prefix ending at a breakpoint or at one of the 20 block boundaries before it, and writes
  every longer breakpoint prefix. TTL 5 minutes (or 1 hour with `"ttl": "1h"`), refreshed on each
  hit. Writes cost 1.25x (5 min) or 2x (1 h) the input price, reads 0.1x (genai-prices' figures where
  it has them). Option `auto_breakpoints=True` places one breakpoint at the end of the tools and
  system prompt and one at the end of the prompt, for traces recorded without marks.
- gemini: implicit caching, prefix-based, minimum and chunk per model (`GEMINI_MIN_TOKENS`,
  `gemini_chunk_tokens`: 2,048-token chunks for Gemini 3 Pro as its recorded usage shows, token
  granularity where nothing is known), `ttl_s` default 300 s of inactivity (not published), cached
  tokens at genai-prices' cache-read price.
- deepseek: context caching on disk in 64-token units, no other minimum, `ttl_s` default 3,600 s
  (DeepSeek says unused entries are cleared "within a few hours to a few days").

Units: every token figure is in the provider's own tokens where the trace reports an input count
(`profiler.units`). For a model whose tokenizer ctxprof only stands in for (Claude, Gemini...), the
cache matches prefixes of ctxprof's tokens at a fine grain (`FINE_GRAIN_TOKENS`), the match is scaled
by the step's calibration factor (reported input / counted prompt), and the minimum and the chunk
rounding are applied to that provider-unit figure; `input_tokens` is the reported count. Where no
input count is reported the figures stay in ctxprof's tokens (`unit="ctxprof"`).

What-if: a step whose own provider is not the simulated one (a Gemini rule on a Claude trace) is
marked `what_if`; the simulation's `what_if_steps` counts them and a warning says the result is a
hypothetical, not a saving the trace could have had with its own provider.

Token sequences come from `profiler.tokens.StepTokenizer`, as in the analyzer. Prefixes are identified
by the one hash scheme and prefix index of `profiler.prefix`, so each step costs O(its tokens) and the
whole simulation is linear in total tokens. Entries are keyed by model: different models never share
a cache. Steps without a start time take the previous step's time (nothing expires between them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from profiler.cache_sim.provider_rules import min_tokens_table, rule_for
from profiler.errors import ConfigError
from profiler.pricing import ModelPrice, PriceTable
from profiler.prefix import PrefixIndex, block_hashes, namespace_salt, prefix_hashes
from profiler.chat import render_content, render_tools
from profiler.tokens import StepTokenizer
from profiler.trace.model import Step, Trace, ordered_llm_steps
from profiler.units import (STAND_IN_RATIO_BOUNDS, UNIT_CTXPROF, UNIT_PROVIDER, counts_are_providers,
                            rendering_is_approximate)

SIMULATION_SCHEMA = "ctxprof.provider-simulation/2"
# Grain of prefix matching in ctxprof's tokens where they stand in for the provider's: the match is
# scaled to provider units before the provider's chunk is applied, so this only bounds the rounding.
FINE_GRAIN_TOKENS = 16
# Provider names a trace may carry, as the simulator's names.
_PROVIDER_ALIASES = {"google": "gemini", "gemini": "gemini", "vertex_ai": "gemini", "vertex": "gemini",
                     "openai": "openai", "azure": "openai", "anthropic": "anthropic",
                     "deepseek": "deepseek"}

ANTHROPIC_MAX_BREAKPOINTS = 4
ANTHROPIC_LOOKBACK_BLOCKS = 20
ANTHROPIC_TTL_S = {"5m": 300.0, "1h": 3600.0}
# Minimum cacheable prompt length of Claude models (rows in `provider_rules`), first match wins on the
# model name.
ANTHROPIC_MIN_TOKENS: tuple[tuple[str, int], ...] = min_tokens_table("anthropic")
ANTHROPIC_DEFAULT_MIN_TOKENS = rule_for("anthropic", None).min_tokens
# Write premium and read discount relative to the input price, used where the price table has no
# cache price of its own.
ANTHROPIC_WRITE_5M_FACTOR = 1.25
ANTHROPIC_WRITE_1H_FACTOR = 2.0
ANTHROPIC_READ_FACTOR = 0.1

# Gemini implicit caching minimum and chunk per model (rows and evidence in `provider_rules`).
GEMINI_MIN_TOKENS: tuple[tuple[str, int], ...] = min_tokens_table("gemini")
GEMINI_DEFAULT_MIN_TOKENS = rule_for("gemini", None).min_tokens


@dataclass(frozen=True)
class _AutoRule:
    """A provider whose cache matches any earlier prefix automatically."""

    granularity: int  # tokens per cache unit: hits are whole units
    min_tokens: int  # prompts shorter than this are neither cached nor served from cache
    ttl_s: float


def _auto_rule(provider: str, model: str | None = None) -> _AutoRule:
    row = rule_for(provider, model)
    assert row.ttl_s is not None
    return _AutoRule(granularity=row.chunk_tokens, min_tokens=row.min_tokens, ttl_s=row.ttl_s)


@dataclass(frozen=True)
class ProviderStepResult:
    run_id: str
    step_id: str
    model: str | None
    start_unix_s: float | None
    input_tokens: int
    predicted_cached_tokens: int
    predicted_cache_write_tokens: int
    reported_cached_tokens: int | None  # None: the trace has no reported figure
    cost_usd: float | None  # None: no price known for the model
    no_cache_cost_usd: float | None
    output_tokens: int = 0
    trace: str | None = None
    # `input_tokens`, the predicted and reported figures are in `unit` ("provider" or "ctxprof");
    # `ctxprof_input_tokens` is ctxprof's own count and `calibration_factor` the scale between them.
    unit: str = "provider"
    calibration_factor: float | None = None
    ctxprof_input_tokens: int | None = None
    # The step's own provider is not the simulated one: the prediction is a hypothetical.
    what_if: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProviderTotals:
    steps: int
    input_tokens: int
    output_tokens: int
    predicted_cached_tokens: int
    predicted_cache_write_tokens: int
    predicted_hit_rate: float  # predicted_cached_tokens / input_tokens
    reported_cached_tokens: int | None  # over the steps that reported one; None if none did
    reported_steps: int
    cost_usd: float | None  # over the steps with a known price
    no_cache_cost_usd: float | None
    saving_usd: float | None  # no_cache_cost_usd - cost_usd
    unit: str = "provider"  # "provider", "ctxprof" or "mixed"
    what_if_steps: int = 0  # steps of another provider's model (see the module docstring)

    @classmethod
    def of(cls, steps: Sequence[ProviderStepResult]) -> "ProviderTotals":
        inp = sum(s.input_tokens for s in steps)
        cached = sum(s.predicted_cached_tokens for s in steps)
        reported = [s.reported_cached_tokens for s in steps if s.reported_cached_tokens is not None]
        priced = [s for s in steps if s.cost_usd is not None and s.no_cache_cost_usd is not None]
        cost = sum(s.cost_usd for s in priced) if priced else None  # type: ignore[misc]
        no_cache = sum(s.no_cache_cost_usd for s in priced) if priced else None  # type: ignore[misc]
        units = {s.unit for s in steps}
        return cls(
            steps=len(steps), input_tokens=inp, output_tokens=sum(s.output_tokens for s in steps),
            predicted_cached_tokens=cached,
            predicted_cache_write_tokens=sum(s.predicted_cache_write_tokens for s in steps),
            predicted_hit_rate=cached / inp if inp else 0.0,
            reported_cached_tokens=sum(reported) if reported else None, reported_steps=len(reported),
            cost_usd=cost, no_cache_cost_usd=no_cache,
            saving_usd=None if cost is None or no_cache is None else no_cache - cost,
            unit=units.pop() if len(units) == 1 else ("mixed" if units else "provider"),
            what_if_steps=sum(1 for s in steps if s.what_if),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProviderSimulation:
    provider: str
    options: Mapping[str, Any]
    steps: tuple[ProviderStepResult, ...]
    totals: ProviderTotals
    warnings: tuple[str, ...] = ()
    traces: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SIMULATION_SCHEMA,
            "provider": self.provider,
            "options": dict(self.options),
            "traces": list(self.traces),
            "steps": [s.to_dict() for s in self.steps],
            "totals": self.totals.to_dict(),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "simulation") -> "ProviderSimulation":
        """The inverse of `to_dict`; a malformed field raises `ProfilerError` naming it."""
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, where)
        return record_from_dict(cls, d, where, nested={
            "options": dict(expect_mapping(d.get("options", {}), f"{where}.options")),
            "steps": tuple(record_from_dict(ProviderStepResult, s, f"{where}.steps[{i}]")
                           for i, s in enumerate(expect_list(d, "steps", where))),
            "totals": record_from_dict(ProviderTotals, d.get("totals"), f"{where}.totals"),
            "warnings": tuple(str(w) for w in expect_list(d, "warnings", where)),
            "traces": tuple(str(t) for t in expect_list(d, "traces", where)),
        })


# -- helpers shared by the rules ------------------------------------------------------------------

def _table_min(table: Sequence[tuple[str, int]], model: str | None, default: int) -> int:
    name = (model or "").lower()
    for needle, value in table:
        if needle in name:
            return value
    return default


def anthropic_min_tokens(model: str | None) -> int:
    """Minimum cacheable prompt length of a Claude model (`ANTHROPIC_MIN_TOKENS`)."""
    return _table_min(ANTHROPIC_MIN_TOKENS, model, ANTHROPIC_DEFAULT_MIN_TOKENS)


def gemini_min_tokens(model: str | None) -> int:
    """Minimum prompt length for Gemini implicit caching (`GEMINI_MIN_TOKENS`)."""
    return _table_min(GEMINI_MIN_TOKENS, model, GEMINI_DEFAULT_MIN_TOKENS)


def gemini_chunk_tokens(model: str | None) -> int:
    """Tokens per chunk a Gemini implicit-cache hit is counted in (1 where none is known)."""
    return rule_for("gemini", model).chunk_tokens


def step_cache_provider(step: Step) -> str | None:
    """The provider cache a step was really served by (a `PROVIDERS` name), where the trace says."""
    from profiler.importers.common import guess_provider

    named = _PROVIDER_ALIASES.get((step.provider or "").lower())
    if named:
        return named
    guessed = guess_provider((step.model or "").rsplit("/", 1)[-1])
    return _PROVIDER_ALIASES.get(guessed or "")


def _provider_scale(n: int, reported_input: int | None, exact: bool) -> tuple[float, int | None, str]:
    """(scale from sequence tokens to provider tokens, the prompt's provider-unit length where it
    differs from `n`, the unit) for a prompt of `n` tokens (`profiler.units` calibration). A reported
    count too far from the prompt for a tokenizer difference is not used (the analysis flags it)."""
    if exact or not n:
        return 1.0, None, UNIT_PROVIDER
    if reported_input is None or not STAND_IN_RATIO_BOUNDS[0] <= reported_input / n <= STAND_IN_RATIO_BOUNDS[1]:
        return 1.0, None, UNIT_CTXPROF
    return reported_input / n, reported_input, UNIT_PROVIDER


def _model_key(model: str | None) -> str:
    return (model or "").lower().rsplit("/", 1)[-1]


class _AutoPrefixCache:
    """Prefix entries every `granularity` tokens, each with its last-use time.

    Freshness is monotone along a prompt (using a prefix uses every shorter prefix too, so a shorter
    prefix is never staler than a longer one), so the longest fresh cached prefix is found by binary
    search; then the whole prompt is (re)stamped with the current time, O(tokens / granularity).
    """

    def __init__(self, rule: _AutoRule, match_grain: int | None = None) -> None:
        self.rule = rule
        # Grain of the prefix entries, in the sequence's tokens: the rule's chunk where the tokens are
        # the provider's, finer where they are scaled to provider units before the chunk is applied.
        self.grain = match_grain or rule.granularity
        self._last_use = PrefixIndex()  # prefix hash of each unit -> its last use time

    def request(self, prefix_hashes: np.ndarray, now: float, *, scale: float = 1.0,
                prompt_units: int | None = None) -> int:
        """Serve one prompt: return the cached tokens (in the units of `prompt_units`, the prompt's
        length in provider tokens; `scale` converts a matched length into them), then cache the
        prompt's own prefixes."""
        g = self.grain
        n = int(prefix_hashes.size)
        if (n if prompt_units is None else prompt_units) < self.rule.min_tokens:
            return 0
        units = block_hashes(prefix_hashes, g)  # hash of the first (k+1)*g tokens
        ttl = self.rule.ttl_s
        cached = self._last_use.match(units, accept=lambda t: now - t <= ttl) * g
        if g != self.rule.granularity or scale != 1.0:
            chunk = self.rule.granularity
            cached = min(int(cached * scale), prompt_units if prompt_units is not None else n)
            cached = (cached // chunk) * chunk
        if cached < self.rule.min_tokens:
            cached = 0
        for h in units:
            self._last_use.set(h, now)
        return cached


@dataclass(frozen=True)
class Breakpoint:
    """An Anthropic cache breakpoint: the prefix of `position` tokens, kept for `ttl_s`."""

    position: int
    ttl_s: float
    where: str  # e.g. "messages[0].content[1]"


def _ttl_of(mark: Any, default_ttl_s: float) -> float:
    if isinstance(mark, Mapping):
        ttl = mark.get("ttl")
        if isinstance(ttl, str) and ttl in ANTHROPIC_TTL_S:
            return ANTHROPIC_TTL_S[ttl]
    return default_ttl_s


def anthropic_breakpoints(step: Step, tokenizer: StepTokenizer, *, default_ttl_s: float = 300.0,
                          auto: bool = False) -> tuple[list[Breakpoint], list[int]]:
    """The `cache_control` breakpoints of a step's prompt (token positions), and the block boundaries
    the API looks back over. Marks may sit on tool definitions, on messages, or on content blocks of a
    message; a mark on a block that is not the last of its message or tool list ends at that block.

    With `auto=True` and no marks in the prompt, two breakpoints are placed: at the end of the tools and
    leading system messages (when there are any), and at the end of the prompt's last message.
    """
    blocks = tokenizer.prompt_blocks(step)
    boundaries = sorted({b.end for b in blocks})
    prompt = step.prompt
    marks: list[Breakpoint] = []
    by_message = {b.index: b for b in blocks if b.label == "message"}
    tools_block = next((b for b in blocks if b.label == "tools"), None)

    if prompt.tools and tools_block is not None:
        tools = list(prompt.tools)
        for k, tool in enumerate(tools):
            mark = tool.get("cache_control") if isinstance(tool, Mapping) else None
            if not mark:
                continue
            if k == len(tools) - 1:
                pos = tools_block.end
            else:
                head = tokenizer.encode_text(step, render_tools(tools[:k + 1]))
                pos = tools_block.body_start + int(head.size)
            marks.append(Breakpoint(pos, _ttl_of(mark, default_ttl_s), f"tools[{k}]"))
    for i, message in enumerate(prompt.messages or ()):
        block = by_message.get(i)
        if block is None:
            continue
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                mark = part.get("cache_control") if isinstance(part, Mapping) else None
                if not mark:
                    continue
                if j == len(content) - 1:
                    pos = block.end
                else:
                    text = render_content(content[:j + 1])
                    pos = block.body_start + int(tokenizer.encode_text(step, text).size)
                marks.append(Breakpoint(pos, _ttl_of(mark, default_ttl_s), f"messages[{i}].content[{j}]"))
        mark = message.get("cache_control")
        if mark:
            marks.append(Breakpoint(block.end, _ttl_of(mark, default_ttl_s), f"messages[{i}]"))

    if auto and not marks and blocks:
        head_end = None
        if tools_block is not None:
            head_end = tools_block.end
        for i, message in enumerate(prompt.messages or ()):
            if message.get("role") not in ("system", "developer"):
                break
            if i in by_message:
                head_end = by_message[i].end
        last_end = blocks[-1].end
        if head_end is not None and head_end < last_end:
            marks.append(Breakpoint(head_end, default_ttl_s, "auto: tools and system prompt"))
        marks.append(Breakpoint(last_end, default_ttl_s, "auto: last message"))
    marks.sort(key=lambda m: m.position)
    return marks, boundaries


class _AnthropicCache:
    """Entries at breakpoint prefixes: prefix hash -> (last use, ttl)."""

    def __init__(self, lookback_blocks: int) -> None:
        self.lookback = lookback_blocks
        # Not prefix-closed (entries sit at breakpoints only), so it is read key by key.
        self._entries = PrefixIndex()

    def request(self, prefix_hashes: np.ndarray, marks: list[Breakpoint], boundaries: list[int],
                min_tokens: int, now: float, scale: float = 1.0) -> tuple[int, list[tuple[int, float]]]:
        """Return (tokens read, [(tokens written, ttl_s), ...]) and update the cache. Positions are in
        the sequence's tokens; the minimum and the returned counts are in provider tokens (`scale`
        per sequence token)."""
        n = int(prefix_hashes.size)
        candidates: set[int] = set()
        bounds = np.asarray(boundaries, dtype=np.int64)
        for m in marks:
            candidates.add(m.position)
            upto = int(np.searchsorted(bounds, m.position, side="right"))
            candidates.update(bounds[max(0, upto - self.lookback):upto].tolist())
        read = 0
        for pos in sorted((p for p in candidates if 0 < p <= n), reverse=True):
            h = int(prefix_hashes[pos - 1])
            entry = self._entries.get(h)
            if entry is not None and now - entry[0] <= entry[1]:
                read = pos
                self._entries.set(h, (now, entry[1]))  # a hit refreshes the entry
                break
        writes: list[tuple[int, float]] = []
        written_upto = read
        for m in marks:
            if m.position > n or m.position * scale < min_tokens:
                continue
            h = int(prefix_hashes[m.position - 1])
            if m.position <= read:
                entry = self._entries.get(h)
                if entry is not None and now - entry[0] <= entry[1]:
                    self._entries.set(h, (now, entry[1]))
                continue
            writes.append((round((m.position - written_upto) * scale), m.ttl_s))
            written_upto = m.position
            self._entries.set(h, (now, m.ttl_s))
        return round(read * scale), writes


def _output_tokens(step: Step, tok: StepTokenizer) -> int:
    """Output length where usage has none: from the content, else the recorded count."""
    if step.prompt.level in ("text", "tokens"):
        n = int(tok.output_tokens(step).size)
        if n:
            return n
    return step.output.num_tokens or 0


def _price_cost(price: ModelPrice | None, *, uncached: int, read: int, writes: list[tuple[int, float]],
                output: int, provider: str) -> float | None:
    if price is None or price.input_usd_per_mtok is None or price.output_usd_per_mtok is None:
        return None
    p_in = price.input_usd_per_mtok
    if price.cache_read_usd_per_mtok is not None:
        p_read = price.cache_read_usd_per_mtok
    else:
        p_read = p_in * ANTHROPIC_READ_FACTOR if provider == "anthropic" else p_in
    total = uncached * p_in + read * p_read + output * price.output_usd_per_mtok
    for tokens, ttl_s in writes:
        if ttl_s >= ANTHROPIC_TTL_S["1h"]:
            p_write = (price.cache_write_1h_usd_per_mtok if price.cache_write_1h_usd_per_mtok is not None
                       else p_in * ANTHROPIC_WRITE_1H_FACTOR)
        else:
            p_write = (price.cache_write_usd_per_mtok if price.cache_write_usd_per_mtok is not None
                       else p_in * ANTHROPIC_WRITE_5M_FACTOR)
        total += tokens * p_write
    return total / 1_000_000.0


class ProviderCache:
    """One provider's prompt-cache rules, and the cache state they keep over one simulation: the
    strategy `simulate_provider` replays steps against. `request` serves one prompt (its prefix hashes
    in ctxprof's tokens, `scale` to the provider's units) and returns the tokens read from the cache
    and the (tokens written, ttl_s) of each write; `effective` are the rules in force (the result's
    options); `warnings()` what the rules refused."""

    option_names: frozenset[str] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name
        self.effective: dict[str, Any] = {}

    def request(self, step: Step, hashes: np.ndarray, model_key: str, tok: StepTokenizer, now: float,
                *, scale: float, prompt_units: int | None, exact: bool
                ) -> tuple[int, list[tuple[int, float]]]:
        raise NotImplementedError

    def warnings(self) -> list[str]:
        return []


class AutoPrefixProviderCache(ProviderCache):
    """Automatic prefix caching (openai, deepseek): one rule (`provider_rules`) for every model, or
    the `min_tokens` / `chunk_tokens` / `ttl_s` given."""

    option_names = frozenset({"min_tokens", "chunk_tokens"})

    def __init__(self, name: str, *, ttl_s: float | None = None, min_tokens: int | None = None,
                 chunk_tokens: int | None = None) -> None:
        super().__init__(name)
        base = _auto_rule(name)
        self.min_override = min_tokens
        self.chunk_override = chunk_tokens
        self.rule = _AutoRule(granularity=base.granularity if chunk_tokens is None else chunk_tokens,
                              min_tokens=base.min_tokens if min_tokens is None else min_tokens,
                              ttl_s=base.ttl_s if ttl_s is None else float(ttl_s))
        self._caches: dict[str, _AutoPrefixCache] = {}
        self.effective = {"ttl_s": self.rule.ttl_s, "granularity_tokens": self.rule.granularity,
                          "min_tokens": self.rule.min_tokens}

    def model_rule(self, model: str | None) -> _AutoRule:
        return self.rule

    def request(self, step: Step, hashes: np.ndarray, model_key: str, tok: StepTokenizer, now: float,
                *, scale: float, prompt_units: int | None, exact: bool
                ) -> tuple[int, list[tuple[int, float]]]:
        cache = self._caches.get(model_key)
        if cache is None:
            rule = self.model_rule(step.model)
            # Where ctxprof's tokens stand in for the provider's, match at a fine grain and round to
            # the provider's chunk after scaling (see the module docstring).
            cache = self._caches[model_key] = _AutoPrefixCache(
                rule, None if exact else min(FINE_GRAIN_TOKENS, rule.granularity))
        return cache.request(hashes, now, scale=scale, prompt_units=prompt_units), []


class GeminiProviderCache(AutoPrefixProviderCache):
    """Gemini implicit caching: as the automatic prefix caches, with the minimum and chunk of each
    model (`GEMINI_MIN_TOKENS`, `gemini_chunk_tokens`) unless given."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.effective["min_tokens"] = self.min_override  # None: the per-model table applies

    def model_rule(self, model: str | None) -> _AutoRule:
        rule = self.rule
        if self.min_override is None:
            rule = replace(rule, min_tokens=gemini_min_tokens(model))
        if self.chunk_override is None:
            rule = replace(rule, granularity=gemini_chunk_tokens(model))
        return rule


class AnthropicProviderCache(ProviderCache):
    """Explicit `cache_control` breakpoints (see the module docstring); a step with more marks than
    the API accepts is served uncached and reported."""

    option_names = frozenset({"min_tokens", "auto_breakpoints", "max_breakpoints", "lookback_blocks"})

    def __init__(self, name: str, *, ttl_s: float | None = None, min_tokens: int | None = None,
                 auto_breakpoints: bool = False, max_breakpoints: int = ANTHROPIC_MAX_BREAKPOINTS,
                 lookback_blocks: int = ANTHROPIC_LOOKBACK_BLOCKS) -> None:
        super().__init__(name)
        self.default_ttl = ttl_s if ttl_s is not None else ANTHROPIC_TTL_S["5m"]
        self.auto = bool(auto_breakpoints)
        self.max_marks = int(max_breakpoints)
        self.lookback = int(lookback_blocks)
        self.min_override = min_tokens
        self._caches: dict[str, _AnthropicCache] = {}
        self._refused: list[str] = []
        self.effective = {"ttl_s": self.default_ttl, "auto_breakpoints": self.auto,
                          "max_breakpoints": self.max_marks, "lookback_blocks": self.lookback,
                          "min_tokens": min_tokens}

    def request(self, step: Step, hashes: np.ndarray, model_key: str, tok: StepTokenizer, now: float,
                *, scale: float, prompt_units: int | None, exact: bool
                ) -> tuple[int, list[tuple[int, float]]]:
        min_tokens = self.min_override if self.min_override is not None else anthropic_min_tokens(step.model)
        marks, boundaries = anthropic_breakpoints(step, tok, default_ttl_s=self.default_ttl, auto=self.auto)
        if len(marks) > self.max_marks:
            self._refused.append(f"{step.run_id}/{step.step_id} ({len(marks)} marks)")
            return 0, []
        cache = self._caches.setdefault(model_key, _AnthropicCache(self.lookback))
        return cache.request(hashes, marks, boundaries, min_tokens, now, scale)

    def warnings(self) -> list[str]:
        if not self._refused:
            return []
        return [f"{len(self._refused)} step(s) have more than {self.max_marks} cache_control marks, "
                f"which the Anthropic API refuses (HTTP 400): simulated as uncached (e.g. "
                f"{self._refused[0]})"]


# One strategy per provider cache.
PROVIDER_CACHES: dict[str, type[ProviderCache]] = {
    "openai": AutoPrefixProviderCache,
    "anthropic": AnthropicProviderCache,
    "gemini": GeminiProviderCache,
    "deepseek": AutoPrefixProviderCache,
}
PROVIDERS = tuple(PROVIDER_CACHES)


def provider_cache(provider: str, *, ttl_s: float | None = None, **options: Any) -> ProviderCache:
    """The cache strategy of `provider` with `options` checked (a `ConfigError` names what is wrong)."""
    provider = provider.lower()
    if provider not in PROVIDER_CACHES:
        raise ConfigError(f"unknown provider cache {provider!r}; use one of {', '.join(PROVIDERS)}")
    cls = PROVIDER_CACHES[provider]
    unknown = set(options) - cls.option_names
    if unknown:
        raise ConfigError(f"option(s) {', '.join(sorted(unknown))} do not apply to the {provider} "
                          f"cache; it takes {', '.join(sorted(cls.option_names))}")
    if ttl_s is not None and (not math.isfinite(ttl_s) or ttl_s <= 0):
        raise ConfigError(f"--ttl must be a positive number of seconds, got {ttl_s}")
    for name in ("min_tokens", "chunk_tokens"):
        value = options.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return cls(provider, ttl_s=ttl_s, **options)


def simulate_provider(traces: Trace | Iterable[Trace], provider: str, *, prices: PriceTable | None = None,
                      tokenizer: StepTokenizer | None = None, ttl_s: float | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      **options: Any) -> ProviderSimulation:
    """Replay `traces` against one provider's prompt cache (rules in the module docstring)."""
    cache = provider_cache(provider, ttl_s=ttl_s, **options)
    provider = cache.name
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    tok = tokenizer or StepTokenizer()
    table = prices if prices is not None else PriceTable.default()

    results: list[ProviderStepResult] = []
    what_if: list[str] = []
    no_content: list[str] = []
    unpriced: dict[str, int] = {}
    last_time = 0.0
    for ti, step in ordered_llm_steps(trace_list):
        now = step.start_unix_s if step.start_unix_s is not None else last_time
        last_time = now
        reported = step.usage.cache_read_tokens
        output = step.usage.output_tokens if step.usage.output_tokens is not None else (
            _output_tokens(step, tok))
        if step.prompt.level not in ("text", "tokens"):
            no_content.append(f"{step.run_id}/{step.step_id}")
            continue
        tokens = tok.prompt_tokens(step)
        n = int(tokens.size)
        exact = counts_are_providers(step.prompt.level, tok.namespace(step), step.model,
                                     rendering_is_approximate(step))
        scale, prompt_units, unit = _provider_scale(n, step.usage.input_tokens, exact)
        own = step_cache_provider(step)
        if own is not None and own != provider:
            what_if.append(f"{step.run_id}/{step.step_id} ({step.model or own})")
        model_key = _model_key(step.model)
        hashes = prefix_hashes(tokens, namespace_salt(f"{provider}/{model_key}/{tok.namespace(step)}"))
        read, writes = cache.request(step, hashes, model_key, tok, now, scale=scale,
                                     prompt_units=prompt_units, exact=exact)
        written = sum(w for w, _ in writes)
        n_ctxprof, n = n, prompt_units if prompt_units is not None else n
        price = table.lookup(step.model, step.provider, input_tokens=n, at_unix_s=step.start_unix_s)
        if price is None and step.model and not table.is_empty:
            unpriced[step.model] = unpriced.get(step.model, 0) + 1
        cost = _price_cost(price, uncached=n - read - written, read=read, writes=writes, output=output,
                           provider=provider)
        no_cache = _price_cost(price, uncached=n, read=0, writes=[], output=output, provider=provider)
        results.append(ProviderStepResult(
            run_id=step.run_id, step_id=step.step_id, model=step.model, start_unix_s=step.start_unix_s,
            input_tokens=n, predicted_cached_tokens=read, predicted_cache_write_tokens=written,
            reported_cached_tokens=reported, cost_usd=cost, no_cache_cost_usd=no_cache,
            output_tokens=output, trace=trace_list[ti].path, unit=unit,
            calibration_factor=scale if unit == "provider" else None, ctxprof_input_tokens=n_ctxprof,
            what_if=bool(what_if) and what_if[-1].startswith(f"{step.run_id}/{step.step_id} ")))
        if progress is not None:
            progress(1, n_ctxprof)

    warnings: list[str] = [w for t in trace_list for w in t.warnings]
    if no_content:
        warnings.append(f"{len(no_content)} step(s) carry no prompt text or token ids (e.g. "
                        f"{no_content[0]}) and were left out; content-free traces can be simulated "
                        "with --cache engine")
    if what_if:
        warnings.append(f"what-if: {len(what_if)} step(s) are of another provider's model (e.g. "
                        f"{what_if[0]}); the {provider} rules applied to them are a hypothetical, not a "
                        "saving their own provider would have given")
    uncalibrated = sum(1 for r in results if r.unit != "provider")
    if uncalibrated:
        warnings.append(f"{uncalibrated} step(s) have no usable reported input count for a model "
                        "ctxprof only approximates: their figures are in ctxprof's tokens, not the "
                        "provider's")
    warnings += cache.warnings()
    for model, count in sorted(unpriced.items()):
        warnings.append(f"no price for model {model!r} ({count} step(s)): their cost is left empty; "
                        "give its prices in a --price-file")
    if tok.approximate_models:
        warnings.append("no offline tokenizer for " + ", ".join(sorted(tok.approximate_models))
                        + ": token counts are approximate")
    return ProviderSimulation(provider=provider, options=cache.effective, steps=tuple(results),
                              totals=ProviderTotals.of(results), warnings=tuple(warnings),
                              traces=tuple(t.path or "" for t in trace_list))
