"""Fleet simulation (profiler/cache_sim/fleet.py): routing, per-replica caches, the sweep, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import make_step, make_trace, save
from profiler.cache_sim.engine import simulate_engine
from profiler.cache_sim.fleet import (
    ROUTINGS,
    fleet_blocks,
    parse_replicas,
    route,
    simulate_fleet,
)
from profiler.cli.app import main
from profiler.errors import ProfilerError
from profiler.trace.model import ordered_llm_steps


def run_cli(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


MOONCAKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mooncake" / "synthetic_trace.jsonl"


@pytest.fixture(scope="module")
def mooncake():
    from profiler.importers.mooncake import import_mooncake

    if not MOONCAKE.is_file():
        pytest.skip("../shared/data/mooncake is not present")
    return import_mooncake(MOONCAKE)


@pytest.mark.parametrize("capacity", [None, 2_000_000, 300_000])
def test_one_replica_is_the_engine_simulator_on_mooncake(mooncake, capacity):
    # GIVEN the Mooncake trace WHEN simulated by one replica and by the single-engine simulator
    fleet = simulate_fleet(mooncake, replicas=[1], capacity_tokens=capacity)
    single = simulate_engine(mooncake, [capacity]).results[0]
    # THEN every routing gives exactly the engine's figures
    for point in fleet.points:
        replica = point.per_replica[0]
        assert (point.hit_tokens, point.prefill_tokens_saved, replica.evicted_blocks) == (
            single.hit_tokens, single.prefill_tokens_saved, single.evicted_blocks)
        assert point.hit_rate == single.hit_rate and point.load_imbalance == 1.0


def test_prefix_routing_beats_round_robin_on_mooncake(mooncake):
    # GIVEN bounded replicas WHEN 8 of them serve Mooncake THEN prefix routing keeps conversations together
    sim = simulate_fleet(mooncake, replicas=[8], capacity_tokens=300_000)
    rate = {p.routing: p.hit_rate for p in sim.points}
    assert rate["prefix"] > rate["round-robin"] and rate["prefix"] > rate["least-loaded"]


@st.composite
def token_traces(draw):
    """Requests over a few shared system prompts and a tiny vocabulary, distinct start times."""
    systems = [list(range(100, 140)), list(range(200, 237))]
    steps = []
    for i in range(draw(st.integers(1, 25))):
        head = draw(st.sampled_from([[], *systems]))
        tokens = head + draw(st.lists(st.integers(0, 3), max_size=40))
        steps.append(make_step(f"r{i % 3}", step_id=f"s{i}", tokens=tokens, output=[5, 6], start=float(i)))
    return make_trace(steps, path="mem.jsonl")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=token_traces(), replicas=st.integers(1, 4), routing=st.sampled_from(ROUTINGS),
       capacity=st.sampled_from([None, 32, 80, 160]), route_blocks=st.integers(1, 3))
def test_each_replica_is_the_engine_simulator_on_its_requests(trace, replicas, routing, capacity,
                                                              route_blocks):
    # GIVEN a routed fleet WHEN each replica's requests are simulated alone by the engine simulator
    sim = simulate_fleet(trace, replicas=[replicas], routings=[routing], capacity_tokens=capacity,
                         block_size=4, route_blocks=route_blocks)
    blocks, _, _ = fleet_blocks(trace, 4)
    assignment = route(blocks, replicas, routing, route_blocks)
    point = sim.points[0]
    for r in range(replicas):
        mine = [s for (_, s), a in zip(ordered_llm_steps([trace]), assignment) if a == r]
        expected = simulate_engine(make_trace(mine), [capacity], block_size=4)
        got = point.per_replica[r]
        # THEN the replica's figures are the engine's on exactly those requests
        assert (got.steps, got.prompt_tokens, got.hit_tokens, got.prefill_tokens_saved,
                got.evicted_blocks) == (expected.steps, expected.total_prompt_tokens,
                                        expected.results[0].hit_tokens,
                                        expected.results[0].prefill_tokens_saved,
                                        expected.results[0].evicted_blocks)
    assert point.prompt_tokens == sum(r.prompt_tokens for r in point.per_replica)


def test_prefix_routing_sends_shared_leading_blocks_to_one_replica():
    # GIVEN requests that share their first two blocks, and others that do not
    shared = [make_step(step_id=f"a{i}", tokens=list(range(8)) + [50 + i] * 6) for i in range(6)]
    other = [make_step(step_id=f"b{i}", tokens=[90 + i] * 12) for i in range(6)]
    blocks, _, _ = fleet_blocks(make_trace(shared + other), 4)
    # WHEN routed by prefix on 2 leading blocks over 4 replicas
    got = route(blocks, 4, "prefix", route_blocks=2)
    # THEN the sharing requests meet on one replica; round-robin and least-loaded spread them
    assert len(set(got[:6])) == 1
    assert route(blocks, 4, "round-robin") == [i % 4 for i in range(12)]
    assert sorted(route(blocks, 4, "least-loaded")[:4]) == [0, 1, 2, 3]


def test_replicas_needed_is_the_smallest_count_reaching_the_target(mooncake):
    sim = simulate_fleet(mooncake, replicas=[1, 2, 4, 8], routings=["prefix", "round-robin"],
                         capacity_tokens=300_000, target_hit_rate=0.2)
    rates = {(p.routing, p.replicas): p.hit_rate for p in sim.points}
    needed = sim.replicas_needed()
    for routing, n in needed.items():
        reached = [k for k in (1, 2, 4, 8) if rates[(routing, k)] >= 0.2]
        assert n == (reached[0] if reached else None)
    assert needed["prefix"] is not None


def test_parse_replicas():
    assert parse_replicas("4") == [4]
    assert parse_replicas("1,2,4,8") == [1, 2, 4, 8]
    assert parse_replicas("1-3,8") == [1, 2, 3, 8]
    for bad in ("0", "x", "3-1", ""):
        with pytest.raises(ProfilerError, match="--replicas"):
            parse_replicas(bad)


def test_cli_fleet_table_and_json(tmp_path: Path, capsys):
    steps = [make_step(f"r{i % 2}", step_id=f"s{i}", tokens=list(range(40)) + [i] * 10, start=float(i))
             for i in range(10)]
    path = save(make_trace(steps), tmp_path / "t.jsonl")
    # WHEN the fleet is simulated as a table THEN every routing and count is a row, with the verdict
    assert run_cli("simulate", path, "--cache", "engine", "--replicas", "1-2", "--capacity", "1000",
                   "--target-hit-rate", "0.5") == 0
    out = capsys.readouterr().out
    for routing in ROUTINGS:
        assert routing in out
    assert "for a 50.0% hit rate" in out
    # AND as JSON with its schema
    assert run_cli("simulate", path, "--cache", "engine", "--replicas", "2", "--routing", "prefix",
                   "-f", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "ctxprof.fleet/1" and len(doc["points"]) == 1
    assert len(doc["points"][0]["per_replica"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--cache", "openai", "--replicas", "2"], "use --cache engine"),
    (["--cache", "engine", "--routing", "prefix"], "add --replicas"),
    (["--cache", "engine", "--replicas", "2", "--routing", "random"], "unknown --routing"),
    (["--cache", "engine", "--replicas", "2", "--capacity", "10", "--capacity", "20"], "one --capacity"),
    (["--cache", "engine", "--engine", "ray"], "add --replicas"),
])
def test_cli_fleet_bad_usage_is_one_line_exit_2(tmp_path: Path, capsys, args, message):
    path = save(make_trace([make_step(tokens=[1, 2, 3])]), tmp_path / "t.jsonl")
    assert run_cli("simulate", path, *args) == 2
    assert message in capsys.readouterr().err
