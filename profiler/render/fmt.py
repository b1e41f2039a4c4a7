"""Number formatting shared by every renderer: console tables and reports ("-" stands for unknown, never 0)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiler.cache_sim.providers import ProviderSimulation


def tokens(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def one_decimal(v: float | None) -> str:
    """Milliseconds, seconds and the like: one decimal, thousands separated."""
    return "-" if v is None else f"{v:,.1f}"


def times(v: float | None) -> str:
    """A ratio, as "1.23x"."""
    return "-" if v is None else f"{v:.2f}x"


def mib(v: int | None) -> str:
    """Bytes in MiB."""
    return "-" if v is None else f"{v / 2**20:,.0f} MiB"


def joules(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f} J"


def usd(v: float | None) -> str:
    if v is None:
        return "-"
    if v != 0 and abs(v) < 0.01:
        return f"${v:,.6f}"
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def shorten(text: str | None, limit: int) -> str:
    """One line of at most `limit` characters (newlines shown as the symbol ⏎)."""
    if text is None:
        return ""
    from profiler.safe_text import excerpt, visible

    flat = visible(text.replace("\r\n", "\n").replace("\n", "⏎").replace("\t", " "))
    return excerpt(flat, limit)


def scenario_label(sim: "ProviderSimulation") -> str:
    """A simulated provider's row name in every report: a rule applied to another provider's model
    says so."""
    what_if = sim.totals.what_if_steps
    if what_if and what_if >= len(sim.steps):
        return f"{sim.provider} rules on another provider's model (what-if, simulated)"
    if what_if:
        return (f"{sim.provider} caching rules (simulated; what-if for {what_if} step(s) "
                "of another provider)")
    return f"{sim.provider} caching rules (simulated)"
