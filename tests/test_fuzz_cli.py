"""Fuzzing every command with mutated real inputs (hypothesis).

Seeds: a bundled sample trace (cut to its first steps so one command takes tens of milliseconds), the
OTLP JSON that `ctxprof export` makes of it, the baseline `ctxprof baseline` makes of it, an OpenAI
gateway log and a budgets file. Each example
mutates one of them at the byte level (flips, cuts, insertions, duplicated ranges, gzip) or at the JSON
level (a value anywhere replaced by a hostile one: markup, control characters, surrogates, deep
nesting, huge or negative numbers, wrong types; a key dropped), then runs the commands that read it
in-process, through `profiler.cli.app.main` as the `ctxprof` script does.

Property: exit code 0 or 2 (1 also for `check`, a failed budget), never an exception other than
SystemExit (no traceback), and never a partial output: on failure the `-o` file does not exist, and no
temporary file is left beside it.

Budget: `CTXPROF_FUZZ_EXAMPLES` examples per seed (default 50, under a minute in all on a small
machine); set it higher for a longer run, e.g. `CTXPROF_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_cli.py`.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gzip
import io
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.cli.app import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("CTXPROF_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Examples run per seed and exit codes per command, for the record (printed at the end with `-s`).
TRIED: dict[str, int] = {}
EXITS: collections.Counter[tuple[str, int]] = collections.Counter()

HOSTILE_VALUES: list[Any] = [
    "[/x]", "[bold]b[/bold]", "\x1b[2J\x1b[31m", "\u202eevil", "\x00\x07\x9b", "\ud800", "\udfff",
    "🧑‍💻👍🏽🇫🇷", "<script>alert(1)</script>", "| a | b |", "%s %d {0}", "", " ", "a" * 5000,
    None, True, False, 0, -1, 2**63, -2**63, 1e308, -0.0, 3.5, [], {}, [[[[]]]], {"a": {"b": {}}},
    json.loads("[" * 150 + "]" * 150), json.loads('{"a":' * 150 + "1" + "}" * 150),
]


def run(argv: list[str]) -> tuple[int, str]:
    """Run the CLI in-process as the `ctxprof` script does; any non-SystemExit exception propagates
    (and fails the test: it would have been a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            return int(e.code or 0), err.getvalue()
    return 0, err.getvalue()


# -- seeds -----------------------------------------------------------------------------------------
def _trace_seed() -> bytes:
    lines = (REPO / "sample_traces" / "planner_executor_verifier.jsonl").read_text(encoding="utf-8")
    kept, steps = [], 0
    for line in lines.splitlines():
        record = json.loads(line)
        if record.get("type") == "step":
            steps += 1
            if steps > 3:
                continue
        if record.get("type") in ("run", "run_end") and record.get("run_id") != "pev-1":
            continue
        kept.append(line)
    return ("\n".join(kept) + "\n").encode()


def _openai_log_seed() -> bytes:
    system = {"role": "system", "content": "You are a support agent. " * 40}
    records, messages = [], [system]
    for turn in range(3):
        messages = messages + [{"role": "user", "content": f"question {turn}"}]
        records.append({"request": {"model": "gpt-4o", "messages": messages},
                        "response": {"id": f"c{turn}", "object": "chat.completion", "model": "gpt-4o",
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": f"a{turn}"}}],
                                     "usage": {"prompt_tokens": 300 + turn, "completion_tokens": 2}},
                        "start_time": 1764000000 + turn, "metadata": {"session": "s1"}})
        messages = messages + [{"role": "assistant", "content": f"a{turn}"}]
    return "".join(json.dumps(r) + "\n" for r in records).encode()


BUDGET_SEED = b"""[budgets]
input_tokens_per_run = 100000
redundancy_ratio = 0.99

[budgets.workflow."support-triage"]
steps_per_run = 50

[regression]
input_tokens_per_run = 0.10
"""


@functools.cache
def seeds() -> dict[str, bytes]:
    """The seed files' bytes (not a fixture: hypothesis would print them with every failure)."""
    with tempfile.TemporaryDirectory() as base:
        trace = Path(base) / "t.jsonl"
        trace.write_bytes(_trace_seed())
        otlp = Path(base) / "spans.json"
        code, err = run(["export", str(trace), "--format", "otlp", "-o", str(otlp)])
        assert code == 0, err
        baseline = Path(base) / "baseline.json"
        code, err = run(["baseline", str(trace), "-o", str(baseline)])
        assert code == 0, err
        return {"trace": trace.read_bytes(), "otlp": otlp.read_bytes(),
                "openai_log": _openai_log_seed(), "budget": BUDGET_SEED,
                "baseline": baseline.read_bytes()}


# -- mutations -------------------------------------------------------------------------------------
def _byte_mutation(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    kind = rnd.randrange(6)
    i = rnd.randrange(len(b)) if b else 0
    if kind == 0 and b:  # flip bytes
        for _ in range(rnd.randint(1, 8)):
            j = rnd.randrange(len(b))
            b[j] ^= 1 << rnd.randrange(8)
    elif kind == 1:  # cut the tail (a torn write) or the head
        return bytes(b[:i]) if rnd.random() < 0.7 else bytes(b[i:])
    elif kind == 2:  # delete a range
        del b[i:i + rnd.randint(1, 200)]
    elif kind == 3:  # insert hostile bytes
        b[i:i] = rnd.choice([b"\x00", b"\xff\xfe", b"\x1b[31m", b"\n", b"\r\n", b"{", b"]", b'"', b"\\",
                             b"\\ud800", "\u202e".encode(), "👍🏽".encode(), b"\xe2\x80", b"[/x]"])
    elif kind == 4:  # duplicate a range
        j = min(len(b), i + rnd.randint(1, 500))
        b[j:j] = b[i:j]
    else:  # compress, maybe then damage
        z = bytearray(gzip.compress(bytes(b)))
        if rnd.random() < 0.5 and len(z) > 20:
            z[rnd.randrange(10, len(z))] ^= 0xFF
        return bytes(z)
    return bytes(b)


def _replace_somewhere(value: Any, rnd: random.Random) -> Any:
    """`value` with one node (chosen at random depth) replaced by a hostile value or dropped."""
    if isinstance(value, dict) and value and rnd.random() < 0.75:
        key = rnd.choice(list(value))
        out = dict(value)
        if rnd.random() < 0.15:
            del out[key]
        else:
            out[key] = _replace_somewhere(value[key], rnd)
        return out
    if isinstance(value, list) and value and rnd.random() < 0.75:
        out_list = list(value)
        i = rnd.randrange(len(value))
        out_list[i] = _replace_somewhere(value[i], rnd)
        return out_list
    return rnd.choice(HOSTILE_VALUES)


def _json_mutation(data: bytes, rnd: random.Random) -> bytes:
    text = data.decode("utf-8")
    lines = text.splitlines()
    try:
        docs = [json.loads(line) for line in lines]
        whole = False
    except json.JSONDecodeError:
        docs, whole = [json.loads(text)], True
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(docs))
        docs[i] = _replace_somewhere(docs[i], rnd)
    dump: Callable[[Any], str] = lambda d: json.dumps(d, ensure_ascii=rnd.random() < 0.5)
    try:
        if whole:
            return dump(docs[0]).encode("utf-8", "surrogatepass")
        return "".join(dump(d) + "\n" for d in docs).encode("utf-8", "surrogatepass")
    except ValueError:  # NaN-like floats are fine in json.dumps; anything else: keep the seed
        return data


def _toml_mutation(data: bytes, rnd: random.Random) -> bytes:
    lines = data.decode("utf-8", "replace").splitlines()
    i = rnd.randrange(len(lines))
    value = rnd.choice(['"x"', "-1", "1e400", "nan", "[1, 2]", "{a = 1}", "true", "0", '"\\u202e"',
                        "9" * 30, "", "= =", "[[budgets]]"])
    if "=" in lines[i] and rnd.random() < 0.8:
        lines[i] = lines[i].split("=")[0] + "= " + value
    else:
        lines.insert(i, rnd.choice(["[budgets.workflow.\"\x1b[31m\"]", "x = 1", "[", "input_tokens_per_run = 5"]))
    return ("\n".join(lines) + "\n").encode()


def mutate(data: bytes, seed: int, *, toml: bool = False) -> bytes:
    rnd = random.Random(seed)
    out = data
    for _ in range(rnd.randint(1, 2)):
        if toml:
            out = _toml_mutation(out, rnd) if rnd.random() < 0.7 else _byte_mutation(out, rnd)
        else:
            try:
                out = _json_mutation(out, rnd) if rnd.random() < 0.6 else _byte_mutation(out, rnd)
            except (UnicodeDecodeError, json.JSONDecodeError):
                out = _byte_mutation(out, rnd)
    return out


# -- the property ----------------------------------------------------------------------------------
def assert_clean(argv: list[str], output: Path | None, allowed: tuple[int, ...] = (0, 2)) -> int:
    if output is not None and output.exists():
        output.unlink()
    code, err = run(argv)
    EXITS[(argv[0] if argv[0] != "import" else f"import {argv[1]}", code)] += 1
    assert code in allowed, f"exit {code} for {argv}:\n{err}"
    assert "Traceback" not in err, err
    if output is not None:
        if code == 2:
            assert not output.exists(), f"partial output left by {argv}"
        leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"temporary files left by {argv}: {leftovers}"
    return code


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_trace_commands_survive_mutated_traces(tmp_path_factory, seed):
    TRIED["trace"] = TRIED.get("trace", 0) + 1
    tmp = tmp_path_factory.mktemp("fuzz")
    data = mutate(seeds()["trace"], seed)
    trace = _write(tmp, "t.jsonl.gz" if data[:2] == b"\x1f\x8b" else "t.jsonl", data)
    budget = _write(tmp, "b.toml", seeds()["budget"])
    out = tmp / "out" / "o.txt"
    out.parent.mkdir()
    rnd = random.Random(seed)
    commands = [
        ["analyze", str(trace), "-o", str(out)],
        ["simulate", str(trace), "--cache", rnd.choice(["openai", "anthropic", "engine"]), "-o", str(out)],
        ["diagnose", str(trace), "-o", str(out)],
        ["report", str(trace), "--format", rnd.choice(["md", "json"]), "-o", str(out)],
        ["export", str(trace), "--format", "otlp", "-o", str(out)],
        ["baseline", str(trace), "-o", str(out)],
        ["diff", str(trace), str(trace), "-o", str(out)],
    ]
    for argv in commands:
        assert_clean(argv, out)
    assert_clean(["check", str(trace), "--budget", str(budget)], None, allowed=(0, 1, 2))


@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_importers_survive_mutated_sources(tmp_path_factory, seed):
    TRIED["import"] = TRIED.get("import", 0) + 1
    tmp = tmp_path_factory.mktemp("fuzz")
    out = tmp / "out" / "o.jsonl"
    out.parent.mkdir()
    otlp = _write(tmp, "spans.json", mutate(seeds()["otlp"], seed))
    log = _write(tmp, "log.jsonl", mutate(seeds()["openai_log"], seed + 1))
    assert_clean(["import", "otel", str(otlp), "-o", str(out)], out)
    assert_clean(["import", "openai-log", str(log), "-o", str(out)], out)
    assert_clean(["import", "mooncake", str(log), "-o", str(out)], out)
    assert_clean(["analyze", str(otlp)], None)  # sniffed and imported on the fly


@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_check_and_diff_survive_mutated_budgets_and_baselines(tmp_path_factory, seed):
    TRIED["budget"] = TRIED.get("budget", 0) + 1
    tmp = tmp_path_factory.mktemp("fuzz")
    trace = _write(tmp, "t.jsonl", seeds()["trace"])
    budget = _write(tmp, "b.toml", mutate(seeds()["budget"], seed, toml=True))
    baseline = _write(tmp, "baseline.json", mutate(seeds()["baseline"], seed + 1))
    md = tmp / "out" / "c.md"
    md.parent.mkdir()
    code = assert_clean(["check", str(trace), "--budget", str(budget), "--markdown", str(md)], None,
                        allowed=(0, 1, 2))
    if code == 2:
        assert not md.exists()
    assert_clean(["check", str(trace), "--budget", str(budget), "--baseline", str(baseline)], None,
                 allowed=(0, 1, 2))
    assert_clean(["diff", str(baseline), str(trace), "--format", "markdown", "-o", str(md)], md)


def test_zz_report_cases_tried():
    """Prints how many examples ran (visible with `pytest -s`)."""
    print(f"\nfuzz examples tried: {TRIED} (total {sum(TRIED.values())}); "
          f"command runs by exit code: {dict(sorted(EXITS.items()))}")
