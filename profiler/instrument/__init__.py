"""Recording: the `record` / `step` API, SDK auto-instrumentation, content levels and GPU figures.

Public names: `record`, `step`, `Recorder`, `RunHandle`, `StepHandle`, `current_run`, `current_step`.
The SDK patches (`profiler.instrument.patch`) and the GPU sampler (`profiler.instrument.gpu`) are
loaded only when a recorder needs them.
"""

from profiler.instrument.recorder import (
    Recorder,
    RunHandle,
    StepHandle,
    current_run,
    current_step,
    record,
    step,
)

__all__ = ["Recorder", "RunHandle", "StepHandle", "current_run", "current_step", "record", "step"]
