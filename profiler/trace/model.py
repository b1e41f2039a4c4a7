"""Records of the ctxprof trace file, version 2 (see docs/trace-format.md).

Each record is a frozen dataclass with an explicit `to_dict` / `from_dict`. `from_dict` validates
types and raises `TraceFormatError` naming the field, so a reader can add the file and line. Units
are part of field names (`start_unix_s`, `ttft_ms`, `energy_j`). Optional figures are `None` when the
source did not have them -- never 0, which would be a claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from profiler.errors import TraceFormatError, UnsupportedVersionError

FORMAT_NAME = "ctxprof-trace"
SCHEMA_VERSION = 2
UPGRADE_HINT = "upgrade ctxprof (pip install -U ctxprof) to read it"
CONTENT_LEVELS = ("text", "tokens", "hashes")
STEP_KINDS = ("llm", "tool")

_MISSING = object()


def _field(d: Mapping[str, Any], key: str, types: type | tuple[type, ...], *, prefix: str,
           required: bool = False, default: Any = None) -> Any:
    """Fetch `d[key]`, checking its type; `prefix` is the dotted path used in error messages."""
    value = d.get(key, _MISSING)
    name = f"{prefix}.{key}" if prefix else key
    if value is _MISSING or value is None:
        if required:
            raise TraceFormatError("is required but missing", field=name)
        return default
    # bool is an int subclass; never accept it where a number is expected.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TraceFormatError(f"expected {_type_name(types)}, got a boolean", field=name)
    if not isinstance(value, types):
        raise TraceFormatError(f"expected {_type_name(types)}, got {type(value).__name__}", field=name)
    if isinstance(value, float) and not math.isfinite(value):
        raise TraceFormatError("must be a finite number", field=name)
    return value


def _count(d: Mapping[str, Any], key: str, *, prefix: str) -> int | None:
    value = _field(d, key, int, prefix=prefix)
    if value is not None and value < 0:
        raise TraceFormatError(f"must be >= 0, got {value}", field=f"{prefix}.{key}")
    return value


def _int_list(d: Mapping[str, Any], key: str, *, prefix: str) -> tuple[int, ...] | None:
    value = _field(d, key, list, prefix=prefix)
    if value is None:
        return None
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise TraceFormatError(f"item {i} must be an integer, got {type(item).__name__}",
                                   field=f"{prefix}.{key}")
    return tuple(value)


def _type_name(types: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object",
             bool: "a boolean"}
    if not isinstance(types, tuple):
        types = (types,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


_NUMBER = (int, float)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class SharedParts:
    """What a prompt shares with the previous step of its run: that step's id, how many leading
    messages are the same, and whether the tools are."""

    step_id: str
    messages: int
    tools: bool


def shared_parts(previous: "tuple[str, Prompt] | None", prompt: "Prompt") -> SharedParts | None:
    """The parts of `prompt` equal to the previous step's (`previous`: its id and prompt): a writer
    stores them as a reference, so a run's file grows with its new messages, not with its history."""
    if previous is None:
        return None
    step_id, before = previous
    count = 0
    a, b = prompt.messages, before.messages
    if a and b:
        if len(b) <= len(a) and a[:len(b)] == b:  # the usual case: the history only grew (C compare)
            count = len(b)
        else:
            m = min(len(a), len(b))
            while count < m and (a[count] is b[count] or a[count] == b[count]):
                count += 1
    tools = prompt.tools is not None and before.tools is not None and (
        prompt.tools is before.tools or prompt.tools == before.tools)
    return SharedParts(step_id, count, tools) if count or tools else None


def _shared_from(d: Mapping[str, Any], key: str, previous: "tuple[str, Prompt] | None",
                 prefix: str) -> "tuple[str, Prompt] | None":
    """The previous step (id, prompt) that `d[key]` (`{"step_id": ...}`) refers to; None without `key`."""
    ref = _field(d, key, dict, prefix=prefix)
    if ref is None:
        return None
    name = f"{prefix}.{key}"
    step_id = str(_field(ref, "step_id", (str, int), prefix=name, required=True))
    hint = ("a step can only refer to the step just before it in its run: restore the run's lines "
            "in the order they were written")
    if previous is None:
        raise TraceFormatError(f"refers to step {step_id!r}, but no step of this run comes before this line",
                               field=f"{name}.step_id", hint=hint)
    if previous[0] != step_id:
        raise TraceFormatError(f"refers to step {step_id!r}, but the step before this one in its run is "
                               f"{previous[0]!r}", field=f"{name}.step_id", hint=hint)
    return previous


@dataclass(frozen=True)
class TraceHeader:
    """First line of every trace file."""

    schema_version: int = SCHEMA_VERSION
    producer: str = "ctxprof"
    producer_version: str | None = None
    created_unix_s: float | None = None
    content_level: str = "text"
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "type": "header",
            "format": FORMAT_NAME,
            "schema_version": self.schema_version,
            "producer": _drop_none({"name": self.producer, "version": self.producer_version}),
            "created_unix_s": self.created_unix_s,
            "content_level": self.content_level,
            "attributes": dict(self.attributes) or None,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TraceHeader":
        producer = _field(d, "producer", (dict, str), prefix="header") or {}
        if isinstance(producer, str):
            producer = {"name": producer}
        level = _field(d, "content_level", str, prefix="header", default="text")
        if level not in CONTENT_LEVELS:
            raise TraceFormatError(f"must be one of {', '.join(CONTENT_LEVELS)}, got {level!r}",
                                   field="header.content_level")
        return cls(
            schema_version=_field(d, "schema_version", int, prefix="header", required=True),
            producer=str(producer.get("name", "unknown")),
            producer_version=producer.get("version"),
            created_unix_s=_field(d, "created_unix_s", _NUMBER, prefix="header"),
            content_level=level,
            attributes=_field(d, "attributes", dict, prefix="header", default={}),
        )


@dataclass(frozen=True)
class Prompt:
    """What was sent to the model, at one of three content levels.

    - text: `messages` (chat messages as the provider API takes them) and `tools`, or raw `text`;
      `response_format` is the structured-output format the request asked for, as sent (OpenAI
      `response_format` / Responses `text.format`, Anthropic `output_format`): the provider injects
      its schema into the prompt, so it is part of what the model read;
    - tokens: `token_ids` with the `tokenizer` that produced them;
    - hashes: `block_hashes` of `block_size`-token blocks and `num_tokens` (content-free). Hashes are
      per-block content hashes unless `chained` is true (each hash then already identifies the whole
      prefix up to its block, as in Mooncake traces and vLLM).
    """

    messages: tuple[Mapping[str, Any], ...] | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    text: str | None = None
    token_ids: tuple[int, ...] | None = None
    tokenizer: str | None = None
    block_hashes: tuple[int, ...] | None = None
    block_size: int | None = None
    num_tokens: int | None = None
    chained: bool = False
    response_format: Mapping[str, Any] | None = None

    @property
    def level(self) -> str:
        if self.messages is not None or self.text is not None:
            return "text"
        if self.token_ids is not None:
            return "tokens"
        if self.block_hashes is not None:
            return "hashes"
        return "none"

    def to_dict(self, shared: "SharedParts | None" = None) -> dict[str, Any]:
        """The record; with `shared`, the leading messages (and the tools) this prompt shares with
        the previous step of its run are written as a reference to that step (schema 2)."""
        messages, tools = self.messages, self.tools
        messages_from = tools_from = None
        if shared is not None and shared.messages and messages is not None:
            messages_from = {"step_id": shared.step_id, "count": shared.messages}
            messages = messages[shared.messages:]
        if shared is not None and shared.tools and tools is not None:
            tools_from, tools = {"step_id": shared.step_id}, None
        return _drop_none({
            "messages_from": messages_from,
            "messages": None if messages is None else [dict(m) for m in messages],
            "tools_from": tools_from,
            "tools": None if tools is None else [dict(t) for t in tools],
            "text": self.text,
            "token_ids": None if self.token_ids is None else list(self.token_ids),
            "tokenizer": self.tokenizer,
            "block_hashes": None if self.block_hashes is None else list(self.block_hashes),
            "block_size": self.block_size,
            "num_tokens": self.num_tokens,
            "chained": True if self.chained else None,
            "response_format": None if self.response_format is None else dict(self.response_format),
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], prefix: str = "prompt",
                  previous: "tuple[str, Prompt] | None" = None) -> "Prompt":
        """`previous`: the step id and prompt of the step before this one in its run, which
        `messages_from` / `tools_from` may refer to."""
        messages = _field(d, "messages", list, prefix=prefix)
        if messages is not None:
            for i, m in enumerate(messages):
                if not isinstance(m, dict):
                    raise TraceFormatError(f"must be an object, got {type(m).__name__}",
                                           field=f"{prefix}.messages[{i}]")
                if not isinstance(m.get("role"), str):
                    raise TraceFormatError("needs a string 'role'", field=f"{prefix}.messages[{i}]")
        tools = _field(d, "tools", list, prefix=prefix)
        if tools is not None:
            for i, t in enumerate(tools):
                if not isinstance(t, dict):
                    raise TraceFormatError(f"must be an object, got {type(t).__name__}",
                                           field=f"{prefix}.tools[{i}]")
        referred = _shared_from(d, "messages_from", previous, prefix)
        if referred is not None:
            held = referred[1].messages or ()
            count = _field(d["messages_from"], "count", int, prefix=f"{prefix}.messages_from", required=True)
            if not 1 <= count <= len(held):
                raise TraceFormatError(f"must be between 1 and the {len(held)} message(s) of step "
                                       f"{referred[0]!r}, got {count}", field=f"{prefix}.messages_from.count")
            messages = held[:count] + tuple(messages or ())
        referred = _shared_from(d, "tools_from", previous, prefix)
        if referred is not None:
            if referred[1].tools is None:
                raise TraceFormatError(f"step {referred[0]!r} has no tools to share", field=f"{prefix}.tools_from")
            tools = referred[1].tools
        block_hashes = _int_list(d, "block_hashes", prefix=prefix)
        block_size = _count(d, "block_size", prefix=prefix)
        num_tokens = _count(d, "num_tokens", prefix=prefix)
        if block_hashes is not None and (not block_size or num_tokens is None):
            raise TraceFormatError("block hashes need 'block_size' (> 0) and 'num_tokens'",
                                   field=f"{prefix}.block_hashes")
        return cls(
            messages=None if messages is None else tuple(messages),
            tools=None if tools is None else tuple(tools),
            text=_field(d, "text", str, prefix=prefix),
            token_ids=_int_list(d, "token_ids", prefix=prefix),
            tokenizer=_field(d, "tokenizer", str, prefix=prefix),
            block_hashes=block_hashes,
            block_size=block_size,
            num_tokens=num_tokens,
            chained=bool(_field(d, "chained", bool, prefix=prefix, default=False)),
            response_format=_field(d, "response_format", dict, prefix=prefix),
        )


@dataclass(frozen=True)
class Output:
    """What the model returned: an assistant `message` (content, tool calls), raw `text`, `token_ids`,
    or only `num_tokens` / `block_hashes` for content-free traces."""

    message: Mapping[str, Any] | None = None
    text: str | None = None
    token_ids: tuple[int, ...] | None = None
    block_hashes: tuple[int, ...] | None = None
    num_tokens: int | None = None
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "message": None if self.message is None else dict(self.message),
            "text": self.text,
            "token_ids": None if self.token_ids is None else list(self.token_ids),
            "block_hashes": None if self.block_hashes is None else list(self.block_hashes),
            "num_tokens": self.num_tokens,
            "finish_reason": self.finish_reason,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], prefix: str = "output") -> "Output":
        return cls(
            message=_field(d, "message", dict, prefix=prefix),
            text=_field(d, "text", str, prefix=prefix),
            token_ids=_int_list(d, "token_ids", prefix=prefix),
            block_hashes=_int_list(d, "block_hashes", prefix=prefix),
            num_tokens=_count(d, "num_tokens", prefix=prefix),
            finish_reason=_field(d, "finish_reason", str, prefix=prefix),
        )


@dataclass(frozen=True)
class Usage:
    """Provider-reported usage, normalised to one inclusive schema.

    `input_tokens` includes cached tokens (cache reads and cache writes); `cache_read_tokens` were served
    from the provider's cache; `cache_write_tokens` were written to it (Anthropic's cache creation);
    `output_tokens` includes `reasoning_tokens`. Use `profiler.usage.normalize_usage` to build one from a
    provider's raw usage object.
    """

    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], prefix: str = "usage") -> "Usage":
        return cls(**{k: _count(d, k, prefix=prefix) for k in
                      ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
                       "reasoning_tokens")})


@dataclass(frozen=True)
class GpuStats:
    """GPU figures recorded around one step (NVML samples and CUDA-event timings)."""

    device: str | None = None
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    memory_peak_bytes: int | None = None
    power_w: float | None = None
    energy_j: float | None = None
    prefill_ms: float | None = None
    decode_ms: float | None = None
    samples: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], prefix: str = "gpu") -> "GpuStats":
        return cls(
            device=_field(d, "device", str, prefix=prefix),
            utilization_pct=_field(d, "utilization_pct", _NUMBER, prefix=prefix),
            memory_used_bytes=_count(d, "memory_used_bytes", prefix=prefix),
            memory_peak_bytes=_count(d, "memory_peak_bytes", prefix=prefix),
            power_w=_field(d, "power_w", _NUMBER, prefix=prefix),
            energy_j=_field(d, "energy_j", _NUMBER, prefix=prefix),
            prefill_ms=_field(d, "prefill_ms", _NUMBER, prefix=prefix),
            decode_ms=_field(d, "decode_ms", _NUMBER, prefix=prefix),
            samples=_count(d, "samples", prefix=prefix),
        )


@dataclass(frozen=True)
class Step:
    """One LLM call (kind "llm") or tool call (kind "tool") of a run."""

    run_id: str
    step_id: str
    name: str | None = None
    kind: str = "llm"
    model: str | None = None
    provider: str | None = None
    start_unix_s: float | None = None
    end_unix_s: float | None = None
    ttft_ms: float | None = None
    prompt: Prompt = field(default_factory=Prompt)
    output: Output = field(default_factory=Output)
    usage: Usage = field(default_factory=Usage)
    gpu: GpuStats | None = None
    parent_step_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # Position in the source (1-based line of the file); not written back.
    line: int | None = field(default=None, compare=False)

    @property
    def latency_ms(self) -> float | None:
        if self.start_unix_s is None or self.end_unix_s is None:
            return None
        return (self.end_unix_s - self.start_unix_s) * 1000.0

    def to_dict(self, shared: "SharedParts | None" = None) -> dict[str, Any]:
        """The `step` record; `shared` (from `shared_parts`) writes the prompt's parts shared with
        the previous step of the run as a reference to it."""
        return _drop_none({
            "type": "step",
            "run_id": self.run_id,
            "step_id": self.step_id,
            "parent_step_id": self.parent_step_id,
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "provider": self.provider,
            "start_unix_s": self.start_unix_s,
            "end_unix_s": self.end_unix_s,
            "ttft_ms": self.ttft_ms,
            "prompt": self.prompt.to_dict(shared) or None,
            "output": self.output.to_dict() or None,
            "usage": self.usage.to_dict() or None,
            "gpu": None if self.gpu is None else self.gpu.to_dict(),
            "attributes": dict(self.attributes) or None,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], line: int | None = None,
                  previous: "tuple[str, Prompt] | None" = None) -> "Step":
        """`previous`: the step id and prompt of the step before this one in its run (what a
        schema-2 prompt's `messages_from` / `tools_from` refer to)."""
        kind = _field(d, "kind", str, prefix="", default="llm")
        if kind not in STEP_KINDS:
            raise TraceFormatError(f"must be one of {', '.join(STEP_KINDS)}, got {kind!r}", field="kind")
        start = _field(d, "start_unix_s", _NUMBER, prefix="")
        end = _field(d, "end_unix_s", _NUMBER, prefix="")
        if start is not None and end is not None and end < start:
            raise TraceFormatError(f"ends before it starts ({end} < {start})", field="end_unix_s")
        gpu = _field(d, "gpu", dict, prefix="")
        return cls(
            run_id=str(_field(d, "run_id", (str, int), prefix="", required=True)),
            step_id=str(_field(d, "step_id", (str, int), prefix="", required=True)),
            parent_step_id=_field(d, "parent_step_id", str, prefix=""),
            name=_field(d, "name", str, prefix=""),
            kind=kind,
            model=_field(d, "model", str, prefix=""),
            provider=_field(d, "provider", str, prefix=""),
            start_unix_s=None if start is None else float(start),
            end_unix_s=None if end is None else float(end),
            ttft_ms=_field(d, "ttft_ms", _NUMBER, prefix=""),
            prompt=Prompt.from_dict(_field(d, "prompt", dict, prefix="", default={}), previous=previous),
            output=Output.from_dict(_field(d, "output", dict, prefix="", default={})),
            usage=Usage.from_dict(_field(d, "usage", dict, prefix="", default={})),
            gpu=None if gpu is None else GpuStats.from_dict(gpu),
            attributes=_field(d, "attributes", dict, prefix="", default={}),
            line=line,
        )


@dataclass(frozen=True)
class Run:
    """One execution of a workflow: its steps in the order they started."""

    run_id: str
    workflow: str | None = None
    start_unix_s: float | None = None
    end_unix_s: float | None = None
    status: str | None = None
    parent_run_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    gpu: GpuStats | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `run` record (steps and the `run_end` record are written separately)."""
        return _drop_none({
            "type": "run",
            "run_id": self.run_id,
            "workflow": self.workflow,
            "parent_run_id": self.parent_run_id,
            "start_unix_s": self.start_unix_s,
            "attributes": dict(self.attributes) or None,
        })

    def end_dict(self) -> dict[str, Any]:
        return _drop_none({
            "type": "run_end",
            "run_id": self.run_id,
            "end_unix_s": self.end_unix_s,
            "status": self.status,
            "gpu": None if self.gpu is None else self.gpu.to_dict(),
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Run":
        start = _field(d, "start_unix_s", _NUMBER, prefix="")
        return cls(
            run_id=str(_field(d, "run_id", (str, int), prefix="", required=True)),
            workflow=_field(d, "workflow", str, prefix=""),
            parent_run_id=_field(d, "parent_run_id", str, prefix=""),
            start_unix_s=None if start is None else float(start),
            attributes=_field(d, "attributes", dict, prefix="", default={}),
        )

    def with_end(self, d: Mapping[str, Any]) -> "Run":
        end = _field(d, "end_unix_s", _NUMBER, prefix="")
        gpu = _field(d, "gpu", dict, prefix="")
        return replace(self, end_unix_s=None if end is None else float(end),
                       status=_field(d, "status", str, prefix=""),
                       gpu=None if gpu is None else GpuStats.from_dict(gpu))


def step_order_key(step: Step, file_index: int) -> tuple[float, int]:
    """Steps are ordered by start time, ties (and missing times) by their order in the file."""
    return (step.start_unix_s if step.start_unix_s is not None else -math.inf, file_index)


def ordered_llm_steps(traces: "Sequence[Trace]") -> list[tuple[int, Step]]:
    """Every LLM step of `traces` as `(trace index, step)`, in the one order the whole project uses:
    start time, then trace, then file order (the line for steps read from a file, the position in the
    trace for steps built in memory)."""
    keyed = []
    for ti, trace in enumerate(traces):
        for position, step in enumerate(trace.steps):
            if step.kind != "llm":
                continue
            start, tie = step_order_key(step, step.line if step.line is not None else position)
            keyed.append(((start, ti, tie), ti, step))
    keyed.sort(key=lambda item: item[0])
    return [(ti, step) for _, ti, step in keyed]


@dataclass(frozen=True)
class Trace:
    """A whole trace file: its header and runs (each with its steps in start order)."""

    header: TraceHeader
    runs: tuple[Run, ...]
    path: str | None = None
    # Problems the reader recovered from (a torn last line); shown by the CLI as warnings.
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Analysis keys steps by (run id, step id): two steps with one id would be reported wrongly.
        for run in self.runs:
            seen: dict[str, Step] = {}
            for step in run.steps:
                first = seen.setdefault(step.step_id, step)
                if first is step:
                    continue
                lines = ("" if first.line is None or step.line is None
                         else f" (lines {first.line} and {step.line})")
                raise TraceFormatError(
                    f"duplicate step id {step.step_id!r} in run {run.run_id!r}{lines}",
                    path=self.path, line=step.line, field="step_id",
                    hint="give every step of a run its own step_id")

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(s for r in self.runs for s in r.steps)

    def run(self, run_id: str) -> Run:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    @classmethod
    def from_steps(cls, steps: Iterable[Step], *, header: TraceHeader | None = None,
                   runs: Iterable[Run] = (), path: str | None = None) -> "Trace":
        """Group steps into runs (creating a run for each unknown run id), ordering steps by start."""
        by_id: dict[str, Run] = {r.run_id: r for r in runs}
        grouped: dict[str, list[tuple[tuple[float, int], Step]]] = {rid: [] for rid in by_id}
        for i, s in enumerate(steps):
            grouped.setdefault(s.run_id, []).append((step_order_key(s, i), s))
        out = []
        for rid, items in grouped.items():
            items.sort(key=lambda kv: kv[0])
            run = by_id.get(rid) or Run(run_id=rid)
            ordered = tuple(s for _, s in items)
            if run.start_unix_s is None and ordered and ordered[0].start_unix_s is not None:
                run = replace(run, start_unix_s=ordered[0].start_unix_s)
            out.append(replace(run, steps=ordered))
        return cls(header=header or TraceHeader(), runs=tuple(out), path=path)


def parse_header(record: Any, path: Any, lineno: int) -> TraceHeader:
    """The header of a trace from its first record, checked: the format name and a schema version
    this ctxprof reads (a newer one is `UnsupportedVersionError`)."""
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise TraceFormatError(
            f"not a ctxprof trace: the first line must be a header with \"format\": \"{FORMAT_NAME}\"",
            path=path, line=lineno,
            hint="to bring in traces from other tools, use `ctxprof import`")
    version = record.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TraceFormatError("must be a positive integer", path=path, line=lineno,
                               field="header.schema_version")
    if version > SCHEMA_VERSION:
        raise UnsupportedVersionError(
            f"schema version {version} is newer than this ctxprof supports ({SCHEMA_VERSION})",
            path=path, line=lineno, field="header.schema_version", hint=UPGRADE_HINT)
    try:
        return TraceHeader.from_dict(record)
    except TraceFormatError as e:
        raise TraceFormatError(e.reason, path=path, line=lineno, field=e.field) from None
