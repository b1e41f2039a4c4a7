"""Import VCR cassettes (vcrpy / pytest-recording YAML): the HTTP calls an LLM application's test
suite recorded, one run per cassette.

A cassette is `{"interactions": [{"request": {"method", "uri", "body", "headers"}, "response":
{"status", "headers", "body": {"string": ...}}}], "version": 1}`. Each interaction whose request body
is an LLM call -- OpenAI Chat Completions or Responses, Anthropic Messages, Gemini `generateContent`
-- becomes one `llm` step; other interactions (telemetry, embeddings, errors without a body) are
skipped and counted in the header. Bodies are parsed by the `openai-log` importer
(`profiler.importers.openai_logs.parse_record`), so a cassette and a gateway log of the same calls
give the same steps. Streamed responses (server-sent events) are assembled into the body the
non-streaming API would have returned: text, tool calls and usage.

Times come from the recorded headers: the response's `Date` is the call's end (HTTP dates have
one-second resolution); its start is that minus the server's processing time where a header gives it
(`openai-processing-ms`, `x-envoy-upstream-service-time`), else the end, but never before the previous
interaction's start: steps keep the cassette's order, which is the order the calls were made in. Errors name the cassette, the line of the interaction and the field.
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from profiler.errors import TraceFormatError
from profiler.importers.common import PathLike, as_paths, build_trace, make_header, walk
from profiler.importers.openai_logs import LoggedCall, calls_to_steps, parse_record
from profiler.trace.model import Run, Trace

FORMAT = "vcr"
HINT = "give a vcrpy / pytest-recording cassette (YAML with 'interactions'); see docs/importing.md"
_PROCESSING_MS_HEADERS = ("openai-processing-ms", "x-envoy-upstream-service-time")


def _load_yaml(path: Path) -> tuple[Any, str]:
    try:
        import yaml
    except ImportError:
        raise TraceFormatError("reading VCR cassettes needs PyYAML", path=path,
                               hint="pip install 'ctxprof[vcr]'") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TraceFormatError("is not UTF-8 text", path=path, hint=HINT) from None
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise TraceFormatError(f"is not valid YAML ({getattr(e, 'problem', None) or e})", path=path,
                               line=None if mark is None else mark.line + 1, hint=HINT) from None


def _header(headers: Any, name: str) -> str | None:
    """A header's first value, matched case-insensitively (vcrpy keeps the recorded spelling and
    stores each value as a list)."""
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            if isinstance(value, list):
                value = value[0] if value else None
            return None if value is None else str(value)
    return None


def _body_text(body: Any) -> str | None:
    """A recorded body as text: vcrpy writes `{"string": ...}` for responses and a plain string (or
    bytes) for requests."""
    if isinstance(body, Mapping):
        body = body.get("string")
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return None  # compressed or binary: not an LLM body ctxprof can read
    return body if isinstance(body, str) else None


def _sse_events(text: str) -> list[Any]:
    """The JSON payloads of a server-sent-event stream (`data:` lines), in order."""
    out: list[Any] = []
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        try:
            out.append(json.loads(data))
        except ValueError:
            continue
    return out


def _merge_usage(into: dict[str, Any], usage: Any) -> None:
    if isinstance(usage, Mapping):
        into.update({k: v for k, v in usage.items() if v is not None})


def assemble_stream(text: str) -> dict[str, Any] | None:
    """The response body a streamed call would have returned without streaming, or None when `text`
    is not an event stream. Handles OpenAI Chat Completions chunks, Anthropic Messages events and
    Gemini `streamGenerateContent` chunks."""
    events = [e for e in _sse_events(text) if isinstance(e, Mapping)]
    if not events:
        return None
    if any(e.get("type") == "message_start" for e in events):  # Anthropic
        message: dict[str, Any] = {}
        blocks: dict[int, dict[str, Any]] = {}
        partial_json: dict[int, str] = {}
        usage: dict[str, Any] = {}
        for e in events:
            kind = e.get("type")
            if kind == "message_start" and isinstance(e.get("message"), Mapping):
                message = dict(e["message"])
                _merge_usage(usage, message.get("usage"))
            elif kind == "content_block_start" and isinstance(e.get("content_block"), Mapping):
                blocks[int(e.get("index", len(blocks)))] = dict(e["content_block"])
            elif kind == "content_block_delta" and isinstance(e.get("delta"), Mapping):
                i, delta = int(e.get("index", 0)), e["delta"]
                block = blocks.setdefault(i, {"type": "text", "text": ""})
                if delta.get("type") == "text_delta":
                    block["text"] = block.get("text", "") + str(delta.get("text", ""))
                elif delta.get("type") == "input_json_delta":
                    partial_json[i] = partial_json.get(i, "") + str(delta.get("partial_json", ""))
                elif delta.get("type") == "thinking_delta":
                    block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
                elif delta.get("type") == "signature_delta":
                    block["signature"] = delta.get("signature")
            elif kind == "message_delta":
                if isinstance(e.get("delta"), Mapping):
                    message.update({k: v for k, v in e["delta"].items() if v is not None})
                _merge_usage(usage, e.get("usage"))
        for i, raw in partial_json.items():
            try:
                blocks[i]["input"] = json.loads(raw) if raw else {}
            except ValueError:
                blocks[i]["input"] = raw
        message["content"] = [blocks[i] for i in sorted(blocks)]
        message["usage"] = usage
        return message
    if any("candidates" in e or "usageMetadata" in e for e in events):  # Gemini
        parts: list[Any] = []
        finish = None
        usage_meta: dict[str, Any] = {}
        for e in events:
            for cand in e.get("candidates") or []:
                if isinstance(cand, Mapping):
                    for part in (cand.get("content") or {}).get("parts") or []:
                        if (isinstance(part, Mapping) and set(part) == {"text"} and parts
                                and isinstance(parts[-1], Mapping) and set(parts[-1]) == {"text"}):
                            parts[-1] = {"text": parts[-1]["text"] + str(part["text"])}
                        else:
                            parts.append(part)
                    finish = cand.get("finishReason") or finish
            _merge_usage(usage_meta, e.get("usageMetadata"))
        return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
                "usageMetadata": usage_meta, "modelVersion": events[-1].get("modelVersion")}
    # OpenAI Chat Completions chunks.
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = {}
    first = events[0]
    for e in events:
        _merge_usage(usage, e.get("usage"))
        for choice in e.get("choices") or []:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(int(tc.get("index", 0)),
                                        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += str(fn.get("name") or "")
                slot["function"]["arguments"] += str(fn.get("arguments") or "")
            finish = choice.get("finish_reason") or finish
    message_out: dict[str, Any] = {"role": "assistant", "content": "".join(content) if content else None}
    if calls:
        message_out["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"id": first.get("id"), "model": first.get("model"), "created": first.get("created"),
            "choices": [{"index": 0, "message": message_out, "finish_reason": finish}],
            **({"usage": usage} if usage else {})}


def _gemini_model(uri: str) -> str | None:
    m = re.search(r"/models/([^/:?]+)", uri)
    return m.group(1) if m else None


def _interaction_lines(text: str) -> list[int]:
    """1-based line of each `- request:` (vcrpy writes one per interaction, at the line start)."""
    return [i for i, line in enumerate(text.splitlines(), start=1) if line.startswith("- request:")]


def _is_llm_body(body: Any) -> bool:
    return isinstance(body, Mapping) and ("messages" in body or "contents" in body or (
        "input" in body and "model" in body))


def read_cassette(path: Path) -> tuple[list[LoggedCall], int, int]:
    """The LLM calls of one cassette, how many interactions were not LLM calls, and how many calls
    had a streamed response."""
    doc, text = _load_yaml(path)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("interactions"), list):
        raise TraceFormatError("is not a VCR cassette: expected a mapping with 'interactions'", path=path,
                               field="interactions", hint=HINT)
    lines = _interaction_lines(text)
    calls: list[LoggedCall] = []
    skipped = streamed = 0
    last_start = 0.0
    for i, interaction in enumerate(doc["interactions"]):
        line = lines[i] if i < len(lines) and len(lines) == len(doc["interactions"]) else None
        where = f"interactions[{i}]"
        if not isinstance(interaction, Mapping) or not isinstance(interaction.get("request"), Mapping):
            raise TraceFormatError("needs a 'request' mapping", path=path, line=line, field=where, hint=HINT)
        request = interaction["request"]
        response = interaction.get("response") if isinstance(interaction.get("response"), Mapping) else {}
        raw = _body_text(request.get("body"))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not _is_llm_body(body):
            skipped += 1
            continue
        resp_text = _body_text(response.get("body"))
        resp_body: Any = None
        if resp_text:
            try:
                resp_body = json.loads(resp_text)
            except ValueError:
                resp_body = assemble_stream(resp_text)
                streamed += resp_body is not None
        headers = response.get("headers")
        record: dict[str, Any] = {"request": body}
        if isinstance(resp_body, Mapping):
            record["response"] = resp_body
        uri = str(request.get("uri") or "")
        if "model" not in body and _gemini_model(uri):
            record["model"] = _gemini_model(uri)
        if "anthropic.com" in uri:
            record["provider"] = "anthropic"
        date = _header(headers, "date")
        if date:
            try:
                end = parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                raise TraceFormatError(f"is not an HTTP date ({date!r})", path=path, line=line,
                                       field=f"{where}.response.headers.Date", hint=HINT) from None
            record["end_time"] = end
            processing = next((v for v in (_header(headers, h) for h in _PROCESSING_MS_HEADERS) if v), None)
            try:
                start = end - float(processing) / 1000.0 if processing else end
            except ValueError:
                start = end
            # The Date header has one-second resolution, so a start estimated from it can land before
            # the previous call's; the cassette's order is the order the calls were made in.
            record["start_time"] = min(end, max(start, last_start))
            last_start = record["start_time"]
        calls.append(parse_record(record, path=path, line=line or i + 1, run_key=None))
    return calls, skipped, streamed


def import_vcr(sources: PathLike | Iterable[PathLike]) -> Trace:
    """Import VCR cassettes (files, or folders walked for `.yaml` / `.yml`): one run per cassette."""
    roots = as_paths(sources)
    files = walk(roots, (".yaml", ".yml"))
    steps = []
    runs = []
    skipped_total = streamed_total = 0
    stems = [f.stem for f in files]
    for file in files:
        calls, skipped, streamed = read_cassette(file)
        skipped_total += skipped
        streamed_total += streamed
        if not calls:
            continue
        run_id = file.stem if stems.count(file.stem) == 1 else file.as_posix()
        if all(c.start_unix_s is not None for c in calls):
            calls = sorted(calls, key=lambda c: c.start_unix_s)  # type: ignore[arg-type, return-value]
        steps += calls_to_steps(calls, [run_id] * len(calls))
        runs.append(Run(run_id=run_id, workflow=FORMAT))
    if not steps:
        raise TraceFormatError("holds no LLM calls (OpenAI, Anthropic or Gemini request bodies)",
                               path=roots[0], hint=HINT)
    reconstructed = {
        "runs": "one run per cassette",
        "timestamps": "end = the response's Date header (1 s resolution); start = end minus the "
                      "server's processing time (openai-processing-ms / x-envoy-upstream-service-time) "
                      "where recorded, else the end",
    }
    if streamed_total:
        reconstructed["output"] = f"{streamed_total} streamed response(s) assembled from their events"
    notes = [f"{skipped_total} interaction(s) were not LLM calls and were skipped"] if skipped_total else None
    header = make_header(FORMAT, [str(r) for r in roots], reconstructed, notes=notes)
    return build_trace(steps, runs, header)


__all__ = ["assemble_stream", "import_vcr", "read_cassette"]
