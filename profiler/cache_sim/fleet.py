"""Fleet simulation: N engine replicas behind a router, each with its own KV cache.

Contract: `simulate_fleet(traces, replicas=[1, 2, 4], routings=("round-robin", "least-loaded",
"prefix"), capacity_tokens=..., ...)` returns a `FleetSimulation`: for every (routing, replica count)
point the hit rate, prefill tokens saved and load balance, per replica and over the fleet, and for a
`target_hit_rate` the fewest replicas of the sweep with which each routing reaches it.

The model: every LLM step is cut into the engine simulator's blocks (`profiler.cache_sim.kv_cache.
step_blocks`, one hash scheme) once, in the one step order (`ordered_llm_steps`). The router sends each
request to one replica, in one pass over the requests (routing never looks at a cache's state, so it
is done first and the replicas then run independently, in parallel on Ray with `engine="ray"`). Each
replica is a `KVBlockCache` of `capacity_tokens // block_size` blocks serving its requests in order,
exactly as `simulate_engine` serves all of them (one replica gives its figures; a test checks it).

Routing policies:
- `round-robin`: request i goes to replica i mod N.
- `least-loaded`: to the replica with the fewest prompt tokens routed so far (ties: lowest index);
  without a time model, routed work stands in for queue length.
- `prefix`: consistent hashing of the chained hash of the leading `route_blocks` blocks (a ring of
  `_VNODES` points per replica), as cache-aware routers do: requests sharing those blocks meet on one
  replica. A prompt without one whole block goes round-robin (request i to replica i mod N).

Load balance is max / mean of the prompt tokens routed to each replica (1.0 = even).
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from profiler.cache_sim.kv_cache import KVBlockCache, StepBlocks, step_blocks
from profiler.errors import ProfilerError
from profiler.prefix import make_policy
from profiler.prefix.hashing import splitmix
from profiler.tokens import StepTokenizer
from profiler.trace.model import Trace, ordered_llm_steps

FLEET_SCHEMA = "ctxprof.fleet/1"
ROUTINGS = ("round-robin", "least-loaded", "prefix")
_VNODES = 64  # ring points per replica: enough for an even spread of keys


@dataclass(frozen=True)
class ReplicaResult:
    replica: int
    steps: int
    prompt_tokens: int
    hit_tokens: int
    hit_rate: float
    prefill_tokens_saved: int
    evicted_blocks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FleetPoint:
    """One routing policy at one replica count."""

    routing: str
    replicas: int
    prompt_tokens: int
    hit_tokens: int
    hit_rate: float
    prefill_tokens_saved: int
    load_imbalance: float  # max / mean prompt tokens per replica
    per_replica: tuple[ReplicaResult, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_replica"] = [r.to_dict() for r in self.per_replica]
        return d


@dataclass(frozen=True)
class FleetSimulation:
    block_size: int
    policy: str
    capacity_tokens: int | None  # per replica; None: unbounded
    route_blocks: int
    steps: int
    points: tuple[FleetPoint, ...]
    target_hit_rate: float | None = None
    warnings: tuple[str, ...] = field(default=())

    def replicas_needed(self) -> dict[str, int | None]:
        """Per routing, the fewest replicas of the sweep reaching the target hit rate (None: none did)."""
        if self.target_hit_rate is None:
            return {}
        out: dict[str, int | None] = {}
        for p in sorted(self.points, key=lambda p: p.replicas):
            out.setdefault(p.routing, None)
            if out[p.routing] is None and p.hit_rate >= self.target_hit_rate:
                out[p.routing] = p.replicas
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"schema": FLEET_SCHEMA, "block_size": self.block_size, "policy": self.policy,
                "capacity_tokens": self.capacity_tokens, "route_blocks": self.route_blocks,
                "steps": self.steps, "target_hit_rate": self.target_hit_rate,
                "replicas_needed": self.replicas_needed(),
                "points": [p.to_dict() for p in self.points], "warnings": list(self.warnings)}


def fleet_blocks(traces: Trace | Iterable[Trace], block_size: int = 16,
                 tokenizer: StepTokenizer | None = None) -> tuple[list[StepBlocks], int, list[str]]:
    """Every LLM step with content as the engine's blocks, in the one step order; the block size
    used (the traces' own for block hashes) and warnings."""
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    steps = [s for _, s in ordered_llm_steps(trace_list)]
    sizes = {s.prompt.block_size or block_size for s in steps if s.prompt.level == "hashes"}
    if len(sizes) > 1:
        raise ProfilerError(f"the traces' block hashes use different block sizes ({sorted(sizes)}); "
                            "simulate them separately")
    bs = sizes.pop() if sizes else block_size
    tok = tokenizer or StepTokenizer()
    warnings = [w for t in trace_list for w in t.warnings]
    blocks = [b for b in (step_blocks(s, tok, bs) for s in steps) if b is not None]
    if len(blocks) < len(steps):
        warnings.append(f"{len(steps) - len(blocks)} LLM step(s) have no prompt content to hash and "
                        "were left out")
    return blocks, bs, warnings


def _ring(replicas: int) -> tuple[list[int], list[int]]:
    ids = np.arange(replicas * _VNODES, dtype=np.uint64)
    points = splitmix(ids ^ np.uint64(0x5EED)).tolist()
    owners = [i // _VNODES for i in range(replicas * _VNODES)]
    order = sorted(range(len(points)), key=points.__getitem__)
    return [points[i] for i in order], [owners[i] for i in order]


def route(blocks: Sequence[StepBlocks], replicas: int, routing: str, route_blocks: int = 8) -> list[int]:
    """The replica of each request, in one pass."""
    if replicas < 1:
        raise ProfilerError(f"--replicas must be at least 1, got {replicas}")
    if routing not in ROUTINGS:
        raise ProfilerError(f"unknown routing {routing!r}: use {', '.join(ROUTINGS)}")
    if routing == "round-robin":
        return [i % replicas for i in range(len(blocks))]
    if routing == "least-loaded":
        load = [0] * replicas
        out = []
        for b in blocks:
            r = min(range(replicas), key=load.__getitem__)
            load[r] += b.prompt_tokens
            out.append(r)
        return out
    points, owners = _ring(replicas)
    out = []
    for i, b in enumerate(blocks):
        # The chained hash of the last leading block identifies all of them; a prompt shorter than
        # the leading blocks is keyed by the blocks it has. A router sees only the prompt, so a
        # prompt without a whole block (whose first block would hold output) goes round-robin.
        n = min(route_blocks, b.prompt_blocks, len(b.hashes))
        if n == 0:
            out.append(i % replicas)
            continue
        key = int(splitmix(np.array([b.hashes[n - 1]], dtype=np.uint64))[0])
        at = bisect.bisect_left(points, key) % len(points)
        out.append(owners[at])
    return out


def simulate_replica(replica: int, blocks: Sequence[StepBlocks], capacity_tokens: int | None,
                     block_size: int, policy: str) -> ReplicaResult:
    """One replica serving its requests in order: the engine simulator's cache and counting rules."""
    cache = KVBlockCache(None if capacity_tokens is None else capacity_tokens // block_size,
                         make_policy(policy))
    prompt = hit = saved = 0
    for b in blocks:
        matched = cache.match_scan(b.hashes)
        tokens = min(min(matched, b.prompt_blocks) * b.block_size, b.prompt_tokens)
        prompt += b.prompt_tokens
        hit += tokens
        # The last prompt token is always recomputed (its logits start the output), as in the engine.
        saved += min(tokens, max(b.prompt_tokens - 1, 0))
        cache.serve(b.hashes, matched=matched)
    return ReplicaResult(replica=replica, steps=len(blocks), prompt_tokens=prompt, hit_tokens=hit,
                         hit_rate=hit / prompt if prompt else 0.0, prefill_tokens_saved=saved,
                         evicted_blocks=cache.evicted_blocks)


def split_by_replica(blocks: Sequence[StepBlocks], assignment: Sequence[int],
                     replicas: int) -> list[list[StepBlocks]]:
    groups: list[list[StepBlocks]] = [[] for _ in range(replicas)]
    for b, r in zip(blocks, assignment):
        groups[r].append(b)
    return groups


def fleet_point(routing: str, replicas: Sequence[ReplicaResult]) -> FleetPoint:
    prompt = sum(r.prompt_tokens for r in replicas)
    hit = sum(r.hit_tokens for r in replicas)
    mean = prompt / len(replicas) if replicas else 0.0
    return FleetPoint(routing=routing, replicas=len(replicas), prompt_tokens=prompt, hit_tokens=hit,
                      hit_rate=hit / prompt if prompt else 0.0,
                      prefill_tokens_saved=sum(r.prefill_tokens_saved for r in replicas),
                      load_imbalance=max(r.prompt_tokens for r in replicas) / mean if mean else 1.0,
                      per_replica=tuple(replicas))


def parse_replicas(text: str) -> list[int]:
    """"4", "1,2,4,8" or a range "1-8" -> sorted distinct replica counts."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if first < 1 or last < first:
                raise ValueError
            out.update(range(first, last + 1))
    except ValueError:
        raise ProfilerError(f"--replicas {text!r}: write a count (4), a list (1,2,4,8) or a range (1-8) "
                            "of counts >= 1") from None
    return sorted(out)


def simulate_fleet(traces: Trace | Iterable[Trace], *, replicas: Sequence[int],
                   routings: Sequence[str] = ROUTINGS, capacity_tokens: int | None = None,
                   block_size: int = 16, policy: str = "lru", route_blocks: int = 8,
                   target_hit_rate: float | None = None, engine: str = "local",
                   address: str | None = None) -> FleetSimulation:
    """Route and simulate every (routing, replica count) point; `engine="ray"` simulates the replicas
    as Ray tasks (`pip install 'ctxprof[ray]'`), with the same figures."""
    from profiler.options import Engine, resolve_engine

    make_policy(policy)
    if capacity_tokens is not None and capacity_tokens < 0:
        raise ProfilerError(f"capacity must be >= 0 tokens, got {capacity_tokens}")
    if route_blocks < 1:
        raise ProfilerError(f"--route-blocks must be at least 1, got {route_blocks}")
    if target_hit_rate is not None and not 0.0 <= target_hit_rate <= 1.0:
        raise ProfilerError(f"--target-hit-rate must be between 0 and 1, got {target_hit_rate}")
    blocks, bs, warnings = fleet_blocks(traces, block_size)
    plans = [(routing, n, split_by_replica(blocks, route(blocks, n, routing, route_blocks), n))
             for routing in routings for n in replicas]
    if resolve_engine(engine, address) is Engine.ray:
        from profiler.distributed.fleet import simulate_replicas_on_ray

        results = simulate_replicas_on_ray([groups for _, _, groups in plans], simulate_replica,
                                           capacity_tokens, bs, policy, address)
    else:
        results = [[simulate_replica(r, g, capacity_tokens, bs, policy) for r, g in enumerate(groups)]
                   for _, _, groups in plans]
    points = tuple(fleet_point(routing, res) for (routing, _, _), res in zip(plans, results))
    return FleetSimulation(block_size=bs, policy=policy, capacity_tokens=capacity_tokens,
                           route_blocks=route_blocks, steps=len(blocks), points=points,
                           target_hit_rate=target_hit_rate, warnings=tuple(warnings))
