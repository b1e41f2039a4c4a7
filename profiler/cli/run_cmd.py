"""`ctxprof run script.py [args]`: record a Python program's LLM calls without changing its code.

The script runs in this process (with `runpy`, as `python script.py args` would: `__name__ ==
"__main__"`, `sys.argv` set, its folder first on `sys.path`) under a recorder with SDK
auto-instrumentation on. Its exit code becomes ours. The trace header names the script file only;
`--record-args` adds the command line (text level only).
"""

from __future__ import annotations

import runpy
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app, err_console
from profiler.errors import ProfilerError


class Content(str, Enum):
    text = "text"
    tokens = "tokens"
    hashes = "hashes"


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                      "allow_interspersed_args": False})
def run_command(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The Python program to run and record.", show_default=False),
    output: Path = typer.Option(Path("ctxprof-trace.jsonl"), "-o", "--output",
                                help="Trace file to write (appended to when it exists)."),
    workflow: Optional[str] = typer.Option(None, "--workflow",
                                           help="Workflow name of the run (default: the script's name)."),
    content: Content = typer.Option(Content.text, "--content",
                                    help="What to keep of prompts and outputs: text, tokens, or hashes "
                                         "(content-free)."),
    gpu: bool = typer.Option(False, "--gpu/--no-gpu", help="Sample GPU figures with NVML."),
    record_args: bool = typer.Option(
        False, "--record-args",
        help="Also write the script's arguments into the trace header (off by default: command "
             "lines carry API keys and user text; never at the tokens or hashes level)."),
) -> None:
    """Run SCRIPT [ARGS...] and record every OpenAI / Anthropic SDK call it makes into a trace."""
    if not script.is_file():
        raise ProfilerError(f"{script}: no such script (give the path of a Python file to run)")
    from profiler.instrument import record

    argv = [str(script), *ctx.args]
    # Only the script's file name by default: arguments often carry keys and private text.
    header = {"script": script.name}
    if record_args and content is Content.text:
        header["command"] = " ".join(argv)
    elif record_args:
        err_console.print(f"--record-args ignored: the {content.value} level keeps no free text",
                          markup=False)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = argv
    sys.path.insert(0, str(script.resolve().parent))
    code = 0
    try:
        with record(output, workflow=workflow or script.stem, content=content.value, gpu=gpu,
                    attributes=header):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code is not None and not isinstance(e.code, int):
                    err_console.print(str(e.code), markup=False)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    typer.echo(f"Wrote {output}", err=True)
    if code:
        raise typer.Exit(code)
