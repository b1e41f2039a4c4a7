"""Model prices in USD per million tokens, from `genai-prices` (bundled data, works offline) or a
user price file.

Contract:
- `PriceTable.default()`: every model `genai-prices` knows, from the data shipped with the package
  (no network).
- `PriceTable.from_file(path)`: the models of a user price file (TOML or JSON, format below) looked up
  first, then `genai-prices` for everything else (`fallback_to_default=False` turns that off).
- `table.lookup(model, provider=None, *, input_tokens=None, at_unix_s=None)` -> `ModelPrice` or None.
  None means "no price known": callers leave the cost empty and warn; ctxprof never makes a price up.

Price resolution for `genai-prices` models:
- Model names are matched as given, then without routing prefixes (`litellm_proxy/claude-sonnet-4`,
  `openrouter/anthropic/claude-sonnet-4` -> `claude-sonnet-4`); the provider, when known to
  `genai-prices`, narrows the search, and is ignored when it is not (e.g. "litellm", "self-hosted").
- Prices that changed over time (`genai-prices` keeps dated price lists) and time-of-day prices (DeepSeek
  off-peak) are taken at the request time `at_unix_s` (a step's start time). Without a time, today's
  prices at 12:00 UTC are used, a deterministic choice outside every off-peak window.
- Tiered prices (Gemini 2.5 Pro above 200k prompt tokens, for example) follow genai-prices' threshold
  rule: when the prompt is longer than a tier's start, that tier's price applies to every token of the
  request. Pass `input_tokens` to get the tier of that prompt size; without it, the base tier. The
  returned `ModelPrice.tiered` says whether the model has tiers at all.

Price file (units in the key names; every price is optional, a missing one stays unknown):

    # prices.toml
    [models."llama-3.1-70b-selfhosted"]
    provider = "self-hosted"                 # optional
    aliases = ["meta-llama/Llama-3.1-70B"]   # optional: other names of the same model
    input_usd_per_mtok = 0.60
    cache_read_usd_per_mtok = 0.06
    cache_write_usd_per_mtok = 0.75
    output_usd_per_mtok = 0.80

or the same as JSON: `{"models": {"llama-3.1-70b-selfhosted": {"input_usd_per_mtok": 0.6, ...}}}`.
User models are matched by exact name (case-insensitive), or by the name after the last "/".
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from profiler.errors import PricingError

PRICE_FIELDS = ("input_usd_per_mtok", "cache_read_usd_per_mtok", "cache_write_usd_per_mtok",
                "cache_write_1h_usd_per_mtok", "output_usd_per_mtok")
_FILE_KEYS = set(PRICE_FIELDS) | {"provider", "aliases"}

# genai-prices key -> ModelPrice field
_GENAI_KEYS = {
    "input_mtok": "input_usd_per_mtok",
    "cache_read_mtok": "cache_read_usd_per_mtok",
    "cache_write_mtok": "cache_write_usd_per_mtok",
    "cache_write_1h_mtok": "cache_write_1h_usd_per_mtok",
    "output_mtok": "output_usd_per_mtok",
}


@dataclass(frozen=True)
class ModelPrice:
    """Prices of one model in USD per million tokens (None: not known for this model).

    `cache_write_usd_per_mtok` is the price of a cache write with the default (5-minute) lifetime;
    `cache_write_1h_usd_per_mtok` the one-hour write where the provider has one (Anthropic).
    """

    model: str
    provider: str | None
    input_usd_per_mtok: float | None
    cache_read_usd_per_mtok: float | None
    cache_write_usd_per_mtok: float | None
    output_usd_per_mtok: float | None
    source: str  # "genai-prices <version>" or the price file path
    cache_write_1h_usd_per_mtok: float | None = None
    tiered: bool = False  # prices depend on the prompt size (see the module docstring)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class PriceTable:
    """Look up `ModelPrice`s: user entries first, then (optionally) `genai-prices`."""

    def __init__(self, entries: Mapping[str, ModelPrice] | None = None, *, use_genai_prices: bool = True,
                 source: str | None = None) -> None:
        self._entries: dict[str, ModelPrice] = {k.lower(): v for k, v in (entries or {}).items()}
        self._use_genai = use_genai_prices
        self.source = source or ("genai-prices" if use_genai_prices else "price file")
        self._resolved: dict[tuple[str, str | None], Any] = {}

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def default(cls) -> "PriceTable":
        """Every model `genai-prices` knows (its bundled data; no network)."""
        _genai_version()  # fail early, with a clear message, when the package is missing
        return cls(use_genai_prices=True, source=f"genai-prices {_genai_version()}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, fallback_to_default: bool = True) -> "PriceTable":
        """User prices from a TOML or JSON file (format in the module docstring), looked up before
        `genai-prices` (which `fallback_to_default=False` leaves out)."""
        path = Path(path)
        data = _read_price_file(path)
        models = data.get("models")
        if not isinstance(models, Mapping) or not models:
            raise PricingError(f"{path}: needs a 'models' table with at least one model "
                               "(e.g. [models.\"my-model\"] with input_usd_per_mtok = 0.5)")
        unknown_top = set(data) - {"models"}
        if unknown_top:
            raise PricingError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_top))}; "
                               "only 'models' is read")
        entries: dict[str, ModelPrice] = {}
        for name, spec in models.items():
            where = f"{path}: field 'models.{name}"
            if not isinstance(spec, Mapping):
                raise PricingError(f"{where}' must be a table of prices")
            unknown = set(spec) - _FILE_KEYS
            if unknown:
                raise PricingError(f"{where}.{sorted(unknown)[0]}' is not a price file key; use "
                                   + ", ".join(PRICE_FIELDS) + ", provider, aliases")
            prices = {}
            for key in PRICE_FIELDS:
                value = spec.get(key)
                if value is None:
                    prices[key] = None
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                        value) or value < 0:
                    raise PricingError(f"{where}.{key}' must be a non-negative number of USD per "
                                       f"million tokens, got {value!r}")
                prices[key] = float(value)
            if all(v is None for v in prices.values()):
                raise PricingError(f"{where}' has no price; set at least input_usd_per_mtok")
            provider = spec.get("provider")
            if provider is not None and not isinstance(provider, str):
                raise PricingError(f"{where}.provider' must be a string")
            aliases = spec.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise PricingError(f"{where}.aliases' must be a list of model names")
            price = ModelPrice(model=str(name), provider=provider, source=str(path), **prices)
            for key in (str(name), *aliases):
                entries[key.lower()] = price
        table = cls(entries, use_genai_prices=fallback_to_default, source=str(path))
        if fallback_to_default:
            table.source = f"{path} + genai-prices {_genai_version()}"
        return table

    @classmethod
    def empty(cls) -> "PriceTable":
        """A table that prices nothing (costs stay empty, without warnings)."""
        return cls({}, use_genai_prices=False, source="none")

    @property
    def is_empty(self) -> bool:
        return not self._entries and not self._use_genai

    # -- lookup ---------------------------------------------------------------------------------
    def lookup(self, model: str | None, provider: str | None = None, *, input_tokens: int | None = None,
               at_unix_s: float | None = None) -> ModelPrice | None:
        """The prices of `model` (for a prompt of `input_tokens` at time `at_unix_s`), or None."""
        if not model:
            return None
        user = self._user_entry(model)
        if user is not None:
            return user
        if not self._use_genai:
            return None
        found = self._genai_model(model, provider)
        if found is None:
            return None
        provider_id, info = found
        return _genai_price(model, provider_id, info, input_tokens, at_unix_s)

    def _user_entry(self, model: str) -> ModelPrice | None:
        key = model.lower()
        if key in self._entries:
            return self._entries[key]
        return self._entries.get(key.rsplit("/", 1)[-1])

    def _genai_model(self, model: str, provider: str | None) -> tuple[str, Any] | None:
        key = (model.lower(), provider.lower() if provider else None)
        if key in self._resolved:
            return self._resolved[key]
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        found = None
        for ref, prov in _candidates(model, provider):
            try:
                p, info = snapshot.find_provider_model(ref, None, prov, None)
            except LookupError:
                continue
            found = (p.id, info)
            break
        self._resolved[key] = found
        return found


def _candidates(model: str, provider: str | None) -> list[tuple[str, str | None]]:
    """(model ref, provider id) pairs to try, most specific first."""
    refs = [model]
    parts = model.split("/")
    for i in range(1, len(parts)):
        refs.append("/".join(parts[i:]))
    out: list[tuple[str, str | None]] = []
    for ref in refs:
        if provider:
            out.append((ref, provider))
        out.append((ref, None))
    # A routing prefix that names a provider ("anthropic/claude-...") is a provider hint too.
    if len(parts) >= 2:
        out.insert(1, (parts[-1], parts[-2]))
    seen, unique = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def _genai_version() -> str:
    try:
        import genai_prices
    except ModuleNotFoundError:
        raise PricingError("the 'genai-prices' package is not installed; install it with "
                           "`pip install genai-prices`, or pass --pricing none") from None
    return str(genai_prices.__version__)


def _genai_price(model: str, provider_id: str, info: Any, input_tokens: int | None,
                 at_unix_s: float | None) -> ModelPrice:
    from genai_prices.types import TieredPrices

    if at_unix_s is not None:
        when = datetime.fromtimestamp(at_unix_s, tz=timezone.utc)
    else:
        when = datetime.now(tz=timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    prices = info.get_prices(when)
    values: dict[str, float | None] = {}
    tiered = False
    for key, name in _GENAI_KEYS.items():
        value = getattr(prices, key, None)
        if isinstance(value, TieredPrices):
            tiered = True
            applicable = value.base
            # genai-prices' threshold rule: crossing a tier prices every token at that tier.
            for tier in reversed(value.tiers):
                if input_tokens is not None and input_tokens > tier.start:
                    applicable = tier.price
                    break
            value = applicable
        values[name] = None if value is None else float(value)
    return ModelPrice(model=info.id, provider=provider_id, source=f"genai-prices {_genai_version()}",
                      tiered=tiered, **values)


def _read_price_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PricingError(f"cannot read price file {path}: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            line = getattr(e, "lineno", None)
            raise PricingError(f"{path}{f':{line}' if line else ''}: not valid JSON ({e}); "
                               "see docs/costs-and-caches.md for the price file format") from None
    elif suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError:
                raise PricingError(f"{path}: reading TOML needs Python 3.11+ or the 'tomli' package; "
                                   "or write the price file as JSON") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise PricingError(f"{path}: not valid TOML ({e}); see docs/costs-and-caches.md for "
                               "the price file format") from None
    else:
        raise PricingError(f"{path}: a price file must end in .toml or .json")
    if not isinstance(data, dict):
        raise PricingError(f"{path}: must hold an object with a 'models' table")
    return data
