"""Inputs of the distributed engine: trace files, folders, globs and URIs.

Contract: `resolve_inputs(items)` turns in-memory `Trace`s (kept as they are) and strings naming a
file, a folder (its trace files, recursively, sorted), a glob (`traces/*.parquet`) or a URI that
pyarrow's file systems read (`s3://`, `gs://`, `hdfs://`, `file://`) into a list of `Trace`s and
file names, in the order given; a name that matches nothing is a one-line error naming it.
`load_source(source)` reads one of them (inside a Ray task): local names with
`profiler.trace.load_trace`, URIs through pyarrow into a temporary file first.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Union

from profiler.errors import ProfilerError, TraceFormatError
from profiler.trace.model import Trace

Source = Union[Trace, str, "os.PathLike[str]"]

TRACE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet", ".pq")
_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# A URI that went through pathlib (as the CLI's Path arguments do) lost one slash: s3:/bucket/key.
_FLATTENED_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/(?!/)")
_GLOB_CHARS = re.compile(r"[*?\[]")


def normalize_name(name: str | os.PathLike[str]) -> str:
    text = os.fspath(name)
    if _FLATTENED_URI.match(text) and not os.path.exists(text):
        text = _FLATTENED_URI.sub(r"\1://", text, count=1)
    return text


def _is_trace_file(name: str) -> bool:
    return name.lower().endswith(TRACE_SUFFIXES)


def resolve_inputs(items: Iterable[Source | os.PathLike[str]]) -> list[Source]:
    out: list[Source] = []
    for item in items:
        if isinstance(item, Trace):
            out.append(item)
            continue
        name = normalize_name(item)
        found = _resolve_uri(name) if _URI.match(name) else _resolve_local(name)
        if not found:
            raise ProfilerError(f"{name}: no trace files found (expected .jsonl, .jsonl.gz or .parquet "
                                "files)")
        out.extend(found)
    return out


def _resolve_local(name: str) -> list[str]:
    if _GLOB_CHARS.search(name) and not os.path.exists(name):
        return sorted(p for p in glob.glob(name, recursive=True) if os.path.isfile(p))
    if os.path.isdir(name):
        return sorted(str(p) for p in Path(name).rglob("*") if p.is_file() and _is_trace_file(p.name))
    if not os.path.exists(name):
        raise ProfilerError(f"{name}: no such file or folder")
    return [name]


def _filesystem(uri: str) -> tuple[Any, str]:
    try:
        from pyarrow import fs
    except ModuleNotFoundError:
        raise ProfilerError("reading URIs needs pyarrow: pip install 'ctxprof[ray]'") from None
    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for unknown schemes, bad buckets
        raise ProfilerError(f"{uri}: cannot open its file system ({_first_line(e)})") from None


def _resolve_uri(uri: str) -> list[str]:
    from pyarrow import fs as pafs

    scheme = _URI.match(uri).group(0)  # type: ignore[union-attr]
    pattern = None
    if _GLOB_CHARS.search(uri):
        parent, pattern = uri.rsplit("/", 1)
        filesystem, path = _filesystem(parent)
    else:
        filesystem, path = _filesystem(uri)
    try:
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise ProfilerError(f"{uri}: not found")
        if info.type == pafs.FileType.File and pattern is None:
            return [uri]
        listing = filesystem.get_file_info(pafs.FileSelector(path, recursive=pattern is None))
    except ProfilerError:
        raise
    except Exception as e:
        raise ProfilerError(f"{uri}: cannot be listed ({_first_line(e)})") from None
    names = sorted(i.path for i in listing if i.type == pafs.FileType.File)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n.rsplit("/", 1)[-1], pattern)]
    else:
        names = [n for n in names if _is_trace_file(n)]
    prefix = "" if scheme == "file://" else scheme
    return [prefix + n if prefix else "file://" + n for n in names]


def load_source(source: Source) -> Trace:
    """Read one input (inside a task). URIs are copied to a local temporary file first."""
    if isinstance(source, Trace):
        return source
    from profiler.trace.io import load_trace

    if not _URI.match(source):
        return load_trace(source)
    filesystem, path = _filesystem(source)
    suffix = "".join(Path(path).suffixes[-2:]) or ".jsonl"
    with tempfile.TemporaryDirectory(prefix="ctxprof-") as tmp:
        local = os.path.join(tmp, "trace" + suffix)
        try:
            with filesystem.open_input_stream(path) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except Exception as e:
            raise TraceFormatError(f"cannot be read ({_first_line(e)})", path=source) from None
        trace = load_trace(local)
    warnings = tuple(w.replace(local, source) for w in trace.warnings)
    return Trace(header=trace.header, runs=trace.runs, path=source, warnings=warnings)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
