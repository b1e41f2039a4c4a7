"""Content levels: turn a text-level step into the level a recorder writes.

- `text`: unchanged (chat messages and tools, or raw text; the assistant message as output).
- `tokens`: the prompt and output rendered and tokenized with `profiler.tokens.StepTokenizer`, stored as
  token ids with `Prompt.tokenizer` naming the id space; no text is kept.
- `hashes`: content-free. The step's processed sequence S = P + O (prompt tokens, then output tokens) is
  cut into blocks of `block_size` tokens; each *full* block gets a keyed blake2b hash of its token ids
  (and of the tokenizer name, so ids of different vocabularies never match). `Prompt.block_hashes` holds
  the hashes of the full blocks of P (`num_tokens` // `block_size` of them), `Output.block_hashes` the
  hashes of the further full blocks of S. Their concatenation is exactly the block sequence of S, which
  is what `profiler.analysis` inserts for later steps; a later prompt that starts with S therefore
  matches block by block. Hashes are per-block content hashes (`chained` stays false). The key stays with
  the recorder (never written): without it, a dictionary of likely texts cannot be hashed to match.

At the `tokens` and `hashes` levels no free text is written anywhere else either: string attributes of
steps and runs (stop sequences, cache keys, response ids, error messages, values a user passed) become
keyed hashes (`"h:" + 16 hex digits`, equal strings still compare equal), error messages keep only the
exception's type, and only the labels the recorder itself writes (`SAFE_ATTRIBUTES`) stay readable.
Step, run, workflow, agent, chain and tool names are labels chosen in code and are kept.

Only the key's fingerprint (`hash_key_id`, 8 hex digits of a hash of the key) goes into the trace
header, so a reader can tell whether two traces share a key and are comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from profiler.errors import ConfigError
from profiler.tokens import StepTokenizer
from profiler.trace.model import CONTENT_LEVELS, Output, Prompt, Step

DEFAULT_BLOCK_SIZE = 16
HASH_KEY_ENV = "CTXPROF_HASH_KEY"
_MASK_63 = (1 << 63) - 1  # hashes stay below 2^63 so every JSON reader keeps them exact


def resolve_hash_key(key: bytes | str | None) -> bytes:
    """The key for block hashes: the one given, else `$CTXPROF_HASH_KEY`, else a fresh random key (then
    only traces from the same recorder are comparable)."""
    if key is None:
        key = os.environ.get(HASH_KEY_ENV) or None
    if key is None:
        return secrets.token_bytes(32)
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ConfigError(f"the block hash key is empty; set {HASH_KEY_ENV} or pass hash_key= a "
                          "non-empty secret")
    # blake2b keys are at most 64 bytes; longer secrets are condensed first.
    return raw if len(raw) <= 64 else hashlib.blake2b(raw, digest_size=64).digest()


def key_id(key: bytes) -> str:
    """A public fingerprint of a hash key (does not reveal the key)."""
    return hashlib.blake2b(b"ctxprof-key-id", key=key, digest_size=4).hexdigest()


def block_hashes(tokens: Sequence[int] | np.ndarray, block_size: int, key: bytes,
                 namespace: str) -> list[int]:
    """Keyed hashes of the full `block_size`-token blocks of `tokens`, in order."""
    ids = np.asarray(tokens, dtype=np.int64)
    n_blocks = ids.size // block_size
    salt = namespace.encode("utf-8") + b"\0"
    out = []
    for b in range(n_blocks):
        h = hashlib.blake2b(salt, key=key, digest_size=8)
        h.update(ids[b * block_size:(b + 1) * block_size].astype("<i8").tobytes())
        out.append(int.from_bytes(h.digest(), "little") & _MASK_63)
    return out


# Attributes whose values the recorder itself writes from a fixed vocabulary (never user text).
SAFE_ATTRIBUTES = frozenset({
    "api", "stream", "service_tier", "reasoning_effort", "incomplete", "usage_absent", "usage_partial",
    "output_not_recorded", "parallel_tool_calls", "framework", "span_kind", "source", "parent_step_id",
    "response_model", "tool_choice", "script", "framework_path", "framework_parent_id", "handoff_from",
    "handoff_to"})
# Attributes holding an error message: only the exception type before the first ':' is kept.
ERROR_ATTRIBUTES = frozenset({"error", "record_error"})


class ContentEncoder:
    """Convert text-level steps to a recorder's content level (see the module docstring)."""

    def __init__(self, level: str = "text", *, tokenizer: StepTokenizer | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE, hash_key: bytes | str | None = None) -> None:
        if level not in CONTENT_LEVELS:
            raise ConfigError(f"unknown content level {level!r}: use one of {', '.join(CONTENT_LEVELS)}")
        if block_size < 1:
            raise ConfigError(f"block_size must be at least 1, got {block_size}")
        self.level = level
        self.block_size = block_size
        self._tokenizer = tokenizer
        self._key = resolve_hash_key(hash_key) if level == "hashes" else b""

    @property
    def tokenizer(self) -> StepTokenizer:
        if self._tokenizer is None:
            self._tokenizer = StepTokenizer()
        return self._tokenizer

    def header_attributes(self) -> dict[str, object]:
        if self.level != "hashes":
            return {}
        return {"block_hash": "blake2b-64-keyed", "hash_key_id": key_id(self._key),
                "block_size": self.block_size}

    def scrub_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Attributes as written at this level: unchanged at `text`, else free of text (see above)."""
        if self.level == "text":
            return attributes
        out: dict[str, Any] = {}
        for key, value in attributes.items():
            if value is None or isinstance(value, (bool, int, float)):
                out[key] = value
            elif key in ERROR_ATTRIBUTES:
                head = str(value).split(":", 1)[0]
                out[key] = head if head.isidentifier() else self.hash_text(str(value))
            elif key in SAFE_ATTRIBUTES and isinstance(value, str):
                out[key] = value
            else:
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                                        default=str)
                out[key] = self.hash_text(text)
        return out

    def hash_text(self, text: str) -> str:
        key = self._key or self._text_key()
        return "h:" + hashlib.blake2b(text.encode("utf-8"), key=key, digest_size=8).hexdigest()

    def _text_key(self) -> bytes:
        # The tokens level has no block-hash key; attributes get a per-recorder random one.
        if not hasattr(self, "_attr_key"):
            self._attr_key = resolve_hash_key(None)
        return self._attr_key

    def encode(self, step: Step) -> Step:
        if self.level != "text":
            step = replace(step, attributes=self.scrub_attributes(dict(step.attributes)))
        if self.level == "text" or step.prompt.level not in ("text", "tokens"):
            return step
        tok = self.tokenizer
        prompt = tok.prompt_tokens(step)
        output = tok.output_tokens(step)
        namespace = tok.namespace(step)
        if self.level == "tokens":
            return replace(
                step,
                prompt=Prompt(token_ids=tuple(int(t) for t in prompt), tokenizer=namespace),
                output=Output(token_ids=tuple(int(t) for t in output), num_tokens=int(output.size),
                              finish_reason=step.output.finish_reason))
        seq = np.concatenate([prompt, output]) if output.size else prompt
        hashes = block_hashes(seq, self.block_size, self._key, namespace)
        n_prompt_blocks = prompt.size // self.block_size
        return replace(
            step,
            prompt=Prompt(block_hashes=tuple(hashes[:n_prompt_blocks]), block_size=self.block_size,
                          num_tokens=int(prompt.size)),
            output=Output(block_hashes=tuple(hashes[n_prompt_blocks:]), num_tokens=int(output.size),
                          finish_reason=step.output.finish_reason))
