"""Run-scope analysis of one trace file, written as it is computed.

Contract: `write_analysis_json(path, options, stream)` writes the `ctxprof.analysis/2` document of
`path` (what `ctxprof analyze --format json` writes: `profile(load_trace(path), options).analysis`)
while reading the file run by run (`profiler.trace.io.iter_run_traces`): each run is analysed
(`profiler.analysis.analyze_each_run`), calibrated and priced (`profiler.cost.apply_costs` with the
options' one `price_table()`) and its part of the document written at once; the totals and warnings
are built from running state (`TotalsSum`, `CalibrationFindings`, `UnpricedSteps`, `input_warnings`),
so memory is bounded by the largest run, not by the file.

The bytes equal the whole-file document's whenever the file's runs appear in the order they end (each
run's `run_end` before the next run starts, as `ctxprof` writes them). Runs that interleave are
written in the order they end, where the whole-file document lists them in the order they start; every
figure, total and warning is the same. On standard output a file that turns out malformed part-way
leaves the runs before the bad line written (with `-o` nothing is written: the file is replaced whole
or not at all).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

from profiler.analysis import ANALYSIS_SCHEMA, AnalysisOptions, TotalsSum, analyze_each_run, input_warnings
from profiler.options import ProfileOptions
from profiler.render.jsontext import dumps
from profiler.trace.model import Step, Trace

if TYPE_CHECKING:
    from profiler.progress import Progress


class _RunWarnings:
    """The inputs of `input_warnings` over a stream of runs: counts, and the first example of each in
    the one step order (start time, then line), as the whole-file analysis names it."""

    def __init__(self) -> None:
        self.file_warnings: tuple[str, ...] = ()
        self.no_content = 0
        self.no_content_first: tuple[tuple[float, int], str] | None = None
        self.absent = 0
        self.absent_first: tuple[tuple[float, int], Step] | None = None

    def add(self, trace: Trace) -> None:
        from profiler.trace.model import step_order_key

        self.file_warnings = trace.warnings or self.file_warnings
        for position, step in enumerate(trace.steps):
            if step.kind != "llm":
                continue
            key = step_order_key(step, step.line if step.line is not None else position)
            if step.prompt.level == "none":
                self.no_content += 1
                if self.no_content_first is None or key < self.no_content_first[0]:
                    self.no_content_first = (key, f"{step.run_id}/{step.step_id}")
            if step.attributes.get("usage_absent"):
                self.absent += 1
                if self.absent_first is None or key < self.absent_first[0]:
                    self.absent_first = (key, step)


def _indented(value: Any, by: str) -> str:
    """`value` as `json.dump(..., indent=2)` writes it nested `by` deeper (JSON text has no raw
    newline inside a string, so every newline starts a line of structure)."""
    return by + dumps(value, indent=2).replace("\n", "\n" + by)


def run_traces(path: Path) -> Iterator[Trace] | None:
    """`iter_run_traces(path)`, its first run already read; None when `path` is not a ctxprof trace
    (the caller reads it whole, importing it). Other malformed input raises as `iter_run_traces` does."""
    from profiler.errors import TraceFormatError
    from profiler.trace.io import iter_run_traces

    traces = iter_run_traces(path)
    try:
        first = next(traces, None)
    except TraceFormatError as e:
        if e.line == 1 and e.reason.startswith(("not a ctxprof trace", "not JSON")):
            return None
        raise

    def all_traces() -> Iterator[Trace]:
        if first is not None:
            yield first
        yield from traces

    return all_traces()


def write_analysis_json(path: Path, runs: Iterator[Trace], options: ProfileOptions, stream: IO[str],
                        progress: "Progress | None" = None) -> list[str]:
    """Write the analysis document of `path`, whose runs `runs` yields (`run_traces`), to `stream` run
    by run (module docstring) and return its warnings."""
    from profiler.cost import UnpricedSteps, apply_costs
    from profiler.tokens import StepTokenizer
    from profiler.units import CalibrationFindings

    current: list[Trace] = []

    def noted() -> Iterator[Trace]:
        for trace in runs:
            current[:] = [trace]
            yield trace

    analysis_options = AnalysisOptions(scope="run", block_size=options.block_size,
                                       min_repeat=options.min_repeat)
    prices = options.price_table()
    tok = StepTokenizer()
    totals, calibration, unpriced, notes = TotalsSum(), CalibrationFindings(), UnpricedSteps(), _RunWarnings()
    head = dumps({"schema": ANALYSIS_SCHEMA, "options": asdict(analysis_options),
                  "traces": [str(path)], "runs": 0}, indent=2)
    stream.write(head[: -len("0\n}")])
    written = 0
    for part in analyze_each_run(noted(), block_size=options.block_size, min_repeat=options.min_repeat,
                                 tokenizer=tok, progress=progress):
        trace = current[0]
        notes.add(trace)
        if prices is not None:
            part = apply_costs(part, trace, prices, unpriced)
        for run in part.runs:
            for step in run.steps:
                totals.add(step)
                calibration.add(step)
            stream.write(("[\n" if written == 0 else ",\n") + _indented(run.to_dict(), "    "))
            written += 1
    stream.write("[]" if written == 0 else "\n  ]")
    no_content = notes.no_content_first[1] if notes.no_content_first else None
    absent = notes.absent_first[1] if notes.absent_first else None
    warnings = [*notes.file_warnings,
                *input_warnings(notes.no_content, no_content, notes.absent, absent, tok),
                *calibration.warnings(), *unpriced.warnings()]
    tail = dumps({"totals": totals.totals().to_dict(), "warnings": warnings}, indent=2)
    stream.write(",\n" + tail[len("{\n"):] + "\n")
    return warnings
