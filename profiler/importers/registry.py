"""Find and run an importer by format name (what `ctxprof import FORMAT` uses).

`IMPORTERS` (in `profiler.importers`) names each format's function as "module:function"; a format
whose module cannot be imported is reported as unavailable, never as a crash. Importers take either `sources` (a list of files or folders, walked by
the importer itself) or a single `path`; for the latter, folders are walked here and the per-file
traces merged.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from profiler.errors import ConfigError, TraceFormatError
from profiler.importers import IMPORTERS
from profiler.importers.common import PathLike, as_paths, merge_traces, unexpected_structure
from profiler.trace.model import Trace

# Files a single-path importer is given when a folder is walked for it.
_DATA_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")


def formats() -> dict[str, str]:
    """Every known format name -> "module:function"."""
    return dict(IMPORTERS)


def load_importer(name: str) -> Callable[..., Trace]:
    spec = formats().get(name)
    if spec is None:
        raise ConfigError(f"unknown import format {name!r}; use one of {', '.join(sorted(formats()))}")
    module_name, _, func = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(f"import format {name!r} is not available in this installation "
                              f"(module {module_name} is missing)") from None
        raise
    try:
        return getattr(module, func)
    except AttributeError:
        raise ConfigError(f"import format {name!r}: {module_name} has no function {func}") from None


def accepted_options(name: str) -> set[str]:
    """Keyword options the format's importer takes (besides its sources)."""
    params = list(inspect.signature(load_importer(name)).parameters.values())
    return {p.name for p in params[1:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _walk_data_files(sources: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for src in sources:
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.is_file() and p.name.endswith(_DATA_SUFFIXES)
                           and not p.name.startswith("."))
            if not found:
                raise TraceFormatError("holds no JSON or JSON Lines files", path=src)
            out.extend(found)
        elif src.exists():
            out.append(src)
        else:
            raise TraceFormatError("no such file or directory", path=src, hint="check the path")
    return out


def import_sources(name: str, sources: PathLike | Iterable[PathLike],
                   options: Mapping[str, Any] | None = None) -> Trace:
    """Run the `name` importer on `sources` with `options` (unset options, None, are left out)."""
    fn = load_importer(name)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    accepted = accepted_options(name)
    unknown = sorted(set(given) - accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ConfigError(f"{flags} does not apply to the {name} format"
                          + (f" (it takes: {', '.join('--' + a.replace('_', '-') for a in sorted(accepted))})"
                             if accepted else " (it takes no options)"))
    paths = as_paths(sources)
    first = next(iter(inspect.signature(fn).parameters), "")
    if first == "sources":
        with unexpected_structure(name, paths):
            return fn(paths, **given)
    files = _walk_data_files(paths)
    traces = []
    for f in files:
        with unexpected_structure(name, [f]):
            traces.append(fn(f, **given))
    stems = [f.stem for f in files]
    labels = stems if len(set(stems)) == len(stems) else [f.as_posix() for f in files]
    return merge_traces(traces, labels=labels)


def sniff_format(path: PathLike) -> str | None:
    """The import format of a file that identifies itself by shape, or None: Mooncake traces (JSON
    Lines with `hash_ids` and `input_length`) and OTLP JSON (`resourceSpans`). Other formats need
    the user to name them (`ctxprof import FORMAT`)."""
    import json

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    first_line = head.split(b"\n", 1)[0]
    try:
        record = json.loads(first_line)
    except ValueError:
        record = None
    if isinstance(record, dict) and "hash_ids" in record and "input_length" in record:
        return "mooncake"
    if head.lstrip().startswith(b"{") and b'"resourceSpans"' in head:
        return "otel"
    return None
