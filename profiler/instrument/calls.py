"""One captured LLM call: which step it fills, its prompt, and its result -- whole or streamed.

`LlmCall.begin(...)` picks the step (the enclosing `llm` step if it has no call yet, else a new step of
the current run) and stores the prompt; `finish(...)` stores output, usage, model and timing and, for a
step of its own, writes it. Streams are wrapped in `RecordedStream` / `AsyncRecordedStream`, which hand
every chunk to the caller unchanged and to an accumulator, note the time of the first token, and finish
the call when the stream ends, is closed, or is abandoned.

Only what the trace needs is taken from a call's arguments (model, messages / input / system, tools,
and a few generation settings); headers, API keys, clients and request options never are.
"""

from __future__ import annotations

import inspect
import json
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from profiler.instrument import frameworks
from profiler.instrument.context import current_run, current_step
from profiler.trace.model import Output, Usage

if TYPE_CHECKING:
    from profiler.instrument.recorder import StepHandle


# Generation settings kept as step attributes (plain values only).
SETTINGS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "max_output_tokens",
            "stream", "tool_choice", "reasoning_effort", "seed", "n", "stop", "stop_sequences",
            "prompt_cache_key", "service_tier", "parallel_tool_calls", "previous_response_id")


def plain(obj: Any) -> Any:
    """JSON-ready copy of SDK arguments and results (pydantic models, iterables, omitted values)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items() if not is_omitted(v)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return plain(dump(mode="json", exclude_none=True, by_alias=True))
        except TypeError:
            return plain(dump())
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, Iterable):
        return [plain(v) for v in obj]
    return str(obj)


def is_omitted(value: Any) -> bool:
    """The SDKs' sentinels for "not given" (`NOT_GIVEN`, `omit`)."""
    return type(value).__name__ in ("NotGiven", "Omit")


def materialize(kwargs: dict[str, Any], *keys: str) -> None:
    """Turn one-shot iterables among the arguments into lists, so reading them here does not empty
    them for the SDK."""
    for key in keys:
        value = kwargs.get(key)
        if value is not None and not isinstance(value, (list, tuple, str, Mapping)) and not (
                is_omitted(value)) and isinstance(value, Iterable):
            kwargs[key] = list(value)


def given(kwargs: Mapping[str, Any], key: str) -> Any:
    value = kwargs.get(key)
    return None if value is None or is_omitted(value) else value


class LlmCall:
    """The step one SDK call records into."""

    def __init__(self, step: StepHandle, owned: bool) -> None:
        self.step = step
        self.owned = owned
        self.clock = step.run.recorder.clock
        self.t0 = self.clock()
        self.done = False
        # Why the output is not recorded if the caller never reads it (None: nothing pending).
        self.unread_reason = "the response was never read"
        if not owned:
            step.start_unix_s = self.t0
        step.open_call = self

    @classmethod
    def begin(cls, api: str, provider: str, kwargs: Mapping[str, Any]) -> "LlmCall | None":
        """Start recording a call, or None when no recorder is active (or recording failed: the
        caller's request must go through whatever happens here)."""
        try:
            return cls._begin(api, provider, kwargs)
        except Exception as e:
            _warn(e)
            return None

    @classmethod
    def _begin(cls, api: str, provider: str, kwargs: Mapping[str, Any]) -> "LlmCall | None":
        parent = current_step()
        run = current_run()
        if run is None:
            return None
        if parent is not None and parent.run is run and parent.claim_for_call():
            call = cls(parent, owned=False)
        else:
            in_run = parent is not None and parent.run is run
            framework = None if in_run else frameworks.current()
            if framework is not None:
                # Named after the agent / chain it runs in (see profiler.instrument.frameworks).
                target = framework.run if framework.run is not None and not framework.run.closed else run
                extra = {"framework_parent_id": framework.parent_id} if framework.parent_id else {}
                handle = target.step(framework.name, framework=framework.framework,
                                     framework_path="/".join(framework.path), **extra)
            else:
                handle = run.step(parent.name if in_run and parent is not None else api)
            handle.start(activate=False)
            call = cls(handle, owned=True)
        step = call.step
        step.provider = provider
        model = given(kwargs, "model")
        step.model = str(model) if model is not None else step.model
        step.attributes.setdefault("api", api)
        for key in SETTINGS:
            value = given(kwargs, key)
            if isinstance(value, (str, int, float, bool)):
                step.attributes.setdefault(key, value)
        return call

    def set_prompt(self, messages: list[dict[str, Any]] | None, tools: list[Any] | None) -> None:
        self.step.set_prompt(messages or [], tools=tools or None)

    def first_token(self) -> None:
        if self.step.ttft_ms is None and not self.done:
            self.step.ttft_ms = (self.clock() - self.t0) * 1000.0

    def abandon(self) -> None:
        """The step ends while this call's response was never read to its end: say so, no output."""
        if self.done:
            return
        self.finish(attributes={"incomplete": True, "output_not_recorded": self.unread_reason})

    def finish(self, *, output: Output | None = None, usage: Usage | None = None,
               model: str | None = None, error: BaseException | None = None,
               attributes: Mapping[str, Any] | None = None,
               usage_absent: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        step = self.step
        if output is not None:
            step.output = output
        if usage is not None:
            step.usage = usage
        if error is None and output is not None and step.usage == Usage():
            # Never a silent null: analysis counts the tokens itself and says so.
            step.attributes["usage_absent"] = usage_absent or "the response carried no usage"
        if model:
            if step.model and model != step.model:
                step.attributes["response_model"] = model
            step.model = step.model or model
        for key, value in (attributes or {}).items():
            step.attributes[key] = value
        step.end_unix_s = self.clock()
        if error is not None:
            step.attributes["error"] = f"{type(error).__name__}: {error}"[:500]
        if self.owned:
            try:
                step.finish()
            except Exception as e:  # e.g. the disk is full: the caller's result still goes through
                _warn(e)


def _warn(error: Exception) -> None:
    warnings.warn(f"ctxprof could not record an LLM call: {type(error).__name__}: {error}",
                  RuntimeWarning, stacklevel=4)


class Accumulator:
    """Collects a stream's chunks into an output and usage (one per API)."""

    def add(self, chunk: Any, call: LlmCall) -> None:
        raise NotImplementedError

    def result(self, complete: bool = True) -> dict[str, Any]:
        """Keyword arguments for `LlmCall.finish`. `complete`: the stream reached its end (else
        usage a provider sends up front is a placeholder, not the call's usage)."""
        raise NotImplementedError


class _StreamBase:
    def __init__(self, stream: Any, call: LlmCall, acc: Accumulator) -> None:
        self._ctxprof_stream = stream
        self._ctxprof_call = call
        self._ctxprof_acc = acc
        self._ctxprof_started = False
        call.unread_reason = "the stream was never read"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctxprof_stream, name)

    def _ctxprof_add(self, chunk: Any) -> None:
        self._ctxprof_started = True
        try:
            self._ctxprof_acc.add(chunk, self._ctxprof_call)
        except Exception as e:  # recording must never break the caller's stream
            self._ctxprof_call.step.attributes["record_error"] = f"{type(e).__name__}: {e}"[:300]

    def _ctxprof_finish(self, error: BaseException | None = None, *, ended: bool = True) -> None:
        """`ended`: the stream ran to its end (else it was closed or abandoned early)."""
        call = self._ctxprof_call
        if call.done:
            return
        if not ended and not self._ctxprof_started:
            call.abandon()
            return
        try:
            result = self._ctxprof_acc.result(complete=ended and error is None)
        except Exception as e:
            result = {"attributes": {"record_error": f"{type(e).__name__}: {e}"[:300]}}
        if not ended:
            result["attributes"] = {**(result.get("attributes") or {}), "incomplete": True,
                                    "stream": "closed before its end"}
        call.finish(error=error, **result)


class RecordedStream(_StreamBase):
    """A synchronous SDK stream that records what passes through it."""

    def __iter__(self) -> Any:
        try:
            for chunk in self._ctxprof_stream:
                self._ctxprof_add(chunk)
                yield chunk
        except GeneratorExit:
            self._ctxprof_finish(ended=False)
            raise
        except BaseException as e:
            self._ctxprof_finish(e)
            raise
        self._ctxprof_finish()

    def __next__(self) -> Any:
        try:
            chunk = self._ctxprof_stream.__next__()
        except StopIteration:
            self._ctxprof_finish()
            raise
        except BaseException as e:
            self._ctxprof_finish(e)
            raise
        self._ctxprof_add(chunk)
        return chunk

    def __enter__(self) -> "RecordedStream":
        self._ctxprof_stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        self._ctxprof_finish(ended=False)
        return self._ctxprof_stream.__exit__(*exc)

    def close(self) -> None:
        self._ctxprof_finish(ended=False)
        self._ctxprof_stream.close()


class AsyncRecordedStream(_StreamBase):
    """An asynchronous SDK stream that records what passes through it."""

    async def __aiter__(self) -> Any:
        try:
            async for chunk in self._ctxprof_stream:
                self._ctxprof_add(chunk)
                yield chunk
        except GeneratorExit:
            self._ctxprof_finish(ended=False)
            raise
        except BaseException as e:
            self._ctxprof_finish(e)
            raise
        self._ctxprof_finish()

    async def __anext__(self) -> Any:
        try:
            chunk = await self._ctxprof_stream.__anext__()
        except StopAsyncIteration:
            self._ctxprof_finish()
            raise
        except BaseException as e:
            self._ctxprof_finish(e)
            raise
        self._ctxprof_add(chunk)
        return chunk

    async def __aenter__(self) -> "AsyncRecordedStream":
        await self._ctxprof_stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        self._ctxprof_finish(ended=False)
        return await self._ctxprof_stream.__aexit__(*exc)

    async def close(self) -> None:
        self._ctxprof_finish(ended=False)
        await self._ctxprof_stream.close()


def json_loads_or_text(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text


def record_sync(api: str, provider: str, original: Callable[..., Any],
                build_prompt: Callable[[dict[str, Any]], tuple[list[dict[str, Any]], list[Any] | None]],
                from_result: Callable[[Any], dict[str, Any]],
                accumulator: Callable[[], Accumulator], prompt_keys: tuple[str, ...]
                ) -> Callable[..., Any]:
    """Wrap a synchronous `create`-like SDK method."""
    import functools

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = LlmCall.begin(api, provider, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        materialize(kwargs, *prompt_keys)
        _set_prompt(call, build_prompt, kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as e:
            call.finish(error=e)
            raise
        stream = given(kwargs, "stream") is True
        if is_raw_response(result):
            return _record_raw(call, result, stream, from_result, accumulator)
        if stream:
            return RecordedStream(result, call, accumulator())
        _finish_from(call, from_result, result)
        return result

    wrapper.__ctxprof_original__ = original  # type: ignore[attr-defined]
    return wrapper


def record_async(api: str, provider: str, original: Callable[..., Any],
                 build_prompt: Callable[[dict[str, Any]], tuple[list[dict[str, Any]], list[Any] | None]],
                 from_result: Callable[[Any], dict[str, Any]],
                 accumulator: Callable[[], Accumulator], prompt_keys: tuple[str, ...]
                 ) -> Callable[..., Any]:
    """Wrap an asynchronous `create`-like SDK method."""
    import functools

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = LlmCall.begin(api, provider, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        materialize(kwargs, *prompt_keys)
        _set_prompt(call, build_prompt, kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as e:
            call.finish(error=e)
            raise
        stream = given(kwargs, "stream") is True
        if is_raw_response(result):
            if not stream and inspect.iscoroutinefunction(getattr(result, "parse", None)):
                await _finish_from_raw_async(call, from_result, result)
                return result
            return _record_raw(call, result, stream, from_result, accumulator)
        if stream:
            return AsyncRecordedStream(result, call, accumulator())
        _finish_from(call, from_result, result)
        return result

    wrapper.__ctxprof_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _set_prompt(call: LlmCall, build_prompt: Callable[[dict[str, Any]], Any],
                kwargs: dict[str, Any]) -> None:
    try:
        messages, tools = build_prompt(kwargs)
        call.set_prompt(messages, tools)
    except Exception as e:
        call.step.attributes["record_error"] = f"prompt: {type(e).__name__}: {e}"[:300]


def _finish_from(call: LlmCall, from_result: Callable[[Any], dict[str, Any]], result: Any) -> None:
    try:
        fields = from_result(result)
    except Exception as e:
        fields = {"attributes": {"record_error": f"result: {type(e).__name__}: {e}"[:300]}}
    call.finish(**fields)


# The SDKs' raw-response objects (`.with_raw_response` / `.with_streaming_response`): the openai SDK's
# `LegacyAPIResponse`, and `APIResponse` / `AsyncAPIResponse` of both SDKs. Their `.parse()` caches what
# it returns, so parsing here hands the caller the very object it would have parsed itself.
RAW_RESPONSE_TYPES = frozenset({"LegacyAPIResponse", "APIResponse", "AsyncAPIResponse"})


def is_raw_response(result: Any) -> bool:
    return type(result).__name__ in RAW_RESPONSE_TYPES and hasattr(result, "parse")


def _record_raw(call: LlmCall, raw: Any, stream: bool, from_result: Callable[[Any], dict[str, Any]],
                accumulator: Callable[[], Accumulator]) -> Any:
    """Record through a raw response. Whole: parse the body now (the parse is cached, and a body read
    here can still be read again by the caller). Streamed: the events flow only when the caller
    calls `.parse()`, so that method is wrapped to hand back a recording stream; a caller that reads
    the raw bytes instead leaves the step marked `incomplete` with the reason."""
    original_parse = raw.parse
    if not stream:
        try:
            parsed = original_parse()
        except Exception as e:
            call.finish(attributes={"record_error": f"result: {type(e).__name__}: {e}"[:300]})
            return raw
        _finish_from(call, from_result, parsed)
        return raw
    call.unread_reason = "the raw streamed response was read without .parse()"
    wrapped: dict[str, Any] = {}

    def wrap(parsed: Any) -> Any:
        if "stream" not in wrapped:
            if hasattr(type(parsed), "__aiter__"):
                wrapped["stream"] = AsyncRecordedStream(parsed, call, accumulator())
            elif hasattr(type(parsed), "__iter__"):
                wrapped["stream"] = RecordedStream(parsed, call, accumulator())
            else:
                wrapped["stream"] = parsed
        return wrapped["stream"]

    if inspect.iscoroutinefunction(original_parse):
        async def parse_async(*args: Any, **kwargs: Any) -> Any:
            return wrap(await original_parse(*args, **kwargs))

        raw.parse = parse_async
    else:
        def parse(*args: Any, **kwargs: Any) -> Any:
            return wrap(original_parse(*args, **kwargs))

        raw.parse = parse
    return raw


async def _finish_from_raw_async(call: LlmCall, from_result: Callable[[Any], dict[str, Any]],
                                 raw: Any) -> None:
    try:
        parsed = await raw.parse()
    except Exception as e:
        call.finish(attributes={"record_error": f"result: {type(e).__name__}: {e}"[:300]})
        return
    _finish_from(call, from_result, parsed)
