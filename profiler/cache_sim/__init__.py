"""Cache simulators: what a provider's prompt cache (`providers`) or a serving engine's KV cache of
finite capacity (`kv_cache`) would have reused for the requests of a trace."""

from profiler.cache_sim.providers import (
    PROVIDERS,
    ProviderSimulation,
    ProviderStepResult,
    ProviderTotals,
    simulate_provider,
)

__all__ = ["PROVIDERS", "ProviderSimulation", "ProviderStepResult", "ProviderTotals", "simulate_provider"]
