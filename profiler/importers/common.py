"""Helpers every importer shares: reading source files with precise errors, walking directories,
timestamps, model routes, output messages, headers and merging.

Nothing here knows a particular source format. Errors are `TraceFormatError`s naming the file, the
line (for JSON, the line the decoder stopped at) and the field, with what to do next.
"""

from __future__ import annotations

import contextlib
import math
import os
import zlib
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from profiler.errors import TraceFormatError
from profiler.chat import render_content
from profiler.trace.io import iter_lines, open_input, parse_json, read_error
from profiler.trace.model import Run, Step, Trace, TraceHeader

PathLike = str | os.PathLike[str]

# Route prefixes that only forward a call (the provider is the next segment of the model string).
GATEWAY_PREFIXES = ("litellm_proxy",)

# Provider names LiteLLM uses as model prefixes (`anthropic/claude-...`), mapped to ctxprof's names.
KNOWN_PROVIDERS = {
    "openai": "openai", "azure": "azure", "azure_ai": "azure", "anthropic": "anthropic",
    "deepseek": "deepseek", "gemini": "google", "vertex_ai": "google", "google": "google",
    "bedrock": "aws", "mistral": "mistral", "groq": "groq", "together_ai": "together",
    "openrouter": "openrouter", "fireworks_ai": "fireworks", "xai": "x-ai", "cohere": "cohere",
    "hosted_vllm": "vllm", "ollama": "ollama", "huggingface": "huggingface",
}


def as_paths(sources: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(sources, (str, os.PathLike)):
        return [Path(sources)]
    return [Path(s) for s in sources]


def walk(sources: PathLike | Iterable[PathLike], suffixes: Sequence[str]) -> list[Path]:
    """The files named by `sources`, directories walked (sorted) for files ending in `suffixes`."""
    out: list[Path] = []
    for src in as_paths(sources):
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.is_file() and p.name.endswith(tuple(suffixes)))
            if not found:
                raise TraceFormatError(f"holds no {' or '.join(suffixes)} files", path=src,
                                       hint="point at the folder the files are in, or at the files")
            out.extend(found)
        elif src.is_file():
            out.append(src)
        else:
            raise TraceFormatError("no such file or directory", path=src, hint="check the path")
    return out


def read_text(path: Path) -> str:
    """A whole UTF-8 (or `.gz`) source file as text; every failure a `TraceFormatError`."""
    with open_input(path) as f:
        try:
            return f.read()
        except (UnicodeDecodeError, EOFError, zlib.error, OSError) as e:
            raise read_error(path, e) from None


def read_json(path: Path, *, hint: str = "the importer expects one JSON document in this file") -> Any:
    """Parse a whole JSON file; a syntax error names its line, an empty file says so."""
    text = read_text(path)
    if not text.strip():
        raise TraceFormatError("is empty", path=path, hint=hint)
    return parse_json(text, path=path, line=None, hint=hint)


def iter_jsonl(path: Path, warnings: list[str] | None = None, *,
               hint: str = "each line must be one JSON value") -> Iterator[tuple[int, Any]]:
    """`(line_number, value)` for each non-blank line of a JSON Lines file, read as the trace reader
    reads (`profiler.trace.io.iter_lines`: streamed, line length and nesting limited): a torn last
    line is skipped and described in `warnings`; a file with no lines is an error."""
    pending: tuple[int, str] | None = None
    seen = False
    for lineno, raw in iter_lines(path):
        if pending is not None:
            yield pending[0], parse_json(pending[1], path=path, line=pending[0], hint=hint)
            pending = None
        if not raw.strip():
            continue
        seen = True
        if not raw.endswith("\n"):
            pending = (lineno, raw)
            continue
        yield lineno, parse_json(raw, path=path, line=lineno, hint=hint)
    if pending is not None:
        try:
            value = parse_json(pending[1], path=path, line=pending[0], hint=hint)
        except TraceFormatError:
            if warnings is not None:
                warnings.append(f"{path}:{pending[0]}: last line is incomplete (torn write); skipped it")
            return
        yield pending[0], value
    elif not seen:
        raise TraceFormatError("is empty", path=path, hint=hint)


@contextlib.contextmanager
def unexpected_structure(fmt: str, paths: Sequence[Path]) -> Iterator[None]:
    """Turn the errors an importer raises on a value of the wrong shape that it did not check itself
    (a string where it expects an object, a missing key) into one `TraceFormatError` naming the file.
    Importers still check the fields they read with `require` (file, line and field); this is the net
    for the rest, so malformed input never ends in a traceback."""
    try:
        yield
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, OverflowError) as e:
        where = paths[0] if len(paths) == 1 else None
        names = "" if where is not None else " (" + ", ".join(str(p) for p in paths[:3]) + ")"
        from profiler.safe_text import excerpt, visible

        raise TraceFormatError(
            f"does not have the structure of a {fmt} file{names}: "
            f"{type(e).__name__}: {excerpt(visible(e), 200)}", path=where,
            hint=f"check that it is a {fmt} file; see docs/importing.md") from None
    except RecursionError:
        raise TraceFormatError("nests too deeply to import", path=paths[0] if len(paths) == 1 else None,
                               hint="see the input limits in docs/trace-format.md") from None


def require(d: Any, key: str, types: type | tuple[type, ...], *, path: Path, line: int | None = None,
            field: str | None = None, hint: str | None = None) -> Any:
    """`d[key]`, which must exist and have one of `types`."""
    name = field or key
    if not isinstance(d, Mapping):
        raise TraceFormatError(f"expected a JSON object, got {type(d).__name__}", path=path, line=line,
                               field=name.rsplit(".", 1)[0] if "." in name else None, hint=hint)
    if key not in d or d[key] is None:
        raise TraceFormatError("is required but missing", path=path, line=line, field=name, hint=hint)
    value = d[key]
    if not isinstance(value, types):
        want = types if isinstance(types, tuple) else (types,)
        names = {list: "a list", dict: "an object", str: "a string", int: "an integer", float: "a number"}
        raise TraceFormatError(
            f"expected {' or '.join(names.get(t, t.__name__) for t in want)}, got {type(value).__name__}",
            path=path, line=line, field=name, hint=hint)
    return value


def get_path(obj: Any, dotted: str) -> Any:
    """`obj["a"]["b"]` for "a.b" (list indices allowed: "choices.0.message"); None if absent."""
    node = obj
    for part in dotted.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node


def parse_time(value: Any, *, path: Path, line: int | None, field: str) -> float | None:
    """Seconds since the epoch from unix seconds / milliseconds / microseconds or an ISO 8601 string
    (naive times are taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TraceFormatError("expected a time, got a boolean", path=path, line=line, field=field)
    if isinstance(value, (int, float)):
        t = float(value)
        if not math.isfinite(t) or t < 0:
            raise TraceFormatError(f"is not a valid time ({value})", path=path, line=line, field=field)
        # Epoch seconds are ~1.7e9 now; larger values are milliseconds or microseconds.
        if t > 1e14:
            return t / 1e6
        if t > 1e11:
            return t / 1e3
        return t
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_time(float(text), path=path, line=line, field=field)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise TraceFormatError(f"is not a time: {value!r}", path=path, line=line, field=field,
                                   hint="use unix seconds or ISO 8601 (2025-01-31T12:00:00Z)") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    raise TraceFormatError(f"expected a time, got {type(value).__name__}", path=path, line=line, field=field)


def split_model_route(model: str | None) -> tuple[str | None, str | None]:
    """`(provider, model)` from a LiteLLM-style route: "litellm_proxy/anthropic/claude-sonnet-4" ->
    ("anthropic", "claude-sonnet-4"); "gpt-4o" -> (None, "gpt-4o")."""
    if not model:
        return None, model
    parts = model.split("/")
    while len(parts) > 1 and parts[0] in GATEWAY_PREFIXES:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] in KNOWN_PROVIDERS:
        return KNOWN_PROVIDERS[parts[0]], "/".join(parts[1:])
    return None, "/".join(parts)


def guess_provider(model: str | None) -> str | None:
    """Provider of a bare model name, where the name says it unambiguously."""
    if not model:
        return None
    m = model.lower()
    if m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci")):
        return "openai"
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith("deepseek"):
        return "deepseek"
    if m.startswith("gemini"):
        return "google"
    return None


def canonical_tool_calls(tool_calls: Any) -> list[dict[str, Any]] | None:
    """Tool calls in the request shape (`id`, `type`, `function{name, arguments}`), dropping streaming
    artefacts (`index`) and empty placeholders; None if there are none."""
    if not isinstance(tool_calls, list):
        return None
    out = []
    for tc in tool_calls:
        if not isinstance(tc, Mapping):
            continue
        fn = tc.get("function") if isinstance(tc.get("function"), Mapping) else {}
        if not fn and not tc.get("id"):
            continue
        call: dict[str, Any] = {}
        if tc.get("id") is not None:
            call["id"] = tc["id"]
        call["type"] = tc.get("type") or "function"
        call["function"] = {"name": fn.get("name"), "arguments": fn.get("arguments")}
        out.append(call)
    return out or None


def assistant_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A model's answer as the assistant message a follow-up request would carry: role, content,
    tool calls (request shape); provider extras dropped."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = canonical_tool_calls(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = calls
    if isinstance(message.get("function_call"), Mapping):
        out["function_call"] = dict(message["function_call"])
    return out


def message_key(message: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two chat messages the same for prefix matching: role, text, tool calls, tool-call id.
    Serialisation details (string vs text parts, cache markers, key order) do not count."""
    calls = canonical_tool_calls(message.get("tool_calls")) or ()
    return (
        message.get("role"),
        render_content(message.get("content")),
        tuple((c.get("id"), c["function"].get("name"), c["function"].get("arguments")) for c in calls),
        message.get("tool_call_id"),
    )


def strip_keys(message: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    drop = set(keys)
    return {k: v for k, v in message.items() if k not in drop}


def make_header(source_format: str, sources: Sequence[PathLike], reconstructed: Mapping[str, str],
                **attributes: Any) -> TraceHeader:
    from profiler import __version__

    attrs: dict[str, Any] = {"source_format": source_format,
                             "sources": [str(s) for s in sources],
                             "reconstructed": dict(reconstructed)}
    attrs.update({k: v for k, v in attributes.items() if v is not None})
    return TraceHeader(producer="ctxprof", producer_version=__version__, content_level="text",
                       attributes=attrs)


def build_trace(steps: Iterable[Step], runs: Iterable[Run], header: TraceHeader) -> Trace:
    """A trace of `runs` (in the given order) with their `steps` ordered by start time; each run gets
    its start/end from its steps where it has none."""
    trace = Trace.from_steps(list(steps), header=header, runs=list(runs))
    out = []
    for run in trace.runs:
        ends = [s.end_unix_s for s in run.steps if s.end_unix_s is not None]
        if run.end_unix_s is None and ends:
            run = replace(run, end_unix_s=max(ends))
        out.append(run)
    return Trace(header=trace.header, runs=tuple(out))


def merge_traces(traces: Sequence[Trace], *, labels: Sequence[str] | None = None) -> Trace:
    """One trace holding the runs of several (e.g. one per imported file). Run ids that collide are
    prefixed with the trace's label; header attributes are combined."""
    if len(traces) == 1:
        return traces[0]
    labels = list(labels) if labels is not None else [str(i) for i in range(len(traces))]
    seen: set[str] = set()
    runs: list[Run] = []
    for trace, label in zip(traces, labels):
        for run in trace.runs:
            if run.run_id in seen:
                new_id = f"{label}:{run.run_id}"
                run = replace(run, run_id=new_id,
                              steps=tuple(replace(s, run_id=new_id) for s in run.steps))
            seen.add(run.run_id)
            runs.append(run)
    first = traces[0].header
    attrs: dict[str, Any] = dict(first.attributes)
    sources: list[str] = []
    reconstructed: dict[str, str] = {}
    for t in traces:
        sources.extend(t.header.attributes.get("sources", []) or [])
        rec = t.header.attributes.get("reconstructed")
        if isinstance(rec, Mapping):
            reconstructed.update({str(k): str(v) for k, v in rec.items()})
        elif isinstance(rec, (list, tuple)):
            for i, item in enumerate(rec):
                reconstructed.setdefault(str(item), str(item))
    attrs["sources"] = sources
    attrs["reconstructed"] = reconstructed
    header = replace(first, attributes=attrs)
    return Trace(header=header, runs=tuple(runs),
                 warnings=tuple(w for t in traces for w in t.warnings))
