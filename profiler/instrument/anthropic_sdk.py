"""Auto-instrumentation of the official `anthropic` SDK: `Messages.create` (whole or `stream=True`),
`Messages.parse` and the `Messages.stream()` helper, sync and async, in `messages` and `beta.messages`.

The system prompt becomes a leading `system` message; the assistant output keeps Anthropic's content
blocks (text, tool_use), as a later request carries them in its history. Usage comes from the response,
or from a stream's `message_start` event (input, cache read, cache write) updated by `message_delta`
(output tokens), and is normalised with `profiler.usage.normalize_usage` (Anthropic reports cached
tokens beside input tokens; the trace counts them inside).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

from profiler.instrument.calls import (
    Accumulator,
    AsyncRecordedStream,
    LlmCall,
    RecordedStream,
    _set_prompt,
    given,
    json_loads_or_text,
    materialize,
    plain,
)
from profiler.trace.model import Output
from profiler.usage import normalize_usage

PROVIDER = "anthropic"


def messages_prompt(kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any] | None]:
    messages: list[dict[str, Any]] = []
    system = given(kwargs, "system")
    if system is not None:
        messages.append({"role": "system", "content": plain(system)})
    messages.extend(plain(given(kwargs, "messages") or []))
    tools = given(kwargs, "tools")
    return messages, plain(tools) if tools is not None else None


def _usage_dict(usage: Any) -> dict[str, Any]:
    d = plain(usage) if usage is not None else {}
    return d if isinstance(d, dict) else {}


def message_result(message: Any) -> dict[str, Any]:
    content = plain(getattr(message, "content", None) or [])
    return {"output": Output(message={"role": "assistant", "content": content},
                             finish_reason=getattr(message, "stop_reason", None)),
            "usage": normalize_usage(_usage_dict(getattr(message, "usage", None)), PROVIDER),
            "model": getattr(message, "model", None)}


class MessagesAccumulator(Accumulator):
    """Rebuilds the message from raw stream events (message_start, content_block_*, message_delta)."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.final_usage = False  # a message_delta carried the call's final usage

    def add(self, event: Any, call: LlmCall) -> None:
        kind = getattr(event, "type", "")
        if kind == "message_start":
            self.model = getattr(event.message, "model", None)
            self.usage.update({k: v for k, v in _usage_dict(event.message.usage).items()
                               if v is not None})
            for i, block in enumerate(getattr(event.message, "content", None) or []):
                self.blocks[i] = plain(block)
        elif kind == "content_block_start":
            self.blocks[event.index] = plain(event.content_block)
        elif kind == "content_block_delta":
            call.first_token()
            delta = event.delta
            block = self.blocks.setdefault(event.index, {"type": "text", "text": ""})
            dtype = getattr(delta, "type", "")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.text
            elif dtype == "input_json_delta":
                self.json_parts.setdefault(event.index, []).append(delta.partial_json)
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.thinking
        elif kind == "content_block_stop":
            parts = self.json_parts.pop(event.index, None)
            if parts is not None and event.index in self.blocks:
                self.blocks[event.index]["input"] = json_loads_or_text("".join(parts))
        elif kind == "message_delta":
            self.stop_reason = getattr(event.delta, "stop_reason", None) or self.stop_reason
            self.final_usage = True
            self.usage.update({k: v for k, v in _usage_dict(getattr(event, "usage", None)).items()
                               if v is not None})

    def result(self, complete: bool = True) -> dict[str, Any]:
        for index, parts in self.json_parts.items():  # stream ended inside a tool_use block
            if index in self.blocks:
                self.blocks[index]["input"] = json_loads_or_text("".join(parts))
        content = [self.blocks[i] for i in sorted(self.blocks)]
        usage = dict(self.usage)
        extra: dict[str, Any] = {}
        if usage and not self.final_usage:
            # message_start's output_tokens is a placeholder (1): the stream stopped before the
            # message_delta that reports the real figure, so output tokens stay unknown.
            usage.pop("output_tokens", None)
            extra["attributes"] = {"usage_partial": "output tokens not reported (the stream "
                                                    "stopped before message_delta)"}
        out = {"output": Output(message={"role": "assistant", "content": content},
                                finish_reason=self.stop_reason),
               "usage": normalize_usage(usage, PROVIDER) if usage else None,
               "model": self.model, **extra}
        if not usage:
            out["usage_absent"] = "the stream carried no usage"
        return out


class _StreamManager:
    """Wraps `Messages.stream()`'s manager: the request starts when it is entered; the raw event
    stream under the SDK's `MessageStream` is wrapped so every event is recorded."""

    def __init__(self, manager: Any, kwargs: dict[str, Any], is_async: bool) -> None:
        self._manager = manager
        self._kwargs = kwargs
        self._is_async = is_async
        self._call: LlmCall | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def _begin(self) -> None:
        self._call = LlmCall.begin("anthropic.messages", PROVIDER, self._kwargs)
        if self._call is not None:
            _set_prompt(self._call, messages_prompt, self._kwargs)

    def _wrap(self, message_stream: Any) -> Any:
        call = self._call
        if call is None:
            return message_stream
        raw = getattr(message_stream, "_raw_stream", None)
        if raw is None:  # an SDK version without the attribute: record the prompt, not the stream
            call.finish(attributes={"record_error": "stream internals not recognised"})
            return message_stream
        wrapper = AsyncRecordedStream if self._is_async else RecordedStream
        message_stream._raw_stream = wrapper(raw, call, MessagesAccumulator())
        return message_stream

    def __enter__(self) -> Any:
        self._begin()
        try:
            stream = self._manager.__enter__()
        except BaseException as e:
            if self._call is not None:
                self._call.finish(error=e)
            raise
        return self._wrap(stream)

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._manager.__exit__(*exc)
        finally:
            if self._call is not None and not self._call.done:
                self._call.finish()

    async def __aenter__(self) -> Any:
        self._begin()
        try:
            stream = await self._manager.__aenter__()
        except BaseException as e:
            if self._call is not None:
                self._call.finish(error=e)
            raise
        return self._wrap(stream)

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._manager.__aexit__(*exc)
        finally:
            if self._call is not None and not self._call.done:
                self._call.finish()


def _wrap_stream_helper(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        materialize(kwargs, "messages", "tools", "system")
        return _StreamManager(original(self, *args, **kwargs), kwargs, is_async)

    wrapper.__ctxprof_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _resource_classes() -> list[tuple[type, bool]]:
    """`messages` and `beta.messages`, sync and async (the beta namespace where this SDK has it)."""
    from anthropic.resources.messages import AsyncMessages, Messages

    classes = [(Messages, False), (AsyncMessages, True)]
    try:
        from anthropic.resources.beta.messages import AsyncMessages as BetaAsync
        from anthropic.resources.beta.messages import Messages as BetaSync
    except ImportError:
        return classes
    return classes + [(BetaSync, False), (BetaAsync, True)]


def targets() -> list[tuple[type, str, str, Any, Any, Any, tuple[str, ...], bool]]:
    spec = ("anthropic.messages", messages_prompt, message_result, MessagesAccumulator,
            ("messages", "tools", "system"))
    return [(cls, method, *spec, is_async) for cls, is_async in _resource_classes()
            for method in ("create", "parse")]


def special_targets() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """Methods wrapped by a custom wrapper: (class, method, make_wrapper(original))."""
    return [(cls, "stream", lambda f, is_async=is_async: _wrap_stream_helper(f, is_async))
            for cls, is_async in _resource_classes()]
