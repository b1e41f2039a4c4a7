"""`ctxprof diagnose`: where prefix reuse breaks although the content repeats, why, and the fix."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from profiler.cli.app import app
from profiler.cli.common import (
    MIN_REPEAT_OPT,
    OUTPUT_OPT,
    TRACES_ARG,
    build_profile,
    output_stream,
    profile_options,
    wrote,
)
from profiler.errors import ProfilerError
from profiler.render.console import write_json, write_table


class Format(str, Enum):
    table = "table"
    json = "json"


@app.command("diagnose")
def diagnose_command(
    traces: list[Path] = TRACES_ARG,
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = OUTPUT_OPT,
    min_tokens: int = typer.Option(64, "--min-tokens", min=1,
                                   help="Report a break only when it loses at least this many "
                                        "repeated tokens."),
    min_repeat: int = MIN_REPEAT_OPT,
) -> None:
    """Find where each run's prompts stop matching earlier context although the content repeats.

    For each break: the step, the token position, the text on both sides, the cause (dynamic_value,
    reordered, rewritten_history, model_change, other), the fix, and the tokens and dollars it loses.
    Repeated breaks (the same timestamp in every step) are grouped into one finding.
    """
    options = profile_options(min_repeat=min_repeat, providers=(), min_tokens_lost=min_tokens)
    result = build_profile(traces, options, label="diagnose", warn_sections=("diagnosis",))
    if result.diagnosis is None:  # a diagnosis that failed on this input
        raise ProfilerError(result.unavailable.get("diagnosis", "diagnosis not available"))
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.diagnosis.to_dict(), stream)
        else:
            write_table(result, stream, sections=("diagnosis",))
    wrote(output)
