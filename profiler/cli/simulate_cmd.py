"""`ctxprof simulate`: replay traces against a provider prompt cache or an engine KV cache."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from profiler.cli.app import app, err_console
from profiler.cli.common import (
    ADDRESS_OPT,
    ENGINE_OPT,
    OUTPUT_OPT,
    PRICE_FILE_OPT,
    PRICING_OPT,
    TRACES_ARG,
    Pricing,
    llm_step_count,
    load_all,
    output_stream,
    profile_options,
    progress_bar,
    table_console,
    wrote,
)
from profiler.errors import ConfigError
from profiler.options import Engine
from profiler.reporters.console import write_json


class Cache(str, Enum):
    openai = "openai"
    anthropic = "anthropic"
    gemini = "gemini"
    deepseek = "deepseek"
    engine = "engine"


class Format(str, Enum):
    table = "table"
    json = "json"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_S = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from "300", "90s", "5m", "1h", "1.5h", "1d"."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--ttl {text!r} is not a duration; write e.g. 300, 90s, 5m or 1h")
    unit = m.group(2).lower() if m.group(2) else None
    return float(m.group(1)) * _UNIT_S[unit]


@app.command("simulate")
def simulate_command(
    traces: list[Path] = TRACES_ARG,
    cache: Cache = typer.Option(..., "--cache", help="Which cache to simulate: a provider's prompt "
                                "cache (openai, anthropic, gemini, deepseek) or a serving engine's "
                                "KV cache of finite capacity (engine)."),
    ttl: Optional[str] = typer.Option(None, "--ttl", help="Provider caches: how long an unused entry "
                                      "lives (300, 5m, 1h). Default: openai/gemini 5m, deepseek 1h, "
                                      "anthropic per mark (5m unless the mark says \"1h\")."),
    auto_breakpoints: bool = typer.Option(False, "--auto-breakpoints",
                                          help="anthropic: for steps without cache_control marks, "
                                               "place one after the tools and system prompt and one "
                                               "at the last message."),
    min_tokens: Optional[int] = typer.Option(None, "--min-tokens", min=1,
                                             help="Provider caches: override the minimum cacheable "
                                                  "prompt length (default: the provider's, per model)."),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", min=1,
                                               help="openai, gemini, deepseek: override the chunk a hit "
                                                    "is counted in (default: the provider's, per model)."),
    pricing: Pricing = PRICING_OPT,
    price_file: Optional[Path] = PRICE_FILE_OPT,
    capacity: Optional[list[str]] = typer.Option(None, "--capacity",
                                                 help="engine: cache capacity, in tokens (100000) or "
                                                      "bytes (8GiB, with --model-preset); repeat for a "
                                                      "sweep. Default: unlimited."),
    block_size: int = typer.Option(16, "--block-size", min=1, help="engine: KV block size in tokens."),
    model_preset: Optional[str] = typer.Option(None, "--model-preset",
                                               help="engine: model whose KV size per token turns byte "
                                                    "capacities into tokens."),
    policy: str = typer.Option("lru", "--policy", help="engine: eviction policy."),
    replicas: Optional[str] = typer.Option(None, "--replicas",
                                           help="engine: simulate a fleet of this many replicas, each "
                                                "with --capacity of its own: a count (4), a list "
                                                "(1,2,4,8) or a range (1-8)."),
    routing: Optional[list[str]] = typer.Option(None, "--routing",
                                                help="engine fleet: round-robin, least-loaded or prefix "
                                                     "(consistent hashing on the leading blocks); repeat "
                                                     "to compare. Default: all three."),
    route_blocks: int = typer.Option(8, "--route-blocks", min=1,
                                     help="engine fleet: leading blocks the prefix router hashes."),
    target_hit_rate: Optional[float] = typer.Option(None, "--target-hit-rate", min=0.0, max=1.0,
                                                    help="engine fleet: report the fewest replicas of "
                                                         "the sweep each routing needs for this hit rate "
                                                         "(0.5 = 50%)."),
    engine: Engine = ENGINE_OPT,
    address: Optional[str] = ADDRESS_OPT,
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = OUTPUT_OPT,
) -> None:
    """Predict what a prompt cache or KV cache would have reused for the requests of the traces.

    Provider caches replay every LLM step in start-time order against one shared cache, with the
    provider's rules (minimum length, 128-token increments, breakpoints, expiry), and show per step the
    predicted cached tokens beside the ones the provider reported, and the cost with and without it.
    """
    opts = profile_options(block_size=block_size, pricing=pricing, price_file=price_file, engine=engine,
                           address=address)
    fleet = replicas is not None
    if not fleet and (routing or target_hit_rate is not None):
        raise ConfigError("--routing and --target-hit-rate simulate a fleet: add --replicas")
    if fleet and cache is not Cache.engine:
        raise ConfigError("--replicas simulates engine replicas: use --cache engine")
    if not fleet and opts.engine is Engine.ray:
        raise ConfigError("--engine ray simulates fleet replicas in parallel: add --replicas")
    loaded = load_all(traces)
    if fleet:
        result: Any = _simulate_fleet(loaded, replicas, routing, capacity or [], opts, model_preset,
                                      policy, route_blocks, target_hit_rate)
    elif cache is Cache.engine:
        result = _simulate_engine(loaded, capacity or [], opts.block_size, model_preset, policy)
    else:
        from profiler.cache_sim.providers import simulate_provider

        options: dict[str, Any] = {}
        if min_tokens is not None:
            options["min_tokens"] = min_tokens
        if chunk_tokens is not None:
            if cache is Cache.anthropic:
                raise ConfigError("--chunk-tokens applies to --cache openai, gemini or deepseek")
            options["chunk_tokens"] = chunk_tokens
        if auto_breakpoints:
            if cache is not Cache.anthropic:
                raise ConfigError("--auto-breakpoints applies to --cache anthropic only")
            options["auto_breakpoints"] = True
        table = opts.price_table()
        if table is None:
            from profiler.pricing import PriceTable

            table = PriceTable.empty()
        with progress_bar(f"simulate {cache.value}", llm_step_count(loaded)) as bar:
            result = simulate_provider(loaded, cache.value, prices=table, progress=bar,
                                       ttl_s=None if ttl is None else parse_duration(ttl), **options)
        for w in result.warnings:
            err_console.print(f"ctxprof: warning: {w}", markup=False)
    with output_stream(output) as stream:
        if fmt is Format.json:
            write_json(result.to_dict(), stream)
        else:
            from profiler.reporters.simulation import print_provider_simulation

            console = table_console(stream)
            if fleet:
                from profiler.reporters.fleet import render as render_fleet

                render_fleet(result, console)
            elif cache is Cache.engine:
                from profiler.reporters.engine_cache import render

                render(result, console)
            else:
                print_provider_simulation(result, console)
    wrote(output)


def _simulate_engine(loaded: list, capacities: list[str], block_size: int, preset: Optional[str],
                     policy: str) -> Any:
    from profiler.cache_sim import engine

    parsed: list[int | None] = [engine.parse_capacity(c, preset) for c in capacities] or [None]
    with progress_bar("simulate engine", llm_step_count(loaded)) as bar:
        sim = engine.simulate_engine(loaded, parsed, block_size=block_size, policy=policy, progress=bar)
    for w in getattr(sim, "warnings", ()) or ():
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    return sim


def _simulate_fleet(loaded: list, replicas: str, routing: Optional[list[str]], capacities: list[str],
                    opts: Any, preset: Optional[str], policy: str, route_blocks: int,
                    target_hit_rate: Optional[float]) -> Any:
    from profiler.cache_sim import engine, fleet

    if len(capacities) > 1:
        raise ConfigError("--replicas takes one --capacity (per replica); sweep the replica count instead")
    routings = list(dict.fromkeys(routing or fleet.ROUTINGS))
    for r in routings:
        if r not in fleet.ROUTINGS:
            raise ConfigError(f"unknown --routing {r!r}: use {', '.join(fleet.ROUTINGS)}")
    sim = fleet.simulate_fleet(
        loaded, replicas=fleet.parse_replicas(replicas), routings=routings,
        capacity_tokens=engine.parse_capacity(capacities[0], preset) if capacities else None,
        block_size=opts.block_size, policy=policy, route_blocks=route_blocks,
        target_hit_rate=target_hit_rate, engine=opts.engine.value, address=opts.address)
    for w in sim.warnings:
        err_console.print(f"ctxprof: warning: {w}", markup=False)
    return sim
