"""`ctxprof export`: write a trace in another format (OTLP JSON with the GenAI conventions, Parquet)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import FORCE_OPT, OUTPUT_OPT, output_stream, wrote
from profiler.errors import ProfilerError
from profiler.trace import load_trace


class ExportFormat(str, Enum):
    otlp = "otlp"
    parquet = "parquet"


@app.command("export")
def export_command(
    trace: Path = typer.Argument(..., help="A ctxprof trace file.", show_default=False),
    fmt: ExportFormat = typer.Option(ExportFormat.otlp, "--format", "-f",
                                     help="otlp: OTLP JSON spans with OpenTelemetry GenAI attributes; "
                                          "parquet: the trace as Parquet, one row per step (needs "
                                          "-o; pip install 'ctxprof[parquet]')."),
    output: Optional[Path] = OUTPUT_OPT,
    force: bool = FORCE_OPT,
) -> None:
    """Export a trace as OTLP JSON for any OpenTelemetry backend, or as Parquet for a data lake."""
    if fmt is ExportFormat.parquet:
        from profiler.trace.parquet import require_pyarrow

        require_pyarrow()  # before reading a large trace
        if output is None or str(output) == "-":
            raise ProfilerError("Parquet is binary: name the output file with -o trace.parquet")
        if output.exists() and not force:
            raise ProfilerError(f"{output} exists; pass --force to overwrite it")
    loaded = load_trace(trace)
    for w in loaded.warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    if fmt is ExportFormat.parquet:
        from profiler.trace.parquet import write_parquet

        write_parquet(loaded, output)  # type: ignore[arg-type]
        wrote(output)
        return
    from profiler.otel import export_otlp

    doc = export_otlp(loaded)
    with output_stream(output) as stream:
        json.dump(doc, stream, ensure_ascii=False, indent=1)
        stream.write("\n")
    wrote(output)
