"""Every ```python block of README.md and docs/*.md imports only from the public API and runs.

A block that cannot run here (it calls a paid API, or needs a GPU and a model of the reader's own)
starts with `# docs-test: skip (why)`; few may. Blocks run in a scratch directory that holds the
repository's `sample_traces/` and `tests/data/`, which the examples name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import profiler

REPO = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"^# docs-test: skip \((.+)\)")
MAX_SKIPPED = 4


def _blocks() -> list[tuple[str, str]]:
    out = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text[:m.start()].count("\n") + 1
            out.append((f"{path.relative_to(REPO)}:{line}", m.group(1)))
    return out


BLOCKS = _blocks()


def _public_api_problems(code: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            problems += [a.name for a in node.names if a.name.startswith("profiler.")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("profiler"):
            if node.module != "profiler":
                problems.append(f"from {node.module} import ...")
            problems += [a.name for a in node.names if a.name not in profiler.__all__]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "profiler" and node.attr not in profiler.__all__):
            problems.append(f"profiler.{node.attr}")
    return problems


def test_the_blocks_are_found_and_few_are_skipped():
    assert len(BLOCKS) >= 8
    skipped = [where for where, code in BLOCKS if SKIP.match(code)]
    assert len(skipped) <= MAX_SKIPPED, skipped


@pytest.mark.parametrize("where, code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_a_docs_block_uses_only_the_public_api(where, code):
    assert _public_api_problems(code) == [], where


@pytest.mark.parametrize("where, code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_a_docs_block_runs(where, code, tmp_path, monkeypatch):
    skip = SKIP.match(code)
    if skip:
        pytest.skip(skip.group(1))
    # GIVEN a scratch directory holding the files the examples name
    (tmp_path / "sample_traces").symlink_to(REPO / "sample_traces")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(REPO / "tests" / "data")
    monkeypatch.chdir(tmp_path)
    # WHEN the block runs THEN it raises nothing
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})
