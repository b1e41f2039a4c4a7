"""ctxprof traces as Apache Parquet: one row per step, the same fields as the JSONL step record.

Contract: `write_parquet(trace, path)` then `iter_parquet_records(path)` yields the same records
(`header`, `run`, `run_end`, `step` dicts) that `profiler.trace.io.iter_records` yields for the JSONL
file, so `load_trace` reads either format and the analysis gives identical figures.

Layout (see docs/trace-format.md, "Parquet"):
- one row per step, in the order of the source file (ties in start time are broken by file order, so
  that order is part of the data); columns are the step fields flattened with `.` (`prompt.token_ids`,
  `usage.input_tokens`); token ids and block hashes are `list<int64>` (`list<uint64>` when a hash does
  not fit a signed 64-bit integer); free-form objects (chat messages, tools, the assistant message,
  attributes, GPU figures) are JSON text columns, so every content level is kept exactly;
- the header and the run records (with their ends) live in the file's key-value metadata
  (`ctxprof.header`, `ctxprof.runs`), so runs without steps and their attributes survive.

A row's "line" in error messages is its 1-based row number. pyarrow is optional
(`pip install 'ctxprof[parquet]'`); it is imported only when a Parquet file is read or written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from profiler.errors import ProfilerError, TraceFormatError
from profiler.trace.model import Trace

PARQUET_MAGIC = b"PAR1"
PARQUET_SUFFIXES = (".parquet", ".pq")
HEADER_KEY = b"ctxprof.header"
RUNS_KEY = b"ctxprof.runs"
# Rows per row group: a few MB of hashes-level steps; readers stream one group at a time.
ROW_GROUP_ROWS = 65536

# (column, path in the step record, kind). Kinds: str, float, int, bool, ints (list of integers),
# json (any JSON value, stored as its text).
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("run_id", ("run_id",), "str"),
    ("step_id", ("step_id",), "str"),
    ("parent_step_id", ("parent_step_id",), "str"),
    ("name", ("name",), "str"),
    ("kind", ("kind",), "str"),
    ("model", ("model",), "str"),
    ("provider", ("provider",), "str"),
    ("start_unix_s", ("start_unix_s",), "float"),
    ("end_unix_s", ("end_unix_s",), "float"),
    ("ttft_ms", ("ttft_ms",), "json"),
    ("prompt.messages", ("prompt", "messages"), "json"),
    ("prompt.tools", ("prompt", "tools"), "json"),
    ("prompt.text", ("prompt", "text"), "str"),
    ("prompt.token_ids", ("prompt", "token_ids"), "ints"),
    ("prompt.tokenizer", ("prompt", "tokenizer"), "str"),
    ("prompt.block_hashes", ("prompt", "block_hashes"), "ints"),
    ("prompt.block_size", ("prompt", "block_size"), "int"),
    ("prompt.num_tokens", ("prompt", "num_tokens"), "int"),
    ("prompt.chained", ("prompt", "chained"), "bool"),
    ("output.message", ("output", "message"), "json"),
    ("output.text", ("output", "text"), "str"),
    ("output.token_ids", ("output", "token_ids"), "ints"),
    ("output.block_hashes", ("output", "block_hashes"), "ints"),
    ("output.num_tokens", ("output", "num_tokens"), "int"),
    ("output.finish_reason", ("output", "finish_reason"), "str"),
    ("usage.input_tokens", ("usage", "input_tokens"), "int"),
    ("usage.cache_read_tokens", ("usage", "cache_read_tokens"), "int"),
    ("usage.cache_write_tokens", ("usage", "cache_write_tokens"), "int"),
    ("usage.output_tokens", ("usage", "output_tokens"), "int"),
    ("usage.reasoning_tokens", ("usage", "reasoning_tokens"), "int"),
    ("gpu", ("gpu",), "json"),
    ("attributes", ("attributes",), "json"),
)

_INT64_MAX = 2**63 - 1


def require_pyarrow() -> Any:
    """pyarrow, or a one-line error naming the extra that installs it."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ModuleNotFoundError:
        raise ProfilerError("Parquet traces need pyarrow: pip install 'ctxprof[parquet]'") from None
    return pyarrow


def is_parquet(path: str | os.PathLike[str]) -> bool:
    """A Parquet file by its suffix, else by its magic bytes (a trace file may have any name)."""
    p = Path(path)
    if p.suffix.lower() in PARQUET_SUFFIXES:
        return True
    if p.suffix == ".gz":
        return False
    try:
        with open(p, "rb") as f:
            return f.read(4) == PARQUET_MAGIC
    except OSError:
        return False  # the JSONL reader reports the missing file or the directory


def _get(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _arrow_type(pa: Any, kind: str, values: list[Any]) -> Any:
    if kind == "str" or kind == "json":
        return pa.string()
    if kind == "float":
        return pa.float64()
    if kind == "int":
        return pa.int64()
    if kind == "bool":
        return pa.bool_()
    # Hashes are unsigned 64-bit in some producers; keep them exact.
    big = any(v is not None and any(x > _INT64_MAX for x in v) for v in values)
    return pa.list_(pa.uint64() if big else pa.int64())


def step_rows(trace: Trace) -> list[dict[str, Any]]:
    """The step records of `trace` in file order (their source line, else their position)."""
    steps = list(trace.steps)
    order = sorted(range(len(steps)),
                   key=lambda i: (steps[i].line if steps[i].line is not None else i, i))
    return [steps[i].to_dict() for i in order]


def write_parquet(trace: Trace, path: str | os.PathLike[str]) -> None:
    """Write `trace` as a Parquet file (one row per step; header and runs in the metadata)."""
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    records = step_rows(trace)
    arrays, fields = [], []
    for name, key, kind in COLUMNS:
        values = [_get(r, key) for r in records]
        if kind == "json":
            values = [None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
                      for v in values]
        typ = _arrow_type(pa, kind, values)
        arrays.append(pa.array(values, type=typ))
        fields.append(pa.field(name, typ))
    runs = []
    for run in trace.runs:
        entry = {"run": run.to_dict()}
        if run.end_unix_s is not None or run.status is not None or run.gpu is not None:
            entry["end"] = run.end_dict()
        runs.append(entry)
    metadata = {HEADER_KEY: json.dumps(trace.header.to_dict(), ensure_ascii=False),
                RUNS_KEY: json.dumps(runs, ensure_ascii=False)}
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path), row_group_size=ROW_GROUP_ROWS, compression="zstd")


def iter_parquet_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(row, record)` like `iter_records`: the header (row 0), the run and run-end records
    (row 0), then one step record per row (1-based)."""
    require_pyarrow()
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        f = pq.ParquetFile(str(path))
    except FileNotFoundError:
        raise TraceFormatError("no such file", path=path, hint="check the path") from None
    except Exception as e:  # pyarrow raises its own ArrowInvalid/OSError family for a bad file
        raise TraceFormatError(f"cannot be read as Parquet ({e})", path=path) from None
    meta = f.schema_arrow.metadata or {}
    if HEADER_KEY not in meta:
        raise TraceFormatError("is a Parquet file but not a ctxprof trace (no ctxprof.header metadata)",
                               path=path, hint="write one with `ctxprof export --format parquet`")
    try:
        header = json.loads(meta[HEADER_KEY])
        runs = json.loads(meta.get(RUNS_KEY, b"[]"))
    except ValueError:
        raise TraceFormatError("its ctxprof metadata is not valid JSON", path=path) from None
    from profiler.trace.model import parse_header

    parse_header(header, path, 0)
    yield 0, header
    for entry in runs:
        yield 0, entry["run"]
        if "end" in entry:
            yield 0, entry["end"]
    present = set(f.schema_arrow.names)
    columns = [(name, key, kind) for name, key, kind in COLUMNS if name in present]
    row = 0
    for batch in f.iter_batches(columns=[c[0] for c in columns]):
        data = [batch.column(i).to_pylist() for i in range(len(columns))]
        for values in zip(*data):
            row += 1
            record: dict[str, Any] = {"type": "step"}
            for (name, key, kind), value in zip(columns, values):
                if value is None:
                    continue
                if kind == "json":
                    try:
                        value = json.loads(value)
                    except ValueError:
                        raise TraceFormatError("is not valid JSON", path=path, line=row,
                                               field=name) from None
                target = record
                for part in key[:-1]:
                    target = target.setdefault(part, {})
                target[key[-1]] = value
            yield row, record
