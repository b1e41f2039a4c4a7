"""Mooncake block-hash traces (kvcache-ai/Mooncake, `FAST25-release/traces/*.jsonl`) as ctxprof traces.

Each line is one request: `timestamp` (ms since the first request), `input_length` and
`output_length` (tokens) and `hash_ids`, the ids of the prompt's 512-token blocks. The ids are
chained: equal ids at the same position mean equal prefixes up to that block. The last block may be
partial (`len(hash_ids) == ceil(input_length / 512)`).

Each request becomes a content-free LLM step: `Prompt(block_hashes=hash_ids, chained=True,
block_size=512, num_tokens=input_length)`, `Output(num_tokens=output_length)`, and the lengths as
usage (the serving system's own counts). Start times are the relative timestamps in seconds.

Grouping: the whole file is ONE run (run id: the file name without extension). The trace keeps no
session or user identity, so one run per request would claim the requests are independent, and
`ctxprof analyze` in its default `run` scope would then see no reuse at all; as one run, run scope
and global scope agree and show what a shared serving cache sees, which is what the trace is for.
What this grouping reconstructs is recorded in the header's `attributes["reconstructed"]`.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from profiler.errors import TraceFormatError
from profiler.importers.common import iter_jsonl
from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage

MOONCAKE_BLOCK_SIZE = 512


def _int(record: dict[str, Any], key: str, path: Path, line: int) -> int:
    value = record.get(key)
    if value is None:
        raise TraceFormatError("is required but missing", path=path, line=line, field=key,
                               hint="a Mooncake record has timestamp, input_length, output_length, hash_ids")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TraceFormatError(f"must be an integer >= 0, got {value!r}", path=path, line=line, field=key)
    return value


def _record_to_step(record: Any, path: Path, line: int, run_id: str, block_size: int) -> Step:
    if not isinstance(record, dict):
        raise TraceFormatError(f"expected a JSON object, got {type(record).__name__}", path=path, line=line)
    timestamp = record.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(
            timestamp) or timestamp < 0:
        raise TraceFormatError(f"must be a number of milliseconds >= 0, got {timestamp!r}", path=path,
                               line=line, field="timestamp")
    input_length = _int(record, "input_length", path, line)
    output_length = _int(record, "output_length", path, line)
    hash_ids = record.get("hash_ids")
    if not isinstance(hash_ids, list):
        raise TraceFormatError(f"must be a list of block ids, got {type(hash_ids).__name__}", path=path,
                               line=line, field="hash_ids")
    for i, h in enumerate(hash_ids):
        if isinstance(h, bool) or not isinstance(h, int):
            raise TraceFormatError(f"item {i} must be an integer block id, got {h!r}", path=path, line=line,
                                   field="hash_ids")
    if len(hash_ids) > math.ceil(input_length / block_size):
        raise TraceFormatError(
            f"has {len(hash_ids)} block ids, more than {input_length} input tokens fill in "
            f"{block_size}-token blocks", path=path, line=line, field="hash_ids",
            hint="if the trace uses another block size, pass block_size=")
    return Step(
        run_id=run_id,
        step_id=f"{line}",
        kind="llm",
        start_unix_s=timestamp / 1000.0,
        prompt=Prompt(block_hashes=tuple(hash_ids), block_size=block_size, num_tokens=input_length,
                      chained=True),
        output=Output(num_tokens=output_length),
        usage=Usage(input_tokens=input_length, output_tokens=output_length),
        line=line,
    )


def import_mooncake(path: str | os.PathLike[str], *, block_size: int = MOONCAKE_BLOCK_SIZE,
                    run_id: str | None = None) -> Trace:
    """Read a Mooncake trace file into a one-run, content-free `Trace` (see the module docstring)."""
    source = Path(path)
    rid = run_id or source.name.split(".")[0]
    steps: list[Step] = []
    warnings: list[str] = []
    for lineno, record in iter_jsonl(source, warnings,
                                     hint="a Mooncake trace is JSON Lines with hash_ids and input_length"):
        steps.append(_record_to_step(record, source, lineno, rid, block_size))
    header = TraceHeader(
        producer="mooncake",
        content_level="hashes",
        attributes={
            "source_format": "mooncake",
            "source": source.name,
            "block_size": block_size,
            "reconstructed": [
                "runs: the whole file is one run (the trace has no session ids)",
                "start_unix_s: the request's timestamp (ms since the first request) / 1000, not wall time",
                "usage: input_length and output_length as recorded by the trace",
            ],
        },
    )
    run = Run(run_id=rid, workflow="mooncake", start_unix_s=0.0)
    trace = Trace.from_steps(steps, header=header, runs=[run], path=str(source))
    return replace(trace, warnings=tuple(warnings))
