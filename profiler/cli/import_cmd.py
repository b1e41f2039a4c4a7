"""`ctxprof import`: turn traces other tools recorded into a ctxprof trace file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import FORCE_OPT, check_output
from profiler.errors import ProfilerError
from profiler.importers.registry import formats, import_sources
from profiler.output import atomic_path
from profiler.trace.io import write_trace


@app.command("import")
def import_command(
    fmt: str = typer.Argument(..., metavar="FORMAT",
                              help="Source format: openai-log, openhands, swe-agent, mini-swe-agent, "
                                   "tau-bench, mooncake, otel, vcr."),
    sources: list[Path] = typer.Argument(..., metavar="SOURCE...",
                                         help="Files or folders (folders are walked).", show_default=False),
    output: Path = typer.Option(..., "-o", "--output", help="Trace file to write (.jsonl or .jsonl.gz)."),
    force: bool = FORCE_OPT,
    run_key: Optional[str] = typer.Option(
        None, "--run-key", help="openai-log: dotted path of the field that names a call's run "
                                "(e.g. metadata.session_id); without it, calls are grouped by prefix "
                                "continuation."),
    window_s: Optional[float] = typer.Option(
        None, "--window-s", min=0, help="openai-log: longest pause (s) within one heuristic run "
                                        "(default 1800)."),
    tools: Optional[Path] = typer.Option(
        None, "--tools", help="tau-bench: tool definitions (JSON list) the agent was given "
                              "(default: <env>_tools_info.json beside the trajectories)."),
    include_user: Optional[bool] = typer.Option(
        None, "--include-user/--no-include-user",
        help="tau-bench: also reconstruct the simulated user's LLM calls (a second run per record)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="swe-agent, mini-swe-agent, tau-bench: the agent's model, overriding "
                              "what the files say."),
    user_model: Optional[str] = typer.Option(
        None, "--user-model", help="tau-bench: the simulated user's model (default gpt-4o)."),
) -> None:
    """Import traces recorded by other tools (gateway logs, agent trajectories, serving traces).

    Every importer keeps provider-reported usage and timestamps where the source has them, and records
    what it had to reconstruct in the trace header (attributes.reconstructed).
    """
    if fmt not in formats():
        raise ProfilerError(f"unknown format {fmt!r}; use one of {', '.join(sorted(formats()))}")
    check_output(output)
    options = {"run_key": run_key, "window_s": window_s, "tools": tools, "include_user": include_user,
               "model": model, "user_model": user_model}
    trace = import_sources(fmt, sources, options)
    for w in trace.warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    from profiler.cli.common import progress_bar

    with atomic_path(output) as tmp, progress_bar("import", len(trace.steps)) as bar:
        write_trace(trace, tmp, progress=bar)
    typer.echo(f"Wrote {output} ({len(trace.runs)} runs, {len(trace.steps)} steps)", err=True)
