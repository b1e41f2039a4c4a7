"""The shared options (profiler.options) and the one way every command declares and reads them."""

from __future__ import annotations

import json

import click
import pytest
import typer

from ci_builders import LoopShape, write_loop_trace
from profiler.cli.app import _register, app, main
from profiler.options import Pricing, ProfileOptions

PRICES = '[models."custom-model"]\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n'


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


@pytest.fixture
def price_file(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(PRICES, encoding="utf-8")
    return path


def test_pricing_default_and_none_with_and_without_a_price_file(price_file):
    # GIVEN the four combinations of --pricing and --price-file
    default = ProfileOptions().price_table()
    file_first = ProfileOptions(price_file=price_file).price_table()
    file_only = ProfileOptions(pricing="none", price_file=price_file).price_table()
    nothing = ProfileOptions(pricing=Pricing.none).price_table()
    # THEN the file's models are priced whenever it is given, genai-prices only with 'default'
    assert nothing is None
    assert default.lookup("custom-model") is None and default.lookup("gpt-4o") is not None
    assert file_first.lookup("custom-model").input_usd_per_mtok == 1.0
    assert file_first.lookup("gpt-4o") is not None
    assert file_only.lookup("custom-model") is not None and file_only.lookup("gpt-4o") is None


def test_options_validate_the_scope():
    with pytest.raises(ValueError):
        ProfileOptions(scope="everything")
    assert ProfileOptions(scope="global").scope == "global"


def _params(name: str) -> dict[str, click.Parameter]:
    _register()
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


@pytest.mark.parametrize("command", ["analyze", "simulate", "check", "baseline", "diff", "report"])
def test_every_command_declares_pricing_the_same_way(command):
    params = _params(command)
    # THEN --pricing and --price-file have the same flags, default and help everywhere
    analyze = _params("analyze")
    for name in ("pricing", "price_file"):
        assert params[name].opts == analyze[name].opts
        assert params[name].default == analyze[name].default
        assert params[name].help == analyze[name].help
    if command in ("check", "baseline", "diff"):
        assert params["prices"].hidden  # the old name, still read


@pytest.mark.parametrize("command", ["analyze", "baseline", "diff", "report"])
def test_the_scope_default_is_the_same(command):
    assert _params(command)["scope"].default == _params("analyze")["scope"].default


def test_the_old_prices_flag_still_works_and_says_what_to_use(tmp_path, price_file, capsys):
    # GIVEN a trace of a model only the price file knows
    trace = write_loop_trace(tmp_path / "t.jsonl", shape=LoopShape(steps=2), model="custom-model")
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    # WHEN a baseline is written with --prices and with --price-file
    assert run_cli("baseline", trace, "--prices", price_file, "-o", old) == 0
    assert "--prices is deprecated; use --price-file" in capsys.readouterr().err
    assert run_cli("baseline", trace, "--price-file", price_file, "-o", new) == 0
    # THEN both price the runs the same
    cost = [json.loads(p.read_text())["workflows"]["support-agent"]["metrics"]["cost_per_run_usd"]["max"]
            for p in (old, new)]
    assert cost[0] is not None and cost[0] == cost[1]


def test_prices_and_price_file_together_is_bad_usage(tmp_path, price_file, capsys):
    trace = write_loop_trace(tmp_path / "t.jsonl")
    assert run_cli("diff", trace, trace, "--prices", price_file, "--price-file", price_file) == 2
    assert "keep only --price-file" in capsys.readouterr().err


def test_pricing_none_leaves_baseline_costs_unknown(tmp_path):
    trace = write_loop_trace(tmp_path / "t.jsonl")
    out = tmp_path / "b.json"
    assert run_cli("baseline", trace, "--pricing", "none", "-o", out) == 0
    metrics = json.loads(out.read_text())["workflows"]["support-agent"]["metrics"]
    assert metrics["cost_per_run_usd"]["max"] is None
    assert metrics["input_tokens_per_run"]["max"] > 0
