"""ctxprof: measure the cost of redundant context in multi-step LLM workflows.

Public API (heavy parts are imported lazily, so `import profiler` stays light):
`load_trace`, `analyze`, `Trace`, `Step`, `Run`, `ProfilerError`, and (instrumentation) `record`,
`step`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from profiler.errors import ProfilerError, TraceFormatError  # noqa: E402
from profiler.trace import Run, Step, Trace, load_trace  # noqa: E402

__all__ = ["ProfilerError", "Run", "Step", "Trace", "TraceFormatError", "__version__", "analyze",
           "load_trace", "record", "step"]


def analyze(*args: Any, engine: str = "local", address: str | None = None, **kwargs: Any) -> Any:
    """Analyse traces; see `profiler.analysis.analyze`.

    `engine="ray"` runs the analysis on a Ray cluster (`address`, else a local one started on demand;
    see `profiler.distributed.analyze_on_ray`); it also takes files, folders, globs and URIs."""
    from profiler.distributed import check_engine  # no Ray import: the module imports it lazily

    check_engine(engine, address)
    if engine == "ray":
        from profiler.distributed import analyze_on_ray

        return analyze_on_ray(*args, address=address, **kwargs)
    from profiler.analysis import analyze as _analyze

    return _analyze(*args, **kwargs)


def record(*args: Any, **kwargs: Any) -> Any:
    """Record a workflow into a trace file; see `profiler.instrument.record`."""
    from profiler.instrument import record as _record

    return _record(*args, **kwargs)


def step(*args: Any, **kwargs: Any) -> Any:
    """Decorator recording a function as a step; see `profiler.instrument.step`."""
    from profiler.instrument import step as _step

    return _step(*args, **kwargs)
