"""Hostile and broken input through the CLI: one clear line and exit 2, never a traceback, never a
partial output file; trace text shown as data in every output."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.cli.app import main
from tests.ci_builders import LoopShape, write_loop_trace

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_traces" / "planner_executor_verifier.jsonl"
BEFORE = LoopShape(steps=3)
HOSTILE_NAME = "agent[v2] [/x] \x1b[31mred\u202eevil\x07"
SHOWN_NAME = "agent[v2] [/x] \\x1b[31mred\\u202eevil\\x07"


def run_cli(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctxprof: error:"), err
    assert "Traceback" not in err
    return lines[0]


def sample_records() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def renamed(tmp_path: Path, name: str = HOSTILE_NAME) -> Path:
    """The sample trace with every workflow, step name and model replaced by `name`."""
    records = sample_records()
    for r in records:
        if r.get("type") == "run":
            r["workflow"] = name
        if r.get("type") == "step":
            r["name"] = name
            r["model"] = name
    return write_records(tmp_path / "hostile.jsonl", records)


# -- text from a trace is data ---------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("analyze",), ("simulate", "--cache", "anthropic"), ("diagnose",), ("report",),
    ("report", "--format", "json"), ("export", "--format", "otlp"),
])
def test_markup_and_control_characters_in_names_are_shown_escaped(tmp_path, capsys, args):
    # GIVEN a trace whose names hold rich markup, an ANSI escape, a bidi override and a bell
    trace = renamed(tmp_path)
    # WHEN a command renders it THEN it succeeds and no raw control character reaches the output
    assert run_cli(args[0], trace, *args[1:]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    if "--format" not in args:
        # JSON outputs keep the data exact (json escapes C0 controls as \u001b); text outputs show
        # bidi overrides escaped too
        assert "\u202e" not in out
    if args[0] in ("analyze", "report") and "--format" not in args:
        # AND the name is shown literally (brackets kept, escapes visible)
        assert SHOWN_NAME in out.replace("\\\\", "\\") or "agent\\[v2\\]" in out


def test_check_and_diff_with_markup_in_workflow_names(tmp_path, capsys):
    # GIVEN workflows named like a URL path and a regex (a `[/...]` closing tag to rich)
    a = write_loop_trace(tmp_path / "a.jsonl", workflow="api[/v1/chat]", shape=BEFORE)
    b = write_loop_trace(tmp_path / "b.jsonl", workflow="api[/v1/chat]", shape=BEFORE)
    budget = tmp_path / "b.toml"
    budget.write_text("[budgets]\ninput_tokens_per_run = 1\n", encoding="utf-8")
    # WHEN checked THEN the budget verdict is exit 1 (not a MarkupError's exit 1) and names it literally
    assert run_cli("check", a, "--budget", budget) == 1
    captured = capsys.readouterr()
    assert "api[/v1/chat]" in captured.out and "Traceback" not in captured.err
    assert run_cli("diff", a, b) == 0
    assert "api[/v1/chat]" in capsys.readouterr().out


def test_markdown_and_html_reports_escape_trace_text(tmp_path):
    trace = renamed(tmp_path, "<script>alert(1)</script> | `x` \x1b[2J")
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    assert run_cli("report", trace, "-o", md) == 0
    assert run_cli("report", trace, "-o", html) == 0
    for text in (md.read_text(encoding="utf-8"), html.read_text(encoding="utf-8")):
        assert "<script>alert" not in text and "\x1b" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.read_text(encoding="utf-8")
    # AND chart labels (figure JSON) carry the escape, not a JSON-escaped ESC the browser would draw
    assert "\\u001b" not in html.read_text(encoding="utf-8").split('id="ctxprof-figures"')[1]
    assert html.read_text(encoding="utf-8").rstrip().endswith("</html>")


def test_check_markdown_and_junit_escape_trace_text(tmp_path):
    a = write_loop_trace(tmp_path / "a.jsonl", workflow="w|<b>\x1b[1m", shape=BEFORE)
    budget = tmp_path / "b.toml"
    budget.write_text("[budgets]\ninput_tokens_per_run = 1\n", encoding="utf-8")
    md, junit = tmp_path / "c.md", tmp_path / "c.xml"
    assert run_cli("check", a, "--budget", budget, "--markdown", md, "--junit", junit) == 1
    text = md.read_text(encoding="utf-8")
    assert "w\\|&lt;b>" in text and "x1b" in text and "\x1b" not in text
    import xml.etree.ElementTree as ET

    ET.parse(junit)  # XML 1.0 cannot hold ESC: it must be escaped to parse at all


# -- unusable input: one line, exit 2 ----------------------------------------------------------------
def gz_bytes() -> bytes:
    return gzip.compress(SAMPLE.read_bytes())


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b[: len(b) // 2], "corrupt or truncated gzip"),
    (lambda b: b[:10] + bytes(x ^ 0xFF for x in b[10:40]) + b[40:], "corrupt or truncated gzip"),
])
@pytest.mark.parametrize("command", [("analyze",), ("report",), ("import", "openai-log")])
def test_corrupt_or_truncated_gzip_is_one_line(tmp_path, capsys, damage, expected, command):
    bad = tmp_path / "t.jsonl.gz"
    bad.write_bytes(damage(gz_bytes()))
    out = tmp_path / "out.jsonl"
    args = [*command, bad] + (["-o", out] if command[0] == "import" else [])
    assert run_cli(*args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and ("gzip" in line or "not valid JSON" in line)
    assert not out.exists()


@pytest.mark.parametrize("command", [["analyze"], ["report"], ["diagnose"], ["simulate", "--cache", "openai"]])
def test_lone_surrogate_is_one_line_and_leaves_no_file(tmp_path, capsys, command):
    # GIVEN a step name holding a lone UTF-16 surrogate escape
    text = SAMPLE.read_text(encoding="utf-8")
    bad = tmp_path / "s.jsonl"
    lines = text.splitlines()
    record = json.loads(lines[2])
    record["name"] = "PLACEHOLDER"
    lines[2] = json.dumps(record).replace("PLACEHOLDER", "pl\\ud800an")
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / ("r.html" if command[0] == "report" else "r.txt")
    # WHEN read THEN one line naming the file, line and field; no output file at all
    assert run_cli(command[0], bad, *command[1:], "-o", out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{bad}:3" in line and "surrogate" in line and "field 'name'" in line
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize("command", [("analyze",), ("import", "openai-log")])
def test_deep_nesting_is_one_line(tmp_path, capsys, command):
    records = sample_records()
    deep = json.loads("[" * 90 + "]" * 90)  # within the limit: accepted
    records[2]["attributes"] = {"ok": deep}
    ok = write_records(tmp_path / "ok.jsonl", records)
    assert run_cli("analyze", ok) == 0
    capsys.readouterr()
    bad = tmp_path / "deep.jsonl"
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-1] + ',"attributes":' + '{"a":' * 2000 + "1" + "}" * 2000 + "}"
    if command[0] == "import":
        lines = [lines[2]]  # an openai-log file: the deep record is its first line
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [*command, bad] + (["-o", tmp_path / "o.jsonl"] if command[0] == "import" else [])
    assert run_cli(*args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "nests deeper than 100" in line


def test_oversized_line_is_refused_with_the_option_to_raise_it(tmp_path, capsys):
    # GIVEN a trace with a 200 KiB line
    records = sample_records()
    records[2]["attributes"] = {"blob": "x" * 200_000}
    big = write_records(tmp_path / "big.jsonl", records)
    # WHEN the limit is 0.1 MiB THEN one line naming the line and the option
    assert run_cli("--max-line-mb", "0.1", "analyze", big) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{big}:3" in line and "--max-line-mb" in line
    # AND raising it reads the file
    assert run_cli("--max-line-mb", "1", "analyze", big) == 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak from /proc (Linux)")
def test_a_200_mb_line_fails_fast_without_reading_it_whole(tmp_path):
    # GIVEN a 200 MB single line (written sparse-cheap: mostly one repeated byte)
    big = tmp_path / "huge.jsonl"
    with open(big, "wb") as f:
        f.write(b'{"format":"ctxprof-trace","schema_version":1,"pad":"')
        chunk = b"a" * (1 << 20)
        for _ in range(200):
            f.write(chunk)
        f.write(b'"}\n')
    # WHEN analysed in a fresh process THEN exit 2 and the peak memory stays near the 64 MiB limit
    # The peak is VmHWM of this process's own memory map: ru_maxrss would also count the pytest
    # process it was spawned from (Linux carries the parent's high-water mark across exec).
    code = ("import sys\nfrom profiler.cli.app import main\n"
            "def peak_mb():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM:'):\n"
            "            return int(line.split()[1]) // 1024\n"
            "try:\n    main(['analyze', sys.argv[1]])\nexcept SystemExit as e:\n"
            "    print(e.code, peak_mb())\n")
    env = {k: v for k, v in os.environ.items() if k != "CTXPROF_MAX_LINE_MB"}
    out = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True,
                         cwd=REPO, timeout=120, env=env)
    status, peak_mb = out.stdout.split()
    assert status == "2" and "longer than 64 MiB" in out.stderr
    assert int(peak_mb) < 1000, f"peak RSS {peak_mb} MB"


def test_truncated_line_says_truncated_and_never_at_at(tmp_path, capsys):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "cut.jsonl"
    bad.write_text("\n".join([lines[0], lines[1], lines[2][:200], lines[3]]) + "\n", encoding="utf-8")
    assert run_cli("analyze", bad) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{bad}:3" in line and "truncated" in line
    assert "at at" not in line and "Invalid control character" not in line


# -- importers: empty, wrong kind, torn ------------------------------------------------------------
@pytest.mark.parametrize("fmt, content, expected", [
    ("mooncake", bytes(range(256)) * 8, "not UTF-8"),
    ("mooncake", b"", "is empty"),
    ("otel", b"", "is empty"),
    ("otel", b"   \n", "is empty"),
    ("openai-log", b"", "is empty"),
    ("openhands", b"", "is empty"),
    ("swe-agent", b"", "is empty"),
    ("tau-bench", b"", "is empty"),
    ("otel", b"\x1f\x8b\x08garbage", "not UTF-8"),
])
def test_empty_or_wrong_kind_files_for_every_importer(tmp_path, capsys, fmt, content, expected):
    src = tmp_path / "in.json"
    src.write_bytes(content)
    out = tmp_path / "out.jsonl"
    assert run_cli("import", fmt, src, "-o", out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expected in line and str(src) in line
    assert not out.exists()


def test_importer_skips_a_torn_last_line_as_the_trace_reader_does(tmp_path, capsys):
    lines = [json.dumps({"timestamp": i, "input_length": 1024, "output_length": 4,
                         "hash_ids": list(range(i, i + 2))}) for i in range(5)]
    torn = tmp_path / "torn.jsonl"
    torn.write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2], encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert run_cli("import", "mooncake", torn, "-o", out) == 0
    err = capsys.readouterr().err
    assert "4 steps" in err and f"{torn}:5: last line is incomplete (torn write); skipped it" in err
    # AND an openai-log import does the same
    log = tmp_path / "log.jsonl"
    record = {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
              "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}]}}
    log.write_text(json.dumps(record) + "\n" + json.dumps(record)[:30], encoding="utf-8")
    assert run_cli("import", "openai-log", log, "-o", out) == 0
    assert f"{log}:2: last line is incomplete" in capsys.readouterr().err


# -- outputs ---------------------------------------------------------------------------------------
COMMANDS_WITH_OUTPUT = [
    ("analyze", "{t}"), ("simulate", "{t}", "--cache", "openai"), ("diagnose", "{t}"),
    ("report", "{t}", "--format", "md"),
    ("export", "{t}", "--format", "otlp"), ("baseline", "{t}"), ("diff", "{t}", "{t}"),
    ("import", "otel", "{otlp}"),
]


@pytest.mark.parametrize("command", COMMANDS_WITH_OUTPUT, ids=lambda c: c[0])
def test_every_command_overwrites_atomically_and_refuses_bad_targets(tmp_path, capsys, command):
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(SAMPLE.read_bytes())
    otlp = tmp_path / "spans.json"
    assert run_cli("export", trace, "--format", "otlp", "-o", otlp) == 0
    args = [a.format(t=trace, otlp=otlp) for a in command]
    out = tmp_path / ("out.jsonl" if command[0] == "import" else "out.md")
    # GIVEN an existing output WHEN run twice THEN it is replaced both times, no temporary left
    out.write_text("old")
    assert run_cli(*args, "-o", out) == 0
    first = out.read_text(encoding="utf-8")
    assert first != "old"
    assert run_cli(*args, "-o", out) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    capsys.readouterr()
    # AND a folder, a missing folder and a full disk are each one line, exit 2
    targets = [(tmp_path, "is a folder"), (tmp_path / "missing" / out.name, "does not exist")]
    if os.path.exists("/dev/full"):
        targets.append((Path("/dev/full"), "No space left"))
    for target, expected in targets:
        assert run_cli(*args, "-o", target) == 2
        assert expected in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "missing").exists()


# -- missing optional dependencies -----------------------------------------------------------------
BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
"""


def run_blocked(blocked: set[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK.format(blocked=blocked) + code
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


CLI = "from profiler.cli.app import main\nmain(sys.argv[1:])\n"


@pytest.mark.parametrize("blocked, args, extra", [
    ({"torch"}, ["replay", str(SAMPLE), "--model", "tiny", "--device", "cpu"], "ctxprof[replay]"),
    ({"transformers"}, ["replay", str(SAMPLE), "--model", "tiny", "--device", "cpu", "--max-steps", "1"],
     "ctxprof[replay]"),
    ({"plotly"}, ["report", str(SAMPLE), "-o", "{tmp}/r.html"], "ctxprof[report]"),
])
def test_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path, blocked, args, extra):
    out = run_blocked(blocked, CLI, *[a.format(tmp=tmp_path) for a in args])
    if out.returncode == 0:
        pytest.skip(f"{args[0]} does not need {blocked} on this path")
    assert out.returncode == 2, out.stderr
    line = one_error_line(out.stderr)
    assert extra in line


def test_analyze_works_with_every_optional_dependency_missing():
    blocked = {"torch", "transformers", "plotly", "openai", "anthropic", "pynvml", "nbclient"}
    out = run_blocked(blocked, CLI, "analyze", str(SAMPLE))
    assert out.returncode == 0, out.stderr


def test_example_without_openai_is_one_line_naming_the_extra():
    example = REPO / "examples" / "three_step_workflow.py"
    out = run_blocked({"openai"}, "import runpy\nsys.argv = sys.argv[:1]\n"
                                  f"runpy.run_path({str(example)!r}, run_name='__main__')\n")
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "ctxprof[instrument]" in out.stderr


# -- diagnose excerpts keep emoji whole ------------------------------------------------------------
def test_diagnose_excerpts_never_split_an_emoji(tmp_path, capsys):
    from profiler.trace.io import write_trace
    from tests.test_diagnose import DOC, conversation

    path = tmp_path / "e.jsonl"
    write_trace(conversation(lambda i: f"🧑‍💻🎉 Now: 2025-11-24T16:0{i}:00Z 👍🏽\n{DOC}"), path)
    assert run_cli("diagnose", path) == 0
    out = capsys.readouterr().out
    assert "\ufffd" not in out


# -- crashes the fuzz suite found (tests/test_fuzz_cli.py) -----------------------------------------
@pytest.mark.parametrize("options", [{"block_size": [1]}, {"min_repeat": 0}, {"scope": "x"}])
def test_baseline_with_bad_options_is_one_line(tmp_path, capsys, options):
    # Found by the fuzz suite: `"block_size": []` in a baseline was a TypeError traceback
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(SAMPLE.read_bytes())
    baseline = tmp_path / "baseline.json"
    assert run_cli("baseline", trace, "-o", baseline) == 0
    data = json.loads(baseline.read_text(encoding="utf-8"))
    data["options"] = {**data.get("options", {}), **options}
    baseline.write_text(json.dumps(data), encoding="utf-8")
    budget = tmp_path / "b.toml"
    budget.write_text("[regression]\ninput_tokens_per_run = 0.1\n", encoding="utf-8")
    capsys.readouterr()
    assert run_cli("check", trace, "--budget", budget, "--baseline", baseline) == 2
    assert f"field 'options.{next(iter(options))}'" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("fmt, content", [
    # otel: a scope entry that is a string, not an object (AttributeError: 'str' has no 'get')
    ("otel", {"resourceSpans": [{"scopeSpans": ["x"]}]}),
    ("otel", {"resourceSpans": [{"scopeSpans": [{"spans": ["x", 1, None]}]}]}),
    ("otel", {"resourceSpans": ["x"]}),
    ("openai-log", [1, 2]),
    ("openai-log", {"request": "x", "response": []}),
    ("openai-log", {"request": {"model": 5, "messages": "hi"}, "response": {"choices": "x"}}),
    ("tau-bench", {"a": 1}),
    ("openhands", [1]),
    ("swe-agent", {"trajectory": "x", "history": 3}),
])
def test_wrong_shapes_in_importer_sources_are_one_line(tmp_path, capsys, fmt, content):
    src = tmp_path / ("in.jsonl" if fmt == "openai-log" else "in.json")
    src.write_text(json.dumps(content) + "\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert run_cli("import", fmt, src, "-o", out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(src) in line
    assert not out.exists()
