"""The trace file: data model (`model`) and reading/writing (`io`)."""

from profiler.trace.io import TraceWriter, iter_records, load_trace, load_traces
from profiler.trace.model import (
    CONTENT_LEVELS,
    FORMAT_NAME,
    SCHEMA_VERSION,
    GpuStats,
    Output,
    Prompt,
    Run,
    Step,
    Trace,
    TraceHeader,
    Usage,
)

__all__ = [
    "CONTENT_LEVELS",
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "GpuStats",
    "Output",
    "Prompt",
    "Run",
    "Step",
    "Trace",
    "TraceHeader",
    "TraceWriter",
    "Usage",
    "iter_records",
    "load_trace",
    "load_traces",
]
