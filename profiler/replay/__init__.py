"""Replay: re-execute a trace's token sequences with a real model, with and without KV reuse.

Public API (torch and transformers are imported only when a replay runs or a model loads):

- `replay(traces, model=..., device=..., dtype=..., mode=..., ...)` -> `ReplayResult`
- `load_model(spec, device=, dtype=, seed=)` -> `LoadedModel`; `ARCHITECTURE_PRESETS` (architecture presets)
- `RadixCache`, `LRUPolicy`, `FIFOPolicy`: the radix tree of KV blocks (usable without torch)
- `SequenceBuilder`, `Vocabulary`, `map_token_ids`: the token sequences a replay runs
- `prefill_flops`: the FLOP model (see `profiler.replay.result`)
"""

from __future__ import annotations

from profiler.replay.runner import MODES, TOLERANCES, replay
from profiler.replay.models import ARCHITECTURE_PRESETS, LoadedModel, ModelInfo, load_model
from profiler.replay.radix import FIFOPolicy, LRUPolicy, PrefixMatch, RadixCache
from profiler.replay.result import (
    REPLAY_SCHEMA,
    Check,
    Comparison,
    ModeStep,
    ModeTotals,
    Prediction,
    ReplayOptions,
    ReplayResult,
    StepReplay,
    prefill_flops,
)
from profiler.replay.sequences import (
    SequenceBuilder,
    StepSequence,
    Vocabulary,
    map_token_ids,
)

__all__ = [
    "MODES",
    "TOLERANCES",
    "ARCHITECTURE_PRESETS",
    "REPLAY_SCHEMA",
    "Check",
    "Comparison",
    "FIFOPolicy",
    "LRUPolicy",
    "LoadedModel",
    "ModeStep",
    "ModeTotals",
    "ModelInfo",
    "Prediction",
    "PrefixMatch",
    "RadixCache",
    "ReplayOptions",
    "ReplayResult",
    "SequenceBuilder",
    "StepReplay",
    "StepSequence",
    "Vocabulary",
    "load_model",
    "map_token_ids",
    "prefill_flops",
    "replay",
]
