"""What is being recorded now: the current run and step of this thread or task, and the recorders
that are open (the fallback for threads without a context, and for the process-wide SDK patches).

The lowest layer of instrumentation: the SDK patches, framework hooks and GPU timers look the current
run and step up here, and the recorder sets them; nothing here imports the modules that use it.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiler.instrument.recorder import Recorder, RunHandle, StepHandle


_current_run: contextvars.ContextVar["RunHandle | None"] = contextvars.ContextVar(
    "ctxprof_current_run", default=None)
_current_step: contextvars.ContextVar["StepHandle | None"] = contextvars.ContextVar(
    "ctxprof_current_step", default=None)

# Recorders entered and not yet exited, innermost last (the fallback for context-less threads and
# for the SDK patches, which are process-wide).
_active: list["Recorder"] = []
_active_lock = threading.Lock()


def current_run() -> "RunHandle | None":
    """The run that a step started now belongs to, or None when nothing is recording."""
    run = _current_run.get()
    if run is not None and not run.closed:
        return run
    with _active_lock:
        for rec in reversed(_active):
            if rec.root is not None and not rec.root.closed:
                return rec.root
    return None


def current_step() -> "StepHandle | None":
    step = _current_step.get()
    return step if step is not None and not step.closed else None
