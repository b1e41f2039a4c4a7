"""Provider-true units: every figure a user compares with a bill, in the provider's own tokens.

Contract: `calibrate_step(metrics, step)` returns a step's metrics saying which unit its bill figures
are in, how they were obtained, and whether its reported usage is believable; the analyzer applies it
to every step as its last pass (`profiler.analysis.calibrate`) and adds `calibration_warnings`.
`calibrate_split` and `usage_flags` are the per-step rules, exposed for tests and for the provider
simulators. This module knows the analysis only as types, so the analysis can import it.

Units. ctxprof counts a prompt with its own tokenizer. That is the provider's tokenizer for OpenAI
models (tiktoken's o200k/cl100k), for token ids and block hashes recorded by a serving engine, and for
a Hugging Face tokenizer the trace names; for Claude, Gemini and most models behind an API it is a
stand-in (o200k_base), whose counts differ from the provider's by a tokenizer-dependent factor. The
per-step `provider_*` figures are the step's prefix / repeated / novel split in the provider's tokens:

- `calibration_method="exact"`: ctxprof's tokens are the provider's. Prefix and repeated tokens are
  taken as they are; where the provider reported an input count, novel tokens absorb the difference
  (message framing the provider adds), so the split sums to the reported count.
- `"scaled_to_reported_input"`: a stand-in tokenizer, a prompt with tool definitions or a response
  format (rendered as JSON, not as the provider injects them), or counts too far apart for framing
  alone; and a reported input count `R` for `A` analysed tokens; every part is scaled by `calibration_factor = R / A` (rounded so the parts sum to `R`
  exactly and none is negative). Reuse fractions are kept; the absolute figures are in provider units.
- `"reported_input"`: no prompt content; the input is the reported count, all of it novel.
- `"uncalibrated"`: a stand-in tokenizer and no reported input count: the figures stay in ctxprof's
  tokens (`unit="ctxprof"`) and the analysis warns.
- `"unreliable_usage"`: the reported input count is implausible or too far from the prompt for any
  tokenizer difference (usage sanity below): the split is not scaled to it; the input is the billed
  count, none of it attributed as reusable.

`unit` is `"provider"` for the first three and `"ctxprof"` for the last. `cache_gap_tokens`, the
costs and the check metrics use the `provider_*` figures; a gap is therefore never negative because of
units. A negative gap in provider units is a finding: the provider reported more cached tokens than
the reusable prefix the analysis finds (a wrong usage record, or reuse the analysis cannot see, such
as an explicit cache shared with another application).

Usage sanity (`usage_flags`, thresholds below and in docs/metrics.md): a step whose reported usage
contradicts its content gets flags; its ideal cost, redundant cost and cache gap are then unreliable
and left out of the totals (the totals say how many steps were left out), while its actual cost is
still what the provider billed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable

from profiler.encodings import encoding_for_model

if TYPE_CHECKING:
    from profiler.analysis import StepMetrics
    from profiler.trace.model import Step

# Units of the bill figures of a step.
UNIT_PROVIDER = "provider"
UNIT_CTXPROF = "ctxprof"

METHOD_EXACT = "exact"
METHOD_SCALED = "scaled_to_reported_input"
METHOD_REPORTED = "reported_input"
METHOD_UNCALIBRATED = "uncalibrated"
METHOD_UNRELIABLE = "unreliable_usage"
METHOD_SCHEMA_1 = "unknown (analysis schema 1)"

# Usage sanity thresholds (docs/metrics.md, "Usage sanity").
# A reported count above this many tokens is not a prompt any model takes.
MAX_PLAUSIBLE_TOKENS = 10_000_000
# Reported input / counted prompt: how far two real tokenizers of current models are apart on the same
# text (o200k against Gemini's or Claude's: within about 0.65x-1.5x on agent traffic), with margin.
STAND_IN_RATIO_BOUNDS = (0.5, 2.0)
# Where ctxprof's tokenizer is the provider's, only message framing (a few tokens per message) and the
# way tool schemas are injected separate the two counts.
EXACT_RATIO_BOUNDS = (0.8, 1.25)
# Below this absolute difference, the counts agree whatever the ratio (framing of short prompts).
SLACK_TOKENS = 64

FLAG_CACHED_EXCEEDS_INPUT = "cached_exceeds_input"
FLAG_INPUT_FAR_FROM_CONTENT = "input_far_from_content"
FLAG_IMPLAUSIBLE_COUNT = "implausible_count"
FLAG_OUTPUT_ON_EMPTY_OUTPUT = "output_on_empty_output"


@dataclass(frozen=True)
class Split:
    """A step's prompt split into prefix-reused, repeated and novel tokens, in one unit."""

    input_tokens: int
    prefix_reused_tokens: int
    repeated_tokens: int
    novel_tokens: int


@dataclass(frozen=True)
class Calibration:
    unit: str
    method: str
    factor: float | None
    split: Split


def tokenizer_is_providers(metrics: "StepMetrics", step: "Step | None" = None) -> bool:
    """Whether the step's token counts are in the provider's own units."""
    return counts_are_providers(metrics.content_level, metrics.tokenizer, metrics.model,
                                step is not None and rendering_is_approximate(step))


def rendering_is_approximate(step: "Step") -> bool:
    """Tool definitions and response formats are counted as their JSON; providers inject them in a
    form of their own (OpenAI's is far more compact), so such a prompt's count is a stand-in even with
    the provider's tokenizer."""
    return bool(step.prompt.tools or step.prompt.response_format)


def counts_are_providers(content_level: str, namespace: str | None, model: str | None,
                         approximate_rendering: bool = False) -> bool:
    """Whether token counts of a step at `content_level`, tokenized in `namespace` (the id space
    `StepTokenizer.namespace` names), are in the units of `model`'s provider; `approximate_rendering`:
    the prompt has parts whose rendering is ctxprof's own (`rendering_is_approximate`)."""
    if content_level in ("tokens", "hashes"):
        return True  # ids or counts recorded by the serving engine itself
    if content_level != "text":
        return True  # no content: the input count is the reported one
    namespace = namespace or ""
    if namespace.startswith("hf:"):
        return True  # the trace names the model's own Hugging Face tokenizer
    name, exact = encoding_for_model(model)
    return exact and name == namespace and not approximate_rendering


def calibrate_split(split: Split, reported_input_tokens: int | None, exact: bool) -> Calibration:
    """The split in provider units (module docstring): parts never negative, summing to the reported
    input where there is one, unchanged where the tokenizer is the provider's and the counts agree."""
    a, r = split.input_tokens, reported_input_tokens
    if r is None or r < 0:
        if exact:
            return Calibration(UNIT_PROVIDER, METHOD_EXACT, 1.0, split)
        return Calibration(UNIT_CTXPROF, METHOD_UNCALIBRATED, None, split)
    if exact and r == a:
        return Calibration(UNIT_PROVIDER, METHOD_EXACT, 1.0, split)
    if a <= 0:
        return Calibration(UNIT_PROVIDER, METHOD_REPORTED, None, Split(r, 0, 0, r))
    if exact and not _far(r, a, *EXACT_RATIO_BOUNDS):
        reused = split.prefix_reused_tokens + split.repeated_tokens
        if reused <= r:
            return Calibration(UNIT_PROVIDER, METHOD_EXACT, 1.0, Split(
                r, split.prefix_reused_tokens, split.repeated_tokens, r - reused))
    factor = r / a
    prefix = min(r, _round(split.prefix_reused_tokens * factor))
    repeated = min(r - prefix, _round(split.repeated_tokens * factor))
    return Calibration(UNIT_PROVIDER, METHOD_SCALED, factor,
                       Split(r, prefix, repeated, r - prefix - repeated))


def _round(x: float) -> int:
    return int(x + 0.5)


def usage_flags(metrics: "StepMetrics", step: "Step | None", exact: bool) -> tuple[str, ...]:
    """Why the step's reported usage contradicts its content (empty: it does not)."""
    flags: list[str] = []
    r_in = metrics.reported_input_tokens
    cached = metrics.reported_cached_tokens or 0
    write = metrics.reported_cache_write_tokens or 0
    out = metrics.reported_output_tokens
    if any(v is not None and v > MAX_PLAUSIBLE_TOKENS for v in (r_in, cached, write, out)):
        flags.append(FLAG_IMPLAUSIBLE_COUNT)
    has_content = metrics.content_level in ("text", "tokens", "hashes")
    lo, hi = EXACT_RATIO_BOUNDS if exact else STAND_IN_RATIO_BOUNDS
    if r_in is not None:
        if cached + write > r_in:
            flags.append(FLAG_CACHED_EXCEEDS_INPUT)
        if has_content and _far(r_in, metrics.input_tokens, lo, hi):
            flags.append(FLAG_INPUT_FAR_FROM_CONTENT)
    elif has_content and cached + write > metrics.input_tokens * hi + SLACK_TOKENS:
        flags.append(FLAG_CACHED_EXCEEDS_INPUT)
    if out and step is not None and _output_recorded_empty(step, out):
        flags.append(FLAG_OUTPUT_ON_EMPTY_OUTPUT)
    return tuple(flags)


def _far(reported: int, counted: int, lo: float, hi: float) -> bool:
    if abs(reported - counted) <= SLACK_TOKENS:
        return False
    return counted <= 0 or not lo <= reported / counted <= hi


def _output_recorded_empty(step: "Step", reported_output: int) -> bool:
    """The trace recorded the output and it is empty, yet tokens beyond reasoning were reported."""
    o = step.output
    if step.prompt.level != "text" or (o.message is None and o.text is None):
        return False  # output not recorded: nothing to contradict
    if o.text:
        return False
    message = o.message or {}
    if message.get("content") or message.get("tool_calls") or message.get("function_call"):
        return False
    reasoning = step.usage.reasoning_tokens or 0
    return reported_output - reasoning > SLACK_TOKENS // 4


def calibrate_step(m: "StepMetrics", step: "Step | None" = None) -> "StepMetrics":
    # A prompt whose rendering is ctxprof's own still counts as exact where the provider's count
    # agrees with it to the token: the rendering matched.
    exact = tokenizer_is_providers(m, step) or (
        m.reported_input_tokens == m.input_tokens and tokenizer_is_providers(m))
    flags = usage_flags(m, step, exact)
    r = m.reported_input_tokens
    if r is not None and {FLAG_IMPLAUSIBLE_COUNT, FLAG_INPUT_FAR_FROM_CONTENT} & set(flags):
        c = Calibration(UNIT_PROVIDER, METHOD_UNRELIABLE, None, Split(r, 0, 0, r))
    else:
        c = calibrate_split(Split(m.input_tokens, m.prefix_reused_tokens, m.repeated_tokens,
                                  m.novel_tokens), r, exact)
    gap = None if m.reported_cached_tokens is None else (
        c.split.prefix_reused_tokens - m.reported_cached_tokens)
    return replace(m, unit=c.unit, calibration_method=c.method, calibration_factor=c.factor,
                   provider_input_tokens=c.split.input_tokens,
                   provider_prefix_reused_tokens=c.split.prefix_reused_tokens,
                   provider_repeated_tokens=c.split.repeated_tokens,
                   provider_novel_tokens=c.split.novel_tokens,
                   cache_gap_tokens=gap, usage_flags=flags)


def _example(m: "StepMetrics") -> str:
    return f"{m.run_id}/{m.step_id}"


def calibration_warnings(steps: Iterable["StepMetrics"]) -> list[str]:
    """What calibration found over `steps`, as warnings: a function of the calibrated steps alone, so
    analyses of parts merge into the warnings of the whole (`profiler.distributed.merge`)."""
    found = CalibrationFindings()
    for m in steps:
        found.add(m)
    return found.warnings()


class CalibrationFindings:
    """`calibration_warnings` as running state: steps are added in order and only what the warnings
    show is kept (counts, factor ranges, the first five flagged steps, the worst negative gap), so a
    stream of runs gives the warnings of the whole."""

    def __init__(self) -> None:
        self.scaled: dict[str, tuple[int, float, float]] = {}  # model: (steps, min, max factor)
        self.uncalibrated: dict[str, int] = {}
        self.flagged = 0
        self.flagged_shown: list["StepMetrics"] = []
        self.negative = 0
        self.worst: "StepMetrics | None" = None

    def add(self, m: "StepMetrics") -> None:
        if m.usage_flags:
            self.flagged += 1
            if len(self.flagged_shown) < 5:
                self.flagged_shown.append(m)
        elif m.cache_gap_tokens is not None and m.cache_gap_tokens < 0:
            self.negative += 1
            # The first of the most negative, as `min` picks it.
            if self.worst is None or (m.cache_gap_tokens or 0) < (self.worst.cache_gap_tokens or 0):
                self.worst = m
        if m.calibration_method == METHOD_SCALED and not m.usage_flags:
            f = m.calibration_factor or 0.0
            n, lo, hi = self.scaled.get(m.model or "?", (0, f, f))
            self.scaled[m.model or "?"] = (n + 1, min(lo, f), max(hi, f))
        elif m.calibration_method == METHOD_UNCALIBRATED:
            self.uncalibrated[m.model or "?"] = self.uncalibrated.get(m.model or "?", 0) + 1

    def warnings(self) -> list[str]:
        out = []
        for model, (n, lo, hi) in sorted(self.scaled.items()):
            out.append(f"{model}: {n} step(s) counted with a stand-in tokenizer or rendering were "
                       f"scaled to the provider-reported input (factor {lo:.2f}-{hi:.2f}); "
                       "their gap, costs and check figures are in the provider's tokens")
        for model, count in sorted(self.uncalibrated.items()):
            out.append(f"{model}: {count} step(s) report no input count, so their figures stay in ctxprof's "
                       "stand-in tokens (unit 'ctxprof'), not the provider's")
        if self.flagged:
            shown = "; ".join(f"{_example(m)} ({', '.join(m.usage_flags)}: reported input "
                              f"{m.reported_input_tokens}, cached {m.reported_cached_tokens}, output "
                              f"{m.reported_output_tokens}, counted prompt {m.input_tokens})"
                              for m in self.flagged_shown)
            more = f" and {self.flagged - 5} more" if self.flagged > 5 else ""
            out.append(f"{self.flagged} step(s) report usage that contradicts their content: {shown}{more}. "
                       "Their actual cost is what was billed; their ideal cost, redundant cost and cache gap "
                       "are unreliable and left out of the totals")
        if self.negative and self.worst is not None:
            worst = self.worst
            out.append(f"finding: on {self.negative} step(s) the provider reported more cached tokens than "
                       f"the reusable prefix the analysis finds, in the provider's units (e.g. {_example(worst)}: "
                       f"{worst.reported_cached_tokens:,} cached, prefix {worst.provider_prefix_reused_tokens:,}); "
                       "a usage record is wrong, or the cache holds context the trace does not show")
        return out
