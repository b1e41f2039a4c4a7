"""Price lookups: real genai-prices data, user price files, and their errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from profiler.errors import PricingError
from profiler.pricing import ModelPrice, PriceTable


@pytest.fixture(scope="module")
def default() -> PriceTable:
    return PriceTable.default()


def test_gpt_4o_from_genai_prices(default):
    p = default.lookup("gpt-4o")
    assert isinstance(p, ModelPrice)
    assert (p.input_usd_per_mtok, p.cache_read_usd_per_mtok, p.output_usd_per_mtok) == (2.5, 1.25, 10.0)
    assert p.cache_write_usd_per_mtok is None  # OpenAI charges no cache writes
    assert p.provider == "openai" and p.source.startswith("genai-prices ")


def test_claude_sonnet_4_from_genai_prices(default):
    p = default.lookup("claude-sonnet-4")
    assert (p.input_usd_per_mtok, p.cache_read_usd_per_mtok, p.cache_write_usd_per_mtok,
            p.cache_write_1h_usd_per_mtok, p.output_usd_per_mtok) == (3.0, 0.3, 3.75, 6.0, 15.0)
    # the write premium and read discount the Anthropic docs state
    assert p.cache_write_usd_per_mtok == pytest.approx(1.25 * p.input_usd_per_mtok)
    assert p.cache_read_usd_per_mtok == pytest.approx(0.1 * p.input_usd_per_mtok)


@pytest.mark.parametrize("model,provider", [
    ("litellm_proxy/claude-sonnet-4-20250514", None),
    ("anthropic/claude-sonnet-4-20250514", "litellm"),
    ("claude-sonnet-4-20250514", "self-hosted-gateway"),
])
def test_routing_prefixes_and_unknown_providers_still_find_the_model(default, model, provider):
    assert default.lookup(model, provider).model == "claude-sonnet-4-0"


def test_unknown_model_has_no_price(default):
    assert default.lookup("my-finetuned-llama") is None
    assert default.lookup(None) is None
    assert default.lookup("") is None


def test_tiered_prices_follow_the_prompt_size(default):
    # Gemini 2.5 Pro doubles its input price above 200k prompt tokens (for every token of the request)
    small = default.lookup("gemini-2.5-pro", input_tokens=100_000)
    large = default.lookup("gemini-2.5-pro", input_tokens=300_000)
    base = default.lookup("gemini-2.5-pro")
    assert small.tiered and large.tiered
    assert base.input_usd_per_mtok == small.input_usd_per_mtok
    assert large.input_usd_per_mtok > small.input_usd_per_mtok
    assert default.lookup("gpt-4o").tiered is False


def test_time_of_day_prices_use_the_request_time(default):
    # DeepSeek's off-peak window (16:30-00:30 UTC) in genai-prices' data
    peak = datetime(2025, 9, 4, 10, 0, tzinfo=timezone.utc).timestamp()
    off_peak = datetime(2025, 9, 4, 19, 44, tzinfo=timezone.utc).timestamp()
    a = default.lookup("deepseek-chat", at_unix_s=peak)
    b = default.lookup("deepseek-chat", at_unix_s=off_peak)
    assert b.input_usd_per_mtok < a.input_usd_per_mtok
    # without a time: the noon (list) price, deterministically
    assert default.lookup("deepseek-chat").input_usd_per_mtok == a.input_usd_per_mtok


TOML = """
[models."gpt-4o"]
input_usd_per_mtok = 1.0
output_usd_per_mtok = 4.0

[models."llama-3.1-70b-selfhosted"]
provider = "self-hosted"
aliases = ["meta-llama/Llama-3.1-70B-Instruct"]
input_usd_per_mtok = 0.6
cache_read_usd_per_mtok = 0.06
output_usd_per_mtok = 0.8
"""


def test_price_file_overrides_and_adds_models(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(TOML)
    table = PriceTable.from_file(path)
    # THEN the file's gpt-4o wins over genai-prices
    gpt = table.lookup("gpt-4o")
    assert (gpt.input_usd_per_mtok, gpt.cache_read_usd_per_mtok, gpt.output_usd_per_mtok) == (1.0, None, 4.0)
    assert gpt.source == str(path)
    # AND new models, their aliases and routed names are found
    for name in ("llama-3.1-70b-selfhosted", "META-LLAMA/Llama-3.1-70B-Instruct",
                 "hosted_vllm/llama-3.1-70b-selfhosted"):
        assert table.lookup(name).input_usd_per_mtok == 0.6
    # AND everything else still comes from genai-prices, unless the fallback is turned off
    assert table.lookup("claude-sonnet-4").input_usd_per_mtok == 3.0
    assert PriceTable.from_file(path, fallback_to_default=False).lookup("claude-sonnet-4") is None


def test_price_file_as_json(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"m": {"input_usd_per_mtok": 2, "output_usd_per_mtok": 3}}}))
    assert PriceTable.from_file(path).lookup("m").output_usd_per_mtok == 3.0


@pytest.mark.parametrize("name,content,message", [
    ("p.toml", '[models."m"]\ninput_usd_per_mtok = -1\n', "field 'models.m.input_usd_per_mtok'"),
    ("p.toml", '[models."m"]\ninput_usd_per_mtok = "cheap"\n', "models.m.input_usd_per_mtok"),
    ("p.toml", '[models."m"]\ninput_price = 1\n', "'models.m.input_price' is not a price file key"),
    ("p.toml", '[models."m"]\nprovider = "x"\n', "has no price"),
    ("p.toml", "[other]\nx = 1\n", "needs a 'models' table"),
    ("p.toml", "models = [\n", "not valid TOML"),
    ("p.json", '{"models": ', "not valid JSON"),
    ("p.yaml", "models: {}", "must end in .toml or .json"),
])
def test_bad_price_files_name_the_file_and_field(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PricingError) as err:
        PriceTable.from_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_price_file(tmp_path):
    with pytest.raises(PricingError, match="cannot read price file"):
        PriceTable.from_file(tmp_path / "nope.toml")
