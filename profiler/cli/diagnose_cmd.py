"""`ctxprof diagnose`: where prefix reuse breaks although the content repeats, why, and the fix."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import (
    MIN_REPEAT_OPT,
    OUTPUT_OPT,
    TRACES_ARG,
    llm_step_count,
    load_all,
    output_stream,
    progress_bar,
    table_console,
    wrote,
)
from profiler.diagnose import diagnose
from profiler.errors import ProfilerError
from profiler.reporters.console import write_json
from profiler.reporters.diagnosis import render


class Format(str, Enum):
    table = "table"
    json = "json"


def _default_prices() -> tuple[Any, str | None]:
    """The bundled price table, or (None, why) when it cannot be loaded (dollars are then unknown)."""
    from profiler.pricing import PriceTable

    try:
        return PriceTable.default(), None
    except ProfilerError as e:
        return None, f"no price table ({e}): dollars are unknown"


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
    loaded = load_all(traces)
    prices, why = _default_prices()
    with progress_bar("diagnose", llm_step_count(loaded)) as bar:
        result = diagnose(loaded, prices=prices, min_repeat=min_repeat, min_tokens_lost=min_tokens,
                          progress=bar)
    warnings = list(result.warnings)
    if why is not None:
        warnings = [why] + [w for w in warnings if not w.startswith("no price table")]
    for w in warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.to_dict(), stream)
        else:
            render(result, table_console(stream, highlight=False))
    wrote(output)
