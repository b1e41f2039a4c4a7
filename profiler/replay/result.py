"""Results of a replay: frozen records with units in their names, and the FLOP model.

`ReplayResult.to_dict()` is the JSON contract (`schema: ctxprof.replay/1`). Figures that could not be
measured (energy without NVML, GPU memory on a CPU) are `None`, never 0.

FLOP model (prefill of one step): a token at context position c (0-based; it attends to c + 1 keys)
costs `2 * P + 4 * L * A * (c + 1)` floating-point operations, where P is the number of non-embedding
parameters (every weight multiplies the token once: a multiply and an add), L the number of layers and
A = attention heads x head dimension (QK^T and attention x V, 2 FLOPs per multiply-add each).
Prefilling positions m..n-1 after a cached prefix of m tokens therefore costs
`2 * P * (n - m) + 4 * L * A * sum(c + 1 for c in m..n-1)`. The LM head is left out: prefill computes
logits for the last position only. Cached tokens sit early in the context, where attention is
cheapest, while every token still computed attends to them: the fraction of prefill FLOPs a cache saves
is therefore a little smaller than the fraction of prefill tokens it saves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REPLAY_SCHEMA = "ctxprof.replay/1"


def prefill_flops(non_embedding_params: int, num_layers: int, attention_width: int, *, start: int,
                  end: int) -> float:
    """FLOPs to prefill context positions `start..end-1` (see the module docstring)."""
    n = max(end - start, 0)
    if n == 0:
        return 0.0
    keys = (start + 1 + end) * n / 2  # sum of (c + 1) for c in start..end-1
    return 2.0 * non_embedding_params * n + 4.0 * num_layers * attention_width * keys


@dataclass(frozen=True)
class ModeStep:
    """One step replayed in one mode."""

    prefill_tokens: int
    reused_tokens: int
    output_tokens: int
    prefill_ms: float
    ttft_ms: float
    decode_ms: float
    cache_lookup_ms: float  # radix match + KV assembly (reuse mode; 0 in cold mode)
    cache_insert_ms: float
    prefill_flops: float
    peak_gpu_memory_bytes: int | None
    energy_j: float | None
    cache_tokens_after: int
    first_token: int
    output_ids: tuple[int, ...] = field(default=(), repr=False)  # generated ids (with --generate)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_ids"] = list(self.output_ids)
        return d


@dataclass(frozen=True)
class Check:
    """How one step's outputs compare between cold and reuse mode."""

    positions_compared: int  # positions whose greedy tokens were compared
    logit_rows_compared: int  # positions whose full logit rows were compared
    max_abs_logit_diff: float
    logits_within_tolerance: bool
    greedy_tokens_equal: int
    greedy_mismatches: int
    # Mismatches where the cold logits of the two tokens differ by more than the tolerance (a real
    # disagreement, not a near-tie flipped by rounding).
    greedy_mismatches_beyond_tolerance: int

    @property
    def equal(self) -> bool:
        return self.logits_within_tolerance and self.greedy_mismatches_beyond_tolerance == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"equal": self.equal}


@dataclass(frozen=True)
class StepReplay:
    run_id: str
    step_id: str
    name: str | None
    index: int  # position in replay order
    token_source: str
    prompt_tokens: int
    output_tokens: int
    output_recorded: bool
    predicted_reused_tokens: int  # what the analyzer says this engine can skip (see Prediction)
    analyzer_prefix_reused_tokens: int
    cold: ModeStep | None
    reuse: ModeStep | None
    check: Check | None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("cold", "reuse", "check")}
        d["cold"] = None if self.cold is None else self.cold.to_dict()
        d["reuse"] = None if self.reuse is None else self.reuse.to_dict()
        d["check"] = None if self.check is None else self.check.to_dict()
        return d


@dataclass(frozen=True)
class ModeTotals:
    steps: int
    prefill_tokens: int
    reused_tokens: int
    output_tokens: int
    prefill_ms: float
    ttft_ms: float
    decode_ms: float
    cache_lookup_ms: float
    cache_insert_ms: float
    prefill_flops: float
    peak_gpu_memory_bytes: int | None
    energy_j: float | None

    @classmethod
    def of(cls, steps: list[ModeStep]) -> "ModeTotals":
        def total(name: str) -> Any:
            return sum(getattr(s, name) for s in steps)

        peaks = [s.peak_gpu_memory_bytes for s in steps if s.peak_gpu_memory_bytes is not None]
        energy = [s.energy_j for s in steps if s.energy_j is not None]
        return cls(steps=len(steps), prefill_tokens=total("prefill_tokens"),
                   reused_tokens=total("reused_tokens"), output_tokens=total("output_tokens"),
                   prefill_ms=total("prefill_ms"), ttft_ms=total("ttft_ms"), decode_ms=total("decode_ms"),
                   cache_lookup_ms=total("cache_lookup_ms"), cache_insert_ms=total("cache_insert_ms"),
                   prefill_flops=total("prefill_flops"),
                   peak_gpu_memory_bytes=max(peaks) if peaks else None,
                   energy_j=sum(energy) if len(energy) == len(steps) and steps else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Cold vs reuse outputs over all steps, and the tolerance they were held to."""

    atol: float
    rtol: float
    steps_compared: int
    steps_equal: int
    max_abs_logit_diff: float
    greedy_tokens_compared: int
    greedy_mismatches: int
    greedy_mismatches_beyond_tolerance: int

    @property
    def equal(self) -> bool:
        return self.steps_equal == self.steps_compared

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"equal": self.equal}


@dataclass(frozen=True)
class Prediction:
    """The analyzer's prediction beside what the replay measured.

    `predicted_saved_prefill_tokens`: per step, the analyzer's `prefix_reused_tokens` on the replayed
    token sequences, rounded down to whole blocks and to at most the prompt minus one token (the last
    prompt token is always computed, for the first output token's logits). With an unbounded cache the
    measured saving equals it exactly (mapped sequences can only add reuse, by id collisions).
    `trace_prefix_reused_tokens` is the analyzer on the original trace in ctxprof's own tokenization.
    """

    predicted_saved_prefill_tokens: int
    measured_saved_prefill_tokens: int | None
    trace_prefix_reused_tokens: int
    trace_block_reused_tokens: int
    prompt_tokens: int
    predicted_saved_token_fraction: float
    predicted_saved_flops_fraction: float
    measured_saved_flops_fraction: float | None
    measured_saved_prefill_time_fraction: float | None
    measured_saved_ttft_fraction: float | None
    prefill_speedup: float | None
    ttft_speedup: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReplayOptions:
    mode: str
    scope: str
    capacity_tokens: int | None
    block_size: int
    generate: bool
    max_new_tokens: int | None
    max_steps: int | None
    warmup_runs: int
    timer: str  # "cuda-events" or "perf_counter"
    eviction_policy: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReplayResult:
    model: Any  # ModelInfo
    options: ReplayOptions
    token_sources: dict[str, int]
    steps: tuple[StepReplay, ...]
    cold: ModeTotals | None
    reuse: ModeTotals | None
    comparison: Comparison | None
    prediction: Prediction
    evicted_tokens: int
    traces: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def steps_df(self) -> "pd.DataFrame":
        """One row per step: the step's figures, then each mode's as `cold_*` / `reuse_*` columns."""
        import pandas as pd

        mode_cols = [f.name for f in fields(ModeStep) if f.name != "output_ids"]
        rows = []
        for s in self.steps:
            row: dict[str, Any] = {k: getattr(s, k) for k in (
                "run_id", "step_id", "name", "index", "token_source", "prompt_tokens", "output_tokens",
                "predicted_reused_tokens", "analyzer_prefix_reused_tokens")}
            for mode in ("cold", "reuse"):
                m = getattr(s, mode)
                row.update({f"{mode}_{c}": None if m is None else getattr(m, c) for c in mode_cols})
            row["max_abs_logit_diff"] = None if s.check is None else s.check.max_abs_logit_diff
            row["outputs_equal"] = None if s.check is None else s.check.equal
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPLAY_SCHEMA,
            "model": self.model.to_dict(),
            "options": self.options.to_dict(),
            "traces": list(self.traces),
            "token_sources": dict(self.token_sources),
            "steps": [s.to_dict() for s in self.steps],
            "totals": {"cold": None if self.cold is None else self.cold.to_dict(),
                       "reuse": None if self.reuse is None else self.reuse.to_dict()},
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "prediction": self.prediction.to_dict(),
            "evicted_tokens": self.evicted_tokens,
            "warnings": list(self.warnings),
        }
