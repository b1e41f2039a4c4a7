"""The budgets file of a CI check: `ctxprof.toml`, or `[tool.ctxprof]` of a `pyproject.toml`.

Contract: `Budgets.from_file(path)` reads the file with `tomllib` (`tomli` before Python 3.11) and
validates every key; `Budgets.from_mapping(dict)` takes the same structure as a dict. A typo, an unknown
metric or section, a bad value or malformed TOML raises `ConfigError` naming the file, the line and the
key, with a "did you mean" suggestion. The format is described in docs/ci.md.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from profiler.check.metrics import AGGREGATES, DEFAULT_AGGREGATE, METRICS
from profiler.check.toml_lines import KeyLines, parse_toml
from profiler.errors import ConfigError, did_you_mean, read_config_text


@dataclass(frozen=True)
class Limit:
    """One limit from the budgets file.

    kind "budget": `value` is the highest allowed aggregate of the metric; kind "regression": the
    highest allowed relative growth over the baseline (0.05 = +5%). `workflow` None applies to every
    workflow without its own limit for that metric.
    """

    kind: str
    workflow: str | None
    metric: str
    value: float
    aggregate: str
    source: str | None = None  # file the limit came from
    line: int | None = None

    @property
    def where(self) -> str | None:
        if self.source is None:
            return None
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Budgets:
    limits: tuple[Limit, ...] = ()
    aggregate: str = DEFAULT_AGGREGATE
    scope: str | None = None
    allow_unknown: bool = False
    source: str | None = None
    # Lines of the workflow tables, for errors about workflows that are not in the traces.
    workflow_lines: Mapping[tuple[str, str], int | None] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Budgets":
        path = Path(path)
        text = read_config_text(path, "budgets file",
                                "write one as described in docs/ci.md, or pass --budget PATH")
        data = parse_toml(text, str(path))
        prefix: tuple[str, ...] = ()
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            if not isinstance(tool, dict) or "ctxprof" not in tool:
                raise ConfigError(f"{path}: has no [tool.ctxprof] table with ctxprof budgets")
            data = tool["ctxprof"]
            prefix = ("tool", "ctxprof")
        return cls.from_mapping(data, source=str(path), lines=KeyLines(text, prefix))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<budgets>",
                     lines: "KeyLines | None" = None) -> "Budgets":
        """Budgets from the budgets-file structure as a dict (as `tomllib` would return it)."""
        return _Parser(source, lines or KeyLines("")).parse(data)

    def limits_for(self, workflow: str, kind: str) -> dict[str, Limit]:
        """Effective limits of `kind` for `workflow`: its own, else the ones for every workflow."""
        out: dict[str, Limit] = {}
        for lim in self.limits:
            if lim.kind == kind and lim.workflow is None:
                out[lim.metric] = lim
        for lim in self.limits:
            if lim.kind == kind and lim.workflow == workflow:
                out[lim.metric] = lim
        return out


def _table_name(*keys: str) -> str:
    parts = [k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in keys]
    return "[" + ".".join(parts) + "]"


SECTIONS = ("check", "budgets", "regression")
CHECK_KEYS = ("aggregate", "scope", "allow_unknown")
TABLE_SETTINGS = ("aggregate",)


class _Parser:
    def __init__(self, source: str, lines: KeyLines) -> None:
        self.source = source
        self.lines = lines

    def error(self, key: tuple[str, ...], message: str) -> ConfigError:
        line = self.lines.line(*key)
        where = self.source if line is None else f"{self.source}:{line}"
        return ConfigError(f"{where}: {message}")

    def parse(self, data: Mapping[str, Any]) -> Budgets:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{self.source}: budgets must be a table, got {type(data).__name__}")
        for key in data:
            if key not in SECTIONS:
                raise self.error((key,), f"unknown section [{key}]{did_you_mean(key, SECTIONS)}; "
                                         f"sections are {', '.join(f'[{s}]' for s in SECTIONS)}")
        settings = self.table(data, "check")
        for key in settings:
            if key not in CHECK_KEYS:
                raise self.error(("check", key), f"unknown key {key!r} in [check]"
                                 f"{did_you_mean(key, CHECK_KEYS)}; keys are {', '.join(CHECK_KEYS)}")
        default_agg = self.aggregate_value(settings, ("check",), DEFAULT_AGGREGATE)
        scope = settings.get("scope")
        if scope is not None and scope not in ("run", "global"):
            raise self.error(("check", "scope"), f"scope must be 'run' or 'global', got {scope!r}")
        allow_unknown = settings.get("allow_unknown", False)
        if not isinstance(allow_unknown, bool):
            raise self.error(("check", "allow_unknown"),
                             f"allow_unknown must be true or false, got {allow_unknown!r}")
        limits: list[Limit] = []
        workflow_lines: dict[tuple[str, str], int | None] = {}
        for kind, section in (("budget", "budgets"), ("regression", "regression")):
            table = self.table(data, section)
            limits += self.limits(table, kind, (section,), None, default_agg)
            workflows = table.get("workflow", {})
            if not isinstance(workflows, Mapping):
                raise self.error((section, "workflow"),
                                 f"[{section}.workflow] must be a table of workflows, e.g. "
                                 f'[{section}.workflow."support-agent"]')
            for name, wtable in workflows.items():
                key = (section, "workflow", name)
                if not isinstance(wtable, Mapping):
                    raise self.error(key, f"{_table_name(*key)} must be a table of metric limits "
                                          f'(a workflow\'s limits go in [{section}.workflow."NAME"])')
                if "workflow" in wtable:
                    raise self.error(key + ("workflow",),
                                     f"{_table_name(*key)} cannot nest another workflow table")
                workflow_lines[(section, name)] = self.lines.line(*key)
                agg = self.aggregate_value(table, (section,), default_agg)
                limits += self.limits(wtable, kind, key, name, agg)
        return Budgets(limits=tuple(limits), aggregate=default_agg, scope=scope,
                       allow_unknown=allow_unknown, source=self.source, workflow_lines=workflow_lines)

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error((key,), f"[{key}] must be a table, got {type(value).__name__}")
        return value

    def aggregate_value(self, table: Mapping[str, Any], key: tuple[str, ...], default: str) -> str:
        value = table.get("aggregate", default)
        if value not in AGGREGATES:
            raise self.error(key + ("aggregate",), f"aggregate must be one of {', '.join(AGGREGATES)}, "
                                                   f"got {value!r}{did_you_mean(str(value), AGGREGATES)}")
        return value

    def limits(self, table: Mapping[str, Any], kind: str, key: tuple[str, ...], workflow: str | None,
               inherited_agg: str) -> list[Limit]:
        agg = self.aggregate_value(table, key, inherited_agg)
        out = []
        allowed = (*METRICS, *TABLE_SETTINGS) + (("workflow",) if workflow is None else ())
        for name, raw in table.items():
            if name in ("aggregate", "workflow"):
                continue
            if name not in METRICS:
                hint = did_you_mean(name, allowed)
                if not hint and name in CHECK_KEYS:
                    hint = " (settings go in [check])"
                raise self.error(key + (name,),
                                 f"unknown metric {name!r} in {_table_name(*key)}{hint}; metrics are "
                                 f"{', '.join(METRICS)}")
            value = self.limit_value(kind, name, raw, key + (name,))
            out.append(Limit(kind=kind, workflow=workflow, metric=name, value=value, aggregate=agg,
                             source=self.source, line=self.lines.line(*key, name)))
        return out

    def limit_value(self, kind: str, metric: str, raw: Any, key: tuple[str, ...]) -> float:
        where = f"{'.'.join(key)}"
        if kind == "regression" and isinstance(raw, str) and raw.strip().endswith("%"):
            try:
                raw = float(raw.strip()[:-1]) / 100.0
            except ValueError:
                raise self.error(key, f"{where} = {raw!r} is not a percentage (write 0.05 or \"5%\")"
                                 ) from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            example = "0.05 (allow +5%)" if kind == "regression" else "a number such as 50000"
            raise self.error(key, f"{where} must be a number, got {raw!r}; write {example}")
        if raw < 0:
            raise self.error(key, f"{where} must be >= 0, got {raw}")
        if kind == "budget" and METRICS[metric].unit == "ratio" and raw > 1:
            raise self.error(key, f"{where} = {raw} is a ratio between 0 and 1 (0.6 means 60%)")
        return float(raw)
