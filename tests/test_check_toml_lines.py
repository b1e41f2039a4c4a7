"""Lines of TOML keys found with tomllib (profiler.check.toml_lines), against the lines a generator
wrote them on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.check.toml_lines import KeyLines, parse_toml
from profiler.errors import ConfigError

names = st.sampled_from(["a", "b", "input_tokens_per_run", "support-agent", "x y", "é"])
values = st.sampled_from(['1', '0.5', '"5%"', "true", '[\n  1,\n  2,\n]', '"""\nmulti\nline\n"""',
                          '{ inner = 1 }'])


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() and name.isascii() else f'"{name}"'


@st.composite
def documents(draw):
    """A TOML text and the line every key path was written on (the oracle)."""
    lines: list[str] = []
    expected: dict[tuple[str, ...], int] = {}
    tables = draw(st.lists(st.lists(names, min_size=1, max_size=3, unique=True), max_size=4,
                           unique_by=tuple))
    for table in [[]] + tables:
        if table:
            if draw(st.booleans()):
                lines.append("# a comment")
            brackets = ("[[", "]]") if draw(st.booleans()) else ("[", "]")  # array of tables, or a table
            lines.append(brackets[0] + ".".join(_key(n) for n in table) + brackets[1])
            for i in range(1, len(table) + 1):
                expected.setdefault(tuple(table[:i]), len(lines))
        keys = draw(st.lists(names, max_size=3, unique=True))
        for key in keys:
            path = tuple(table) + (key,)
            if path in expected:
                continue  # the same key under a table written twice
            dotted = draw(st.sampled_from([(), ("sub",)]))  # `key.sub = 1`: a dotted key
            written = ".".join(_key(k) for k in (key, *dotted))
            lines.append("")
            lines.extend(f"{written} = {draw(values)}".split("\n"))
            line = next(n for n in range(len(lines), 0, -1) if lines[n - 1].startswith(f"{written} = "))
            expected[path] = line
            if dotted:
                expected[path + dotted] = line
    return "\n".join(lines) + "\n", expected


@settings(max_examples=80, deadline=None)
@given(documents())
def test_every_key_is_found_on_the_line_it_was_written(doc):
    text, expected = doc
    try:
        parse_toml(text, "t.toml")
    except ConfigError:
        return  # a table written twice, or a key that is also a table: tomllib refuses it
    lines = KeyLines(text)
    for path, line in expected.items():
        assert lines.line(*path) == line, (path, text)


def test_an_unknown_key_falls_back_to_its_table_and_the_prefix_applies():
    text = "[tool.ctxprof.budgets]\ninput_tokens_per_run = 5\n"
    lines = KeyLines(text, prefix=("tool", "ctxprof"))
    assert lines.line("budgets", "input_tokens_per_run") == 2
    assert lines.line("budgets", "not_there") == 1
    assert lines.line("regression") == 1  # the enclosing [tool.ctxprof...] header
    assert KeyLines(text).line("nowhere") is None


def test_a_syntax_error_names_file_and_line():
    with pytest.raises(ConfigError, match=r"^t.toml:2: invalid TOML"):
        parse_toml("a = 1\nb = = 2\n", "t.toml")
