"""The options every command builds its work from: reuse scope, block size, minimum repeat, pricing,
which cache simulations and whether a diagnosis.

Contract: `ProfileOptions` is one frozen record of what the user chose (the CLI declares each option
once, in `profiler.cli.common`); `price_table()` is the one place the pricing choice becomes a
`PriceTable`, and `profiler.profile.profile(traces, options)` builds every command's result from
them. Pricing:

- `pricing=default` (the default): prices from genai-prices; a `price_file` is looked up first.
- `pricing=none`: only the `price_file`'s prices, or no prices at all without one (costs stay unknown).

Light: importing this module imports neither pandas, numpy nor genai-prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from profiler.pricing import PriceTable


class Scope(str, Enum):
    """Which earlier steps a step is compared with (see docs/metrics.md)."""

    run = "run"
    global_ = "global"


class Engine(str, Enum):
    """Where the analysis runs (see docs/scale.md)."""

    local = "local"
    ray = "ray"


class Pricing(str, Enum):
    """Where prices come from besides a price file (see the module docstring)."""

    default = "default"
    none = "none"


def resolve_engine(engine: "Engine | str", address: str | None) -> Engine:
    """The engine named, checked against the cluster address (which only the Ray engine takes)."""
    from profiler.errors import ProfilerError

    try:
        chosen = Engine(engine)
    except ValueError:
        raise ProfilerError(f"unknown engine {engine!r}: use 'local' or 'ray'") from None
    if address is not None and chosen is not Engine.ray:
        raise ProfilerError("--address names a Ray cluster; add --engine ray")
    return chosen


@dataclass(frozen=True)
class ProfileOptions:
    scope: str = "run"
    block_size: int = 16  # tokens
    min_repeat: int = 32  # tokens
    pricing: Pricing = Pricing.default
    price_file: Path | None = None
    allow_unknown: bool = False  # checks: values that cannot be known (e.g. unpriced costs) pass
    engine: Engine = Engine.local
    address: str | None = None  # a Ray cluster (engine "ray"); None starts a local one
    # What a profile holds besides the analysis (see `profiler.profile`):
    providers: tuple[str, ...] = ("openai", "anthropic", "gemini")  # provider cache simulations
    ttl_s: float | None = None  # provider caches: entry lifetime; None: each provider's own
    min_tokens: int | None = None  # provider caches: minimum cacheable prompt; None: per model
    chunk_tokens: int | None = None  # openai/gemini/deepseek: hit granularity; None: per model
    # anthropic: steps recorded without cache_control marks get the two breakpoints a client sets.
    auto_breakpoints: bool = True
    # A serving engine's KV cache: one simulation per capacity (tokens; None: unbounded); () skips it.
    engine_capacities_tokens: tuple[int | None, ...] = ()
    engine_policy: str = "lru"
    diagnose: bool = True
    min_tokens_lost: int = 64  # diagnosis: a break is a finding when it loses at least this many tokens

    def __post_init__(self) -> None:
        # Accept the enums' plain values too ("global", "none"), as a library caller writes them.
        object.__setattr__(self, "scope", Scope(self.scope).value)
        object.__setattr__(self, "pricing", Pricing(self.pricing))
        object.__setattr__(self, "engine", resolve_engine(self.engine, self.address))
        if self.price_file is not None:
            object.__setattr__(self, "price_file", Path(self.price_file))
        object.__setattr__(self, "providers", tuple(p.lower() for p in self.providers))
        object.__setattr__(self, "engine_capacities_tokens", tuple(self.engine_capacities_tokens))

    def provider_options(self, provider: str) -> dict[str, Any]:
        """The keyword options of `simulate_provider` for `provider` that these options set."""
        out: dict[str, Any] = {}
        if self.ttl_s is not None:
            out["ttl_s"] = self.ttl_s
        if self.min_tokens is not None:
            out["min_tokens"] = self.min_tokens
        if provider == "anthropic":
            if self.auto_breakpoints:
                out["auto_breakpoints"] = True
        elif self.chunk_tokens is not None:
            out["chunk_tokens"] = self.chunk_tokens
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "block_size": self.block_size, "min_repeat": self.min_repeat,
                "pricing": self.pricing.value,
                "price_file": None if self.price_file is None else str(self.price_file),
                "allow_unknown": self.allow_unknown, "engine": self.engine.value,
                "address": self.address, "providers": list(self.providers), "ttl_s": self.ttl_s,
                "min_tokens": self.min_tokens, "chunk_tokens": self.chunk_tokens,
                "auto_breakpoints": self.auto_breakpoints,
                "engine_capacities_tokens": list(self.engine_capacities_tokens),
                "engine_policy": self.engine_policy, "diagnose": self.diagnose,
                "min_tokens_lost": self.min_tokens_lost}

    @classmethod
    def from_dict(cls, d: Any, where: str = "options") -> "ProfileOptions":
        """The inverse of `to_dict`; a malformed field raises `ProfilerError` naming it."""
        from profiler.errors import ProfilerError
        from profiler.records import expect_list, expect_mapping

        d = expect_mapping(d, where)
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in d.items() if k in known}
        for name in ("providers", "engine_capacities_tokens"):
            if name in kwargs:
                kwargs[name] = tuple(expect_list(d, name, where))
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ProfilerError(f"{where}: {e}") from None

    @property
    def priced(self) -> bool:
        return self.pricing is Pricing.default or self.price_file is not None

    def price_table(self) -> "PriceTable | None":
        """The price table these options ask for; None when nothing is priced."""
        from profiler.pricing import PriceTable

        if self.price_file is not None:
            return PriceTable.from_file(self.price_file,
                                        fallback_to_default=self.pricing is Pricing.default)
        if self.pricing is Pricing.none:
            return None
        return PriceTable.default()
