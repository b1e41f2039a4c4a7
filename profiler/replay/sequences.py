"""Token sequences to replay: one prompt and one output sequence per LLM step, in the model's vocabulary.

Contract: `step_sequences(steps, vocab, ...)` returns one `StepSequence` per step, built from the first
source that applies (`StepSequence.source` says which):

- `trace-token-ids`: the step recorded token ids and they all fit the model's vocabulary: used as is.
- `model-tokenizer`: the model has a tokenizer (a local checkpoint) and the step has text: messages and
  tools rendered with the tokenizer's chat template (ChatML when it has none), raw text encoded.
- `mapped-token-ids`: token ids that do not fit the vocabulary, hashed into it.
- `mapped-ctxprof-tokens`: ctxprof's own tokenization (`profiler.tokens.StepTokenizer`) hashed into
  the vocabulary.
- `expanded-block-hashes`: content-free steps; each block hash becomes `block_size` token ids derived
  from the hash alone (prompts truncated to `num_tokens`).

The hash mapping is deterministic and seeded; it sends equal tokens of the same id space to equal ids
and never to the model's special ids, so the reuse structure of the trace survives (two distinct
tokens may collide, with probability about 1 / vocabulary size per pair). Outputs with no content
but a recorded length get ids unique to the step, so they repeat nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from profiler.errors import ProfilerError
from profiler.prefix.hashing import splitmix
from profiler.chat import render_message_body, render_tools
from profiler.tokens import StepTokenizer
from profiler.trace.model import Step

SOURCES = ("trace-token-ids", "model-tokenizer", "mapped-token-ids", "mapped-ctxprof-tokens",
           "expanded-block-hashes")

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class Vocabulary:
    """What sequence building needs to know of a model: its vocabulary size, the ids that must not
    appear in mapped sequences (special tokens), and its text tokenizer if it has one."""

    size: int
    special_ids: tuple[int, ...] = ()
    tokenizer: Any = None  # a transformers tokenizer (local checkpoint) or None

    def allowed_ids(self) -> np.ndarray:
        ids = np.arange(self.size, dtype=np.int64)
        if self.special_ids:
            ids = np.setdiff1d(ids, np.asarray(self.special_ids, dtype=np.int64))
        return ids


@dataclass(frozen=True)
class StepSequence:
    run_id: str
    step_id: str
    name: str | None
    prompt_ids: np.ndarray
    output_ids: np.ndarray
    source: str
    # Whether the output ids are the step's recorded output (False: filler of the recorded length).
    output_recorded: bool = True

    @property
    def prompt_tokens(self) -> int:
        return int(self.prompt_ids.size)

    @property
    def output_tokens(self) -> int:
        return int(self.output_ids.size)


def _salt(*parts: Any) -> np.uint64:
    raw = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return np.uint64(int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little"))


def map_token_ids(ids: np.ndarray, *, namespace: str, allowed: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hash token ids of id space `namespace` into `allowed` ids: equal ids map to equal ids."""
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    salt = _salt("ctxprof-vocab-map", seed, namespace)
    with np.errstate(over="ignore"):
        h = splitmix(ids.astype(np.int64).view(np.uint64) ^ salt)
    return allowed[(h % np.uint64(allowed.size)).astype(np.int64)]


def expand_block_hashes(hashes: Sequence[int], block_size: int, *, allowed: np.ndarray,
                        seed: int = 0) -> np.ndarray:
    """`block_size` token ids per block hash, a function of the hash alone (equal hash, equal ids)."""
    if not hashes:
        return np.zeros(0, dtype=np.int64)
    bases = np.array([_salt("ctxprof-block", seed, int(h)) for h in hashes], dtype=np.uint64)
    offsets = np.arange(block_size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = splitmix((bases[:, None] * np.uint64(0x100000001B3) + offsets[None, :]) & _MASK64)
    return allowed[(h.reshape(-1) % np.uint64(allowed.size)).astype(np.int64)]


def filler_ids(count: int, *, key: str, allowed: np.ndarray, seed: int = 0) -> np.ndarray:
    """`count` ids derived from `key` (unique to one step): content that repeats nothing."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = splitmix(np.arange(count, dtype=np.uint64) ^ _salt("ctxprof-filler", seed, key))
    return allowed[(h % np.uint64(allowed.size)).astype(np.int64)]


def _recorded_output_count(step: Step) -> int:
    return step.output.num_tokens or step.usage.output_tokens or 0


class SequenceBuilder:
    """Builds `StepSequence`s for a model vocabulary (see the module docstring)."""

    def __init__(self, vocab: Vocabulary, *, seed: int = 0, tokenizer: StepTokenizer | None = None,
                 block_size: int = 16) -> None:
        self.vocab = vocab
        self.seed = seed
        self.block_size = block_size
        self._allowed = vocab.allowed_ids()
        if self._allowed.size == 0:
            raise ProfilerError("the model's vocabulary has no ordinary (non-special) token ids")
        self._ctx_tokenizer = tokenizer or StepTokenizer()

    def build(self, step: Step) -> StepSequence:
        level = step.prompt.level
        if level == "tokens":
            ids = np.asarray(step.prompt.token_ids, dtype=np.int64)
            out = self._ctx_tokenizer.output_tokens(step)
            both = np.concatenate([ids, out]) if out.size else ids
            if both.size == 0 or (both.min() >= 0 and both.max() < self.vocab.size):
                return self._seq(step, ids, out, "trace-token-ids")
            ns = step.prompt.tokenizer or "unknown"
            return self._seq(step, self._map(ids, ns), self._map(out, ns), "mapped-token-ids")
        if level == "text":
            if self.vocab.tokenizer is not None:
                prompt, out = self._with_model_tokenizer(step)
                return self._seq(step, prompt, out, "model-tokenizer")
            ns = self._ctx_tokenizer.namespace(step)
            prompt = self._ctx_tokenizer.prompt_tokens(step)
            out = self._ctx_tokenizer.output_tokens(step)
            return self._seq(step, self._map(prompt, ns), self._map(out, ns), "mapped-ctxprof-tokens")
        if level == "hashes":
            p = step.prompt
            bs = p.block_size or self.block_size
            prompt = expand_block_hashes(p.block_hashes or (), bs, allowed=self._allowed, seed=self.seed)
            n = p.num_tokens if p.num_tokens is not None else prompt.size
            if prompt.size < n:
                prompt = np.concatenate([prompt, self._filler(n - prompt.size, step, "prompt-tail")])
            prompt = prompt[:n]
            if step.output.block_hashes:
                out = expand_block_hashes(step.output.block_hashes, bs, allowed=self._allowed,
                                          seed=self.seed)
                count = _recorded_output_count(step)
                out = out[:count] if count else out
                return self._seq(step, prompt, out, "expanded-block-hashes")
            return self._seq(step, prompt, np.zeros(0, dtype=np.int64), "expanded-block-hashes")
        raise ProfilerError(
            f"step {step.run_id}/{step.step_id}"
            + (f" (line {step.line})" if step.line else "")
            + " has no prompt content (no messages, text, token ids or block hashes) to replay; "
              "record it with content, or leave it out of the trace")

    def _seq(self, step: Step, prompt: np.ndarray, out: np.ndarray, source: str) -> StepSequence:
        recorded = True
        if out.size == 0 and _recorded_output_count(step) > 0:
            out, recorded = self._filler(_recorded_output_count(step), step, "output"), False
        return StepSequence(run_id=step.run_id, step_id=step.step_id, name=step.name,
                            prompt_ids=np.asarray(prompt, dtype=np.int64),
                            output_ids=np.asarray(out, dtype=np.int64), source=source,
                            output_recorded=recorded)

    def _map(self, ids: np.ndarray, namespace: str) -> np.ndarray:
        return map_token_ids(ids, namespace=namespace, allowed=self._allowed, seed=self.seed)

    def _filler(self, count: int, step: Step, part: str) -> np.ndarray:
        return filler_ids(count, key=f"{step.run_id}\x1f{step.step_id}\x1f{part}",
                          allowed=self._allowed, seed=self.seed)

    def _with_model_tokenizer(self, step: Step) -> tuple[np.ndarray, np.ndarray]:
        tok = self.vocab.tokenizer
        p = step.prompt
        answer = _answer_message(step)
        if p.messages is None:
            prompt = tok.encode(p.text or "", add_special_tokens=False)
            out = tok.encode(_answer_text(step), add_special_tokens=False) if answer else []
            return np.asarray(prompt, dtype=np.int64), np.asarray(out, dtype=np.int64)
        messages = [_plain_message(m) for m in p.messages]
        tools = [dict(t) for t in p.tools] if p.tools else None
        prompt = _render(tok, messages, tools, generation_prompt=True)
        if answer is None:
            return np.asarray(prompt, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # The output is what the template appends for the answer, so that a later step whose history
        # holds this answer continues the very sequence this step left behind.
        full = _render(tok, messages + [answer], tools, generation_prompt=False)
        if full[:len(prompt)] == prompt and len(full) > len(prompt):
            out = full[len(prompt):]
        else:
            out = tok.encode(answer["content"], add_special_tokens=False)
        return np.asarray(prompt, dtype=np.int64), np.asarray(out, dtype=np.int64)


def _plain_message(message: Mapping[str, Any]) -> dict[str, str]:
    """A message as `{role, content}` text, which every chat template accepts."""
    role = str(message.get("role", "user"))
    return {"role": role, "content": render_message_body(message)}


def _answer_message(step: Step) -> dict[str, str] | None:
    o = step.output
    if o.message is not None:
        return {"role": "assistant", "content": render_message_body(o.message)}
    if o.text is not None:
        return {"role": "assistant", "content": o.text}
    return None


def _answer_text(step: Step) -> str:
    answer = _answer_message(step)
    return "" if answer is None else answer["content"]


def _render(tok: Any, messages: list[dict[str, str]], tools: list[dict[str, Any]] | None, *,
            generation_prompt: bool) -> list[int]:
    if getattr(tok, "chat_template", None):
        try:
            ids = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=generation_prompt,
                                          tokenize=True, return_dict=False)
            if isinstance(ids, Mapping):  # some versions return a BatchEncoding regardless
                ids = ids["input_ids"]
            return [int(i) for i in ids]
        except Exception as e:  # a template that rejects a role or the tools
            raise ProfilerError(
                f"the model's chat template could not render a step ({type(e).__name__}: {e}); "
                "replay with a preset model (hash-mapped ctxprof tokens) instead") from None
    # No template: ChatML, as ctxprof's own rendering.
    text = ""
    if tools:
        text += f"<|im_start|>tools\n{render_tools(tools)}<|im_end|>\n"
    for m in messages:
        text += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    if generation_prompt:
        text += "<|im_start|>assistant\n"
    return list(tok.encode(text, add_special_tokens=False))


def step_sequences(steps: Iterable[Step], vocab: Vocabulary, *, seed: int = 0,
                   block_size: int = 16,
                   on_step: Callable[[StepSequence], None] | None = None) -> list[StepSequence]:
    builder = SequenceBuilder(vocab, seed=seed, block_size=block_size)
    out = []
    for step in steps:
        seq = builder.build(step)
        if on_step is not None:
            on_step(seq)
        out.append(seq)
    return out
