"""Import OpenHands / LiteLLM completion logs (`log_completions=True`): one JSON file per LLM call.

Each call file holds the request as sent (`messages`, `tools`, `kwargs`), the LiteLLM `response`
(OpenAI-shaped: `choices[0].message`, `usage` with Anthropic `cache_read_input_tokens` /
`cache_creation_input_tokens` or DeepSeek `prompt_cache_hit_tokens`), the `cost` LiteLLM computed,
`timestamp` (written when the response arrived) and `latency_sec`. Calls made with prompt-mocked tool
calling (models without native function calling) also carry `raw_messages` (the conversation before it
was rewritten into text) and `raw_response` (the model's own text, before OpenHands parsed tool calls
out of it).

Contract:
- one run per directory of call files, its steps in time order (run id: the directory, relative to the
  source folder);
- the prompt is `messages` as sent plus the tool definitions passed to the API (`kwargs.tools`, else
  the top-level `tools`);
- the output is what the model produced: `raw_response` where present, else `response`; a response
  whose tool calls were logged as empty placeholders (`[{}]`, older OpenHands versions) gets its
  assistant message from the next call's history, and the header says so;
- usage normalised with `normalize_usage` (the provider taken from the model route,
  `litellm_proxy/anthropic/...` -> anthropic); `cost` kept as the step attribute `reported_cost_usd`;
- start = `timestamp` - `latency_sec`, end = `timestamp`;
- `*-llm-message.json` files (a run's final conversation, not a call) and other JSON that is a bare
  message list are skipped and listed in the header's `skipped_files`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from profiler.errors import TraceFormatError
from profiler.importers.common import (
    PathLike,
    as_paths,
    assistant_message,
    build_trace,
    get_path,
    guess_provider,
    make_header,
    message_key,
    read_json,
    require,
    split_model_route,
    walk,
)
from profiler.trace.model import Output, Prompt, Run, Step, Trace, Usage
from profiler.usage import normalize_usage

FORMAT = "openhands"
_FILE_NAME = re.compile(r"^(.+)-\d{9,}\.\d+(?:-[0-9a-f]{4})?(?:-error)?$")
HINT = "an OpenHands completion log is one JSON object per call with 'messages' and 'response'"


@dataclass
class _Call:
    path: Path
    run_id: str
    step: Step
    n_messages: int
    placeholder_tool_calls: bool
    notes: set[str] = field(default_factory=set)


def _is_transcript(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(m, Mapping) and "role" in m for m in data)


def _run_id(file: Path, roots: list[Path]) -> str:
    for root in roots:
        if root.is_dir():
            try:
                rel = file.parent.relative_to(root)
            except ValueError:
                continue
            return root.name if str(rel) == "." else rel.as_posix()
    return file.parent.name


def _model_route(data: Mapping[str, Any], file: Path) -> str | None:
    kwargs = data.get("kwargs") if isinstance(data.get("kwargs"), Mapping) else {}
    if isinstance(kwargs.get("model"), str):
        return kwargs["model"]
    for tag in get_path(kwargs, "extra_body.metadata.tags") or []:
        if isinstance(tag, str) and tag.startswith("model:"):
            return tag[len("model:"):]
    # Log files are named "<model route with / as __>-<unix time>[-<4 hex>].json".
    match = _FILE_NAME.match(file.stem)
    if match and "__" in match.group(1):
        return match.group(1).replace("__", "/")
    model = get_path(data, "response.model")
    return model if isinstance(model, str) else None


def _tools(data: Mapping[str, Any]) -> tuple[tuple[Mapping[str, Any], ...] | None, str]:
    sent = get_path(data, "kwargs.tools")
    if isinstance(sent, list) and sent:
        return tuple(t for t in sent if isinstance(t, Mapping)), "kwargs.tools"
    top = data.get("tools")
    if isinstance(top, list) and top:
        tools = []
        for t in top:
            if not isinstance(t, Mapping):
                continue
            if "function" in t:
                tools.append(t)
            elif "name" in t:  # an OpenHands ToolDefinition dump: wrap it in the OpenAI shape
                tools.append({"type": "function", "function": {
                    "name": t.get("name"), "description": t.get("description"),
                    "parameters": t.get("parameters") or t.get("input_schema") or {}}})
        return (tuple(tools) or None), "tools"
    return None, ""


def _usage(data: Mapping[str, Any], provider: str | None) -> Usage:
    raw = get_path(data, "response.usage")
    if isinstance(raw, Mapping):
        return normalize_usage(raw, provider)
    summary = data.get("usage_summary")
    if isinstance(summary, Mapping):  # newer OpenHands: already normalised by the SDK
        def count(key: str) -> int | None:
            v = summary.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        return Usage(input_tokens=count("prompt_tokens"), cache_read_tokens=count("cache_read_tokens"),
                     output_tokens=count("completion_tokens"), reasoning_tokens=count("reasoning_tokens"))
    return Usage()


def _read_call(file: Path, run_id: str) -> _Call | str:
    data = read_json(file)
    if _is_transcript(data):
        return ("a conversation transcript (a bare message list: OpenHands writes the run's final "
                "conversation to *-llm-message.json), not a logged LLM call: no response, usage or time")
    if not isinstance(data, Mapping):
        raise TraceFormatError(f"expected a JSON object, got {type(data).__name__}", path=file, hint=HINT)
    if "response" not in data and isinstance(data.get("error"), Mapping):
        return "a failed call (OpenHands logged its error, no response): left out"
    messages = require(data, "messages", list, path=file, hint=HINT)
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise TraceFormatError("must be an object with a string 'role'", path=file,
                                   field=f"messages[{i}]", hint=HINT)
    response = require(data, "response", dict, path=file, hint=HINT)
    notes: set[str] = set()
    raw = data.get("raw_response")
    source, source_name = (raw, "raw_response") if isinstance(raw, Mapping) else (response, "response")
    choices = require(source, "choices", list, path=file, field=f"{source_name}.choices", hint=HINT)
    if not choices or not isinstance(choices[0], Mapping) or not isinstance(choices[0].get("message"),
                                                                              Mapping):
        raise TraceFormatError("needs at least one choice with a 'message'", path=file,
                               field=f"{source_name}.choices", hint=HINT)
    if source_name == "raw_response":
        notes.add("mocked")
    message = choices[0]["message"]
    placeholder = isinstance(message.get("tool_calls"), list) and bool(message["tool_calls"]) and all(
        isinstance(tc, Mapping) and not tc for tc in message["tool_calls"])

    route = _model_route(data, file)
    provider, model = split_model_route(route)
    provider = provider or guess_provider(model)
    tools, tools_from = _tools(data)
    if tools_from == "tools":
        notes.add("tools-top-level")
    end = data.get("timestamp")
    latency = data.get("latency_sec")
    if end is not None and (not isinstance(end, (int, float)) or isinstance(end, bool)):
        raise TraceFormatError("expected unix seconds", path=file, field="timestamp", hint=HINT)
    if latency is not None and (not isinstance(latency, (int, float)) or isinstance(latency, bool)
                                or latency < 0):
        raise TraceFormatError("expected a number of seconds >= 0", path=file, field="latency_sec",
                               hint=HINT)
    start = None if end is None or latency is None else float(end) - float(latency)
    usage = _usage(data, provider)
    if usage.input_tokens is None:
        notes.add("no-usage")
    cost = data.get("cost")
    attributes: dict[str, Any] = {"source_file": file.name, "model_route": route}
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        attributes["reported_cost_usd"] = float(cost)
    if isinstance(response.get("id"), str):
        attributes["response_id"] = response["id"]
    if isinstance(data.get("context_window"), int):
        attributes["context_window_tokens"] = data["context_window"]
    step = Step(
        run_id=run_id, step_id=file.stem, name="agent", model=model, provider=provider,
        start_unix_s=start, end_unix_s=None if end is None else float(end),
        prompt=Prompt(messages=tuple(messages), tools=tools),
        output=Output(message=assistant_message(message), finish_reason=choices[0].get("finish_reason")),
        usage=usage, attributes=attributes)
    return _Call(file, run_id, step, len(messages), placeholder, notes)


def import_openhands(sources: PathLike | Iterable[PathLike]) -> Trace:
    """Import OpenHands completion-log files (or folders of them) into one trace."""
    roots = as_paths(sources)
    files = walk(roots, (".json",))
    calls: list[_Call] = []
    skipped: list[dict[str, str]] = []
    for file in files:
        got = _read_call(file, _run_id(file, roots))
        if isinstance(got, str):
            skipped.append({"file": file.name, "reason": got})
        else:
            calls.append(got)
    if not calls:
        raise TraceFormatError("no OpenHands completion logs found", path=roots[0],
                               hint="expected JSON files with 'messages' and 'response'")

    by_run: dict[str, list[_Call]] = {}
    for c in calls:
        by_run.setdefault(c.run_id, []).append(c)
    repaired = 0
    steps: list[Step] = []
    runs: list[Run] = []
    for run_id, items in by_run.items():
        items.sort(key=lambda c: (c.step.start_unix_s if c.step.start_unix_s is not None
                                  else float("inf"), c.path.name))
        for k, c in enumerate(items):
            step = replace(c.step, step_id=f"call-{k + 1}")
            nxt = items[k + 1] if k + 1 < len(items) else None
            if c.placeholder_tool_calls and nxt is not None:
                follow = nxt.step.prompt.messages or ()
                if len(follow) > c.n_messages and follow[c.n_messages].get("role") == "assistant" and (
                        [message_key(m) for m in follow[:c.n_messages]]
                        == [message_key(m) for m in c.step.prompt.messages or ()]):
                    step = replace(step, output=replace(step.output,
                                                        message=assistant_message(follow[c.n_messages])))
                    repaired += 1
            steps.append(step)
        costs = [c.step.attributes["reported_cost_usd"] for c in items
                 if "reported_cost_usd" in c.step.attributes]
        runs.append(Run(run_id=run_id, workflow="openhands",
                        attributes={"reported_cost_usd": sum(costs)} if costs else {}))

    notes = set().union(*(c.notes for c in calls))
    no_latency = sum(1 for c in calls if c.step.start_unix_s is None)
    reconstructed = {
        "start_unix_s": "the log's `timestamp` (written when the response arrived) minus `latency_sec`"
        + (f"; unknown for {no_latency} call(s) logged without `latency_sec` (OpenHands V0)"
           if no_latency else ""),
        "runs": "one run per folder of call files; steps ordered by start time",
    }
    if repaired:
        reconstructed["output.message"] = (
            f"{repaired} response(s) were logged with empty tool-call placeholders; their assistant "
            "message is taken from the next call's history")
    if "mocked" in notes:
        reconstructed["output.message (prompt-mocked tool calling)"] = (
            "calls with `raw_response` used tool calling described in the prompt; the output is the "
            "model's raw text, not OpenHands' conversion of it into tool calls")
    if "tools-top-level" in notes:
        reconstructed["prompt.tools"] = "taken from the log's top-level `tools` (kwargs had none)"
    missing = sum(1 for c in calls if "no-usage" in c.notes)
    header = make_header(
        FORMAT, [str(s) for s in roots], reconstructed,
        skipped_files=skipped or None,
        notes=[f"{missing} of {len(calls)} call(s) carry no usage (older OpenHands versions did not "
               "serialise it); their reported tokens are unknown"] if missing else None)
    return build_trace(steps, runs, header)
