"""Text from a trace, shown as data: the one place that makes untrusted strings safe to display.

Model names, workflow and step names, prompts and file paths come from files anyone can write. Shown
raw, `[/x]` is rich markup (a crash), an ANSI escape or a right-to-left override rewrites the terminal,
`<script>` is HTML and `|` ends a Markdown table cell. Every renderer passes such strings through here:

- `visible(s)`: control characters (C0, C1, DEL), bidirectional overrides and lone UTF-16 surrogates
  become their `\\x1b` / `\\u202e` / `\\ud800` escape; everything else is kept.
- `console(**kwargs)`: a rich console that never interprets markup in strings and applies `visible`
  to every string it renders (styles given as `style=` or `Text` objects still work).
- `markdown_cell(s)` and `html_text(s)`: `visible`, then escaped for that format.
- `excerpt(s, max_chars)` and `trim_partial(s)`: cut text at grapheme boundaries (an emoji with its
  modifiers or joiners is never split), and drop the replacement characters a decoder leaves where a
  token slice cut a UTF-8 sequence.
"""

from __future__ import annotations

import functools
import html
import unicodedata
from typing import Any

# Bidirectional formatting characters: they reorder what follows them on screen ("Trojan source").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _needs_escape(ch: str, keep: str) -> bool:
    if ch in keep:
        return False
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or ch in _BIDI or 0xD800 <= code <= 0xDFFF


def visible(text: Any, *, keep: str = "") -> str:
    """`text` as a string with control, bidi and surrogate characters escaped (those in `keep`
    stay as they are, e.g. "\\n" for multi-line console output)."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable() and s.isascii():
        return s  # the common case, checked in C
    return "".join(_escape_char(ch) if _needs_escape(ch, keep) else ch for ch in s)


def markdown_cell(text: Any) -> str:
    """`text` for a Markdown table cell or line: visible, `<` and `&` escaped (GitHub renders inline HTML),
    newlines as spaces, and the characters that open code, emphasis, links or a new cell
    backslash-escaped (`_` is left alone: GitHub never emphasises inside a word like `tokens_per_run`)."""
    s = visible(text, keep="\n").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;")  # no tag or entity can start; ">" alone is inert
    out = []
    for ch in s:
        if ch in "\\`*[]|":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def html_text(text: Any) -> str:
    """`text` for HTML element content or an attribute value."""
    return html.escape(visible(text, keep="\n\t"), quote=True)


# Characters that attach to the one before them: a cut must not fall just before one of these.
def _extends(ch: str) -> bool:
    code = ord(ch)
    return (unicodedata.combining(ch) != 0
            or code == 0x200D  # zero-width joiner
            or 0xFE00 <= code <= 0xFE0F  # variation selectors
            or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
            or 0xE0020 <= code <= 0xE007F  # tag characters (flag sequences)
            or unicodedata.category(ch) in ("Mn", "Me", "Mc"))


def is_boundary(s: str, i: int) -> bool:
    """Whether a cut between s[i-1] and s[i] keeps every grapheme whole (approximately: UAX #29's
    extend, joiner and regional-indicator rules, which cover emoji and combining marks)."""
    if i <= 0 or i >= len(s):
        return True
    if _extends(s[i]) or s[i - 1] == "\u200d":
        return False
    if _regional(s[i]) and _regional(s[i - 1]):
        # Flags are pairs of regional indicators: cut only after an even count of them.
        count = 0
        j = i - 1
        while j >= 0 and _regional(s[j]):
            count += 1
            j -= 1
        return count % 2 == 0
    return True


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def excerpt(text: str, max_chars: int, *, from_end: bool = False) -> str:
    """At most `max_chars` characters of `text` (its start, or its end with `from_end`), cut at a
    grapheme boundary; "…" marks the cut."""
    if len(text) <= max_chars:
        return text
    if from_end:
        i = len(text) - max_chars + 1
        while i < len(text) and not is_boundary(text, i):
            i += 1
        return "…" + text[i:]
    i = max(0, max_chars - 1)
    while i > 0 and not is_boundary(text, i):
        i -= 1
    return text[:i] + "…"


def trim_partial(text: str) -> str:
    """Drop the U+FFFD characters at either end that a decoder produced from a UTF-8 sequence cut by a
    token slice (the slice began or ended inside a multi-byte character)."""
    return text.strip("\ufffd")


@functools.cache
def _safe_console_class() -> type:
    from rich.console import Console

    class SafeConsole(Console):
        """A rich console for trace data: strings are never markup and their control characters are
        shown escaped (newlines and tabs, which our own messages use, are kept)."""

        def render_str(self, text: str, **kwargs: Any):  # type: ignore[override]
            kwargs["markup"] = False
            kwargs["emoji"] = False
            return super().render_str(visible(text, keep="\n\t"), **kwargs)

        def on_broken_pipe(self) -> None:
            # `ctxprof ... | head`: rich exits 1, which CI would read as a failed check. Exit as a
            # shell reports a process ended by SIGPIPE (128 + 13) instead.
            try:
                super().on_broken_pipe()
            except SystemExit:
                raise SystemExit(141) from None

    return SafeConsole


def console(**kwargs: Any):
    """A `rich.console.Console` (same arguments) that shows every string as data."""
    kwargs.setdefault("highlight", False)
    return _safe_console_class()(**kwargs)
