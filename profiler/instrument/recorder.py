"""Recording API: runs and steps written to a trace file as they finish.

```python
with profiler.record("trace.jsonl", workflow="support-agent") as rec:
    with rec.step("planner") as s:          # an LLM call made inside fills this step
        client.chat.completions.create(...)
    executor(...)                            # @profiler.step("executor") records itself
```

Contract:
- A `Recorder` owns one `TraceWriter` (one lock, one flushed line per record). Each step is written
  when it ends, so a killed process leaves every finished step readable (at most a torn last line).
- The current run and step live in `contextvars`, so threads (via `contextvars.copy_context`) and
  asyncio tasks (which copy the context when created) each see their own. Code without a current run
  (a thread started without the context) falls back to the run of the innermost active recorder.
- An LLM call captured by auto-instrumentation fills the enclosing `llm` step if that step has no call
  yet; otherwise it becomes a step of its own (named after the enclosing step, `parent_step_id` set).
- `rec.run(workflow=...)` opens another run; nested in a step it gets `parent_run_id` and, in its
  attributes, `parent_step_id`.
- The recorder's root run is written only once something happens in it, so a recorder used only
  through `rec.run(...)` leaves no empty run behind.
- Time comes from the injected `clock` (unix seconds); ids from the injected `new_id`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
import uuid
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from profiler.errors import ConfigError, TraceFormatError
from profiler.instrument.content import ContentEncoder
from profiler.instrument.context import (  # noqa: F401  (current_run/current_step: public here too)
    _active,
    _active_lock,
    _current_run,
    _current_step,
    current_run,
    current_step,
)
from profiler.trace.io import TraceWriter
from profiler.trace.model import GpuStats, Output, Prompt, Run, Step, TraceHeader, Usage
from profiler.usage import normalize_usage

if TYPE_CHECKING:
    from profiler.instrument.gpu import GpuSampler
    from profiler.tokens import StepTokenizer

Clock = Callable[[], float]
Redactor = Callable[[dict[str, Any]], "dict[str, Any] | None"]
F = TypeVar("F", bound=Callable[..., Any])

def _default_id() -> str:
    return uuid.uuid4().hex[:16]


class StepHandle:
    """A step being recorded. Set what auto-instrumentation cannot see (custom clients, local models)
    with `set_prompt`, `set_output`, `set_usage`, `model`, `provider`, `set_attribute`."""

    def __init__(self, run: "RunHandle", name: str | None, *, kind: str = "llm",
                 parent_step_id: str | None = None, attributes: Mapping[str, Any] | None = None) -> None:
        if kind not in ("llm", "tool"):
            raise ConfigError(f"step kind must be 'llm' or 'tool', got {kind!r}")
        self.run = run
        self.name = name
        self.kind = kind
        self.parent_step_id = parent_step_id
        self.step_id = run._next_step_id()
        self.model: str | None = None
        self.provider: str | None = None
        self.ttft_ms: float | None = None
        self.start_unix_s: float | None = None
        self.end_unix_s: float | None = None
        self.prompt = Prompt()
        self.output = Output()
        self.usage = Usage()
        self.gpu: GpuStats | None = None
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.closed = False
        self._has_call = False
        self.open_call: Any = None  # the LlmCall filling this step (set by the SDK patches)
        self._lock = threading.Lock()
        self._token: contextvars.Token[StepHandle | None] | None = None
        self._run_token: contextvars.Token[RunHandle | None] | None = None

    # -- what user code sets -------------------------------------------------------------------
    def set_prompt(self, messages: Iterable[Mapping[str, Any]] | None = None, *,
                   tools: Iterable[Mapping[str, Any]] | None = None, text: str | None = None,
                   token_ids: Iterable[int] | None = None, tokenizer: str | None = None) -> None:
        self.prompt = Prompt(
            messages=None if messages is None else tuple(dict(m) for m in messages),
            tools=None if tools is None else tuple(dict(t) for t in tools),
            text=text, token_ids=None if token_ids is None else tuple(int(t) for t in token_ids),
            tokenizer=tokenizer)

    def set_output(self, message: Mapping[str, Any] | None = None, *, text: str | None = None,
                   token_ids: Iterable[int] | None = None, finish_reason: str | None = None) -> None:
        ids = None if token_ids is None else tuple(int(t) for t in token_ids)
        self.output = Output(message=None if message is None else dict(message), text=text,
                             token_ids=ids, num_tokens=None if ids is None else len(ids),
                             finish_reason=finish_reason)

    def set_usage(self, raw: Any = None, *, provider: str | None = None, **counts: int) -> None:
        """Provider usage as the provider reported it (normalised here), or normalised counts
        (`input_tokens=`, `cache_read_tokens=`, `cache_write_tokens=`, `output_tokens=`...)."""
        if counts:
            self.usage = Usage(**counts)
        else:
            self.usage = normalize_usage(raw, provider or self.provider)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_gpu_timing(self, *, prefill_ms: float | None = None, decode_ms: float | None = None,
                       device: str | None = None) -> None:
        gpu = self.gpu or GpuStats()
        self.gpu = replace(gpu, prefill_ms=prefill_ms if prefill_ms is not None else gpu.prefill_ms,
                           decode_ms=decode_ms if decode_ms is not None else gpu.decode_ms,
                           device=device or gpu.device)

    # -- lifecycle -------------------------------------------------------------------------------
    def claim_for_call(self) -> bool:
        """True (once) when an LLM call may fill this step."""
        with self._lock:
            if self.closed or self.kind != "llm" or self._has_call or self.prompt.level != "none":
                return False
            self._has_call = True
            return True

    def start(self, *, activate: bool = True) -> "StepHandle":
        self.start_unix_s = self.run.recorder.clock()
        self.run._step_started(self)
        if activate:
            self._token = _current_step.set(self)
            self._run_token = _current_run.set(self.run)
        return self

    def finish(self, error: BaseException | None = None, *, incomplete: bool = False) -> None:
        call = self.open_call
        if call is not None and not call.done:
            call.abandon()  # a response never read: marked, not written as an empty success
            if call.owned:
                return  # the call's own finish wrote this step
        with self._lock:
            if self.closed:
                return
            self.closed = True
        if self.end_unix_s is None:
            self.end_unix_s = self.run.recorder.clock()
        if self.start_unix_s is not None and self.end_unix_s < self.start_unix_s:
            self.end_unix_s = self.start_unix_s
        if error is not None:
            self.attributes["error"] = f"{type(error).__name__}: {error}"[:500]
        if incomplete:
            self.attributes["incomplete"] = True
        self.run._step_finished(self)

    def to_step(self) -> Step:
        return Step(run_id=self.run.run_id, step_id=self.step_id, name=self.name, kind=self.kind,
                    model=self.model, provider=self.provider, start_unix_s=self.start_unix_s,
                    end_unix_s=self.end_unix_s, ttft_ms=self.ttft_ms, prompt=self.prompt,
                    output=self.output, usage=self.usage, gpu=self.gpu,
                    parent_step_id=self.parent_step_id, attributes=dict(self.attributes))

    def __enter__(self) -> "StepHandle":
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self.finish(exc)
        finally:
            if self._token is not None:
                _current_step.reset(self._token)
                self._token = None
            if self._run_token is not None:
                _current_run.reset(self._run_token)
                self._run_token = None

    async def __aenter__(self) -> "StepHandle":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class RunHandle:
    """One run (an execution of a workflow) being recorded."""

    def __init__(self, recorder: "Recorder", workflow: str | None, *, lazy: bool = False,
                 parent_run_id: str | None = None, attributes: Mapping[str, Any] | None = None) -> None:
        self.recorder = recorder
        self.run_id = recorder.new_id()
        self.workflow = workflow
        self.parent_run_id = parent_run_id
        self.attributes = dict(attributes or {})
        self.start_unix_s: float | None = None
        self.closed = False
        self._lazy = lazy
        self._written = False
        self._lock = threading.Lock()
        self._steps = 0
        self._open: dict[str, StepHandle] = {}
        self._token: contextvars.Token[RunHandle | None] | None = None
        self._step_token: contextvars.Token[StepHandle | None] | None = None
        self.status: str | None = None

    def _next_step_id(self) -> str:
        with self._lock:
            self._steps += 1
            return str(self._steps)

    def _materialize(self) -> None:
        with self._lock:
            if self._written:
                return
            self._written = True
            if self.start_unix_s is None:
                self.start_unix_s = self.recorder.clock()
        self.recorder._write_run(self)

    def _step_started(self, step: StepHandle) -> None:
        self._materialize()
        with self._lock:
            self._open[step.step_id] = step

    def _step_finished(self, step: StepHandle) -> None:
        with self._lock:
            self._open.pop(step.step_id, None)
        self.recorder._write_step(step)

    def step(self, name: str | None = None, *, kind: str = "llm", **attributes: Any) -> StepHandle:
        """A step of this run (use as a context manager)."""
        parent = current_step()
        parent_id = parent.step_id if parent is not None and parent.run is self else None
        return StepHandle(self, name, kind=kind, parent_step_id=parent_id, attributes=attributes)

    def start(self) -> "RunHandle":
        self.start_unix_s = self.recorder.clock()
        if not self._lazy:
            self._materialize()
        self._token = _current_run.set(self)
        # Steps of an enclosing run are not steps of this one (calls must not fill them).
        self._step_token = _current_step.set(None)
        return self

    def open(self) -> "RunHandle":
        """Start without becoming the current run (for runs a framework's callbacks open and close,
        which may happen in different contexts)."""
        self.start_unix_s = self.recorder.clock()
        if not self._lazy:
            self._materialize()
        return self

    def finish(self, status: str = "ok") -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            pending = list(self._open.values())
        for step in pending:  # calls whose stream was never consumed or closed
            step.finish(incomplete=True)
        self.status = status
        if self._written:
            self.recorder._write_run_end(self)

    def to_run(self) -> Run:
        return Run(run_id=self.run_id, workflow=self.workflow, start_unix_s=self.start_unix_s,
                   parent_run_id=self.parent_run_id, attributes=dict(self.attributes))

    def __enter__(self) -> "RunHandle":
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self.finish("error" if exc is not None else "ok")
        finally:
            if self._step_token is not None:
                _current_step.reset(self._step_token)
                self._step_token = None
            if self._token is not None:
                _current_run.reset(self._token)
                self._token = None

    async def __aenter__(self) -> "RunHandle":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class Recorder:
    """Record runs and steps into one trace file (see the module docstring)."""

    def __init__(self, path: str | Path, *, workflow: str | None = None, content: str = "text",
                 redact: Redactor | None = None, instrument: bool = True, gpu: bool = True,
                 clock: Clock = time.time, new_id: Callable[[], str] = _default_id,
                 hash_key: bytes | str | None = None, block_size: int = 16,
                 tokenizer: "StepTokenizer | None" = None, gpu_sampler: "GpuSampler | None" = None,
                 fsync: bool = False,
                 attributes: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.workflow = workflow
        self.encoder = ContentEncoder(content, tokenizer=tokenizer, block_size=block_size,
                                      hash_key=hash_key)
        self.redact = redact
        self.instrument = instrument
        self.gpu = gpu
        self.clock = clock
        self.new_id = new_id
        self.fsync = fsync
        self.attributes = dict(attributes or {})
        self.notices: list[str] = []
        self.root: RunHandle | None = None
        self._writer: TraceWriter | None = None
        self._sampler: GpuSampler | None = gpu_sampler
        self._owns_sampler = False
        self._patched = False

    @property
    def content(self) -> str:
        return self.encoder.level

    # -- public API ------------------------------------------------------------------------------
    def run(self, workflow: str | None = None, **attributes: Any) -> RunHandle:
        """A new run (use as a context manager). Inside a step, it is that step's child workflow."""
        self._check_open()
        parent_run_id = None
        step = current_step()
        if step is not None and step.run.recorder is self:
            parent_run_id = step.run.run_id
            attributes.setdefault("parent_step_id", step.step_id)
        else:
            run = _current_run.get()
            if run is not None and run.recorder is self and not run.closed and run is not self.root:
                parent_run_id = run.run_id
        return RunHandle(self, workflow if workflow is not None else self.workflow,
                         parent_run_id=parent_run_id, attributes=attributes)

    def step(self, name: str | None = None, *, kind: str = "llm", **attributes: Any) -> StepHandle:
        """A step of the current run of this recorder (use as a context manager)."""
        self._check_open()
        run = _current_run.get()
        if run is None or run.recorder is not self or run.closed:
            run = self.root
        assert run is not None
        return run.step(name, kind=kind, **attributes)

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Recorder":
        header = TraceHeader(content_level=self.content, created_unix_s=self.clock(),
                             attributes={**self.encoder.header_attributes(), **self.attributes})
        self._check_existing_level()
        self._writer = TraceWriter(self.path, header, fsync=self.fsync)
        if self.gpu:
            self._start_gpu()
        self.root = RunHandle(self, self.workflow, lazy=True)
        self.root.start()
        with _active_lock:
            _active.append(self)
        if self.instrument:
            from profiler.instrument.patch import install

            self.notices.extend(install())
            self._patched = True
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if self._patched:
                from profiler.instrument.patch import uninstall

                uninstall()
                self._patched = False
            assert self.root is not None
            self.root.__exit__(exc_type, exc, tb)
        finally:
            with _active_lock:
                if self in _active:
                    _active.remove(self)
            if self._sampler is not None and self._owns_sampler:
                self._sampler.stop()
            if self._writer is not None:
                self._writer.close()

    async def __aenter__(self) -> "Recorder":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._writer is None or self.root is None or self.root.closed:
            raise ConfigError(f"the recorder for {self.path} is not open; use it inside "
                              "`with profiler.record(...) as rec:`")

    def _check_existing_level(self) -> None:
        """Appending must not mix content levels: a file promised content-free stays content-free."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        from profiler.trace.io import iter_records

        _, first = next(iter_records(self.path))
        existing = TraceHeader.from_dict(first)
        if existing.content_level != self.content:
            raise ConfigError(f"{self.path} holds a trace recorded with content={existing.content_level!r}; "
                              f"recording content={self.content!r} into it would mix levels -- "
                              "write to a new file")

    def _start_gpu(self) -> None:
        from profiler.instrument.gpu import GpuSampler, GpuUnavailable, NvmlSource

        if self._sampler is None:
            try:
                self._sampler = GpuSampler(NvmlSource(), clock=self.clock)
            except GpuUnavailable as e:
                notice = f"GPU figures not recorded: {e}"
                self.notices.append(notice)
                warnings.warn(notice, RuntimeWarning, stacklevel=3)
                return
            self._owns_sampler = True
        self._sampler.start()

    def _gpu_stats(self, start: float | None, end: float | None) -> GpuStats | None:
        if self._sampler is None or start is None or end is None:
            return None
        return self._sampler.stats(start, end)

    def _run_record(self, run: RunHandle) -> Run:
        record = run.to_run()
        return replace(record, attributes=self.encoder.scrub_attributes(dict(record.attributes)))

    def _write_run(self, run: RunHandle) -> None:
        assert self._writer is not None
        self._writer.write_run(self._run_record(run))

    def _write_run_end(self, run: RunHandle) -> None:
        assert self._writer is not None
        end = self.clock()
        gpu = self._gpu_stats(run.start_unix_s, end)
        self._writer.write_run_end(replace(self._run_record(run), end_unix_s=end, status=run.status,
                                           gpu=gpu))

    def _write_step(self, handle: StepHandle) -> None:
        step = handle.to_step()
        sampled = self._gpu_stats(step.start_unix_s, step.end_unix_s)
        if sampled is not None:
            timing = step.gpu or GpuStats()
            step = replace(step, gpu=replace(sampled, prefill_ms=timing.prefill_ms,
                                             decode_ms=timing.decode_ms,
                                             device=sampled.device or timing.device))
        step = self.encoder.encode(step)
        if self.redact is not None:
            record = self.redact(step.to_dict())
            if record is None:
                return  # the hook dropped this step
            try:
                step = Step.from_dict(record)
            except TraceFormatError as e:
                raise TraceFormatError(e.reason, field=e.field,
                                       hint="the redact hook must return a valid step record "
                                            "(or None to drop it)") from None
        assert self._writer is not None
        self._writer.write_step(step)  # the history it shares with the run's previous step by reference


def record(path: str | Path, workflow: str | None = None, *, content: str = "text",
           redact: Redactor | None = None, instrument: bool = True, gpu: bool = True,
           **options: Any) -> Recorder:
    """Record a workflow into `path` (use as a context manager; see `Recorder`)."""
    return Recorder(path, workflow=workflow, content=content, redact=redact, instrument=instrument,
                    gpu=gpu, **options)


def step(name: str | Callable[..., Any] | None = None, *, kind: str = "llm",
         **attributes: Any) -> Any:
    """Decorator recording each call of a function (sync or async) as a step of the current run.
    Without an active recorder the function runs unrecorded."""

    def decorate(fn: F) -> F:
        label = name if isinstance(name, str) else fn.__qualname__
        if asyncio.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = current_run()
                if run is None:
                    return await fn(*args, **kwargs)
                with run.step(label, kind=kind, **attributes):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = current_run()
            if run is None:
                return fn(*args, **kwargs)
            with run.step(label, kind=kind, **attributes):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    if callable(name):  # bare `@profiler.step`
        return decorate(name)
    return decorate
