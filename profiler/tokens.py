"""Tokenization of trace steps: offline tiktoken encodings, chat rendering, memoized per message.

Contract:
- `get_encoding(name)` returns a tiktoken encoding without touching the network: tiktoken's own cache
  when it has the file, else the `.tiktoken` files shipped in the `bpe-openai` package, checked against
  the sha256 tiktoken expects and handed to tiktoken through its cache directory.
- `encoding_for_model(model)` maps a model name to an encoding (exact for OpenAI models; an
  approximation, flagged as such, for other providers whose tokenizers are not available offline).
- `StepTokenizer` turns a step's prompt (messages + tools, raw text, or token ids) into one token
  sequence and its output into another. Each distinct message / tool definition is tokenized once
  (memoized by content hash): workflows resend the same messages, and the profiler must not do the
  redundant work it measures.

Chat rendering (ChatML-like, as OpenAI's chat format): the tool definitions first, as one block, then
the structured-output format (`Prompt.response_format`) as one block where there is one, then each
message as `<|im_start|>{role}\\n{content}<|im_end|>\\n`, then the generation prompt
`<|im_start|>assistant\\n`. The output is the assistant message body followed by `<|im_end|>`, so a
later step that carries the answer in its history continues exactly the sequence this step left behind,
as it does in a serving engine. `<|im_start|>` and `<|im_end|>` get ids just past the encoding's range.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from profiler.errors import TokenizerError
from profiler.trace.model import Output, Prompt, Step

DEFAULT_ENCODING = "o200k_base"

# Where tiktoken fetches each encoding and the sha256 it expects (from tiktoken_ext.openai_public).
_TIKTOKEN_FILES = {
    "o200k_base": ("https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
                   "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": ("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
}

_encoding_lock = threading.Lock()
_encodings: dict[str, Any] = {}


def _tiktoken_cache_dir() -> Path:
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return Path(os.environ["DATA_GYM_CACHE_DIR"])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _ctxprof_cache_dir() -> Path:
    base = os.environ.get("CTXPROF_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    path = Path(base) / "ctxprof" if base and "CTXPROF_CACHE_DIR" not in os.environ else (
        Path(base) if base else Path.home() / ".cache" / "ctxprof")
    try:
        (path / "tiktoken").mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "ctxprof-cache"
        (fallback / "tiktoken").mkdir(parents=True, exist_ok=True)
        return fallback


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cached_in_tiktoken(name: str) -> bool:
    url, expected = _TIKTOKEN_FILES[name]
    path = _tiktoken_cache_dir() / hashlib.sha1(url.encode()).hexdigest()
    try:
        return _sha256(path.read_bytes()) == expected
    except OSError:
        return False


def _load_from_bpe_openai(name: str) -> Any:
    """Hand tiktoken the encoding file shipped in `bpe-openai`, through a cache directory of ours."""
    import tiktoken
    from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

    url, expected = _TIKTOKEN_FILES[name]
    try:
        # Locate the file without importing bpe_openai: its import builds every encoding it ships.
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("bpe_openai is not installed")
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        data = gzip.decompress((package_dir / "data" / f"{name}.tiktoken.gz").read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError) as e:
        raise TokenizerError(
            f"encoding {name!r} is not available offline: tiktoken has no cached copy and the "
            f"'bpe-openai' package is missing or lacks it ({e}); install it with `pip install bpe-openai`"
        ) from None
    if _sha256(data) != expected:
        raise TokenizerError(
            f"the {name} file shipped in bpe-openai has sha256 {_sha256(data)}, tiktoken expects "
            f"{expected}; reinstall bpe-openai or put tiktoken's own file in TIKTOKEN_CACHE_DIR")
    cache = _ctxprof_cache_dir() / "tiktoken"
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    if not target.exists() or _sha256(target.read_bytes()) != expected:
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    # tiktoken reads (and re-verifies) the file from its cache directory, so no download happens.
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        return tiktoken.Encoding(**ENCODING_CONSTRUCTORS[name]())
    finally:
        if previous is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


def get_encoding(name: str) -> Any:
    """A tiktoken encoding by name (`o200k_base`, `cl100k_base`), loaded without network access."""
    with _encoding_lock:
        if name in _encodings:
            return _encodings[name]
        if name not in _TIKTOKEN_FILES:
            raise TokenizerError(f"unknown encoding {name!r}; use one of {', '.join(_TIKTOKEN_FILES)}")
        import tiktoken

        enc = _load_parsed(name)
        if enc is None:
            if _cached_in_tiktoken(name):
                enc = tiktoken.get_encoding(name)
            else:
                enc = _load_from_bpe_openai(name)
            _store_parsed(name, enc)
        _encodings[name] = enc
        return enc


# Parsing an encoding file (200k base64 lines) took about half of loading an encoding, which was a
# third of `ctxprof analyze` on a small trace. The parsed ranks are kept in the cache directory as a
# marshal blob named by the source file's sha256 and preceded by the blob's own sha256, checked on
# every load (a damaged or foreign file is ignored and rewritten).
_PARSED_FORMAT = 1


def _parsed_path(name: str) -> Path:
    expected = _TIKTOKEN_FILES[name][1]
    return _ctxprof_cache_dir() / "tiktoken-parsed" / f"{name}-{expected[:24]}.v{_PARSED_FORMAT}.marshal"


def _load_parsed(name: str) -> Any:
    import marshal

    import tiktoken

    try:
        blob = _parsed_path(name).read_bytes()
        digest, payload = blob[:64].decode("ascii"), blob[64:]
        if _sha256(payload) != digest:
            return None
        fields = marshal.loads(payload)
        return tiktoken.Encoding(fields["name"], pat_str=fields["pat_str"],
                                 mergeable_ranks=fields["mergeable_ranks"],
                                 special_tokens=fields["special_tokens"])
    except (OSError, ValueError, EOFError, TypeError, KeyError, UnicodeDecodeError):
        return None


def _store_parsed(name: str, enc: Any) -> None:
    import marshal

    try:
        payload = marshal.dumps({"name": enc.name, "pat_str": enc._pat_str,
                                 "mergeable_ranks": enc._mergeable_ranks,
                                 "special_tokens": enc._special_tokens})
        target = _parsed_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_sha256(payload).encode("ascii") + payload)
        os.replace(tmp, target)
    except (OSError, AttributeError, ValueError):
        pass  # a cache we cannot write only costs the next run the parse


def encoding_for_model(model: str | None) -> tuple[str, bool]:
    """`(encoding name, exact)` for a model: exact for OpenAI models tiktoken knows; otherwise the
    default encoding as an approximation (Claude, Gemini, DeepSeek... have no offline tokenizer)."""
    if model:
        import tiktoken.model

        bare = model.split("/")[-1]
        try:
            name = tiktoken.model.encoding_name_for_model(bare)
            if name in _TIKTOKEN_FILES:
                return name, True
        except KeyError:
            pass
    return DEFAULT_ENCODING, False


class TextTokenizer(Protocol):
    """What chat rendering needs from a tokenizer."""

    name: str

    def encode(self, text: str) -> list[int]: ...

    @property
    def vocab_size(self) -> int: ...


@dataclass
class TiktokenTokenizer:
    """A tiktoken encoding behind the `TextTokenizer` protocol."""

    name: str

    def __post_init__(self) -> None:
        self._enc = get_encoding(self.name)

    def encode(self, text: str) -> list[int]:
        # Special-token text inside prompts is ordinary text to a provider: encode it as such.
        return self._enc.encode_ordinary(text)

    def decode(self, ids: Sequence[int]) -> str:
        # Runs of ordinary ids are decoded together: a character split over two tokens (an emoji,
        # most non-Latin text) would otherwise decode as two U+FFFD halves.
        n = self._enc.n_vocab
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            if i < n:
                run.append(i)
                continue
            if run:
                parts.append(self._enc.decode(run))
                run = []
            parts.append("<|im_start|>" if i == n else "<|im_end|>")
        if run:
            parts.append(self._enc.decode(run))
        return "".join(parts)

    @property
    def vocab_size(self) -> int:
        return self._enc.n_vocab


class HFTokenizer:
    """A local Hugging Face tokenizer (`hf:<directory>`), rendering chats with its own chat template.

    Loaded with `local_files_only=True`: nothing is downloaded. Needs `transformers`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"hf:{path}"
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise TokenizerError(f"tokenizer {self.name!r} needs transformers: pip install 'ctxprof[replay]'") from None
        try:
            self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise TokenizerError(f"cannot load the Hugging Face tokenizer in {path!r} ({e}); give a local "
                                 "directory with tokenizer files (nothing is downloaded)") from None

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tok, "chat_template", None))

    def render_chat(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                    ) -> list[int]:
        ids = self._tok.apply_chat_template([dict(m) for m in messages],
                                            tools=None if not tools else [dict(t) for t in tools],
                                            add_generation_prompt=True, tokenize=True)
        if isinstance(ids, Mapping):  # newer transformers return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)


def _digest(obj: Any) -> bytes:
    if isinstance(obj, str):
        raw = obj.encode("utf-8", "surrogatepass")
    else:
        raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode(
            "utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).digest()


def render_content(content: Any) -> str:
    """Text of a message's content: a string, or a list of parts (OpenAI / Anthropic content blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, Mapping):
                kind = part.get("type")
                if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                    pieces.append(part["text"])
                    continue
                if kind == "tool_result":
                    pieces.append(render_content(part.get("content")))
                    continue
                # Images, tool_use blocks and the rest: their JSON stands in (counts are approximate).
                pieces.append(json.dumps({k: v for k, v in part.items() if k != "cache_control"},
                                         ensure_ascii=False))
            else:
                pieces.append(str(part))
        return "\n".join(pieces)
    return json.dumps(content, ensure_ascii=False)


def render_message_body(message: Mapping[str, Any]) -> str:
    """The text of a message between its header and end marker (content, then tool calls).

    Tool calls are rendered with sorted keys: a provider renders them from their fields, so the key
    order a client happens to serialise them in does not change what the model sees."""
    text = render_content(message.get("content"))
    extras = []
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            extras.append(json.dumps(message[key], ensure_ascii=False, sort_keys=True))
    if message.get("tool_call_id"):
        text = f"[{message['tool_call_id']}] {text}"
    return "\n".join([text, *extras]) if extras else text


def render_tools(tools: Sequence[Mapping[str, Any]]) -> str:
    """Tool definitions as one text block, one JSON object per line, in the order given (a provider
    sees reordered tools as a different prompt, and so does ctxprof)."""
    return "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)


def render_response_format(response_format: Mapping[str, Any]) -> str:
    """A structured-output format as the text block the provider adds to the prompt.

    OpenAI and Anthropic turn a JSON-schema response format into text the model reads ahead of the
    conversation (OpenAI documents that the schema counts toward input tokens; neither publishes the
    exact wording), so this is an approximation: the format object as sent, as JSON. What matters for
    reuse is exact: two prompts differing only in their schema differ here, before the first message."""
    return json.dumps(response_format, ensure_ascii=False)


def _role_header(message: Mapping[str, Any]) -> str:
    role = str(message.get("role", "user"))
    name = message.get("name")
    return f"{role} name={name}" if isinstance(name, str) and name else role


# Conversations whose last prompt is kept for reuse: enough for interleaved runs, bounded for
# inputs with many runs.
_RECENT_CONVERSATIONS = 256


@dataclass(frozen=True)
class _ToolsPart:
    """The tool definitions as one part of a prompt (compared by value with the previous prompt's)."""

    tools: tuple[Any, ...]


@dataclass(frozen=True)
class _ResponseFormatPart:
    """The structured-output format as one part of a prompt, after the tools."""

    response_format: Mapping[str, Any]


class StepTokenizer:
    """Render and tokenize steps, memoizing each distinct message, tool list and text once.

    `tokenizer_for` picks the `TextTokenizer` for a step (by default from its model name); pass one in
    to force a tokenizer. Token ids of different tokenizers live in different id spaces: `namespace()`
    says which one a step's sequence is in, so the analyzer never matches ids across vocabularies.
    """

    def __init__(self, tokenizer_for: Callable[[Step], TextTokenizer] | None = None,
                 default_encoding: str = DEFAULT_ENCODING) -> None:
        self._tokenizers: dict[str, TextTokenizer] = {}
        self._default_encoding = default_encoding
        self._tokenizer_for = tokenizer_for or self._by_model
        self._memo: dict[tuple[str, bytes], np.ndarray] = {}
        self._blocks: dict[tuple[str, str, bytes], np.ndarray] = {}
        # The last rendered prompt of recent conversations (tokenizer, run): its parts, where each part
        # ends, and its token ids; a step that starts with the same parts reuses them as they are.
        self._last: OrderedDict[tuple[str, str], tuple[list[Any], list[int], np.ndarray]] = OrderedDict()
        self.approximate_models: set[str] = set()
        self.texts_tokenized = 0  # distinct pieces actually sent to a tokenizer (for tests/benchmarks)

    def memo_size(self) -> int:
        """How many distinct texts and message blocks are memoized."""
        return len(self._memo) + len(self._blocks)

    def forget(self) -> None:
        """Drop the memoized texts and message blocks (loaded tokenizers are kept): a long stream of
        runs bounds its memory with it, at the cost of tokenizing a text seen before again."""
        self._memo.clear()
        self._blocks.clear()
        self._last.clear()

    def _by_model(self, step: Step) -> TextTokenizer:
        named = step.prompt.tokenizer
        if named:
            # The trace names the tokenizer: a tiktoken encoding or a local Hugging Face one.
            tok = self._tokenizers.get(named)
            if tok is None:
                if named.startswith("hf:"):
                    tok = HFTokenizer(named[3:])
                else:
                    tok = TiktokenTokenizer(named)
                self._tokenizers[named] = tok
            return tok
        name, exact = encoding_for_model(step.model)
        if not step.model or not exact:
            name = self._default_encoding
            if step.model:
                self.approximate_models.add(step.model)
        tok = self._tokenizers.get(name)
        if tok is None:
            tok = self._tokenizers[name] = TiktokenTokenizer(name)
        return tok

    @property
    def default_encoding(self) -> str:
        return self._default_encoding

    def tokenizer(self, step: Step) -> TextTokenizer:
        return self._tokenizer_for(step)

    def namespace(self, step: Step) -> str:
        """The id space of the step's token sequence."""
        if step.prompt.level == "tokens":
            return step.prompt.tokenizer or "unknown"
        return self.tokenizer(step).name

    def _encode_text(self, tok: TextTokenizer, text: str) -> np.ndarray:
        key = (tok.name, _digest(text))
        ids = self._memo.get(key)
        if ids is None:
            self.texts_tokenized += 1
            ids = np.asarray(tok.encode(text), dtype=np.int64)
            ids.setflags(write=False)
            self._memo[key] = ids
        return ids

    def _specials(self, tok: TextTokenizer) -> tuple[np.ndarray, np.ndarray]:
        n = tok.vocab_size
        return np.array([n], dtype=np.int64), np.array([n + 1], dtype=np.int64)  # im_start, im_end

    def _block(self, tok: TextTokenizer, header: str, body: str) -> list[np.ndarray]:
        """`<|im_start|>{header}\n{body}<|im_end|>\n` as separately memoized pieces; header and body
        are encoded apart so a body tokenizes the same wherever it appears (history or output)."""
        start, end = self._specials(tok)
        return [start, self._encode_text(tok, header + "\n"), self._encode_text(tok, body), end,
                self._encode_text(tok, "\n")]

    def _rendered_block(self, tok: TextTokenizer, header: str, body: str) -> np.ndarray:
        """One whole rendered block (markers included) as one array, memoized per tokenizer."""
        key = (tok.name, header, _digest(body))
        ids = self._blocks.get(key)
        if ids is None:
            ids = np.concatenate(self._block(tok, header, body))
            ids.setflags(write=False)
            self._blocks[key] = ids
        return ids

    def _part_ids(self, tok: TextTokenizer, part: Any) -> np.ndarray:
        if isinstance(part, _ToolsPart):
            return self._rendered_block(tok, "tools", render_tools(part.tools))
        if isinstance(part, _ResponseFormatPart):
            return self._rendered_block(tok, "response_format",
                                        render_response_format(part.response_format))
        return self._rendered_block(tok, _role_header(part), render_message_body(part))

    def _chat_tokens(self, tok: TextTokenizer, step: Step) -> np.ndarray:
        """The chat rendering of a step's prompt. Each part (the tools, the response format, each
        message) is one memoized
        block; the leading parts equal to the previous prompt of the same run are taken from that
        prompt as they are, so a growing history costs only its new messages."""
        prompt = step.prompt
        parts: list[Any] = [_ToolsPart(tuple(prompt.tools))] if prompt.tools else []
        if prompt.response_format:
            parts.append(_ResponseFormatPart(prompt.response_format))
        parts.extend(prompt.messages or ())
        conv = (tok.name, step.run_id)
        last = self._last.pop(conv, None)
        shared = 0
        pieces: list[np.ndarray] = []
        ends: list[int] = []
        if last is not None:
            last_parts, last_ends, last_ids = last
            m = min(len(parts), len(last_parts))
            while shared < m and (parts[shared] is last_parts[shared] or parts[shared] == last_parts[shared]):
                shared += 1
            if shared:
                ends = last_ends[:shared]
                pieces.append(last_ids[:ends[-1]])
        pos = ends[-1] if ends else 0
        for part in parts[shared:]:
            ids = self._part_ids(tok, part)
            pieces.append(ids)
            pos += int(ids.size)
            ends.append(pos)
        start, _ = self._specials(tok)
        pieces += [start, self._encode_text(tok, "assistant\n")]
        out = np.concatenate(pieces)
        out.setflags(write=False)
        self._last[conv] = (parts, ends, out)
        if len(self._last) > _RECENT_CONVERSATIONS:
            self._last.popitem(last=False)
        return out

    def prompt_tokens(self, step: Step) -> np.ndarray:
        prompt: Prompt = step.prompt
        if prompt.level == "tokens":
            return np.asarray(prompt.token_ids, dtype=np.int64)
        if prompt.level != "text":
            raise TokenizerError(f"step {step.step_id!r} has no text or token ids to tokenize")
        tok = self.tokenizer(step)
        if prompt.messages is None:
            return self._encode_text(tok, prompt.text or "")
        if isinstance(tok, HFTokenizer) and tok.has_chat_template:
            # A model's own template can depend on the whole conversation: memoize whole prompts.
            key = (tok.name + "/chat", _digest([list(prompt.messages), list(prompt.tools or ())]))
            ids = self._memo.get(key)
            if ids is None:
                self.texts_tokenized += 1
                ids = np.asarray(tok.render_chat(prompt.messages, prompt.tools), dtype=np.int64)
                ids.setflags(write=False)
                self._memo[key] = ids
            return ids
        return self._chat_tokens(tok, step)

    def output_tokens(self, step: Step) -> np.ndarray:
        output: Output = step.output
        if output.token_ids is not None:
            return np.asarray(output.token_ids, dtype=np.int64)
        if step.prompt.level != "text" or (output.message is None and output.text is None):
            return np.zeros(0, dtype=np.int64)
        tok = self.tokenizer(step)
        if step.prompt.messages is None:
            return self._encode_text(tok, output.text or "")
        message = output.message if output.message is not None else {"role": "assistant",
                                                                      "content": output.text}
        if isinstance(tok, HFTokenizer):
            return self._encode_text(tok, render_message_body(message))
        _, end = self._specials(tok)
        return np.concatenate([self._encode_text(tok, render_message_body(message)), end])

    def encode_text(self, step: Step, text: str) -> np.ndarray:
        """`text` in the step's tokenizer, memoized like every rendered piece."""
        return self._encode_text(self.tokenizer(step), text)

    def prompt_blocks(self, step: Step) -> list[PromptBlock]:
        """Where each block of a text prompt lies in `prompt_tokens(step)`: the tools block (label
        "tools", when the prompt has tools), then one block per message (label "message", with its
        index). A raw-text or token-id prompt, or one rendered by a model's own chat template, is a
        single block labelled "text"."""
        prompt = step.prompt
        if prompt.level not in ("text", "tokens"):
            return []
        if prompt.level == "tokens" or prompt.messages is None:
            return [PromptBlock("text", 0, 0, 0, int(self.prompt_tokens(step).size))]
        tok = self.tokenizer(step)
        if isinstance(tok, HFTokenizer) and tok.has_chat_template:
            # A model's own chat template renders the prompt as a whole: no block positions.
            return [PromptBlock("text", 0, 0, 0, int(self.prompt_tokens(step).size))]
        blocks: list[PromptBlock] = []
        pos = 0

        def add(label: str, index: int, header: str, body: str) -> None:
            nonlocal pos
            start, header_ids, body_ids, end, newline = self._block(tok, header, body)
            body_start = pos + start.size + header_ids.size
            end_pos = body_start + body_ids.size + end.size + newline.size
            blocks.append(PromptBlock(label, index, pos, body_start, end_pos))
            pos = end_pos

        if prompt.tools:
            add("tools", 0, "tools", render_tools(prompt.tools))
        if prompt.response_format:
            add("response_format", 0, "response_format", render_response_format(prompt.response_format))
        for i, message in enumerate(prompt.messages or ()):
            add("message", i, _role_header(message), render_message_body(message))
        return blocks


@dataclass(frozen=True)
class PromptBlock:
    """One block of a rendered prompt: tokens [start, end), its body beginning at `body_start`."""

    label: str  # "tools", "response_format", "message" or "text"
    index: int  # message index for "message" blocks, else 0
    start: int
    body_start: int
    end: int
