"""`ctxprof check` (budgets and baseline regressions, for CI) and `ctxprof baseline`."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from profiler.safe_text import console as safe_console

from profiler.cli.app import app, err_console
from profiler.cli.common import (
    ADDRESS_OPT,
    ALLOW_UNKNOWN_OPT,
    BLOCK_SIZE_OPT,
    ENGINE_OPT,
    FORCE_OPT,
    MIN_REPEAT_OPT,
    OUTPUT_OPT,
    PRICE_FILE_OPT,
    PRICES_DEPRECATED_OPT,
    PRICING_OPT,
    SCOPE_OPT,
    TRACES_ARG,
    Engine,
    Pricing,
    Scope,
    build_profile,
    check_output,
    output_stream,
    profile_options,
    wrote,
)
from profiler.errors import CheckFailed, ConfigError

# check alone reads its scope from the baseline or the budgets file when --scope is not given, so
# that a check measures the traces as their baseline was measured.
CHECK_SCOPE_OPT = typer.Option(None, "--scope",
                               help="'run' or 'global' reuse scope (default: the baseline's, else "
                                    "\\[check] scope of the budgets file, else 'run').")


def _warn(messages: object) -> None:
    for w in messages:  # type: ignore[attr-defined]
        err_console.print(f"ctxprof: warning: {w}", markup=False)


def _append_summary(text: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        err_console.print(f"ctxprof: warning: cannot append to $GITHUB_STEP_SUMMARY ({path}): {e}",
                          markup=False)


@app.command("check")
def check_command(
    traces: list[Path] = TRACES_ARG,
    budget: Path = typer.Option(Path("ctxprof.toml"), "--budget", "-b",
                                help="Budgets file (ctxprof.toml, or a pyproject.toml with \\[tool.ctxprof])."),
    baseline: Optional[Path] = typer.Option(None, "--baseline",
                                            help="Baseline JSON written by `ctxprof baseline`, for the "
                                                 "\\[regression] limits."),
    markdown: Optional[Path] = typer.Option(None, "--markdown",
                                            help="Also write the report as Markdown to this file "
                                                 "(it is appended to $GITHUB_STEP_SUMMARY when set)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report."),
    scope: Optional[Scope] = CHECK_SCOPE_OPT,
    pricing: Pricing = PRICING_OPT,
    price_file: Optional[Path] = PRICE_FILE_OPT,
    prices: Optional[Path] = PRICES_DEPRECATED_OPT,
    allow_unknown: bool = ALLOW_UNKNOWN_OPT,
    engine: Engine = ENGINE_OPT,
    address: Optional[str] = ADDRESS_OPT,
) -> None:
    """Check traces against budgets and a baseline; exit 1 when a limit is exceeded.

    Exit codes: 0 every limit holds, 1 a budget or regression limit failed (or a value is unknown
    and --allow-unknown is not given), 2 unusable input (budgets, baseline or trace).
    """
    from profiler.check import METRICS, Baseline, Budgets, check
    from profiler.render.check_report import (
        check_table,
        describe_row,
        github_annotations,
        summary_line,
        write_junit,
        write_markdown,
    )

    budgets = Budgets.from_file(budget)
    base = Baseline.from_file(baseline) if baseline is not None else None
    chosen_scope = (scope.value if scope is not None
                    else base.scope if base is not None
                    else budgets.scope or "run")
    measured_as = {} if base is None else {"block_size": base.block_size, "min_repeat": base.min_repeat}
    # Prices only matter to cost limits; without one, a model missing from the price table is no news.
    needs_prices = any(METRICS[lim.metric].unit == "usd" for lim in budgets.limits)
    unpriced = {} if needs_prices else {"pricing": Pricing.none}
    options = profile_options(scope=chosen_scope, pricing=pricing, price_file=price_file, prices=prices,
                              allow_unknown=allow_unknown, engine=engine, address=address,
                              providers=(), diagnose=False, **measured_as)
    if unpriced:
        options = replace(options, price_file=None, **unpriced)
    analysis = build_profile(traces, options, label="check").analysis
    result = check(analysis, budgets, base, allow_unknown=True if options.allow_unknown else None)
    _warn(result.warnings)

    # Without a terminal (CI logs) rich would wrap the table at 80 columns.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    safe_console(highlight=False, width=160 if wide else None).print(check_table(result))
    if markdown is not None:
        with output_stream(markdown) as stream:
            write_markdown(result, stream)
        wrote(markdown)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        import io

        buf = io.StringIO()
        write_markdown(result, buf)
        _append_summary(buf.getvalue())
    if junit is not None:
        with output_stream(junit) as stream:
            write_junit(result, stream)
        wrote(junit)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(result, workspace=os.environ.get("GITHUB_WORKSPACE")):
            typer.echo(line)
    if not result.passed:
        details = "; ".join(describe_row(r) for r in result.failures)
        raise CheckFailed(f"check failed: {summary_line(result)}: {details}")


@app.command("baseline")
def baseline_command(
    traces: list[Path] = TRACES_ARG,
    output: Optional[Path] = OUTPUT_OPT,
    force: bool = FORCE_OPT,
    scope: Scope = SCOPE_OPT,
    block_size: int = BLOCK_SIZE_OPT,
    min_repeat: int = MIN_REPEAT_OPT,
    pricing: Pricing = PRICING_OPT,
    price_file: Optional[Path] = PRICE_FILE_OPT,
    prices: Optional[Path] = PRICES_DEPRECATED_OPT,
    engine: Engine = ENGINE_OPT,
    address: Optional[str] = ADDRESS_OPT,
) -> None:
    """Record the per-run metrics of traces as a baseline for `ctxprof check --baseline`."""
    import time

    from profiler.check import make_baseline
    from profiler.render.console import write_json

    check_output(output)
    options = profile_options(scope=scope, block_size=block_size, min_repeat=min_repeat,
                              pricing=pricing, price_file=price_file, prices=prices,
                              engine=engine, address=address, providers=(), diagnose=False)
    analysis = build_profile(traces, options, label="baseline").analysis
    baseline = make_baseline(analysis, created_unix_s=time.time())
    if not baseline.workflows:
        raise ConfigError("the traces hold no runs; nothing to record as a baseline")
    with output_stream(output) as stream:
        write_json(baseline.to_dict(), stream)
    if output is not None and str(output) != "-":
        runs = sum(w.runs for w in baseline.workflows.values())
        typer.echo(f"Wrote {output} ({len(baseline.workflows)} workflow(s), {runs} run(s))", err=True)
