"""Import SWE-agent and mini-swe-agent trajectories (`.traj`, `.traj.json`): one run per file.

SWE-agent (`history[]`, `trajectory[]`, `info.model_stats`):
- each `history` entry with role "assistant" is one LLM call; its prompt is the same agent's history
  before it (`agent` field; demonstrations included), converted to chat messages as SWE-agent does
  (role and content; `tool_calls` on assistant messages; `tool_call_id` on tool results);
- where the run's config (`replay_config`) names a `last_n_observations` history processor, it is
  applied, as SWE-agent does before each call; a `trajectory[i].query` (newer SWE-agent) is used as the
  exact prompt instead;
- no per-call usage or timestamps exist: `info.model_stats` (tokens_sent, tokens_received, api_calls,
  instance_cost) is kept as the run attribute `reported_model_stats`;
- the model comes from `replay_config`, else `args.yaml` beside the file (SWE-agent 0.x shortcuts such
  as `gpt4` resolved to the model they meant), else the folder name; `model=` overrides.

mini-swe-agent (`messages[]`, `info`, `trajectory_format: "mini-swe-agent-1"`):
- each assistant message is one call; its prompt is every message before it without the `extra` key
  (exactly what mini-swe-agent sends); `extra.response.usage` gives normalised usage, `extra.cost` the
  reported cost, `extra.timestamp` the end time; the start is the time the previous message was added
  (the agent queries right after), else the response's `created`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from profiler.errors import TraceFormatError
from profiler.importers.common import (
    PathLike,
    as_paths,
    assistant_message,
    build_trace,
    get_path,
    guess_provider,
    make_header,
    read_json,
    require,
    split_model_route,
    strip_keys,
    walk,
)
from profiler.chat import render_content
from profiler.trace.model import Output, Prompt, Run, Step, Trace, Usage
from profiler.usage import normalize_usage

SUFFIXES = (".traj", ".traj.json")
HINT_SWE = "a SWE-agent trajectory is a JSON object with a 'history' list of {role, content} entries"
HINT_MINI = "a mini-swe-agent trajectory is a JSON object with a 'messages' list of {role, content}"

# SWE-agent 0.x model shortcuts (sweagent/agent/models.py) -> the model they called.
SWE_AGENT_SHORTCUTS = {
    "gpt3": "gpt-3.5-turbo-1106",
    "gpt3-legacy": "gpt-3.5-turbo-16k-0613",
    "gpt4": "gpt-4-1106-preview",
    "gpt4-legacy": "gpt-4-0613",
    "gpt4-0125": "gpt-4-0125-preview",
    "gpt4-turbo": "gpt-4-turbo-2024-04-09",
    "gpt4o": "gpt-4o-2024-05-13",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "claude-2": "claude-2.0",
    "claude-opus": "claude-3-opus-20240229",
    "claude-sonnet": "claude-3-sonnet-20240229",
    "claude-haiku": "claude-3-haiku-20240307",
    "claude-sonnet-3.5": "claude-3-5-sonnet-20240620",
}


def detect_format(data: Any) -> str | None:
    """"swe-agent", "mini-swe-agent" or None for a parsed trajectory file."""
    if not isinstance(data, Mapping):
        return None
    fmt = data.get("trajectory_format")
    if isinstance(fmt, str) and fmt.startswith("mini-swe-agent"):
        return "mini-swe-agent"
    if isinstance(data.get("history"), list):
        return "swe-agent"
    if isinstance(data.get("messages"), list):
        return "mini-swe-agent"
    return None


# ---------------------------------------------------------------------------------------- SWE-agent

def _elide_old_observations(history: Sequence[Mapping[str, Any]], n: int, polling: int
                            ) -> list[Mapping[str, Any]]:
    """SWE-agent's `last_n_observations` processor: all but the first and the last `n` observations
    (non-demo entries with message_type "observation") become "Old environment output: (k lines
    omitted)"."""
    obs = [i for i, e in enumerate(history)
           if e.get("message_type") == "observation" and not e.get("is_demo", False)]
    last_removed = max(0, (len(obs) // polling) * polling - n)
    omit = set(obs[1:last_removed])
    out: list[Mapping[str, Any]] = []
    for i, entry in enumerate(history):
        tags = set(entry.get("tags") or ())
        if (i in omit and "keep_output" not in tags) or "remove_output" in tags:
            lines = len(render_content(entry.get("content")).splitlines())
            out.append({**entry, "content": f"Old environment output: ({lines} lines omitted)"})
        else:
            out.append(entry)
    return out


def _to_message(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A history entry as the chat message SWE-agent sends for it."""
    role = entry.get("role")
    message: dict[str, Any] = {"role": role, "content": entry.get("content")}
    if role == "tool" and entry.get("tool_call_ids"):
        message["tool_call_id"] = entry["tool_call_ids"][0]
    elif entry.get("tool_calls") is not None:
        message["tool_calls"] = entry["tool_calls"]
    return message


def _swe_model(data: Mapping[str, Any], file: Path) -> str | None:
    config = data.get("replay_config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = None
    name = get_path(config, "agent.model.name") if isinstance(config, Mapping) else None
    if isinstance(name, str):
        return name
    args = file.parent / "args.yaml"
    if args.is_file():
        match = re.search(r"^\s*model_name:\s*['\"]?([^'\"\s#]+)", args.read_text(encoding="utf-8",
                                                                              errors="replace"), re.M)
        if match:
            return SWE_AGENT_SHORTCUTS.get(match.group(1), match.group(1))
    prefix = file.parent.name.split("__")[0]
    return SWE_AGENT_SHORTCUTS.get(prefix)


def _history_processors(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    config = data.get("replay_config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return []
    procs = get_path(config, "agent.history_processors") if isinstance(config, Mapping) else None
    return [p for p in procs or [] if isinstance(p, Mapping)]


def _swe_agent_run(file: Path, data: Mapping[str, Any], run_id: str, model_override: str | None,
                   notes: set[str]) -> tuple[Run, list[Step]]:
    history = require(data, "history", list, path=file, hint=HINT_SWE)
    for i, e in enumerate(history):
        if not isinstance(e, Mapping) or not isinstance(e.get("role"), str):
            raise TraceFormatError("must be an object with a string 'role'", path=file,
                                   field=f"history[{i}]", hint=HINT_SWE)
    trajectory = data.get("trajectory") if isinstance(data.get("trajectory"), list) else []
    raw_model = model_override or _swe_model(data, file)
    provider, model = split_model_route(raw_model)
    provider = provider or guess_provider(model)
    processors = _history_processors(data)
    elide = [p for p in processors if p.get("type") == "last_n_observations"]
    unknown = [str(p.get("type")) for p in processors if p.get("type") != "last_n_observations"]
    if elide:
        notes.add("elided")
    if unknown:
        notes.add("unknown-processors:" + ",".join(sorted(set(unknown))))

    steps: list[Step] = []
    by_agent: dict[str, list[Mapping[str, Any]]] = {}
    calls = 0
    for index, entry in enumerate(history):
        agent = str(entry.get("agent") or "primary")
        seen = by_agent.setdefault(agent, [])
        if entry["role"] == "assistant":
            query = trajectory[calls].get("query") if calls < len(trajectory) and isinstance(
                trajectory[calls], Mapping) else None
            if isinstance(query, list) and query:
                messages = [strip_keys(m, ("extra",)) for m in query if isinstance(m, Mapping)]
                notes.add("query")
            else:
                context: list[Mapping[str, Any]] = list(seen)
                for p in elide:
                    context = _elide_old_observations(context, int(p.get("n", 5)), int(p.get("polling", 1)))
                messages = [_to_message(e) for e in context]
            if entry.get("tool_calls"):
                notes.add("tool-calls")
            calls += 1
            steps.append(Step(
                run_id=run_id, step_id=f"{agent}-{len([s for s in steps if s.name == agent]) + 1}",
                name=agent, model=model, provider=provider,
                prompt=Prompt(messages=tuple(messages)),
                output=Output(message=assistant_message(entry)),
                attributes={"history_index": index,
                            **({"action": entry["action"]} if isinstance(entry.get("action"), str)
                               else {})}))
        seen.append(entry)
    if not steps:
        raise TraceFormatError("has no assistant entries (no LLM calls)", path=file, field="history",
                               hint=HINT_SWE)
    info = data.get("info") if isinstance(data.get("info"), Mapping) else {}
    attrs: dict[str, Any] = {"source_file": file.name}
    stats = info.get("model_stats")
    if isinstance(stats, Mapping):
        attrs["reported_model_stats"] = dict(stats)
    for key in ("exit_status",):
        if isinstance(info.get(key), str):
            attrs[key] = info[key]
    if raw_model and raw_model != model:
        attrs["model_route"] = raw_model
    run = Run(run_id=run_id, workflow="swe-agent", status=attrs.get("exit_status"), attributes=attrs)
    return run, steps


# ----------------------------------------------------------------------------------- mini-swe-agent

def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mini_run(file: Path, data: Mapping[str, Any], run_id: str, model_override: str | None,
              notes: set[str]) -> tuple[Run, list[Step]]:
    messages = require(data, "messages", list, path=file, hint=HINT_MINI)
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise TraceFormatError("must be an object with a string 'role'", path=file,
                                   field=f"messages[{i}]", hint=HINT_MINI)
    info = data.get("info") if isinstance(data.get("info"), Mapping) else {}
    configured = get_path(info, "config.model.model_name")
    steps: list[Step] = []
    previous_time: float | None = None
    for index, m in enumerate(messages):
        extra = m.get("extra") if isinstance(m.get("extra"), Mapping) else {}
        stamp = _number(extra.get("timestamp"))
        if m["role"] == "assistant":
            response = extra.get("response") if isinstance(extra.get("response"), Mapping) else {}
            raw_model = model_override or (configured if isinstance(configured, str) else None) or (
                response.get("model") if isinstance(response.get("model"), str) else None)
            provider, model = split_model_route(raw_model)
            provider = provider or guess_provider(model)
            usage = normalize_usage(response.get("usage"), provider) if isinstance(
                response.get("usage"), Mapping) else Usage()
            if usage.input_tokens is None:
                notes.add("no-usage")
            start = previous_time
            created = _number(response.get("created"))
            if start is None and created is not None and (stamp is None or created <= stamp):
                start = created
                notes.add("start-created")
            elif start is not None:
                notes.add("start-previous")
            attrs: dict[str, Any] = {"message_index": index}
            cost = _number(extra.get("cost"))
            if cost is not None:
                attrs["reported_cost_usd"] = cost
            if isinstance(response.get("id"), str):
                attrs["response_id"] = response["id"]
            finish = get_path(response, "choices.0.finish_reason")
            steps.append(Step(
                run_id=run_id, step_id=f"call-{len(steps) + 1}", name="agent", model=model,
                provider=provider, start_unix_s=start,
                end_unix_s=stamp if stamp is not None and (start is None or stamp >= start) else None,
                prompt=Prompt(messages=tuple(strip_keys(p, ("extra",)) for p in messages[:index])),
                output=Output(message=assistant_message(m),
                              finish_reason=finish if isinstance(finish, str) else None),
                usage=usage, attributes=attrs))
        if stamp is not None:
            previous_time = stamp
    if not steps:
        raise TraceFormatError("has no assistant messages (no LLM calls)", path=file, field="messages",
                               hint=HINT_MINI)
    attrs = {"source_file": file.name}
    stats = info.get("model_stats")
    if isinstance(stats, Mapping):
        attrs["reported_model_stats"] = dict(stats)
    for key in ("exit_status", "mini_version"):
        if isinstance(info.get(key), str):
            attrs[key] = info[key]
    run = Run(run_id=run_id, workflow="mini-swe-agent", status=attrs.get("exit_status"), attributes=attrs)
    return run, steps


# ------------------------------------------------------------------------------------------ public

def _import(sources: PathLike | Iterable[PathLike], *, only: str | None, model: str | None) -> Trace:
    roots = as_paths(sources)
    files = walk(roots, SUFFIXES)
    runs: list[Run] = []
    steps: list[Step] = []
    formats: set[str] = set()
    notes: set[str] = set()
    used_ids: set[str] = set()
    for file in files:
        data = read_json(file)
        fmt = detect_format(data)
        if fmt is None:
            raise TraceFormatError("is neither a SWE-agent nor a mini-swe-agent trajectory", path=file,
                                   field="history",
                                   hint="expected 'history' (SWE-agent) or 'messages' (mini-swe-agent)")
        if only is not None and fmt != only:
            raise TraceFormatError(f"is a {fmt} trajectory, not {only}", path=file,
                                   hint=f"import it with `ctxprof import {fmt}` (or `swe-agent`, "
                                        "which detects both)")
        run_id = file.name.removesuffix(".json").removesuffix(".traj")
        if run_id in used_ids:
            run_id = f"{file.parent.name}/{run_id}"
        used_ids.add(run_id)
        if fmt == "swe-agent":
            run, run_steps = _swe_agent_run(file, data, run_id, model, notes)
        else:
            run, run_steps = _mini_run(file, data, run_id, model, notes)
        formats.add(fmt)
        runs.append(run)
        steps.extend(run_steps)

    reconstructed: dict[str, str] = {}
    if "swe-agent" in formats:
        reconstructed["prompt.messages"] = (
            "SWE-agent: the agent's history before each assistant entry, converted to chat messages as "
            "SWE-agent sends them" + ("; last_n_observations elision applied as configured"
                                      if "elided" in notes else "")
            + ("; trajectory[].query used where present" if "query" in notes else ""))
        reconstructed["prompt.tools"] = (
            "not in SWE-agent trajectories: function-calling tool definitions come from tool bundles, "
            "so steps carry none" if "tool-calls" in notes else
            "none: these SWE-agent runs describe their commands in the system prompt")
        reconstructed["timestamps"] = "none: SWE-agent trajectories record no call times"
        reconstructed["usage"] = ("none per call: SWE-agent reports only run totals, kept as the run "
                                  "attribute reported_model_stats")
        reconstructed["model"] = ("from replay_config or args.yaml (SWE-agent 0.x shortcuts such as "
                                  "'gpt4' resolved to the model they called)")
    if "mini-swe-agent" in formats:
        reconstructed["prompt.messages (mini-swe-agent)"] = (
            "every message before each assistant message, without the 'extra' key")
        if "start-previous" in notes or "start-created" in notes:
            reconstructed["start_unix_s"] = (
                "mini-swe-agent records when each message was added: a call's start is the time of the "
                "message before it, else the response's 'created'")
    unknown = [n.split(":", 1)[1] for n in notes if n.startswith("unknown-processors:")]
    header = make_header(
        only or "swe-agent", [str(s) for s in roots], reconstructed,
        notes=[f"history processors not replayed: {', '.join(unknown)}; prompts are the raw history"]
        if unknown else None)
    return build_trace(steps, runs, header)


def import_swe_agent(sources: PathLike | Iterable[PathLike], *, model: str | None = None) -> Trace:
    """Import SWE-agent and mini-swe-agent trajectories (each file's format is detected)."""
    return _import(sources, only=None, model=model)


def import_mini_swe_agent(sources: PathLike | Iterable[PathLike], *, model: str | None = None) -> Trace:
    """Import mini-swe-agent trajectories (`*.traj.json` with a `messages` list)."""
    return _import(sources, only="mini-swe-agent", model=model)
