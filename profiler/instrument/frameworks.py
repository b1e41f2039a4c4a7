"""Framework-aware step names and nesting: the OpenAI Agents SDK and LangChain / LangGraph.

An SDK call recorded by the patches (`profiler.instrument.calls`) asks `current()` which framework
context it runs in; a step of its own is then named after the agent (Agents SDK) or the nearest named
chain / graph node (LangChain) instead of `openai.chat`, and carries `framework`, `framework_path`
(the enclosing agents / chains, outermost first) and `framework_parent_id` (the LangChain run id or
Agents SDK span id it ran under, so calls of one chain invocation group together) as attributes.

- OpenAI Agents SDK: `AgentsTracingProcessor` (registered automatically by `profiler.record` /
  `ctxprof run` once `agents` is imported; otherwise `agents.add_trace_processor(
  AgentsTracingProcessor())`). Each agents trace becomes a run (its workflow is the trace's name, a
  child run of the recording run); tool calls become `tool` steps named after the tool; handoffs
  become `tool` steps named `handoff <from> -> <to>`. The current span comes from the Agents SDK's own
  context variable, so calls nest under the right agent in concurrent runs too.
- LangChain / LangGraph: `LangChainCallbackHandler` (one line: `config={"callbacks":
  [LangChainCallbackHandler()]}`; registered automatically as an inheritable global handler under
  `profiler.record` / `ctxprof run`). It keeps the tree of chain / runnable / tool runs by run id; the
  current run is found through LangChain's context variable for the running config. Tools become
  `tool` steps named after the tool, with their parent chain as `framework_path`.

The registries of open spans / runs are bounded by what is open: entries leave when their span or run
ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from profiler.instrument.context import current_run

if TYPE_CHECKING:
    from profiler.instrument.recorder import RunHandle


@dataclass(frozen=True)
class FrameworkContext:
    framework: str
    name: str  # the step name: the innermost agent / chain / node
    path: tuple[str, ...]  # enclosing agents / chains, outermost first
    run: RunHandle | None = None  # the run the step belongs to (else the current run)
    parent_id: str | None = None  # the framework's id of the enclosing run / span


_providers: list[Callable[[], FrameworkContext | None]] = []


def current() -> FrameworkContext | None:
    """The framework context of the code running now, or None."""
    for provider in _providers:
        try:
            ctx = provider()
        except Exception:  # a framework's internals changed: fall back to plain names
            ctx = None
        if ctx is not None:
            return ctx
    return None


def _tool_step(run: RunHandle | None, name: str, framework: str, path: tuple[str, ...],
               start_s: float | None, end_s: float | None, input_text: Any = None,
               output_text: Any = None, **attributes: Any) -> None:
    run = run or current_run()
    if run is None or run.closed:
        return
    step = run.step(name, kind="tool", framework=framework, framework_path="/".join(path),
                    **attributes)
    step.start()
    step.start_unix_s = start_s or step.start_unix_s
    if input_text is not None:
        step.set_prompt(text=str(input_text))
    if output_text is not None:
        step.set_output(text=str(output_text))
    step.end_unix_s = end_s
    step.finish()
    if step._token is not None:  # started with activation: undo it at once
        step.__exit__(None, None, None)


# -- OpenAI Agents SDK ---------------------------------------------------------------------------
def _iso_s(value: Any) -> float | None:
    if not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


class AgentsTracingProcessor:
    """An OpenAI Agents SDK `TracingProcessor` that names and nests recorded steps (see above)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[str, Any] = {}
        self._runs: dict[str, RunHandle] = {}

    # trace lifecycle
    def on_trace_start(self, trace: Any) -> None:
        parent = current_run()
        if parent is None:
            return
        run = parent.recorder.run(workflow=str(getattr(trace, "name", None) or "agents"),
                                  framework="openai-agents")
        run.open()
        with self._lock:
            self._runs[trace.trace_id] = run

    def on_trace_end(self, trace: Any) -> None:
        with self._lock:
            run = self._runs.pop(trace.trace_id, None)
        if run is not None:
            run.finish()

    def on_span_start(self, span: Any) -> None:
        with self._lock:
            self._spans[span.span_id] = span

    def on_span_end(self, span: Any) -> None:
        data = span.span_data
        kind = getattr(data, "type", "")
        try:
            if kind == "function":
                path = self._path(span)
                _tool_step(self._run(span), str(data.name), "openai-agents", path,
                           _iso_s(span.started_at), _iso_s(span.ended_at), data.input, data.output)
            elif kind == "handoff":
                path = self._path(span)
                _tool_step(self._run(span), f"handoff {data.from_agent} -> {data.to_agent}",
                           "openai-agents", path, _iso_s(span.started_at), _iso_s(span.ended_at),
                           handoff_from=data.from_agent, handoff_to=data.to_agent)
        finally:
            with self._lock:
                self._spans.pop(span.span_id, None)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass

    # naming
    def _run(self, span: Any) -> RunHandle | None:
        with self._lock:
            return self._runs.get(span.trace_id)

    def _path(self, span: Any) -> tuple[str, ...]:
        names: list[str] = []
        with self._lock:
            node = span
            seen = 0
            while node is not None and seen < 64:
                if getattr(node.span_data, "type", "") == "agent":
                    names.append(str(node.span_data.name))
                node = self._spans.get(node.parent_id) if node.parent_id else None
                seen += 1
        return tuple(reversed(names))

    def context(self) -> FrameworkContext | None:
        from agents.tracing import get_current_span

        span = get_current_span()
        if span is None:
            return None
        path = self._path(span)
        if not path:
            return None
        return FrameworkContext("openai-agents", path[-1], path, self._run(span),
                                str(span.parent_id) if span.parent_id else None)


_agents_processor: AgentsTracingProcessor | None = None


def install_agents() -> None:
    """Register the processor once per process (`agents` keeps processors for its lifetime)."""
    global _agents_processor
    if _agents_processor is not None:
        return
    import agents

    if not hasattr(agents, "add_trace_processor"):
        return  # a module named `agents` that is not the OpenAI Agents SDK
    _agents_processor = AgentsTracingProcessor()
    agents.add_trace_processor(_agents_processor)
    _providers.append(_agents_processor.context)


def agents_processor() -> AgentsTracingProcessor:
    """The processor to pass to `agents.add_trace_processor` / `set_trace_processors`."""
    install_agents()
    if _agents_processor is None:
        raise ImportError("the OpenAI Agents SDK is not installed: pip install openai-agents")
    return _agents_processor


# -- LangChain / LangGraph -----------------------------------------------------------------------
_GENERIC_CHAINS = {"RunnableSequence", "RunnableLambda", "RunnableParallel", "RunnablePassthrough",
                   "RunnableAssign", "ChannelWrite", "ChannelRead", "__start__", "LangGraph",
                   "RunnableCallable"}


def _langchain_handler_base() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    return BaseCallbackHandler


class _LangChainRuns:
    """The open LangChain runs: run id -> (name, parent run id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[Any, tuple[str, Any, float]] = {}

    def path(self, run_id: Any) -> tuple[str, ...]:
        names: list[str] = []
        with self.lock:
            node = run_id
            for _ in range(256):
                entry = self.runs.get(node)
                if entry is None:
                    break
                name, parent, _ = entry
                if name and name not in _GENERIC_CHAINS and not name.startswith("Runnable"):
                    names.append(name)
                node = parent
        return tuple(reversed(names))


_lc_runs = _LangChainRuns()


def _lc_name(serialized: Any, kwargs: dict[str, Any]) -> str:
    metadata = kwargs.get("metadata") or {}
    if kwargs.get("name"):
        return str(kwargs["name"])
    if metadata.get("langgraph_node") and kwargs.get("parent_run_id") is None:
        return str(metadata["langgraph_node"])
    if isinstance(serialized, dict):
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return ""


def _make_langchain_handler() -> type:
    import time

    base = _langchain_handler_base()

    class LangChainCallbackHandler(base):  # type: ignore[misc, valid-type]
        """Names recorded steps after LangChain chains / LangGraph nodes; records tools as steps."""

        run_inline = True
        raise_error = False

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any,
                           parent_run_id: Any = None, **kwargs: Any) -> None:
            with _lc_runs.lock:
                _lc_runs.runs[run_id] = (_lc_name(serialized, {**kwargs, "parent_run_id": None}),
                                         parent_run_id, time.time())

        def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
            with _lc_runs.lock:
                _lc_runs.runs.pop(run_id, None)

        def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
            self.on_chain_end(None, run_id=run_id)

        def on_tool_start(self, serialized: Any, input_str: str, *, run_id: Any,
                          parent_run_id: Any = None, **kwargs: Any) -> None:
            with _lc_runs.lock:
                _lc_runs.runs[run_id] = (_lc_name(serialized, kwargs) or "tool", parent_run_id,
                                         time.time())
                self._inputs = getattr(self, "_inputs", {})
                self._inputs[run_id] = input_str

        def on_tool_end(self, output: Any, *, run_id: Any, **kwargs: Any) -> None:
            with _lc_runs.lock:
                entry = _lc_runs.runs.get(run_id)
                input_str = getattr(self, "_inputs", {}).pop(run_id, None)
            if entry is None:
                return
            path = _lc_runs.path(entry[1])
            _tool_step(None, entry[0], "langchain", path, entry[2], time.time(), input_str,
                       getattr(output, "content", output), framework_parent_id=str(entry[1]))
            with _lc_runs.lock:
                _lc_runs.runs.pop(run_id, None)

        def on_tool_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
            with _lc_runs.lock:
                _lc_runs.runs.pop(run_id, None)

    return LangChainCallbackHandler


_lc_handler_cls: type | None = None


def LangChainCallbackHandler() -> Any:  # noqa: N802 (reads as the class it builds)
    """A LangChain callback handler (built on first use so langchain stays an optional import)."""
    global _lc_handler_cls
    if _lc_handler_cls is None:
        _lc_handler_cls = _make_langchain_handler()
        _providers.append(_langchain_context)
    return _lc_handler_cls()


def _langchain_context() -> FrameworkContext | None:
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get()
    if not config:
        return None
    manager = config.get("callbacks")
    parent = getattr(manager, "parent_run_id", None)
    if parent is None:
        return None
    path = _lc_runs.path(parent)
    if not path:
        return None
    return FrameworkContext("langchain", path[-1], path, parent_id=str(parent))


_lc_installed = False


def install_langchain() -> None:
    """Register the handler for every LangChain run in this process (an inheritable hook)."""
    global _lc_installed
    if _lc_installed:
        return
    from langchain_core.tracers.context import register_configure_hook
    import contextvars

    handler = LangChainCallbackHandler()
    var: contextvars.ContextVar[Any] = contextvars.ContextVar("ctxprof_langchain", default=handler)
    register_configure_hook(var, inheritable=True)
    _lc_installed = True
