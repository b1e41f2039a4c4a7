"""ctxprof: measure the cost of redundant context in multi-step LLM workflows.

The public API. Every name is the real object (its signature and docstring show in `help()` and
Jupyter); the ones with heavy dependencies are imported on first use, so `import profiler` loads
neither pandas, plotly, torch nor an LLM SDK.

- Traces: `load_trace`, `load_traces`, `import_sources` (other tools' traces), `Trace`, `Run`, `Step`
- Recording: `record`, `step`; timing local models: `cuda_timer`, `timed_generate`
- One result for everything: `profile(traces, options) -> Profile`
- Analysis: `analyze`, `ProfileOptions`, `Pricing`, `PriceTable`, `apply_prices`, `diagnose`
- Cache simulation: `simulate_provider`, `simulate_engine`, `parse_capacity`
- Reports: `report`, `render`, `figures` (plotly)
- CI checks: `check`, `Budgets`, `Baseline`, `make_baseline`
- Replay: `replay`
- Errors: `ProfilerError`, `TraceFormatError`, `ConfigError`, `CheckFailed`
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from profiler.errors import CheckFailed, ConfigError, ProfilerError, TraceFormatError  # noqa: E402
from profiler.options import Pricing, ProfileOptions  # noqa: E402
from profiler.trace import Run, Step, Trace, load_trace  # noqa: E402
from profiler.trace.io import load_traces  # noqa: E402

# name -> (module, attribute); attribute None: the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "analyze": ("profiler.profile", "analyze"),
    "profile": ("profiler.profile", "profile"),
    "Profile": ("profiler.profile", "Profile"),
    "analyze_each_run": ("profiler.analysis", "analyze_each_run"),
    "iter_run_traces": ("profiler.trace.io", "iter_run_traces"),
    "import_sources": ("profiler.importers.registry", "import_sources"),
    "apply_prices": ("profiler.cost", "apply_prices"),
    "PriceTable": ("profiler.pricing", "PriceTable"),
    "diagnose": ("profiler.diagnose", "diagnose"),
    "record": ("profiler.instrument.recorder", "record"),
    "step": ("profiler.instrument.recorder", "step"),
    "cuda_timer": ("profiler.instrument.gpu", "cuda_timer"),
    "timed_generate": ("profiler.instrument.gpu", "timed_generate"),
    "simulate_provider": ("profiler.cache_sim.providers", "simulate_provider"),
    "simulate_engine": ("profiler.cache_sim.kv_cache", "simulate_engine"),
    "parse_capacity": ("profiler.cache_sim.kv_cache", "parse_capacity"),
    "report": ("profiler.render", "report"),
    "render": ("profiler.render", "render"),
    "figures": ("profiler.render.figures", None),
    "check": ("profiler.check", "check"),
    "Budgets": ("profiler.check", "Budgets"),
    "Baseline": ("profiler.check", "Baseline"),
    "make_baseline": ("profiler.check", "make_baseline"),
    "replay": ("profiler.replay.runner", "replay"),
}

__all__ = ["Baseline", "Budgets", "CheckFailed", "ConfigError", "PriceTable", "Pricing", "Profile",
           "ProfileOptions", "ProfilerError", "Run", "Step", "Trace", "TraceFormatError",
           "__version__", "analyze", "analyze_each_run", "apply_prices", "check", "cuda_timer",
           "diagnose", "figures", "import_sources", "iter_run_traces", "load_trace", "load_traces",
           "make_baseline", "parse_capacity", "profile", "record", "render", "replay", "report",
           "simulate_engine", "simulate_provider",
           "step", "timed_generate"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'profiler' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _PublicAPI(types.ModuleType):
    """The package module. `check`, `diagnose`, `profile`, `render` and `replay` are functions named
    like the modules that define them; importing a submodule binds it as an attribute of its package,
    which would hide the function, so that binding is skipped for those names (the submodules stay
    importable: `from profiler.check import Budgets` reads `sys.modules`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name, ("", None))[1] is not None:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PublicAPI


if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from profiler.analysis import analyze_each_run
    from profiler.cache_sim.kv_cache import parse_capacity, simulate_engine
    from profiler.cache_sim.providers import simulate_provider
    from profiler.check import Baseline, Budgets, check, make_baseline
    from profiler.cost import apply_prices
    from profiler.diagnose import diagnose
    from profiler.importers.registry import import_sources
    from profiler.instrument.gpu import cuda_timer, timed_generate
    from profiler.instrument.recorder import record, step
    from profiler.pricing import PriceTable
    from profiler.replay.runner import replay
    from profiler.profile import Profile, analyze, profile
    from profiler.render import figures, render, report
