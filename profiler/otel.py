"""OpenTelemetry: read and write OTLP JSON traces with the GenAI semantic conventions.

`import_otlp(sources)` reads OTLP JSON (an `ExportTraceServiceRequest`: `resourceSpans[] ->
scopeSpans[] -> spans[]`; a file may hold one such object, or one per line as the collector's file
exporter writes) and returns a `Trace`:

- one run per trace id; its workflow is the root span's agent name (`gen_ai.agent.name`), else the
  root span's name, else `service.name`;
- one `llm` step per model-call span: `gen_ai.operation.name` in chat / text_completion /
  generate_content (or an OpenInference `LLM` span); one `tool` step per `execute_tool` span (or
  OpenInference `TOOL`); other spans (agents, chains) only name the steps below them;
- usage from `gen_ai.usage.input_tokens` (inclusive of cached tokens, as the conventions say; when it is
  smaller than the cache figures it was reported exclusive and they are added),
  `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`,
  `gen_ai.usage.output_tokens`, and the older / OpenLLMetry / OpenInference spellings;
- prompt and output from `gen_ai.system_instructions`, `gen_ai.input.messages`,
  `gen_ai.output.messages`, `gen_ai.tool.definitions` (JSON strings or structured values, in the
  conventions' `parts` form), or from span events (`gen_ai.*.message`, `gen_ai.choice`,
  `gen_ai.client.inference.operation.details`), or OpenLLMetry's `gen_ai.prompt.N.*` /
  OpenInference's `llm.input_messages.N.*` flattened attributes (with their tool calls,
  `tool_call_id` and content parts) and `llm.tools.N.tool.json_schema` tool definitions.

`export_otlp(trace, path)` writes the same shape: per run a root `invoke_agent` span, per step a
`chat {model}` (CLIENT) or `execute_tool {name}` span with those attributes. Because the conventions'
message form cannot hold everything a trace can (token ids, block hashes, provider-specific content
blocks), each span also carries `ctxprof.prompt` / `ctxprof.output` / `ctxprof.attributes` (JSON) so a
ctxprof trace survives the round trip exactly; other backends ignore them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from profiler.errors import TraceFormatError
from profiler.importers.common import iter_jsonl, read_text, walk
from profiler.trace.io import parse_json
from profiler.trace.model import Output, Prompt, Run, Step, Trace, TraceHeader, Usage

LLM_OPERATIONS = ("chat", "text_completion", "generate_content", "completion")
TOOL_OPERATIONS = ("execute_tool",)
SPAN_KIND_CLIENT = 3
SPAN_KIND_INTERNAL = 1


# -- attribute values -------------------------------------------------------------------------------
def _any_value(v: Mapping[str, Any]) -> Any:
    """An OTLP `AnyValue` as a Python value."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _any_value(kv.get("value", {}))
                for kv in (v["kvlistValue"] or {}).get("values", [])}
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attributes(items: Any, where: str) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise TraceFormatError("expected a list of {key, value}", field=where)
    out = {}
    for i, kv in enumerate(items):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise TraceFormatError("expected {\"key\": ..., \"value\": {...}}", field=f"{where}[{i}]")
        out[kv["key"]] = _any_value(kv.get("value") or {})
    return out


def _to_any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_to_any_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": [{"key": str(k), "value": _to_any_value(v)}
                                           for k, v in value.items()]}}
    return {"stringValue": json.dumps(value, default=str)}


def _kv(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _to_any_value(v)} for k, v in attrs.items() if v is not None]


def _json_value(value: Any) -> Any:
    """Attributes holding structured data may arrive as JSON strings or as structured values."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# -- messages: conventions' parts <-> chat messages -------------------------------------------------
def _parts_to_message(msg: Mapping[str, Any]) -> dict[str, Any]:
    role = str(msg.get("role") or "user")
    parts = msg.get("parts")
    if parts is None:  # already a chat message (older instrumentations)
        out = {k: v for k, v in msg.items() if k != "finish_reason"}
        out["role"] = role
        return out
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    other: list[Any] = []
    tool_response: Mapping[str, Any] | None = None
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            args = part.get("arguments")
            tool_calls.append({"id": part.get("id"), "function": {
                "arguments": args if isinstance(args, str) else json.dumps(args), "name": part.get("name")},
                "type": "function"})
        elif kind == "tool_call_response":
            tool_response = part
        else:
            other.append(dict(part))
    if tool_response is not None:
        response = tool_response.get("response")
        return {"role": "tool", "tool_call_id": tool_response.get("id"),
                "content": response if isinstance(response, str) else json.dumps(response)}
    message: dict[str, Any] = {"role": role}
    if other:
        message["content"] = [{"type": "text", "text": t} for t in texts] + other
    else:
        message["content"] = "\n".join(texts) if texts or not tool_calls else None
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _message_to_parts(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message.get("tool_call_id"),
                                           "response": message.get("content")}]}
    content = message.get("content")
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping) and block.get("type") in ("text", "input_text", "output_text"):
                parts.append({"type": "text", "content": block.get("text", "")})
            elif isinstance(block, Mapping) and block.get("type") == "tool_use":
                parts.append({"type": "tool_call", "id": block.get("id"), "name": block.get("name"),
                              "arguments": block.get("input")})
            elif isinstance(block, Mapping) and block.get("type") == "tool_result":
                parts.append({"type": "tool_call_response", "id": block.get("tool_use_id"),
                              "response": block.get("content")})
            else:
                parts.append({"type": "generic", "content": block})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        parts.append({"type": "tool_call", "id": call.get("id"), "name": fn.get("name"),
                      "arguments": _json_value(args) if isinstance(args, str) else args})
    return {"role": role, "parts": parts}


# -- import -----------------------------------------------------------------------------------------
def _iter_requests(path: Path) -> Iterator[tuple[int | None, dict[str, Any]]]:
    hint = "give an OTLP JSON file (resourceSpans)"
    text = read_text(path)
    if not text.strip():
        raise TraceFormatError("is empty", path=path, hint=hint)
    try:
        docs: list[tuple[int | None, Any]] = [(None, parse_json(text, path=path, line=None, hint=hint))]
    except TraceFormatError as whole:
        # Not one JSON document: maybe JSON Lines (one export request per line), as file exporters write.
        if "\n" not in text.strip():
            raise whole from None
        docs = [(lineno, value) for lineno, value in iter_jsonl(path, hint=hint)]
    for lineno, d in docs:
        if not isinstance(d, dict) or not isinstance(d.get("resourceSpans"), list):
            raise TraceFormatError("not OTLP JSON: expected an object with 'resourceSpans'", path=path,
                                   line=lineno, field="resourceSpans",
                                   hint="export spans with the OTLP JSON encoder or file exporter")
        yield lineno, d


def _nanos(value: Any, where: str) -> int | None:
    if value is None or value == "" or value == 0 or value == "0":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TraceFormatError(f"expected nanoseconds since the epoch, got {value!r}",
                               field=where) from None


class _Span:
    def __init__(self, d: Mapping[str, Any], resource: Mapping[str, Any], where: str) -> None:
        self.trace_id = str(d.get("traceId") or "")
        self.span_id = str(d.get("spanId") or "")
        if not self.trace_id or not self.span_id:
            raise TraceFormatError("a span needs 'traceId' and 'spanId'", field=where)
        self.parent_id = str(d.get("parentSpanId") or "") or None
        self.name = str(d.get("name") or "")
        self.start_ns = _nanos(d.get("startTimeUnixNano"), f"{where}.startTimeUnixNano")
        self.end_ns = _nanos(d.get("endTimeUnixNano"), f"{where}.endTimeUnixNano")
        self.attrs = _attributes(d.get("attributes"), f"{where}.attributes")
        self.events = [(str(e.get("name", "")), _nanos(e.get("timeUnixNano"), f"{where}.events"),
                        _attributes(e.get("attributes"), f"{where}.events[{i}].attributes"))
                       for i, e in enumerate(d.get("events") or []) if isinstance(e, dict)]
        self.status = (d.get("status") or {}).get("code")
        self.resource = resource
        self.where = where

    @property
    def operation(self) -> str | None:
        op = self.attrs.get("gen_ai.operation.name")
        if op:
            return str(op)
        kind = str(self.attrs.get("openinference.span.kind", "")).upper()
        if kind == "LLM":
            return "chat"
        if kind == "TOOL":
            return "execute_tool"
        if kind == "AGENT":
            return "invoke_agent"
        if any(k.startswith(("gen_ai.usage.", "llm.token_count.")) for k in self.attrs):
            return "chat"
        return None


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if attrs.get(k) is not None:
            return attrs[k]
    return None


def _int_attr(attrs: Mapping[str, Any], *keys: str) -> int | None:
    v = _first(attrs, *keys)
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _usage(attrs: Mapping[str, Any], notes: set[str]) -> Usage:
    inp = _int_attr(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                    "llm.usage.prompt_tokens", "llm.token_count.prompt")
    read = _int_attr(attrs, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                     "gen_ai.usage.input_tokens.cached", "llm.token_count.prompt_details.cache_read",
                     "llm.token_count.prompt_details.cache_input")
    write = _int_attr(attrs, "gen_ai.usage.cache_creation.input_tokens",
                      "gen_ai.usage.cache_creation_input_tokens", "gen_ai.usage.input_tokens.cache_write",
                      "llm.token_count.prompt_details.cache_write")
    out = _int_attr(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                    "llm.usage.completion_tokens", "llm.token_count.completion")
    reasoning = _int_attr(attrs, "gen_ai.usage.reasoning.output_tokens",
                          "gen_ai.usage.output_tokens.reasoning",
                          "llm.token_count.completion_details.reasoning")
    if inp is not None and (read or 0) + (write or 0) > inp:
        notes.add("input tokens reported without cached tokens (added them)")
        inp += (read or 0) + (write or 0)
    return Usage(input_tokens=inp, cache_read_tokens=read, cache_write_tokens=write, output_tokens=out,
                 reasoning_tokens=reasoning)


def _messages_attr(value: Any) -> list[dict[str, Any]] | None:
    value = _json_value(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        return None
    return [_parts_to_message(m) for m in value if isinstance(m, Mapping)]


_FLAT_TOOL_CALL = re.compile(r"^tool_calls\.(\d+)\.(?:tool_call\.)?(.+)$")
_FLAT_CONTENT = re.compile(r"^contents\.(\d+)\.message_content\.(.+)$")


def _flattened_messages(attrs: Mapping[str, Any], prefix: str, role_key: str,
                        content_key: str) -> list[dict[str, Any]] | None:
    """Messages from flattened attributes: `{prefix}.N.{role_key}` / `{content_key}` and, beside them
    (same key stem: `message.` for OpenInference, none for OpenLLMetry), the name, `tool_call_id`,
    tool calls (`tool_calls.M.tool_call.id` / `.function.name` / `.function.arguments`, OpenLLMetry
    `tool_calls.M.id` / `.name` / `.arguments`) and content parts (`contents.M.message_content.type`
    / `.text` / `.image.image.url`), so tool use and multi-part content reach the prompt."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    stem = role_key[: -len("role")] if role_key.endswith("role") else ""
    found: dict[int, dict[str, Any]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    parts: dict[int, dict[int, dict[str, Any]]] = {}
    for key, value in attrs.items():
        m = pattern.match(key)
        if not m:
            continue
        i = int(m.group(1))
        rest = key[m.end():]
        slot = found.setdefault(i, {})
        if rest == role_key:
            slot["role"] = str(value)
            continue
        if rest == content_key:
            slot["content"] = value
            continue
        if not rest.startswith(stem):
            continue
        field = rest[len(stem):]
        if field in ("name", "tool_call_id"):
            slot[field] = str(value)
        elif (c := _FLAT_TOOL_CALL.match(field)) is not None:
            calls.setdefault(i, {}).setdefault(int(c.group(1)), {})[c.group(2)] = value
        elif (c := _FLAT_CONTENT.match(field)) is not None:
            parts.setdefault(i, {}).setdefault(int(c.group(1)), {})[c.group(2)] = value
    if not found:
        return None
    out = []
    for i in sorted(found):
        slot = found[i]
        message: dict[str, Any] = {"role": slot.get("role", "user"), "content": slot.get("content")}
        if i in parts and message["content"] is None:
            content = []
            for j in sorted(parts[i]):
                part = parts[i][j]
                kind = str(part.get("type", "text"))
                if kind == "image":
                    content.append({"type": "image_url", "image_url": {"url": part.get("image.image.url")}})
                else:
                    content.append({"type": "text", "text": str(part.get("text", ""))})
            message["content"] = content
        if i in calls:
            message["tool_calls"] = [{
                "id": call.get("id"), "type": "function",
                "function": {"name": call.get("function.name", call.get("name")),
                             "arguments": call.get("function.arguments", call.get("arguments"))}}
                for _, call in sorted(calls[i].items())]
        for field in ("name", "tool_call_id"):
            if field in slot:
                message[field] = slot[field]
        out.append(message)
    return out


def _flattened_tools(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """OpenInference tool definitions: `llm.tools.N.tool.json_schema` (a JSON string each)."""
    pattern = re.compile(r"^llm\.tools\.(\d+)\.tool\.json_schema$")
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        m = pattern.match(key)
        if m is None:
            continue
        tool = _json_value(value)
        found[int(m.group(1))] = dict(tool) if isinstance(tool, Mapping) else {"json_schema": value}
    return [found[i] for i in sorted(found)] if found else None


def _prompt_output(span: _Span, notes: set[str]) -> tuple[Prompt, Output]:
    a = span.attrs
    exact_prompt = _json_value(a.get("ctxprof.prompt"))
    exact_output = _json_value(a.get("ctxprof.output"))
    finish = _first(a, "gen_ai.response.finish_reasons")
    finish_reason = finish[0] if isinstance(finish, list) and finish else (
        finish if isinstance(finish, str) else None)
    if isinstance(exact_prompt, dict):
        prompt = Prompt.from_dict(exact_prompt, prefix=f"{span.where}.ctxprof.prompt")
    else:
        messages: list[dict[str, Any]] = []
        system = _json_value(a.get("gen_ai.system_instructions"))
        if isinstance(system, list):
            texts = [str(p.get("content", "")) for p in system if isinstance(p, Mapping)]
            messages.append({"role": "system", "content": "\n".join(texts)})
        elif isinstance(system, str):
            messages.append({"role": "system", "content": system})
        found = _messages_attr(a.get("gen_ai.input.messages"))
        if found is None:
            found = _event_messages(span)
        if found is None:
            found = (_flattened_messages(a, "gen_ai.prompt", "role", "content")
                     or _flattened_messages(a, "llm.input_messages", "message.role", "message.content"))
            if found is not None:
                notes.add("messages from flattened prompt attributes")
        messages += found or []
        tools = _json_value(_first(a, "gen_ai.tool.definitions", "llm.tools"))
        tools_list = [t for t in tools if isinstance(t, Mapping)] if isinstance(tools, list) else None
        if not tools_list:
            tools_list = _flattened_tools(a)
        prompt = Prompt(messages=tuple(messages), tools=tuple(tools_list) if tools_list else None) if (
            messages or tools_list) else Prompt()
    if isinstance(exact_output, dict):
        output = Output.from_dict(exact_output, prefix=f"{span.where}.ctxprof.output")
    else:
        outs = _messages_attr(a.get("gen_ai.output.messages"))
        if outs is None:
            outs = _event_choice(span)
        if outs is None:
            outs = (_flattened_messages(a, "gen_ai.completion", "role", "content")
                    or _flattened_messages(a, "llm.output_messages", "message.role", "message.content"))
        raw = _json_value(a.get("gen_ai.output.messages"))
        if finish_reason is None and isinstance(raw, list) and raw and isinstance(raw[0], Mapping):
            finish_reason = raw[0].get("finish_reason")
        output = Output(message=outs[0] if outs else None, finish_reason=finish_reason)
    return prompt, output


_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_messages(span: _Span) -> list[dict[str, Any]] | None:
    messages = []
    for name, _, attrs in span.events:
        if name == "gen_ai.client.inference.operation.details" and "gen_ai.input.messages" in attrs:
            return _messages_attr(attrs["gen_ai.input.messages"])
        if name in _EVENT_ROLES:
            content = _json_value(_first(attrs, "content", "gen_ai.event.content", "body"))
            if isinstance(content, Mapping) and "content" in content:
                msg = dict(content)
                msg.setdefault("role", _EVENT_ROLES[name])
            else:
                msg = {"role": _EVENT_ROLES[name], "content": content}
            messages.append(msg)
    return messages or None


def _event_choice(span: _Span) -> list[dict[str, Any]] | None:
    for name, _, attrs in span.events:
        if name == "gen_ai.client.inference.operation.details" and "gen_ai.output.messages" in attrs:
            return _messages_attr(attrs["gen_ai.output.messages"])
        if name == "gen_ai.choice":
            body = _json_value(_first(attrs, "message", "gen_ai.event.content", "body", "content"))
            if isinstance(body, Mapping):
                msg = dict(body.get("message", body))
                msg.setdefault("role", "assistant")
                return [msg]
            return [{"role": "assistant", "content": body}]
    return None


def _tool_io(span: _Span) -> tuple[Prompt, Output]:
    """A tool step's arguments and result (the exact ctxprof record when there is one)."""
    a = span.attrs
    exact_prompt = _json_value(a.get("ctxprof.prompt"))
    exact_output = _json_value(a.get("ctxprof.output"))
    args = _first(a, "gen_ai.tool.call.arguments")
    result = _first(a, "gen_ai.tool.call.result")
    if isinstance(exact_prompt, dict):
        prompt = Prompt.from_dict(exact_prompt, prefix=f"{span.where}.ctxprof.prompt")
    else:
        prompt = Prompt() if args is None else Prompt(
            text=args if isinstance(args, str) else json.dumps(args))
    if isinstance(exact_output, dict):
        output = Output.from_dict(exact_output, prefix=f"{span.where}.ctxprof.output")
    else:
        output = Output() if result is None else Output(
            text=result if isinstance(result, str) else json.dumps(result))
    return prompt, output


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def import_otlp(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> Trace:
    """Read OTLP JSON files with GenAI spans into one `Trace` (see the module docstring)."""
    # Folders are walked for the files the OTLP file exporter and encoders write.
    paths = walk(sources, (".json", ".jsonl", ".ndjson"))
    spans: list[_Span] = []
    for path in paths:
        for lineno, request in _iter_requests(path):
            try:
                spans.extend(_request_spans(request))
            except TraceFormatError as e:
                raise TraceFormatError(e.reason, path=path, line=lineno, field=e.field,
                                       hint=e.hint) from None
    return _build_trace(spans, [str(p) for p in paths])


def _request_spans(request: Mapping[str, Any]) -> list[_Span]:
    spans: list[_Span] = []
    resource_spans = request.get("resourceSpans")
    if not isinstance(resource_spans, list):
        raise TraceFormatError("not OTLP JSON: expected an object with 'resourceSpans'",
                               field="resourceSpans",
                               hint="export spans with the OTLP JSON encoder or file exporter")
    for ri, rs in enumerate(resource_spans):
        if not isinstance(rs, dict):
            raise TraceFormatError("expected an object", field=f"resourceSpans[{ri}]")
        resource = _attributes((rs.get("resource") or {}).get("attributes"),
                               f"resourceSpans[{ri}].resource.attributes")
        for si, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []):
            if not isinstance(ss, dict):
                raise TraceFormatError("expected an object", field=f"resourceSpans[{ri}].scopeSpans[{si}]")
            for pi, sp in enumerate(ss.get("spans") or []):
                where = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                if not isinstance(sp, dict):
                    raise TraceFormatError("expected an object", field=where)
                try:
                    spans.append(_Span(sp, resource, where))
                except TraceFormatError as e:
                    raise TraceFormatError(e.reason, field=e.field,
                                           hint="each span needs traceId, spanId and "
                                                "nanosecond times") from None
    return spans


def trace_of_request(request: Mapping[str, Any], source: str = "otlp") -> Trace:
    """One OTLP JSON payload (an `ExportTraceServiceRequest`) as a `Trace`, mapped as `import_otlp`
    maps a file (the unit `ctxprof collect` appends as it arrives)."""
    return _build_trace(_request_spans(request), [source])


def _build_trace(spans: list[_Span], paths: list[str]) -> Trace:
    notes: set[str] = set()
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    traces: dict[str, list[_Span]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    runs: list[Run] = []
    steps: list[Step] = []
    for trace_id, members in traces.items():
        members.sort(key=lambda s: (s.start_ns or 0))
        roots = [s for s in members if s.parent_id is None or (trace_id, s.parent_id) not in by_id]
        root = roots[0] if roots else members[0]
        exact_run = _json_value(root.attrs.get("ctxprof.run"))
        workflow = (exact_run.get("workflow") if isinstance(exact_run, dict) else None) or _first(
            root.attrs, "gen_ai.agent.name") or root.name or root.resource.get("service.name")
        run_id = str(exact_run.get("run_id")) if isinstance(exact_run, dict) and exact_run.get(
            "run_id") else trace_id
        step_spans = [s for s in members if s.operation in LLM_OPERATIONS + TOOL_OPERATIONS]
        step_ids = {s.span_id for s in step_spans}
        for s in step_spans:
            steps.append(_step(s, run_id, by_id, step_ids, notes))
        ends = [s.end_ns for s in members if s.end_ns is not None]
        starts = [s.start_ns for s in members if s.start_ns is not None]
        attributes = {"otel.trace_id": trace_id}
        if root.resource.get("service.name"):
            attributes["service.name"] = root.resource["service.name"]
        status = "error" if root.status in (2, "STATUS_CODE_ERROR") else ("ok" if ends else None)
        runs.append(Run(run_id=run_id, workflow=str(workflow) if workflow else None,
                        start_unix_s=_seconds(min(starts)) if starts else None,
                        end_unix_s=_seconds(max(ends)) if ends else None, status=status,
                        parent_run_id=exact_run.get("parent_run_id") if isinstance(exact_run, dict) else None,
                        attributes=exact_run.get("attributes", attributes) if isinstance(
                            exact_run, dict) else attributes))
    header = TraceHeader(producer="ctxprof", content_level=_level(steps),
                         attributes={"source": "otlp", "files": paths,
                                     "reconstructed": sorted(notes)})
    return Trace.from_steps(steps, header=header, runs=runs, path=paths[0] if len(paths) == 1 else None)


def _level(steps: list[Step]) -> str:
    levels = {s.prompt.level for s in steps if s.kind == "llm"} - {"none"}
    return levels.pop() if len(levels) == 1 else "text"


def _step(span: _Span, run_id: str, by_id: Mapping[tuple[str, str], _Span], step_ids: set[str],
          notes: set[str]) -> Step:
    a = span.attrs
    exact = _json_value(a.get("ctxprof.step"))
    exact = exact if isinstance(exact, dict) else {}
    is_tool = span.operation in TOOL_OPERATIONS
    # Name: the ctxprof name, else the nearest agent above the span, else the tool or span name.
    name = exact.get("name")
    parent_step = None
    node = span
    while node.parent_id is not None:
        parent = by_id.get((span.trace_id, node.parent_id))
        if parent is None:
            break
        if parent.span_id in step_ids and parent_step is None:
            parent_step = parent.span_id
        if name is None and not is_tool and parent.attrs.get("gen_ai.agent.name"):
            name = str(parent.attrs["gen_ai.agent.name"])
            notes.add("step names from the enclosing agent spans")
        node = parent
    if name is None:
        name = str(a["gen_ai.tool.name"]) if is_tool and a.get("gen_ai.tool.name") else span.name
    if not is_tool:
        prompt, output = _prompt_output(span, notes)
    else:
        prompt, output = _tool_io(span)
    attributes = _json_value(a.get("ctxprof.attributes"))
    if not isinstance(attributes, dict):
        attributes = {"otel.span_id": span.span_id}
        for key in ("gen_ai.response.id", "gen_ai.tool.call.id", "gen_ai.agent.name"):
            if a.get(key) is not None:
                attributes[key] = a[key]
        if a.get("gen_ai.response.model") and a.get("gen_ai.request.model") and (
                a["gen_ai.response.model"] != a["gen_ai.request.model"]):
            attributes["response_model"] = a["gen_ai.response.model"]
    ttft = _first(a, "ctxprof.ttft_ms", "gen_ai.response.time_to_first_chunk")
    if ttft is not None and "ctxprof.ttft_ms" not in a:
        ttft = float(ttft) * 1000.0  # the conventions give seconds
    return Step(
        run_id=run_id, step_id=str(exact.get("step_id") or span.span_id),
        parent_step_id=exact.get("parent_step_id", parent_step), name=name,
        kind="tool" if is_tool else "llm",
        model=_first(a, "gen_ai.request.model", "gen_ai.response.model", "llm.model_name"),
        provider=_first(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
        start_unix_s=_seconds(span.start_ns), end_unix_s=_seconds(span.end_ns),
        ttft_ms=float(ttft) if ttft is not None else None,
        prompt=prompt, output=output, usage=_usage(a, notes) if not is_tool else Usage(),
        attributes=attributes)


# -- export -----------------------------------------------------------------------------------------
def _hex_id(text: str, n_bytes: int) -> str:
    if re.fullmatch(rf"[0-9a-f]{{{2 * n_bytes}}}", text):
        return text
    return hashlib.blake2b(text.encode(), digest_size=n_bytes).hexdigest()


def _ns(seconds: float | None) -> str | None:
    return None if seconds is None else str(int(round(seconds * 1e9)))


def _step_span(step: Step, trace_id: str, parent_span: str) -> dict[str, Any]:
    span_id = _hex_id(f"{step.run_id}/{step.step_id}", 8)
    parent = _hex_id(f"{step.run_id}/{step.parent_step_id}", 8) if step.parent_step_id else parent_span
    attrs: dict[str, Any] = {}
    exact_step = {"step_id": step.step_id, "name": step.name, "parent_step_id": step.parent_step_id}
    if step.kind == "tool":
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = step.name
        attrs["gen_ai.tool.call.arguments"] = step.prompt.text
        attrs["gen_ai.tool.call.result"] = step.output.text
        name = f"execute_tool {step.name or ''}".strip()
        kind = SPAN_KIND_INTERNAL
    else:
        attrs["gen_ai.operation.name"] = "chat"
        name = f"chat {step.model or ''}".strip()
        kind = SPAN_KIND_CLIENT
    attrs["gen_ai.provider.name"] = step.provider
    attrs["gen_ai.request.model"] = step.model
    attrs["gen_ai.response.model"] = step.attributes.get("response_model")
    u = step.usage
    attrs["gen_ai.usage.input_tokens"] = u.input_tokens
    attrs["gen_ai.usage.cache_read.input_tokens"] = u.cache_read_tokens
    attrs["gen_ai.usage.cache_creation.input_tokens"] = u.cache_write_tokens
    attrs["gen_ai.usage.output_tokens"] = u.output_tokens
    attrs["gen_ai.usage.reasoning.output_tokens"] = u.reasoning_tokens
    if step.output.finish_reason:
        attrs["gen_ai.response.finish_reasons"] = [step.output.finish_reason]
    if step.prompt.messages is not None:
        system = [m for m in step.prompt.messages if m.get("role") == "system"]
        rest = [m for m in step.prompt.messages if m.get("role") != "system"]
        if system:
            attrs["gen_ai.system_instructions"] = json.dumps(
                [p for m in system for p in _message_to_parts(m)["parts"]], ensure_ascii=False)
        attrs["gen_ai.input.messages"] = json.dumps([_message_to_parts(m) for m in rest],
                                                    ensure_ascii=False)
    if step.prompt.tools:
        attrs["gen_ai.tool.definitions"] = json.dumps([dict(t) for t in step.prompt.tools],
                                                      ensure_ascii=False)
    if step.output.message is not None:
        out = _message_to_parts(step.output.message)
        if step.output.finish_reason:
            out["finish_reason"] = step.output.finish_reason
        attrs["gen_ai.output.messages"] = json.dumps([out], ensure_ascii=False)
    attrs["ctxprof.step"] = json.dumps(exact_step, ensure_ascii=False)
    attrs["ctxprof.ttft_ms"] = step.ttft_ms
    if step.ttft_ms is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = step.ttft_ms / 1000.0
    if step.prompt.to_dict():
        attrs["ctxprof.prompt"] = json.dumps(step.prompt.to_dict(), ensure_ascii=False)
    if step.output.to_dict():
        attrs["ctxprof.output"] = json.dumps(step.output.to_dict(), ensure_ascii=False)
    attrs["ctxprof.attributes"] = json.dumps(dict(step.attributes), ensure_ascii=False, default=str)
    if step.gpu is not None:
        attrs["ctxprof.gpu"] = json.dumps(step.gpu.to_dict())
    span = {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": kind,
            "startTimeUnixNano": _ns(step.start_unix_s), "endTimeUnixNano": _ns(step.end_unix_s),
            "attributes": _kv(attrs), "status": {}}
    if "error" in step.attributes:
        span["status"] = {"code": 2, "message": str(step.attributes["error"])}
    return {k: v for k, v in span.items() if v is not None}


def export_otlp(trace: Trace, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The trace as an OTLP JSON `ExportTraceServiceRequest` (written to `path` when given)."""
    from profiler import __version__

    spans: list[dict[str, Any]] = []
    for run in trace.runs:
        trace_id = _hex_id(run.run_id, 16)
        root_id = _hex_id(f"{run.run_id}/run", 8)
        starts = [s.start_unix_s for s in run.steps if s.start_unix_s is not None]
        ends = [s.end_unix_s for s in run.steps if s.end_unix_s is not None]
        start = run.start_unix_s if run.start_unix_s is not None else (min(starts) if starts else None)
        end = run.end_unix_s if run.end_unix_s is not None else (max(ends) if ends else start)
        exact_run = {"run_id": run.run_id, "workflow": run.workflow, "parent_run_id": run.parent_run_id,
                     "attributes": dict(run.attributes)}
        root = {"traceId": trace_id, "spanId": root_id, "name": f"invoke_agent {run.workflow or ''}".strip(),
                "kind": SPAN_KIND_INTERNAL, "startTimeUnixNano": _ns(start), "endTimeUnixNano": _ns(end),
                "attributes": _kv({"gen_ai.operation.name": "invoke_agent",
                                   "gen_ai.agent.name": run.workflow,
                                   "ctxprof.run": json.dumps(exact_run, ensure_ascii=False, default=str)}),
                "status": {"code": 2} if run.status == "error" else {}}
        spans.append({k: v for k, v in root.items() if v is not None})
        spans.extend(_step_span(s, trace_id, root_id) for s in run.steps)
    doc = {"resourceSpans": [{
        "resource": {"attributes": _kv({"service.name": "ctxprof", "ctxprof.content_level":
                                        trace.header.content_level})},
        "scopeSpans": [{"scope": {"name": "ctxprof", "version": __version__}, "spans": spans}]}]}
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
    return doc
