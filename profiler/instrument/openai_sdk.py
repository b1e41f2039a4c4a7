"""Auto-instrumentation of the official `openai` SDK: chat completions and the Responses API.

Patched (sync and async): `Completions.create` / `.parse` and `Responses.create` / `.parse`. The
`.stream()` helpers of both go through `create`, so they are recorded too. Streams
(`stream=True`) are wrapped; with `stream_options={"include_usage": True}` the final chunk's usage is
recorded, otherwise usage stays unknown (None, never 0) and the step says so (`usage_absent`).
Raw-response wrappers (`.with_raw_response`, `.with_streaming_response`) are handled in `calls`.
"""

from __future__ import annotations

from typing import Any, Mapping

from profiler.instrument.calls import Accumulator, LlmCall, given, plain
from profiler.trace.model import Output
from profiler.usage import normalize_usage

PROVIDER = "openai"


# -- chat completions -------------------------------------------------------------------------------
def chat_prompt(kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any] | None]:
    messages = plain(given(kwargs, "messages") or [])
    tools = given(kwargs, "tools")
    if tools is None and given(kwargs, "functions") is not None:
        tools = [{"type": "function", "function": f} for f in plain(kwargs["functions"])]
    return messages, plain(tools) if tools is not None else None


def _assistant_message(content: Any, tool_calls: list[dict[str, Any]] | None,
                       refusal: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if refusal:
        message["refusal"] = refusal
    return message


def chat_result(response: Any) -> dict[str, Any]:
    choices = getattr(response, "choices", None) or []
    output = None
    if choices:
        choice = choices[0]
        msg = plain(choice.message)
        tool_calls = msg.get("tool_calls") or None
        output = Output(message=_assistant_message(msg.get("content"), tool_calls, msg.get("refusal")),
                        finish_reason=getattr(choice, "finish_reason", None))
    attributes = {"choices": len(choices)} if len(choices) > 1 else None
    return {"output": output, "usage": normalize_usage(getattr(response, "usage", None), PROVIDER),
            "model": getattr(response, "model", None), "attributes": attributes}


class ChatAccumulator(Accumulator):
    def __init__(self) -> None:
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.model: str | None = None
        self.refusal: list[str] = []

    def add(self, chunk: Any, call: LlmCall) -> None:
        self.model = getattr(chunk, "model", None) or self.model
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue
            delta = choice.delta
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            if delta is None:
                continue
            if delta.content:
                call.first_token()
                self.text.append(delta.content)
            if getattr(delta, "refusal", None):
                call.first_token()
                self.refusal.append(delta.refusal)
            for tc in delta.tool_calls or []:
                call.first_token()
                slot = self.tool_calls.setdefault(
                    tc.index, {"id": None, "function": {"arguments": "", "name": ""}, "type": "function"})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        slot["function"]["name"] += tc.function.name
                    if tc.function.arguments:
                        slot["function"]["arguments"] += tc.function.arguments

    def result(self, complete: bool = True) -> dict[str, Any]:
        tool_calls = [self.tool_calls[i] for i in sorted(self.tool_calls)] or None
        content = "".join(self.text) if self.text or not tool_calls else None
        message = _assistant_message(content, tool_calls, "".join(self.refusal) or None)
        out = {"output": Output(message=message, finish_reason=self.finish_reason),
               "usage": normalize_usage(self.usage, PROVIDER) if self.usage is not None else None,
               "model": self.model}
        if self.usage is None:
            out["usage_absent"] = ("the stream carried no usage (request it with stream_options="
                                   "{'include_usage': True})" if complete else
                                   "the stream stopped before its usage chunk")
        return out


# -- Responses API ----------------------------------------------------------------------------------
def _input_item_message(item: Any) -> dict[str, Any]:
    """One Responses input item as a chat message (the analyzer renders chat messages)."""
    if isinstance(item, str):
        return {"role": "user", "content": item}
    item = plain(item)
    if not isinstance(item, dict):
        return {"role": "user", "content": str(item)}
    kind = item.get("type")
    if "role" in item and kind in (None, "message"):
        return {"role": str(item["role"]), "content": item.get("content")}
    if kind == "function_call":
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": item.get("call_id"), "function": {"arguments": item.get("arguments", ""),
                                                     "name": item.get("name")}, "type": "function"}]}
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
    # Other items (reasoning, built-in tool calls...) are earlier model output sent back.
    return {"role": "assistant", "content": [item]}


def responses_prompt(kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any] | None]:
    messages: list[dict[str, Any]] = []
    instructions = given(kwargs, "instructions")
    if instructions is not None:
        messages.append({"role": "system", "content": plain(instructions)})
    inp = given(kwargs, "input")
    if isinstance(inp, str):
        messages.append({"role": "user", "content": inp})
    elif inp is not None:
        messages.extend(_input_item_message(item) for item in inp)
    tools = given(kwargs, "tools")
    return messages, plain(tools) if tools is not None else None


def responses_result(response: Any) -> dict[str, Any]:
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in getattr(response, "output", None) or []:
        kind = getattr(item, "type", None)
        if kind == "message":
            for part in getattr(item, "content", None) or []:
                if getattr(part, "type", None) == "output_text":
                    text.append(part.text)
        elif kind == "function_call":
            tool_calls.append({"id": item.call_id, "function": {"arguments": item.arguments,
                                                                 "name": item.name},
                               "type": "function"})
    content = "".join(text) if text or not tool_calls else None
    attributes = {"response_id": response.id} if getattr(response, "id", None) else None
    return {"output": Output(message=_assistant_message(content, tool_calls or None),
                             finish_reason=getattr(response, "status", None)),
            "usage": normalize_usage(getattr(response, "usage", None), PROVIDER),
            "model": getattr(response, "model", None), "attributes": attributes}


class ResponsesAccumulator(Accumulator):
    def __init__(self) -> None:
        self.final: Any = None
        self.text: list[str] = []

    def add(self, event: Any, call: LlmCall) -> None:
        kind = getattr(event, "type", "")
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta",
                    "response.refusal.delta"):
            call.first_token()
            if kind == "response.output_text.delta":
                self.text.append(event.delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response

    def result(self, complete: bool = True) -> dict[str, Any]:
        if self.final is not None:
            return responses_result(self.final)
        return {"output": Output(message=_assistant_message("".join(self.text), None)),
                "usage_absent": "the stream stopped before its final response event"}


# -- patch table ------------------------------------------------------------------------------------
def targets() -> list[tuple[type, str, str, Any, Any, Any, tuple[str, ...], bool]]:
    """(class, method, api label, prompt builder, result reader, accumulator, iterable args, async)."""
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.responses import AsyncResponses, Responses

    chat = ("openai.chat", chat_prompt, chat_result, ChatAccumulator, ("messages", "tools"))
    resp = ("openai.responses", responses_prompt, responses_result, ResponsesAccumulator,
            ("input", "tools"))
    out = []
    for cls, is_async in ((Completions, False), (AsyncCompletions, True)):
        for method in ("create", "parse"):
            out.append((cls, method, *chat, is_async))
    for cls, is_async in ((Responses, False), (AsyncResponses, True)):
        for method in ("create", "parse"):
            if hasattr(cls, method):
                out.append((cls, method, *resp, is_async))
    return out
