"""Import tau-bench historical trajectories (a JSON list of records `{task_id, trial, reward, info,
traj}`): one run per record.

What the file holds: `traj`, the tool-calling agent's final OpenAI-format message list (system policy,
user turns, assistant turns with or without `tool_calls`, tool results). Nothing else about the calls:
no usage, no timestamps, no tool definitions.

What is reconstructed:
- agent calls: one per assistant message; the prompt of the k-th message of `traj` is `traj[:k]` plus
  the tool definitions, as tau-bench's tool-calling agent sends them. Tools come from `tools=` (a JSON
  list, e.g. `airline_tools_info.json`), else a `<env>_tools_info.json` beside the trajectory file (env
  from the file name, `gpt-4o-airline.json` -> airline), else the only `*_tools_info.json` there.
- simulated-user calls (`include_user=True`): a second run per record (`<run id>/user`, parent: the
  agent's run, step name "user"). tau-bench's user simulator is a second
  LLM conversation: system = its prompt template with the task's `info.task.instruction`, then
  "Hi! How can I help you today?", then alternately its own earlier replies (assistant) and the agent's
  text replies (user). The prompt of its k-th reply is that conversation up to it; the reply is the k-th
  user message of `traj`. The prompt template is tau-bench's `LLMUserSimulationEnv` default (the
  historical runs used it); other user strategies (react, verify, reflection) are not reconstructed.
- the agent's model from `model=` or the file name (`<model>-<env>.json`); the user model from
  `user_model=` (tau-bench's default, gpt-4o, otherwise).
- no times and no provider usage exist: steps carry none, and the analysis works from content alone.
"""

from __future__ import annotations

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
    walk,
)
from profiler.trace.model import Output, Prompt, Run, Step, Trace

HINT = "a tau-bench trajectory file is a JSON list of records with a 'traj' message list"
ENVS = ("airline", "retail", "telecom")
USER_GREETING = "Hi! How can I help you today?"


USER_RULES = (
    "Just generate one line at a time to simulate the user's message.",
    "Do not give away all the instruction at once. Only provide the information that is necessary for "
    "the current step.",
    "Do not hallucinate information that is not provided in the instruction. For example, if the agent "
    "asks for the order id but it is not mentioned in the instruction, do not make up an order id, just "
    "say you do not remember or have it.",
    "If the instruction goal is satisified, generate '###STOP###' as a standalone message without "
    "anything else to end the conversation.",
    "Do not repeat the exact instruction in the conversation. Instead, use your own words to convey the "
    "same information.",
    "Try to make the conversation as natural as possible, and stick to the personalities in the "
    "instruction.",
)


def user_system_prompt(instruction: str | None) -> str:
    """tau-bench's `LLMUserSimulationEnv.build_system_prompt` (the default user strategy), verbatim."""
    display = ("\n\nInstruction: " + instruction + "\n") if instruction is not None else ""
    rules = "\n".join(f"- {rule}" for rule in USER_RULES)
    return f"You are a user interacting with an agent.{display}\nRules:\n{rules}"


def _env_and_model(file: Path) -> tuple[str | None, str | None]:
    stem = file.stem
    for env in ENVS:
        if stem.endswith("-" + env):
            return env, stem[: -len(env) - 1] or None
    return None, None


def _load_tools(path: Path) -> tuple[Mapping[str, Any], ...]:
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(t, Mapping) for t in data):
        raise TraceFormatError("expected a JSON list of tool definitions", path=path,
                               hint="use a tau-bench <env>_tools_info.json file")
    return tuple(data)


def _find_tools(file: Path, env: str | None) -> Path | None:
    if env is not None and (file.parent / f"{env}_tools_info.json").is_file():
        return file.parent / f"{env}_tools_info.json"
    candidates = sorted(file.parent.glob("*_tools_info.json"))
    return candidates[0] if len(candidates) == 1 else None


def _user_steps(run_id: str, traj: Sequence[Mapping[str, Any]], instruction: str | None,
                model: str | None, provider: str | None) -> list[Step]:
    conversation: list[dict[str, Any]] = [{"role": "system", "content": user_system_prompt(instruction)},
                                          {"role": "user", "content": USER_GREETING}]
    steps: list[Step] = []
    for index, m in enumerate(traj):
        role = m.get("role")
        if role == "user":
            reply = {"role": "assistant", "content": m.get("content")}
            steps.append(Step(run_id=run_id, step_id=f"user-{len(steps) + 1}", name="user", model=model,
                              provider=provider, prompt=Prompt(messages=tuple(conversation)),
                              output=Output(message=reply), attributes={"traj_index": index}))
            conversation.append(reply)
        elif role == "assistant" and not m.get("tool_calls") and m.get("content"):
            # A text reply of the agent is what the simulated user reads next.
            conversation.append({"role": "user", "content": m.get("content")})
    return steps


def import_tau_bench(sources: PathLike | Iterable[PathLike], *, tools: PathLike | None = None,
                     include_user: bool = False, model: str | None = None,
                     user_model: str = "gpt-4o") -> Trace:
    """Import tau-bench trajectory files (or folders of them) into one trace."""
    roots = as_paths(sources)
    files = [f for f in walk(roots, (".json",)) if not f.name.endswith("_tools_info.json")]
    explicit_tools = None if tools is None else _load_tools(Path(tools))
    runs: list[Run] = []
    steps: list[Step] = []
    tool_sources: set[str] = set()
    user_provider, user_model_name = split_model_route(user_model)
    user_provider = user_provider or guess_provider(user_model_name)
    for file in files:
        data = read_json(file)
        if not isinstance(data, list):
            raise TraceFormatError(f"expected a JSON list of records, got {type(data).__name__}",
                                   path=file, hint=HINT)
        env, file_model = _env_and_model(file)
        agent_provider, agent_model = split_model_route(model or file_model)
        agent_provider = agent_provider or guess_provider(agent_model)
        if explicit_tools is not None:
            tool_defs: tuple[Mapping[str, Any], ...] | None = explicit_tools
            tool_sources.add(str(tools))
        else:
            found = _find_tools(file, env)
            tool_defs = None if found is None else _load_tools(found)
            tool_sources.add(found.name if found is not None else "(none found)")
        for r, record in enumerate(data):
            field = f"[{r}]"
            traj = require(record, "traj", list, path=file, field=f"{field}.traj", hint=HINT)
            for i, m in enumerate(traj):
                if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                    raise TraceFormatError("must be an object with a string 'role'", path=file,
                                           field=f"{field}.traj[{i}]", hint=HINT)
            task_id = record.get("task_id")
            trial = record.get("trial")
            run_id = f"task-{task_id}" if task_id is not None else f"record-{r}"
            if trial is not None:
                run_id += f"-trial-{trial}"
            if len(files) > 1:
                run_id = f"{file.stem}/{run_id}"
            agent_steps = 0
            for k, m in enumerate(traj):
                if m["role"] != "assistant":
                    continue
                agent_steps += 1
                steps.append(Step(
                    run_id=run_id, step_id=f"agent-{agent_steps}", name="agent", model=agent_model,
                    provider=agent_provider, prompt=Prompt(messages=tuple(traj[:k]), tools=tool_defs),
                    output=Output(message=assistant_message(m)), attributes={"traj_index": k}))
            user_steps: list[Step] = []
            if include_user:
                instruction = get_path(record, "info.task.instruction")
                user_steps = _user_steps(f"{run_id}/user", traj, instruction if isinstance(
                    instruction, str) else None, user_model_name, user_provider)
            attrs: dict[str, Any] = {"source_file": file.name}
            for key in ("task_id", "trial", "reward"):
                if record.get(key) is not None:
                    attrs[key] = record[key]
            user_cost = get_path(record, "info.user_cost")
            if isinstance(user_cost, (int, float)) and not isinstance(user_cost, bool):
                attrs["reported_user_cost_usd"] = float(user_cost)
            workflow = f"tau-bench-{env}" if env else "tau-bench"
            runs.append(Run(run_id=run_id, workflow=workflow, attributes=attrs))
            if include_user:
                # The simulated user is a separate conversation (own prompt, own model): its own run,
                # linked to the agent's, so run-scope reuse never mixes the two.
                runs.append(Run(run_id=f"{run_id}/user", workflow=f"{workflow}-user-simulator",
                                parent_run_id=run_id, attributes={"source_file": file.name}))
                steps.extend(user_steps)

    reconstructed = {
        "prompt.messages": "agent call k: traj[:k] (the messages before the k-th assistant message)",
        "prompt.tools": f"tool definitions from {', '.join(sorted(tool_sources))}"
        if "(none found)" not in tool_sources else
        "no tool definitions found beside the file (pass tools=... / --tools); steps carry none",
        "model": "agent model from the option or the file name (<model>-<env>.json)",
        "timestamps": "none: tau-bench trajectories record no call times",
        "usage": "none: tau-bench trajectories record no token usage",
    }
    if include_user:
        reconstructed["user runs"] = (
            "simulated-user calls rebuilt from tau-bench's default user-simulator prompt with the "
            f"task instruction, then the conversation as the simulator saw it; model {user_model}")
    header = make_header("tau-bench", [str(s) for s in roots], reconstructed, include_user=include_user)
    return build_trace(steps, runs, header)
