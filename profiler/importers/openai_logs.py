"""Import OpenAI-style request/response logs (JSON Lines, one LLM call per line), as gateways and
proxies write them, and group the calls into runs.

Record shapes accepted (per line; see docs/importing.md for examples):
- gateway style: `{"request": {body}, "response": {body}, ...times..., "metadata": {...}}`; a
  `request`/`response` that wraps its body in `"body"` (Helicone style), or `request_body` /
  `response_body` keys, work too;
- LiteLLM `StandardLoggingPayload` style: the request fields at the top level (`messages`, `model`,
  `model_parameters.tools`), `response`, `startTime`, `endTime`, `completionStartTime`,
  `custom_llm_provider`, `metadata`.
Bodies may be Chat Completions (`messages`, `tools`; response `choices[0].message`), Responses API
(`instructions`, `input`, `tools`; response `output[]`; `previous_response_id` chains are followed)
or Anthropic Messages (top-level `system`, content blocks with `tool_use` / `tool_result` and
`cache_control` marks kept; response `content[]`, `stop_reason`, Anthropic usage). A structured-output
format (`response_format`, `text.format`, `output_format`) is kept in `Prompt.response_format`.
Gemini `generateContent` bodies (`contents`, `systemInstruction`, `tools[].functionDeclarations`,
`generationConfig.responseSchema`; response `candidates[0]`, `usageMetadata`) are read as well, for
sources that record them (VCR cassettes, `profiler.importers.vcr`).

Times: the start is the first of `start_time`, `startTime`, `request_time`, `timestamp`, `created`,
`created_at`, `request_created_at`, then the response's `created` / `created_at`; the end is
`end_time`, `endTime`, `response_time`, `response_created_at`, else start + latency (`latency_ms`,
`duration_ms`, `delay_ms` in milliseconds; `latency`, `latency_s`, `latency_sec`, `duration` in
seconds). Unix seconds, milliseconds or ISO 8601 are all read.

Runs: with `run_key` (a dotted path such as "metadata.session_id", looked up in the record, then in
the request body) each distinct value is a run. Calls without it are grouped by prefix continuation
(`group_by_continuation`): a call joins the open run whose last prompt plus output its messages
extend -- same model, its message list starts with that run's previous messages followed by that run's
last answer (or that answer as the framework rewrote it: `rewritten_answer`; an exact answer wins over
a rewritten one), and it starts within `window_s` of the run's last activity; a call whose messages equal a
run's last prompt, starting after that call ended, is a retry and joins it too; anything else starts a
new run. The most specific (longest) match wins; ties go to the most recently active run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from profiler.errors import TraceFormatError
from profiler.importers.common import (
    PathLike,
    canonical_tool_calls,
    as_paths,
    assistant_message,
    build_trace,
    get_path,
    guess_provider,
    iter_jsonl,
    make_header,
    message_key,
    parse_time,
    split_model_route,
    walk,
)
from profiler.chat import render_content
from profiler.trace.model import Output, Prompt, Run, Step, Trace, Usage
from profiler.usage import normalize_usage

FORMAT = "openai-log"
HINT = ("each line must hold a request body (under 'request', or 'messages'/'input' at the top level) "
        "and its 'response'; see docs/importing.md")
DEFAULT_WINDOW_S = 1800.0

_START_KEYS = ("start_time", "startTime", "request_time", "timestamp", "created", "created_at",
               "request_created_at")
_END_KEYS = ("end_time", "endTime", "response_time", "response_created_at")
_LATENCY_MS_KEYS = ("latency_ms", "duration_ms", "delay_ms")
_LATENCY_S_KEYS = ("latency", "latency_s", "latency_sec", "duration")


@dataclass(frozen=True)
class LoggedCall:
    """One parsed log line, before it is assigned to a run."""

    path: Path
    line: int
    model: str | None
    provider: str | None
    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...] | None
    output: Mapping[str, Any] | None
    finish_reason: str | None
    usage: Usage
    start_unix_s: float | None
    end_unix_s: float | None
    ttft_ms: float | None
    run_key: str | None
    response_id: str | None = None
    previous_response_id: str | None = None
    api: str = "chat"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    response_format: Mapping[str, Any] | None = None


# ------------------------------------------------------------------------------------------ parsing

def _unwrap(value: Any) -> Any:
    """Helicone-style `{"body": {...}}` wrappers -> the body."""
    if isinstance(value, Mapping) and isinstance(value.get("body"), Mapping) and not (
            {"messages", "input", "choices", "output"} & set(value)):
        return value["body"]
    return value


def _request_body(record: Mapping[str, Any], path: Path, line: int) -> Mapping[str, Any]:
    for key in ("request", "request_body"):
        body = _unwrap(record.get(key))
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                raise TraceFormatError("is a string that is not JSON", path=path, line=line, field=key,
                                       hint=HINT) from None
        if isinstance(body, Mapping):
            if "messages" in body or "input" in body or "contents" in body:
                return body
            raise TraceFormatError("has neither 'messages' (Chat Completions, Anthropic Messages), "
                                   "'input' (Responses) nor 'contents' (Gemini)",
                                   path=path, line=line, field=key, hint=HINT)
    if "messages" in record or "input" in record:
        return record
    raise TraceFormatError("is required but missing", path=path, line=line, field="request", hint=HINT)


def _response_body(record: Mapping[str, Any], path: Path, line: int) -> Mapping[str, Any] | None:
    for key in ("response", "response_body"):
        body = _unwrap(record.get(key))
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                continue  # LiteLLM logs a failed call's error text here
        if isinstance(body, Mapping):
            return body
    return None


def _responses_input(body: Mapping[str, Any], path: Path, line: int) -> list[dict[str, Any]]:
    """A Responses API request (`instructions` + `input`) as chat messages."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list):
        raise TraceFormatError("expected a string or a list of input items", path=path, line=line,
                               field="request.input", hint=HINT)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TraceFormatError("must be an object", path=path, line=line, field=f"request.input[{i}]")
        kind = item.get("type")
        if kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": item.get("call_id"), "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": item.get("output")})
        elif isinstance(item.get("role"), str):
            messages.append({"role": item["role"], "content": item.get("content")})
        else:
            # Reasoning items and other typed items: their JSON stands in for what the model saw.
            messages.append({"role": "user", "content": json.dumps(
                {k: v for k, v in item.items() if k != "id"}, ensure_ascii=False)})
    return messages


def _responses_output(response: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    items = response.get("output")
    if not isinstance(items, list):
        return None, None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": item.get("arguments")}})
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    status = response.get("status")
    return message, status if isinstance(status, str) else None


def _is_anthropic(body: Mapping[str, Any], response: Mapping[str, Any] | None,
                  provider: str | None) -> bool:
    """An Anthropic Messages call: its response is a `message` with `content[]`, or its request has
    a top-level `system` (Chat Completions has none), or the provider says so."""
    if response is not None and response.get("type") == "message" and isinstance(response.get("content"), list):
        return True
    if "system" in body:
        return True
    return provider == "anthropic" and (response is None or "choices" not in response)


def _anthropic_messages(body: Mapping[str, Any], path: Path, line: int) -> list[dict[str, Any]]:
    """An Anthropic Messages request as chat messages: the top-level `system` (string or content
    blocks, `cache_control` marks kept) becomes a leading system message; the messages keep their
    content blocks (text, tool_use, tool_result, images) as sent; a request-level `cache_control`
    (automatic caching) becomes a mark on the last message."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, (str, list)) and system:
        messages.append({"role": "system", "content": system})
    elif system not in (None, "", []):
        raise TraceFormatError("expected a string or a list of content blocks", path=path, line=line,
                               field="request.system", hint=HINT)
    messages.extend(dict(m) for m in body["messages"])
    top = body.get("cache_control")
    if isinstance(top, Mapping) and messages and "cache_control" not in messages[-1]:
        # Automatic caching: a request-level mark is a breakpoint on the last cacheable block, which
        # a message-level mark on the last message expresses for the simulator.
        messages[-1] = {**messages[-1], "cache_control": dict(top)}
    return messages


def _anthropic_output(response: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """An Anthropic response's `content[]` as the assistant message a follow-up request carries
    (the same blocks: text, tool_use, thinking)."""
    content = response.get("content")
    if not isinstance(content, list):
        return None, None
    stop = response.get("stop_reason")
    return ({"role": "assistant", "content": [dict(b) if isinstance(b, Mapping) else b for b in content]},
            stop if isinstance(stop, str) else None)


def _gemini_parts(parts: Any) -> list[Any]:
    """Gemini content parts as chat content parts: text parts as `{"type": "text"}`, the rest
    (function calls and responses, inline data) as sent, their JSON standing in for them."""
    out: list[Any] = []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, Mapping) and set(part) <= {"text", "thought"} and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        else:
            out.append(dict(part) if isinstance(part, Mapping) else part)
    return out


def _gemini_messages(body: Mapping[str, Any], path: Path, line: int) -> list[dict[str, Any]]:
    """A Gemini `generateContent` request as chat messages: `systemInstruction` first, then each
    content (role `model` -> assistant)."""
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(system, Mapping):
        messages.append({"role": "system", "content": _gemini_parts(system.get("parts"))})
    elif isinstance(system, str):
        messages.append({"role": "system", "content": system})
    contents = body.get("contents")
    if isinstance(contents, str):
        contents = [{"role": "user", "parts": [{"text": contents}]}]
    if not isinstance(contents, list):
        raise TraceFormatError("expected a list of contents", path=path, line=line, field="request.contents",
                               hint=HINT)
    for i, c in enumerate(contents):
        if not isinstance(c, Mapping):
            raise TraceFormatError("must be an object", path=path, line=line, field=f"request.contents[{i}]")
        role = "assistant" if c.get("role") == "model" else str(c.get("role") or "user")
        messages.append({"role": role, "content": _gemini_parts(c.get("parts"))})
    return messages


def _gemini_output(response: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    candidate = get_path(response, "candidates.0")
    if not isinstance(candidate, Mapping):
        return None, None
    finish = candidate.get("finishReason")
    return ({"role": "assistant", "content": _gemini_parts(get_path(candidate, "content.parts"))},
            finish if isinstance(finish, str) else None)


def _gemini_tools(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Gemini tools: each function declaration as one tool definition; other tools (search, code
    execution) as sent."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        decls = tool.get("functionDeclarations", tool.get("function_declarations"))
        if isinstance(decls, list):
            out.extend({"type": "function", "function": dict(d)} for d in decls if isinstance(d, Mapping))
        else:
            out.append(dict(tool))
    return out


def response_format_of(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The structured-output format a request asked for, as sent: Chat Completions
    `response_format`, Responses `text.format`, Anthropic `output_format` / `output_config.format`.
    Plain text (`{"type": "text"}`) is no format."""
    for value in (body.get("response_format"), get_path(body, "text.format"), body.get("output_format"),
                  get_path(body, "output_config.format")):
        if isinstance(value, Mapping) and value.get("type") != "text":
            return dict(value)
    config = body.get("generationConfig", body.get("generation_config"))
    if isinstance(config, Mapping):
        schema = {k: config[k] for k in ("responseMimeType", "responseSchema", "responseJsonSchema",
                                         "response_mime_type", "response_schema", "response_json_schema")
                  if k in config}
        if any("schema" in k.lower() for k in schema):
            return schema
    return None


def _times(record: Mapping[str, Any], response: Mapping[str, Any] | None, path: Path, line: int
           ) -> tuple[float | None, float | None, float | None]:
    start = end = None
    for key in _START_KEYS:
        if record.get(key) is not None:
            start = parse_time(record[key], path=path, line=line, field=key)
            break
    if start is None and response is not None:
        for key in ("created", "created_at"):
            if isinstance(response.get(key), (int, float)):
                start = parse_time(response[key], path=path, line=line, field=f"response.{key}")
                break
    for key in _END_KEYS:
        if record.get(key) is not None:
            end = parse_time(record[key], path=path, line=line, field=key)
            break
    if end is None and start is not None:
        for keys, scale in ((_LATENCY_MS_KEYS, 1e-3), (_LATENCY_S_KEYS, 1.0)):
            for key in keys:
                value = record.get(key)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise TraceFormatError("expected a duration >= 0", path=path, line=line, field=key)
                end = start + float(value) * scale
                break
            if end is not None:
                break
    if start is not None and end is not None and end < start:
        raise TraceFormatError(f"ends before it starts ({end} < {start})", path=path, line=line,
                               field=_END_KEYS[0])
    ttft = None
    first = record.get("completionStartTime")
    if first is not None and start is not None:
        t = parse_time(first, path=path, line=line, field="completionStartTime")
        if t is not None and t >= start and (end is None or t <= end) and t != end:
            ttft = (t - start) * 1000.0
    return start, end, ttft


def parse_record(record: Any, *, path: Path, line: int, run_key: str | None) -> LoggedCall:
    """One log line -> a `LoggedCall` (raises `TraceFormatError` naming the line and field)."""
    if not isinstance(record, Mapping):
        raise TraceFormatError(f"expected a JSON object, got {type(record).__name__}", path=path,
                               line=line, hint=HINT)
    body = _request_body(record, path, line)
    response = _response_body(record, path, line)
    model = body.get("model") if isinstance(body.get("model"), str) else None
    if model is None and isinstance(record.get("model"), str):
        model = record["model"]
    if model is None and response is not None and isinstance(response.get("model"), str):
        model = response["model"]
    provider, bare_model = split_model_route(model)
    explicit = record.get("custom_llm_provider") or record.get("provider")
    provider = (explicit if isinstance(explicit, str) else None) or provider or guess_provider(bare_model)

    if "messages" in body:
        messages = body["messages"]
        if not isinstance(messages, list):
            raise TraceFormatError("expected a list", path=path, line=line, field="request.messages",
                                   hint=HINT)
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise TraceFormatError("must be an object with a string 'role'", path=path, line=line,
                                       field=f"request.messages[{i}]", hint=HINT)
        output = finish = None
        if _is_anthropic(body, response, provider):
            api = "anthropic-messages"
            provider = provider or "anthropic"
            messages = _anthropic_messages(body, path, line)
            if response is not None:
                output, finish = _anthropic_output(response)
        else:
            api = "chat"
            messages = list(messages)
            choice = get_path(response, "choices.0") if response is not None else None
            if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping):
                output = assistant_message(choice["message"])
                finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    elif "contents" in body:
        api = "gemini"
        provider = provider or "google"
        messages = _gemini_messages(body, path, line)
        output, finish = _gemini_output(response) if response is not None else (None, None)
    else:
        api = "responses"
        messages = _responses_input(body, path, line)
        output, finish = _responses_output(response) if response is not None else (None, None)

    tools = _gemini_tools(body) if api == "gemini" else body.get("tools")
    if tools is None:
        tools = get_path(record, "model_parameters.tools")
    if tools is None and isinstance(body.get("functions"), list):  # legacy function calling
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, Mapping) for t in tools)):
        raise TraceFormatError("expected a list of tool definitions", path=path, line=line,
                               field="request.tools", hint=HINT)

    raw_usage = response.get("usage", response.get("usageMetadata")) if response is not None else None
    if not isinstance(raw_usage, Mapping) and "prompt_tokens" in record:
        # LiteLLM / Helicone records carry the counts at the top level as well.
        raw_usage = {k: record[k] for k in ("prompt_tokens", "completion_tokens") if k in record}
    usage = normalize_usage(raw_usage, provider) if isinstance(raw_usage, Mapping) else Usage()
    start, end, ttft = _times(record, response, path, line)

    key_value = None
    if run_key:
        value = get_path(record, run_key)
        if value is None:
            value = get_path(body, run_key)
        if value is not None:
            key_value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    attrs: dict[str, Any] = {"source_line": line}
    if isinstance(record.get("metadata"), Mapping):
        attrs["metadata"] = dict(record["metadata"])
    cost = record.get("response_cost", record.get("cost"))
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        attrs["reported_cost_usd"] = float(cost)
    if model is not None and model != bare_model:
        attrs["model_route"] = model
    response_id = response.get("id") if response is not None and isinstance(response.get("id"), str) else None
    previous = body.get("previous_response_id")
    return LoggedCall(
        path=path, line=line, model=bare_model, provider=provider, messages=tuple(messages),
        tools=None if tools is None else tuple(tools), output=output, finish_reason=finish, usage=usage,
        start_unix_s=start, end_unix_s=end, ttft_ms=ttft, run_key=key_value, response_id=response_id,
        previous_response_id=previous if isinstance(previous, str) else None, api=api, attributes=attrs,
        response_format=response_format_of(body))


# ------------------------------------------------------------------------------------------ grouping

@dataclass
class _OpenRun:
    run_id: str
    model: str | None
    prompt_keys: list[tuple[Any, ...]]
    prompt_hash: int
    output_key: tuple[Any, ...] | None
    output: Mapping[str, Any] | None
    last_start: float | None
    last_end: float | None
    order: int  # position of its last call, for "most recently active"


def _prefix_hashes(keys: Sequence[tuple[Any, ...]]) -> list[int]:
    """Chained hashes: element i identifies keys[:i] (so a prefix is found without rehashing it)."""
    out = [0]
    for key in keys:
        out.append(hash((out[-1], key)))
    return out


def rewritten_answer(answer: Mapping[str, Any] | None, message: Mapping[str, Any]) -> bool:
    """Whether `message` is the model's `answer` as a framework resent it after rewriting it: an
    assistant message that keeps at least one of the answer's tool calls (some frameworks resend
    only the call they ran) or whose text starts with the answer's text, or is its start (crewAI
    appends "Observation: ..." to the answer; others trim it)."""
    if answer is None or message.get("role") != "assistant":
        return False
    ids = {c.get("id") for c in canonical_tool_calls(answer.get("tool_calls")) or () if c.get("id")}
    if ids & {c.get("id") for c in canonical_tool_calls(message.get("tool_calls")) or ()}:
        return True
    said, resent = render_content(answer.get("content")).strip(), render_content(message.get("content")).strip()
    return bool(said and resent) and (resent.startswith(said) or said.startswith(resent))


def group_by_continuation(calls: Sequence[LoggedCall], *, window_s: float | None = DEFAULT_WINDOW_S,
                          prefix: str = "run") -> list[str]:
    """Run id for each call (in the order given, which must be start order) by prefix continuation;
    see the module docstring.

    Open runs are indexed by (model, length, chained hash) of their last prompt, so each call looks up
    only the runs whose last prompt is one of its own prefixes: linear in the messages of the log,
    not in calls x runs. Candidates are verified message by message, so a hash collision cannot merge
    runs."""
    runs: list[_OpenRun] = []
    index: dict[tuple[str | None, int, int], list[_OpenRun]] = {}
    assigned: list[str] = []
    for order, call in enumerate(calls):
        keys = [message_key(m) for m in call.messages]
        hashes = _prefix_hashes(keys)
        best: tuple[tuple[int, int, int], _OpenRun] | None = None
        for n in range(len(keys) + 1):
            for run in index.get((call.model, n, hashes[n]), ()):
                last = run.last_end if run.last_end is not None else run.last_start
                if window_s is not None and last is not None and call.start_unix_s is not None and (
                        call.start_unix_s - last > window_s):
                    continue
                if n == len(keys):
                    # Same prompt again: a retry only once the earlier call has ended (else parallel).
                    if (call.start_unix_s is not None and run.last_end is not None
                            and call.start_unix_s < run.last_end):
                        continue
                    score = (2 * n, 1, run.order)
                elif run.output_key is None or keys[n] == run.output_key:
                    score = (2 * n + 1, 1, run.order)
                elif rewritten_answer(run.output, call.messages[n]):
                    # The framework rewrote the answer before resending it; an exact match wins.
                    score = (2 * n + 1, 0, run.order)
                else:
                    continue
                if (best is None or score > best[0]) and keys[:n] == run.prompt_keys:
                    best = (score, run)
        if best is None:
            run = _OpenRun(f"{prefix}-{len(runs) + 1}", call.model, [], 0, None, None, None, None, order)
            runs.append(run)
        else:
            run = best[1]
            index[(run.model, len(run.prompt_keys), run.prompt_hash)].remove(run)
        run.prompt_keys = keys
        run.prompt_hash = hashes[-1]
        run.output_key = None if call.output is None else message_key(call.output)
        run.output = call.output
        run.last_start = call.start_unix_s
        run.last_end = call.end_unix_s if call.end_unix_s is not None else call.start_unix_s
        run.order = order
        index.setdefault((run.model, len(keys), run.prompt_hash), []).append(run)
        assigned.append(run.run_id)
    return assigned


def calls_to_steps(calls: Sequence[LoggedCall], run_ids: Sequence[str]) -> list[Step]:
    """One `llm` step per call, numbered within its run (`call-1`, `call-2`, ...)."""
    steps: list[Step] = []
    counts: dict[str, int] = {}
    for call, rid in zip(calls, run_ids, strict=True):
        counts[rid] = counts.get(rid, 0) + 1
        steps.append(Step(
            run_id=rid, step_id=f"call-{counts[rid]}", name="llm", model=call.model,
            provider=call.provider, start_unix_s=call.start_unix_s, end_unix_s=call.end_unix_s,
            ttft_ms=call.ttft_ms,
            prompt=Prompt(messages=call.messages, tools=call.tools, response_format=call.response_format),
            output=Output(message=None if call.output is None else dict(call.output),
                          finish_reason=call.finish_reason),
            usage=call.usage,
            attributes={**call.attributes, "source_file": call.path.name, "api": call.api,
                        **({"response_id": call.response_id} if call.response_id else {})}))
    return steps


# ------------------------------------------------------------------------------------------ public

def import_openai_logs(sources: PathLike | Iterable[PathLike], *, run_key: str | None = None,
                       window_s: float | None = DEFAULT_WINDOW_S) -> Trace:
    """Import OpenAI-style request/response JSONL logs (files or folders of `.jsonl` files)."""
    roots = as_paths(sources)
    files = walk(roots, (".jsonl", ".ndjson"))
    calls: list[LoggedCall] = []
    warnings: list[str] = []  # torn last lines, skipped as the trace reader skips them
    for file in files:
        for line, record in iter_jsonl(file, warnings):
            calls.append(parse_record(record, path=file, line=line, run_key=run_key))
    if not calls:
        raise TraceFormatError("holds no log records", path=roots[0], hint=HINT)
    # Start order where every call has a time; file order otherwise.
    if all(c.start_unix_s is not None for c in calls):
        calls = sorted(calls, key=lambda c: c.start_unix_s)  # type: ignore[arg-type, return-value]

    # Responses API chains: the prompt is the previous response's context plus this input.
    by_response: dict[str, tuple[int, LoggedCall]] = {}
    chained = 0
    resolved: list[LoggedCall] = []
    for i, call in enumerate(calls):
        if call.previous_response_id and call.previous_response_id in by_response:
            _, prev = by_response[call.previous_response_id]
            context = list(prev.messages) + ([dict(prev.output)] if prev.output is not None else [])
            call = replace(call, messages=tuple(context) + call.messages)
            chained += 1
        if call.response_id:
            by_response[call.response_id] = (i, call)
        resolved.append(call)
    calls = resolved

    run_ids: list[str | None] = [f"{run_key}={c.run_key}" if c.run_key is not None else None
                                 for c in calls]
    # A chained call belongs to the run of the response it continues.
    index_of = {c.response_id: i for i, c in enumerate(calls) if c.response_id}
    keyless = [i for i, rid in enumerate(run_ids) if rid is None]
    grouped = group_by_continuation([calls[i] for i in keyless], window_s=window_s)
    for i, rid in zip(keyless, grouped):
        run_ids[i] = rid
    for i, call in enumerate(calls):
        j = index_of.get(call.previous_response_id) if call.previous_response_id else None
        if j is not None and j < i and calls[i].run_key is None:
            run_ids[i] = run_ids[j]
    # Number heuristic runs by first appearance (a chain override may have emptied one).
    renumber: dict[str, str] = {}
    for i in keyless:
        rid = run_ids[i]
        if rid is not None and rid not in renumber:
            renumber[rid] = f"run-{len(renumber) + 1}"
    run_ids = [renumber.get(r, r) if r is not None else None for r in run_ids]

    steps = calls_to_steps(calls, [r for r in run_ids if r is not None])
    runs = [Run(run_id=rid, workflow=FORMAT) for rid in dict.fromkeys(r for r in run_ids if r)]

    reconstructed: dict[str, str] = {}
    if keyless:
        reconstructed["runs"] = (
            f"{len(keyless)} call(s) grouped by prefix continuation (same model, messages extending a "
            f"run's last prompt and answer, within {window_s:g} s; identical prompt after the call "
            "ended = retry)" if window_s is not None else
            f"{len(keyless)} call(s) grouped by prefix continuation (no time window)")
    if run_key:
        reconstructed["runs (key)"] = f"calls with '{run_key}' grouped by its value"
    if any(c.api == "responses" for c in calls):
        reconstructed["prompt.messages (Responses API)"] = (
            "instructions and input items rendered as chat messages"
            + (f"; {chained} previous_response_id chain(s) expanded with the earlier context"
               if chained else ""))
    if any(c.start_unix_s is None for c in calls):
        reconstructed["timestamps"] = "some records carry no time; those calls keep file order"
    missing_usage = sum(1 for c in calls if c.usage.input_tokens is None)
    header = make_header(FORMAT, [str(s) for s in roots], reconstructed, run_key=run_key,
                         window_s=window_s,
                         notes=[f"{missing_usage} of {len(calls)} call(s) carry no usage"]
                         if missing_usage else None)
    return replace(build_trace(steps, runs, header), warnings=tuple(warnings))


__all__ = ["LoggedCall", "calls_to_steps", "group_by_continuation", "import_openai_logs", "parse_record",
           "response_format_of", "rewritten_answer"]
