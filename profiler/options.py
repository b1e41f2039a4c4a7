"""The options every command builds its work from: reuse scope, block size, minimum repeat, pricing.

Contract: `ProfileOptions` is one frozen record of what the user chose (the CLI declares each option
once, in `profiler.cli.common`); `price_table()` is the one place the pricing choice becomes a
`PriceTable`, and `analyze(traces)` analyses and prices traces as the options say. Pricing:

- `pricing=default` (the default): prices from genai-prices; a `price_file` is looked up first.
- `pricing=none`: only the `price_file`'s prices, or no prices at all without one (costs stay unknown).

Light: importing this module imports neither pandas, numpy nor genai-prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from profiler.analysis import Analysis
    from profiler.pricing import PriceTable
    from profiler.progress import Progress
    from profiler.trace.model import Trace


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

    def __post_init__(self) -> None:
        # Accept the enums' plain values too ("global", "none"), as a library caller writes them.
        object.__setattr__(self, "scope", Scope(self.scope).value)
        object.__setattr__(self, "pricing", Pricing(self.pricing))
        object.__setattr__(self, "engine", resolve_engine(self.engine, self.address))
        if self.price_file is not None:
            object.__setattr__(self, "price_file", Path(self.price_file))

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

    def analyze(self, traces: "Iterable[Trace]", *, price: bool = True,
                progress: "Progress | None" = None) -> "Analysis":
        """Analyse `traces` with these options, and fill in costs unless unpriced (or `price` is
        False); pricing warnings (models without a price) join the analysis's warnings."""
        from profiler.analysis import analyze

        trace_list = list(traces)
        analysis = analyze(trace_list, scope=self.scope, block_size=self.block_size,
                           min_repeat=self.min_repeat, progress=progress)
        table = self.price_table() if price else None
        if table is None:
            return analysis
        from profiler.cost import apply_costs

        return apply_costs(analysis, trace_list, table)
