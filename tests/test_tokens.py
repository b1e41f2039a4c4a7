"""Offline tokenization, chat rendering and memoization."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from builders import make_step

from profiler.errors import TokenizerError
from profiler.encodings import EncodingCache, encoding_for_model, get_encoding
from profiler.tokens import StepTokenizer


@pytest.mark.parametrize("name, text, expected", [
    # Reference ids of tiktoken's own encodings.
    ("cl100k_base", "hello world", [15339, 1917]),
    ("o200k_base", "hello world", [24912, 2375]),
])
def test_encodings_load_offline_and_match_tiktoken(name, text, expected):
    assert get_encoding(name).encode(text) == expected


def test_bpe_openai_fallback_verifies_the_hash(tmp_path, monkeypatch):
    # GIVEN an empty tiktoken cache, so the bpe-openai copy must be used
    import os

    from profiler import encodings

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    monkeypatch.setenv("CTXPROF_CACHE_DIR", str(tmp_path / "ctxprof-cache"))  # no parsed copy either
    # WHEN the encoding is loaded through a cache object of this test's own
    enc = EncodingCache().get("cl100k_base")
    # THEN it works, the file it placed in tiktoken's cache has the sha256 tiktoken expects, and the
    # environment is as it was
    assert enc.decode(enc.encode("redundant context")) == "redundant context"
    cached = list((tmp_path / "tiktoken-cache").iterdir())
    assert len(cached) == 1
    assert hashlib.sha256(cached[0].read_bytes()).hexdigest() == encodings.TIKTOKEN_FILES["cl100k_base"][1]
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "tiktoken-cache")


def test_parsed_ranks_are_cached_verified_and_a_damaged_cache_is_rewritten(tmp_path, monkeypatch):
    # GIVEN an empty ctxprof cache
    from profiler import encodings

    monkeypatch.setenv("CTXPROF_CACHE_DIR", str(tmp_path / "ctxprof-cache"))
    # WHEN the encoding is loaded twice, by two cache objects (the second time from the parsed cache)
    first = EncodingCache().get("cl100k_base")
    parsed = encodings._parsed_path("cl100k_base")
    assert parsed.exists()
    second = EncodingCache().get("cl100k_base")
    # THEN both encode alike
    text = "redundant context <|endoftext|> ünïcode"
    assert second.encode(text, allowed_special="all") == first.encode(text, allowed_special="all")
    assert second.n_vocab == first.n_vocab
    # AND a damaged cache file is ignored (its hash fails) and rewritten
    blob = parsed.read_bytes()
    parsed.write_bytes(blob[:64] + blob[64:-10] + b"0123456789")
    assert encodings._load_parsed("cl100k_base") is None
    assert EncodingCache().get("cl100k_base").encode(text, allowed_special="all") == first.encode(
        text, allowed_special="all")
    assert parsed.read_bytes() == blob


def test_a_corrupt_bpe_file_is_refused(tmp_path, monkeypatch):
    from profiler import encodings

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CTXPROF_CACHE_DIR", str(tmp_path / "ctxprof-cache"))
    monkeypatch.setitem(encodings.TIKTOKEN_FILES, "cl100k_base", ("https://example.invalid/x", "0" * 64))
    with pytest.raises(TokenizerError, match="sha256"):
        EncodingCache().get("cl100k_base")


def test_tiktoken_caching_switched_off_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setenv("CTXPROF_CACHE_DIR", str(tmp_path / "ctxprof-cache"))
    with pytest.raises(TokenizerError, match="TIKTOKEN_CACHE_DIR is empty"):
        EncodingCache().get("cl100k_base")


def test_unknown_encoding():
    with pytest.raises(TokenizerError, match="unknown encoding"):
        get_encoding("p50k_nope")


@pytest.mark.parametrize("model, expected", [
    ("gpt-4o-2024-08-06", ("o200k_base", True)),
    ("gpt-4.1-mini", ("o200k_base", True)),
    ("gpt-4-0613", ("cl100k_base", True)),
    ("openai/gpt-4o", ("o200k_base", True)),
    ("claude-sonnet-4-20250514", ("o200k_base", False)),
    (None, ("o200k_base", False)),
])
def test_model_to_encoding(model, expected):
    assert encoding_for_model(model) == expected


def test_each_distinct_message_is_tokenized_once():
    # GIVEN 20 steps that resend the same system prompt and a growing history
    tok = StepTokenizer()
    history = [{"role": "system", "content": "You are terse. " * 200}]
    for i in range(20):
        history = history + [{"role": "user", "content": f"question {i}"}]
        tok.prompt_tokens(make_step(messages=history))
    # THEN only the new pieces were tokenized: system body, 20 user bodies, and the constant pieces
    # (role headers "system\n", "user\n", "assistant\n" and the "\n" separator)
    assert tok.texts_tokenized == 1 + 20 + 4


def test_answer_in_history_continues_the_previous_sequence():
    # An engine caches prompt + output; the next call carries the answer as an assistant message.
    tok = StepTokenizer()
    msgs = [{"role": "system", "content": "Plan things."}, {"role": "user", "content": "Go!"}]
    first = make_step(messages=msgs, answer=" Step one:\nthen two")
    second = make_step(messages=msgs + [{"role": "assistant", "content": " Step one:\nthen two"},
                                        {"role": "user", "content": "ok"}])
    left = list(tok.prompt_tokens(first)) + list(tok.output_tokens(first))
    assert list(tok.prompt_tokens(second)[: len(left)]) == left


def test_tools_and_content_parts_render():
    tok = StepTokenizer()
    step = make_step(messages=[{"role": "user", "content": [{"type": "text", "text": "look"},
                                                          {"type": "image_url", "image_url": {"url": "x"}}]}],
                     tools=[{"type": "function", "function": {"name": "f"}}])
    text = tok.tokenizer(step).decode(tok.prompt_tokens(step).tolist())
    assert text.startswith("<|im_start|>tools\n")
    assert "look\n" in text and "image_url" in text and text.endswith("<|im_start|>assistant\n")


def test_import_profiler_and_analysis_stay_light():
    code = ("import sys, profiler, profiler.analysis, profiler.cli.app; profiler.cli.app._register();"
            "bad = [m for m in ('torch', 'plotly', 'transformers', 'openai', 'anthropic', 'pynvml')"
            " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _local_hf_tokenizer(directory):
    """A real (tiny) Hugging Face tokenizer with a chat template, saved to a local directory."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    words = "<unk> <|user|> <|assistant|> <|system|> <|end|> hello plan the step run".split()
    model = tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                          "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    fast.save_pretrained(directory)
    return directory


def test_a_local_hugging_face_tokenizer_named_by_the_trace(tmp_path):
    # GIVEN a step whose trace names a local HF tokenizer with a chat template
    path = _local_hf_tokenizer(tmp_path / "tok")
    step = make_step(messages=[{"role": "system", "content": "plan the step"},
                               {"role": "user", "content": "hello"}], answer="run")
    from dataclasses import replace

    step = replace(step, prompt=replace(step.prompt, tokenizer=f"hf:{path}"))
    tok = StepTokenizer()
    # WHEN it is tokenized, THEN the model's own template is used, and output tokens come from it too
    ids = tok.prompt_tokens(step).tolist()
    assert ids == [3, 6, 7, 8, 4, 1, 5, 4, 2]
    assert tok.output_tokens(step).tolist() == [9]
    assert tok.namespace(step) == f"hf:{path}"


def test_a_missing_hugging_face_tokenizer_is_a_clear_error(tmp_path):
    pytest.importorskip("transformers")
    from dataclasses import replace

    step = make_step(messages=[{"role": "user", "content": "x"}])
    step = replace(step, prompt=replace(step.prompt, tokenizer=f"hf:{tmp_path / 'nope'}"))
    with pytest.raises(TokenizerError, match="nothing is downloaded"):
        StepTokenizer().prompt_tokens(step)


def test_tool_call_key_order_does_not_change_the_tokens():
    # A client may serialise the same tool call with its keys in any order; the provider sees one call.
    call = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}
    shuffled = {"function": {"arguments": "{\"a\":1}", "name": "get"}, "type": "function", "id": "call_1"}
    tok = StepTokenizer()
    a = make_step(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}])
    b = make_step(messages=[{"role": "assistant", "content": None, "tool_calls": [shuffled]}])
    assert tok.prompt_tokens(a).tolist() == tok.prompt_tokens(b).tolist()


def test_a_response_format_is_one_block_between_tools_and_messages():
    from profiler.chat import render_response_format
    from profiler.tokens import StepTokenizer
    from profiler.trace.model import Prompt, Step

    # GIVEN a prompt with tools, a JSON-schema response format and two messages
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    step = Step(run_id="r", step_id="s", model="gpt-4o", prompt=Prompt(
        messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}),
        tools=({"type": "function", "function": {"name": "f"}},), response_format=fmt))
    tok = StepTokenizer()
    # WHEN tokenized and split into blocks
    ids = tok.prompt_tokens(step)
    blocks = tok.prompt_blocks(step)
    # THEN the format's block follows the tools, holds its JSON, and the blocks tile the prompt
    assert [b.label for b in blocks] == ["tools", "response_format", "message", "message"]
    fmt_block = blocks[1]
    assert fmt_block.start == blocks[0].end
    body = tok.encode_text(step, render_response_format(fmt))
    assert list(ids[fmt_block.body_start:fmt_block.body_start + body.size]) == list(body)
    assert blocks[-1].end == ids.size - 1 - tok.encode_text(step, "assistant\n").size  # generation prompt
