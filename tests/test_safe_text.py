"""profiler.safe_text: trace text shown as data."""

from __future__ import annotations

import io
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from profiler.safe_text import console, excerpt, html_text, is_boundary, markdown_cell, trim_partial, visible


def test_visible_escapes_controls_bidi_and_surrogates_and_keeps_the_rest():
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("x\u202ey\u2066") == "x\\u202ey\\u2066"
    assert visible("s\ud800") == "s\\ud800"
    assert visible("\x85\x9b\x7f") == "\\x85\\x9b\\x7f"
    assert visible("héllo 🧑‍💻 [bold]") == "héllo 🧑‍💻 [bold]"
    assert visible("a\nb", keep="\n") == "a\nb"


@given(st.text())
def test_visible_output_is_printable_text_and_stable(text):
    shown = visible(text)
    assert not any(unicodedata.category(ch) == "Cc" for ch in shown)
    assert "\u202e" not in shown
    shown.encode("utf-8")  # no lone surrogate left
    assert visible(shown) == shown


def test_markdown_cell_and_html_text_escape_their_syntax():
    assert markdown_cell("a|b `c` <img> *d* [e](f)") == "a\\|b \\`c\\` &lt;img> \\*d\\* \\[e\\](f)"
    assert html_text("<script>\x1b") == "&lt;script&gt;\\x1b"


def test_console_never_interprets_markup_and_shows_escapes():
    buf = io.StringIO()
    out = console(file=buf, width=80, color_system=None)
    out.print("agent[v2] [/x] [bold]b[/bold] \x1b[2J")
    assert buf.getvalue() == "agent[v2] [/x] [bold]b[/bold] \\x1b[2J\n"


EMOJI = ["🧑‍💻", "👍🏽", "🇫🇷", "é", "❤️", "a"]


@given(st.lists(st.sampled_from(EMOJI), min_size=1, max_size=30), st.integers(2, 40), st.booleans())
def test_excerpt_never_splits_a_grapheme(parts, limit, from_end):
    text = "".join(parts)
    cut = excerpt(text, limit, from_end=from_end)
    assert len(cut) <= max(limit, 1) or len(text) <= limit
    body = cut.strip("…")
    # THEN the kept part is a whole run of the original graphemes
    starts = {0}
    pos = 0
    for p in parts:
        pos += len(p)
        starts.add(pos)
    if from_end:
        assert len(text) - len(body) in starts
    else:
        assert len(body) in starts
    assert is_boundary(text, 0)


def test_trim_partial_drops_halves_of_a_cut_character():
    from profiler.encodings import get_encoding

    enc = get_encoding("o200k_base")
    ids = enc.encode("ok 👍🏽 done")
    halves = [enc.decode(ids[i:]) for i in range(len(ids))] + [enc.decode(ids[:i]) for i in range(len(ids))]
    assert any("\ufffd" in h for h in halves)  # the slices do cut the emoji
    assert all("\ufffd" not in trim_partial(h) for h in halves)
