"""`ctxprof export`: write a trace in another format (OTLP JSON with the GenAI conventions)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import FORCE_OPT, OUTPUT_OPT, output_stream, wrote
from profiler.trace import load_trace


class ExportFormat(str, Enum):
    otlp = "otlp"


@app.command("export")
def export_command(
    trace: Path = typer.Argument(..., help="A ctxprof trace file.", show_default=False),
    fmt: ExportFormat = typer.Option(ExportFormat.otlp, "--format", "-f",
                                     help="otlp: OTLP JSON spans with OpenTelemetry GenAI attributes."),
    output: Optional[Path] = OUTPUT_OPT,
    force: bool = FORCE_OPT,
) -> None:
    """Export a trace, e.g. as OTLP JSON for any OpenTelemetry backend."""
    from profiler.importers.otel import export_otlp

    loaded = load_trace(trace)
    for w in loaded.warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    doc = export_otlp(loaded)
    with output_stream(output) as stream:
        json.dump(doc, stream, ensure_ascii=False, indent=1)
        stream.write("\n")
    wrote(output)
