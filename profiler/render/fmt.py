"""Number formatting shared by every renderer: console tables and reports ("-" stands for unknown, never 0)."""

from __future__ import annotations


def tokens(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


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
