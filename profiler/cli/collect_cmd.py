"""`ctxprof collect -o trace.jsonl`: receive OTLP/HTTP spans (any language's OpenTelemetry exporter)
and append their GenAI steps to a trace as they arrive (see `profiler.collect`). Runs until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import typer

from profiler.cli.app import app, err_console


@app.command("collect")
def collect_command(
    output: Path = typer.Option(Path("ctxprof-trace.jsonl"), "-o", "--output",
                                help="Trace file to append to."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to bind (default: this machine only; spans carry prompts)."),
    port: int = typer.Option(4318, "--port", help="Port (4318 is the OTLP/HTTP default)."),
) -> None:
    """Receive OpenTelemetry spans on /v1/traces (JSON or protobuf) and record their LLM calls."""
    from profiler.collect import Collector

    collector = Collector(output, host=host, port=port)
    try:
        collector.start()
    except OSError as e:
        collector.stop()
        raise typer.BadParameter(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port")
    err_console.print(f"Collecting into {output}: set OTEL_EXPORTER_OTLP_ENDPOINT={collector.endpoint} "
                      "(Ctrl-C to stop)", markup=False)
    try:
        assert collector._thread is not None
        while collector._thread.is_alive():
            collector._thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stats = collector.stats
        collector.stop()
        err_console.print(f"{stats.steps_written} step(s) from {stats.payloads} payload(s) written to "
                          f"{output}; {stats.rejected} payload(s) rejected", markup=False)
