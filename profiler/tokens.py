"""Tokenization of trace steps: offline tiktoken encodings, chat rendering, memoized per message.

Contract:
- Encodings (fetching them offline, which model uses which) live in `profiler.encodings`; a
  `StepTokenizer` takes the `EncodingCache` to load them from (default: the process-wide one).
- `StepTokenizer` turns a step's prompt (messages + tools, raw text, or token ids) into one token
  sequence and its output into another. Each distinct message / tool definition is tokenized once
  (memoized by content hash): workflows resend the same messages, and the profiler must not do the
  redundant work it measures.

Chat rendering (`profiler.chat`, ChatML-like, as OpenAI's chat format): the tool definitions first, as one block, then
the structured-output format (`Prompt.response_format`) as one block where there is one, then each
message as `<|im_start|>{role}\\n{content}<|im_end|>\\n`, then the generation prompt
`<|im_start|>assistant\\n`. The output is the assistant message body followed by `<|im_end|>`, so a
later step that carries the answer in its history continues exactly the sequence this step left behind,
as it does in a serving engine. `<|im_start|>` and `<|im_end|>` get ids just past the encoding's range.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from profiler.chat import (render_message_body, render_response_format, render_tools,
                           role_header)
from profiler.encodings import DEFAULT_ENCODING, EncodingCache, default_encodings, encoding_for_model
from profiler.errors import TokenizerError
from profiler.trace.model import Output, Prompt, Step

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
    encodings: EncodingCache | None = None  # None: the process-wide cache

    def __post_init__(self) -> None:
        self._enc = (self.encodings or default_encodings()).get(self.name)

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
                 default_encoding: str = DEFAULT_ENCODING,
                 encodings: EncodingCache | None = None) -> None:
        self._encodings = encodings  # None: the process-wide cache
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
                    tok = TiktokenTokenizer(named, self._encodings)
                self._tokenizers[named] = tok
            return tok
        name, exact = encoding_for_model(step.model)
        if not step.model or not exact:
            name = self._default_encoding
            if step.model:
                self.approximate_models.add(step.model)
        tok = self._tokenizers.get(name)
        if tok is None:
            tok = self._tokenizers[name] = TiktokenTokenizer(name, self._encodings)
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
        return self._rendered_block(tok, role_header(part), render_message_body(part))

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
            add("message", i, role_header(message), render_message_body(message))
        return blocks


@dataclass(frozen=True)
class PromptBlock:
    """One block of a rendered prompt: tokens [start, end), its body beginning at `body_start`."""

    label: str  # "tools", "response_format", "message" or "text"
    index: int  # message index for "message" blocks, else 0
    start: int
    body_start: int
    end: int
