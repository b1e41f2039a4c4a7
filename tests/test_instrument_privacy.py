"""Privacy across capture paths: text planted in prompts, call settings, errors, run attributes and the
command line is greppable at the text level (so the test can fail) and absent from every byte of the
trace at the tokens and hashes levels; the command line is never recorded unless asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from profiler.cli import app as app_module
from profiler.testing.fake_api import FakeLLMServer
from recording_helpers import records

PROMPT_SECRET = "PLANTEDPROMPT Patient Jane Roe, 12 Elm St"
SETTING_SECRETS = ("PLANTEDSTOP", "PLANTEDCACHEKEY")
UNRECORDED_SECRET = "PLANTEDANTHROPICSTOP"  # a list setting: not kept at any level
ERROR_SECRET = "PLANTEDERROR account 4111-1111"
ATTRIBUTE_SECRET = "PLANTEDCUSTOMER"
ARGV_SECRET = "sk-live-PLANTEDKEY"

SCRIPT = f'''
import os, sys
import anthropic, openai
import profiler
from profiler.instrument import current_run

oa = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test", max_retries=0)
an = anthropic.Anthropic(base_url=os.environ["FAKE_ANTHROPIC"], api_key="sk-test", max_retries=0)
msgs = [{{"role": "user", "content": {PROMPT_SECRET!r}}}]
oa.chat.completions.create(model="gpt-4o-mini", messages=msgs, stop="PLANTEDSTOP",
                           prompt_cache_key="PLANTEDCACHEKEY")
for _ in oa.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True):
    pass
with oa.responses.with_streaming_response.create(model="gpt-4o-mini", input=msgs, stream=True) as r:
    for _ in r.parse():
        pass
an.messages.create(model="claude-haiku-4-5", max_tokens=32, messages=msgs,
                   stop_sequences=["PLANTEDANTHROPICSTOP"])
an.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=32, messages=msgs).parse()
run = current_run()
with run.recorder.run("nested", customer={ATTRIBUTE_SECRET!r}):
    try:
        with run.recorder.step("failing"):
            raise ValueError({ERROR_SECRET!r})
    except ValueError:
        pass
'''


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(chunk_delay_s=0.0, first_token_delay_s=0.0) as s:
        yield s


def _run(server: FakeLLMServer, tmp_path: Path, content: str, *extra: str) -> str:
    script = tmp_path / "agent.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{content}.jsonl"
    env = {"FAKE_OPENAI": server.openai_base_url, "FAKE_ANTHROPIC": server.anthropic_base_url}
    app_module._register()
    result = CliRunner().invoke(app_module.app, ["run", "-o", str(out), "--content", content, *extra,
                                      str(script), "--api-key", ARGV_SECRET], env=env)
    assert result.exit_code == 0, result.output
    return out.read_text()


@pytest.mark.parametrize("content", ["text", "tokens", "hashes"])
def test_planted_text_never_reaches_a_content_free_trace(server: FakeLLMServer, tmp_path: Path,
                                                        content: str) -> None:
    # GIVEN a program that plants private text in every place a call can carry it
    # WHEN it is recorded at this content level
    trace = _run(server, tmp_path, content)
    steps = [json.loads(line) for line in trace.splitlines() if '"step"' in line]
    assert len(steps) == 6
    # THEN the command line's key is never written, and the script is named by its file only
    assert ARGV_SECRET not in trace and "--api-key" not in trace
    assert '"script":"agent.py"' in trace
    # "4111-1111", not "4111": four digits alone turn up by chance in hashes, ids and timestamps.
    planted = (PROMPT_SECRET.split()[0], *SETTING_SECRETS, ERROR_SECRET.split()[0],
               ATTRIBUTE_SECRET, "4111-1111")
    found = [p for p in planted if p in trace]
    assert UNRECORDED_SECRET not in trace
    if content == "text":
        assert found == list(planted)  # the grep does find what is there
    else:
        assert found == []
        failing = next(s for s in steps if s["name"] == "failing")
        assert failing["attributes"]["error"] == "ValueError"


def test_the_command_line_is_recorded_only_on_request(server: FakeLLMServer, tmp_path: Path) -> None:
    trace = _run(server, tmp_path, "text", "--record-args")
    header = records(tmp_path / "text.jsonl", "header")[0]
    assert ARGV_SECRET in header["attributes"]["command"]
    # ... and never at a content-free level, even when asked
    assert ARGV_SECRET not in _run(server, tmp_path, "hashes", "--record-args")
    assert trace
