"""Reading and writing trace files (JSON Lines, see docs/trace-format.md; Parquet in `parquet`).

Writing appends one record per line and flushes it, so a process killed at any moment leaves a
readable file: at most its last line is torn. Reading streams the file; a torn *last* line is reported
as a warning and skipped, any other bad line is an error naming the file, line and field. Files written
by older schema versions are migrated record by record (`MIGRATIONS`); newer ones are refused with an
upgrade hint. Files ending in `.gz` are read and written compressed.

A step's prompt is written as a reference to the parts it shares with the previous step of its run
(`TraceWriter.write_step`: leading messages, tools), so a run's file grows with its new messages, not
with its whole history at every step; readers resolve the references keeping one prompt per open run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping

from profiler.errors import TraceFormatError
from profiler.trace.model import (
    SCHEMA_VERSION,
    Prompt,
    Run,
    Step,
    Trace,
    TraceHeader,
    parse_header,
    shared_parts,
)

# Runs whose last step a writer keeps to refer to (a run past that writes its next step whole).
_OPEN_RUNS = 1024

# schema version -> function upgrading one record of that version to the next version.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # Version 2 added `messages_from` / `tools_from` to prompts; every version-1 record is valid as is.
    1: lambda record: record,
}


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


# -- input limits (docs/trace-format.md, "Input limits") ---------------------------------------------
# A line longer than this is refused before it is read whole, so one runaway line cannot take gigabytes.
DEFAULT_MAX_LINE_MB = 64
MAX_LINE_ENV = "CTXPROF_MAX_LINE_MB"
# JSON nesting deeper than this is refused (real traces nest a few levels; Python recurses per level).
MAX_NESTING_DEPTH = 100
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def max_line_chars() -> int:
    """The longest line (in characters) readers accept: `$CTXPROF_MAX_LINE_MB` MiB (set by the
    `--max-line-mb` option), default `DEFAULT_MAX_LINE_MB`."""
    value = os.environ.get(MAX_LINE_ENV)
    try:
        mb = float(value) if value else DEFAULT_MAX_LINE_MB
    except ValueError:
        raise TraceFormatError(f"${MAX_LINE_ENV} must be a number of MiB, got {value!r}") from None
    return max(1, int(mb * 1024 * 1024))


def read_error(path: Path, e: BaseException, line: int | None = None) -> TraceFormatError:
    """The `TraceFormatError` for an exception raised while reading `path` (decoding or decompressing)."""
    if isinstance(e, UnicodeDecodeError):
        return TraceFormatError(f"is not UTF-8 text (byte 0x{e.object[e.start]:02x} cannot be decoded)",
                                path=path, line=line,
                                hint="give a UTF-8 JSON file; is it binary, or in another encoding?")
    if isinstance(e, (EOFError, gzip.BadGzipFile, zlib.error)) or (
            isinstance(e, OSError) and path.suffix == ".gz" and e.errno is None):
        return TraceFormatError(f"is a corrupt or truncated gzip file ({e})", path=path, line=line,
                                hint="copy or compress it again; `gzip -t FILE` checks it")
    if isinstance(e, OSError):
        return TraceFormatError(f"cannot be read ({e.strerror or e})", path=path, line=line)
    return TraceFormatError(f"cannot be read ({e})", path=path, line=line)


def open_input(path: str | os.PathLike[str]) -> IO[str]:
    """Open a UTF-8 (or gzip-compressed `.gz`) input file for reading; failures are `TraceFormatError`s."""
    path = Path(path)
    try:
        return _open_text(path, "r")
    except FileNotFoundError:
        raise TraceFormatError("no such file", path=path, hint="check the path") from None
    except IsADirectoryError:
        raise TraceFormatError("is a directory, not a file", path=path,
                               hint="give the file, or `ctxprof import` for folders") from None
    except OSError as e:
        raise read_error(path, e) from None


def iter_lines(path: str | os.PathLike[str], *, max_chars: int | None = None
               ) -> Iterator[tuple[int, str]]:
    """`(line_number, text)` for each line of `path`, its newline kept (a last line without one is
    maybe torn). Reads line by line, never more than `max_chars` (default `max_line_chars()`) at a
    time; a longer line, undecodable text or a corrupt gzip stream is a `TraceFormatError`."""
    path = Path(path)
    limit = max_line_chars() if max_chars is None else max_chars
    with open_input(path) as f:
        lineno = 0
        while True:
            lineno += 1
            try:
                raw = f.readline(limit + 1)
            except (UnicodeDecodeError, EOFError, zlib.error, OSError) as e:
                raise read_error(path, e, lineno) from None
            if not raw:
                return
            if len(raw) > limit and not raw.endswith("\n"):
                raise TraceFormatError(
                    f"line is longer than {limit / (1024 * 1024):g} MiB", path=path, line=lineno,
                    hint=f"if the file is right, raise the limit with `ctxprof --max-line-mb N ...` "
                         f"(or ${MAX_LINE_ENV})")
            yield lineno, raw


def json_error_reason(e: json.JSONDecodeError) -> str:
    """A JSON syntax error in words, telling a cut-off line from a malformed one."""
    doc = e.doc
    msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
    rest = doc[e.pos:]
    if not doc.strip():
        return "not valid JSON (empty)"
    if e.pos >= len(doc.rstrip()) or msg.startswith("Unterminated string") or (
            msg.startswith("Invalid control character") and not rest.rstrip("\r\n")):
        return "not valid JSON (it ends in the middle of a value: the line or file is truncated)"
    return f"not valid JSON ({msg} at column {e.colno})"


def _nesting_error(path: Path | None, line: int | None) -> TraceFormatError:
    return TraceFormatError(f"JSON nests deeper than {MAX_NESTING_DEPTH} levels", path=path, line=line,
                            hint="ctxprof reads traces nested at most that deep; flatten the attribute")


def _too_deep(value: Any) -> bool:
    """Whether `value` nests arrays and objects deeper than `MAX_NESTING_DEPTH`: a walk of containers
    only (no field paths), since real traces' lines hold more brackets than that in all and a walk
    naming every value cost as much as parsing the line."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_NESTING_DEPTH:
            return True
        for v in (node.values() if isinstance(node, dict) else node):
            if isinstance(v, (dict, list)):
                push((v, depth + 1))
    return False


def check_json_value(value: Any, raw: str, *, path: Path | None, line: int | None) -> None:
    """Refuse what json.loads accepts but ctxprof cannot handle: nesting deeper than
    `MAX_NESTING_DEPTH` and lone UTF-16 surrogates (`"\\ud800"`, not Unicode text). The walk runs only
    when the raw text could hold either."""
    deep = raw.count("[") + raw.count("{") > MAX_NESTING_DEPTH
    surrogate = _SURROGATE_ESCAPE.search(raw) is not None
    if not surrogate:
        if deep and isinstance(value, (dict, list)) and _too_deep(value):
            raise _nesting_error(path, line)
        return
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_NESTING_DEPTH:
                raise _nesting_error(path, line)
            for k, v in node.items():
                if surrogate:
                    _check_text(k, path, line, where)
                stack.append((v, depth + 1, f"{where}.{k}" if where else str(k)))
        elif isinstance(node, list):
            if depth > MAX_NESTING_DEPTH:
                raise _nesting_error(path, line)
            for i, v in enumerate(node):
                stack.append((v, depth + 1, f"{where}[{i}]"))
        elif surrogate and isinstance(node, str):
            _check_text(node, path, line, where)


def _check_text(text: str, path: Path | None, line: int | None, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        from profiler.safe_text import visible

        raise TraceFormatError(
            f"holds a lone UTF-16 surrogate ({visible(text[e.start])}), which is not Unicode text",
            path=path, line=line, field=visible(where) or None,
            hint="fix the program that wrote it, or replace the escape with \\ufffd") from None


def parse_json(raw: str, *, path: Path | None, line: int | None, hint: str | None = None,
               first_line: int = 1) -> Any:
    """`json.loads(raw)` checked by `check_json_value`; every failure a `TraceFormatError` naming
    `path` and the line (`first_line` is the file line `raw` starts on)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        where = line if line is not None else first_line + e.lineno - 1
        raise TraceFormatError(json_error_reason(e), path=path, line=where, hint=hint) from None
    except RecursionError:
        raise _nesting_error(path, line) from None
    check_json_value(value, raw, path=path, line=line)
    return value


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class TraceWriter:
    """Append records to a trace file; safe to share between threads.

    Each `write_*` call writes exactly one line and flushes it (and fsyncs it when `fsync=True`), under a
    lock, so concurrent writers never interleave within a line. Opening an existing trace appends to it
    after checking its header.
    """

    def __init__(self, path: str | os.PathLike[str], header: TraceHeader | None = None, *,
                 fsync: bool = False) -> None:
        self.path = Path(path)
        from profiler.trace.parquet import PARQUET_SUFFIXES, is_parquet

        if self.path.suffix.lower() in PARQUET_SUFFIXES or (self.path.exists() and is_parquet(self.path)):
            # Appending lines would corrupt a Parquet file; it is written whole instead.
            raise TraceFormatError("a Parquet trace cannot be appended to", path=self.path,
                                   hint="record to a .jsonl file, then `ctxprof export --format parquet`")
        self._lock = threading.Lock()
        self._fsync = fsync
        # The last step written of each recent run (id, prompt), most recent last: what the next
        # step of the run may refer to. Appending to an existing file starts empty (whole steps).
        self._previous: OrderedDict[str, tuple[str, Prompt]] = OrderedDict()
        exists = self.path.exists() and self.path.stat().st_size > 0
        # Steps refer to the previous step's shared parts only in a file whose header says a version
        # that has them: appended to a version-1 file they are written whole, as its readers expect.
        self._refer = True
        if exists:
            # Validates the header (and refuses newer versions) before appending.
            first = next(iter_records(self.path), None)
            self._refer = first is not None and first[1].get("schema_version", 0) >= 2
            self._drop_torn_line()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = _open_text(self.path, "a")
        if not exists:
            from profiler import __version__

            header = header or TraceHeader()
            if header.producer_version is None and header.producer == "ctxprof":
                header = TraceHeader(**{**header.__dict__, "producer_version": __version__})
            if header.created_unix_s is None:
                header = TraceHeader(**{**header.__dict__, "created_unix_s": time.time()})
            self.write(header.to_dict())

    def _drop_torn_line(self) -> None:
        """A crashed writer may have left a torn last line. Cut it off before appending: ended with a
        newline it would become an unreadable line in the middle of the file (its record was lost
        with the crash either way)."""
        if self.path.suffix == ".gz":
            return
        with open(self.path, "rb+") as f:
            end = f.seek(0, io.SEEK_END)
            pos = end
            while pos > 0:
                start = max(0, pos - 65536)
                f.seek(start)
                chunk = f.read(pos - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    cut = start + newline + 1
                    if cut < end:
                        f.seek(cut)
                        if _is_record(f.read(end - cut)):
                            f.write(b"\n")  # whole record, only its newline missing: keep it
                        else:
                            f.truncate(cut)
                    return
                pos = start

    def write_raw(self, line: str) -> None:
        """One line as it is. A step written this way is not known to `write_step`, so every run's
        next step is written whole afterwards."""
        with self._lock:
            self._previous.clear()
            self._write_locked(line)

    def _write_locked(self, line: str) -> None:
        if self._file is None:
            raise ValueError(f"trace writer for {self.path} is closed")
        self._file.write(line + "\n")
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def write(self, record: Mapping[str, Any]) -> None:
        """One record as it is; after a `step` record, its run's next step is written whole."""
        line = _dumps(record)
        with self._lock:
            if record.get("type") == "step":
                self._previous.pop(str(record.get("run_id")), None)
            self._write_locked(line)

    def write_run(self, run: Run) -> None:
        self.write(run.to_dict())

    def write_run_end(self, run: Run) -> None:
        with self._lock:
            self._previous.pop(run.run_id, None)
            self._write_locked(_dumps(run.end_dict()))

    def write_step(self, step: Step) -> None:
        """One step; the leading messages and the tools it shares with the previous step of its run
        (written by this writer) are written as a reference to that step, so a run's file grows with
        its new messages, not with its whole history at every step."""
        with self._lock:
            previous = self._previous.pop(step.run_id, None)
            line = _dumps(step.to_dict(shared_parts(previous, step.prompt) if self._refer else None))
            self._write_locked(line)
            self._previous[step.run_id] = (step.step_id, step.prompt)
            if len(self._previous) > _OPEN_RUNS:
                self._previous.popitem(last=False)  # that run's next step is written whole

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_record(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def write_trace(trace: Trace, path: str | os.PathLike[str],
                progress: Callable[[int, int], None] | None = None) -> None:
    """Write a whole trace (header, then each run, its steps and its end); `progress`, when given, is
    called with (steps, tokens) after each step."""
    with TraceWriter(path, trace.header) as w:
        for run in trace.runs:
            w.write_run(run)
            for step in run.steps:
                w.write_step(step)
                if progress is not None:
                    progress(1, step.prompt.num_tokens or 0)
            if run.end_unix_s is not None or run.status is not None or run.gpu is not None:
                w.write_run_end(run)


def iter_records(path: str | os.PathLike[str],
                 warnings: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, record)` for every line of a trace, the header first, migrated to the
    current schema version. A torn last line is skipped and described in `warnings`. Parquet traces
    (`profiler.trace.parquet`) yield the same records, numbered by row. Records are as written: a
    step's prompt may refer to the previous step of its run (`messages_from`, `tools_from`);
    `load_trace` and `iter_run_traces` resolve those."""
    path = Path(path)
    from profiler.trace.parquet import is_parquet, iter_parquet_records

    if is_parquet(path):
        yield from iter_parquet_records(path)
        return
    version = SCHEMA_VERSION
    header_seen = False
    pending: tuple[int, str] | None = None
    for lineno, raw in iter_lines(path):
        if pending is not None:
            yield _decode(path, *pending, version=version)
            pending = None
        if not raw.strip():
            continue
        if not header_seen:
            try:
                record = parse_json(raw, path=path, line=lineno)
            except TraceFormatError as e:
                if not e.reason.startswith("not valid JSON"):
                    raise
                raise TraceFormatError(
                    "not JSON: a trace file is JSON Lines starting with a ctxprof header",
                    path=path, line=lineno,
                    hint="to bring in traces from other tools, use `ctxprof import`") from None
            header = parse_header(record, path, lineno)
            version = header.schema_version
            header_seen = True
            yield lineno, _migrate(record, version)
            continue
        if not raw.endswith("\n"):
            pending = (lineno, raw)  # maybe torn: decide once we know it is the last line
            continue
        yield _decode(path, lineno, raw, version=version)
    if pending is not None:
        lineno, raw = pending
        try:
            yield _decode(path, lineno, raw, version=version)
        except TraceFormatError:
            if warnings is not None:
                warnings.append(f"{path}:{lineno}: last line is incomplete (torn write); skipped it")


def _decode(path: Path, lineno: int, raw: str, *, version: int) -> tuple[int, dict[str, Any]]:
    record = parse_json(raw, path=path, line=lineno)
    if not isinstance(record, dict):
        raise TraceFormatError(f"a record must be a JSON object, got {type(record).__name__}",
                               path=path, line=lineno)
    if not isinstance(record.get("type"), str):
        raise TraceFormatError("is required and must be a string", path=path, line=lineno, field="type")
    return lineno, _migrate(record, version)


def _migrate(record: dict[str, Any], version: int) -> dict[str, Any]:
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version += 1
    return record


def _read_objects(path: Path, warnings: list[str], *, forget_ended: bool = False) -> Iterator[tuple[str, Any]]:
    """The records of a trace as objects, in file order: ("header", TraceHeader), ("step", Step),
    ("run", Run), ("run_end", (run id, line, record)); a bad record raises naming its line. Unknown
    record types are noted in `warnings` at the end. The one reader behind `load_trace` and
    `iter_run_traces`; `forget_ended` drops a run's step ids at its `run_end` (bounded memory)."""
    header: TraceHeader | None = None
    seen_steps: dict[str, dict[str, int]] = {}
    previous: dict[str, tuple[str, Prompt]] = {}  # per run: the last step's id and prompt
    unknown_types: set[str] = set()
    for lineno, record in iter_records(path, warnings):
        kind = record.get("type")
        try:
            if header is None:
                header = TraceHeader.from_dict(record)
                yield "header", header
                continue
            if kind == "header":
                continue
            if kind == "step":
                step = Step.from_dict(record, line=lineno, previous=previous.get(str(record.get("run_id"))))
                previous[step.run_id] = (step.step_id, step.prompt)
                ids = seen_steps.setdefault(step.run_id, {})
                if step.step_id in ids:
                    raise TraceFormatError(
                        f"duplicate step id {step.step_id!r} in run {step.run_id!r} "
                        f"(first on line {ids[step.step_id]})", field="step_id")
                ids[step.step_id] = lineno
                yield "step", step
            elif kind == "run":
                yield "run", Run.from_dict(record)
            elif kind == "run_end":
                run_id = str(record.get("run_id"))
                if forget_ended:
                    seen_steps.pop(run_id, None)
                    previous.pop(run_id, None)
                yield "run_end", (run_id, lineno, record)
            else:
                unknown_types.add(str(kind))
        except TraceFormatError as e:
            raise TraceFormatError(e.reason, path=path, line=lineno, field=e.field, hint=e.hint) from None
    if header is None:
        raise TraceFormatError("is empty", path=path, hint="a trace starts with a ctxprof header line")
    for t in sorted(unknown_types):
        warnings.append(f"{path}: ignored records of unknown type {t!r}")


def _ended(run: Run, path: Path, lineno: int, record: dict[str, Any]) -> Run:
    try:
        return run.with_end(record)
    except TraceFormatError as e:
        raise TraceFormatError(e.reason, path=path, line=lineno, field=e.field) from None


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a whole trace file into a `Trace` (runs with their steps in start order)."""
    path = Path(path)
    warnings: list[str] = []
    header = TraceHeader()
    runs: dict[str, Run] = {}
    ends: dict[str, tuple[int, dict[str, Any]]] = {}
    steps: list[Step] = []
    for kind, obj in _read_objects(path, warnings):
        if kind == "step":
            steps.append(obj)
        elif kind == "run":
            runs.setdefault(obj.run_id, obj)
        elif kind == "run_end":
            ends[obj[0]] = obj[1:]
        else:
            header = obj
    for run_id, (lineno, record) in ends.items():
        if run_id in runs:
            runs[run_id] = _ended(runs[run_id], path, lineno, record)
    trace = Trace.from_steps(steps, header=header, runs=runs.values(), path=str(path))
    return Trace(header=trace.header, runs=trace.runs, path=trace.path, warnings=tuple(warnings))


def iter_run_traces(path: str | os.PathLike[str]) -> Iterator[Trace]:
    """Read a trace file run by run: one `Trace` per run (with the file's header and path), yielded
    as soon as the run's `run_end` record is read, the runs without one at the end of the file, so
    that memory holds the open runs only (a file larger than memory can be read when its runs end as
    it goes). A run's steps are what `load_trace` gives it, in the same order; the last `Trace`
    carries the file's warnings. A step of a run after that run's `run_end` is an error."""
    path = Path(path)
    warnings: list[str] = []
    header = TraceHeader()
    runs: dict[str, Run] = {}
    open_steps: dict[str, list[Step]] = {}
    ended: set[str] = set()

    def one(run_id: str, steps: list[Step]) -> Trace:
        run = runs.pop(run_id, None)
        return Trace.from_steps(steps, header=header, runs=() if run is None else (run,), path=str(path))

    for kind, obj in _read_objects(path, warnings, forget_ended=True):
        if kind == "step":
            if obj.run_id in ended:
                raise TraceFormatError(f"a step of run {obj.run_id!r} comes after the run's run_end record",
                                       path=path, line=obj.line, field="run_id",
                                       hint="read the file whole (load_trace) or move the run_end record last")
            open_steps.setdefault(obj.run_id, []).append(obj)
        elif kind == "run":
            runs.setdefault(obj.run_id, obj)
        elif kind == "run_end":
            run_id, lineno, record = obj
            if run_id in runs:
                runs[run_id] = _ended(runs[run_id], path, lineno, record)
            if run_id in open_steps or run_id in runs:
                ended.add(run_id)
                yield one(run_id, open_steps.pop(run_id, []))
        else:
            header = obj
    rest = [*open_steps, *(r for r in runs if r not in open_steps)]
    for i, run_id in enumerate(rest):
        trace = one(run_id, open_steps.pop(run_id, []))
        yield replace(trace, warnings=tuple(warnings)) if i == len(rest) - 1 else trace
    if not rest and warnings:
        yield Trace(header=header, runs=(), path=str(path), warnings=tuple(warnings))


def load_traces(paths: Iterable[str | os.PathLike[str]]) -> list[Trace]:
    return [load_trace(p) for p in paths]
