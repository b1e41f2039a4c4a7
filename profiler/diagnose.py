"""Diagnosis: where prefix reuse breaks although the content repeats, why, and what fixing it saves.

Contract: `diagnose(traces, analysis=None, tokenizer=None, prices=None)` returns a `Diagnosis`, a short
list of `Finding`s. For each run, each LLM step is compared with the earlier steps of its run on the
same model (a prefix cache belongs to one model): the step's prompt matches the best earlier sequence
(prompt + output) up to `token_position` and then differs. When the tokens after that position repeat
earlier context (windows of `min_repeat` tokens seen before, as `repeated_tokens` in the analyzer)
and there are at least `min_tokens_lost` of them, the break is a finding:

- `tokens_lost`: the tokens the fix would make prefix-reusable: the repeated tokens after the break
  that repeat the sequence the step is compared with (had the prompt not differed there, they would
  have continued its prefix), at most that sequence's length after the break. Text repeated from
  other steps is not counted: repairing this break would not make it a prefix. `usd_lost`: tokens_lost x (input price - cache-read price) of the
  step's model, from `prices.lookup(model, provider)` (an object with `input_usd_per_mtok` and
  `cache_read_usd_per_mtok`, or None); None when no price is known.
- `before_text` / `after_text`: the earlier sequence and this prompt around the break (shortened,
  decoded with the step's tokenizer; token ids where no tokenizer can decode them).
- `kind`, the cause, checked in this order:
  `model_change` -- an earlier step on another model (or tokenizer) had this context: the same-model
  prefix stops at `token_position`, the other model's sequence matches further;
  `dynamic_value` -- the differing text at the break is a timestamp, date, uuid, request/session id
  or counter (regular expressions that must cover the break on both sides);
  `reordered` -- the same tools, messages or paragraphs (retrieved passages) in another order;
  `rewritten_history` -- an earlier message was edited, dropped or had one inserted before it while
  the conversation continues after it;
  `other` -- anything else (e.g. tools added, or a step-specific instruction before shared content).
- `fix`: what to change, in one sentence.

Findings with the same cause at the same place (the same timestamp breaking every step, the same
reordering in every run) are grouped into one: the first occurrence's step and texts, `occurrences`,
the `steps` concerned and summed savings. Findings are sorted by tokens lost.

Costs: per run, linear in its tokens (the reuse index of `profiler.reuse`), plus for each break a
token-exact comparison with at most three candidate earlier steps and a decode of a few tokens.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from profiler.analysis import Analysis
from profiler.errors import ProfilerError
from profiler.reuse import ReuseIndex, _Powers, namespace_salt
from profiler.safe_text import is_boundary, trim_partial, visible
from profiler.chat import render_message_body
from profiler.tokens import StepTokenizer
from profiler.trace.model import Run, Step, Trace

DIAGNOSIS_SCHEMA = "ctxprof.diagnosis/1"
KINDS = ("dynamic_value", "reordered", "rewritten_history", "model_change", "other")


class _Price(Protocol):
    input_usd_per_mtok: float | None
    cache_read_usd_per_mtok: float | None


class PriceLookup(Protocol):
    def lookup(self, model: str | None, provider: str | None) -> _Price | None: ...


@dataclass(frozen=True)
class Finding:
    run_id: str
    step_id: str
    step_index: int  # position of the step among the LLM steps of its run
    token_position: int  # first prompt token that differs from the best earlier sequence
    kind: str
    before_text: str  # the earlier sequence around the break
    after_text: str  # this step's prompt around the break
    tokens_lost: int  # summed over occurrences
    usd_lost: float | None  # summed over occurrences whose price is known; None if none is
    fix: str
    detail: str
    occurrences: int = 1
    steps: tuple[str, ...] = ()  # "run_id/step_id" of every occurrence
    where: str = ""  # "tools", "system prompt", "message 2 (user)", "model"
    source_step_id: str | None = None  # the earlier step the first occurrence was compared with

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d


@dataclass(frozen=True)
class Diagnosis:
    findings: tuple[Finding, ...]
    min_tokens_lost: int = 64
    min_repeat: int = 32
    warnings: tuple[str, ...] = field(default=())

    @property
    def tokens_lost(self) -> int:
        return sum(f.tokens_lost for f in self.findings)

    @property
    def usd_lost(self) -> float | None:
        known = [f.usd_lost for f in self.findings if f.usd_lost is not None]
        return sum(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DIAGNOSIS_SCHEMA,
            "options": {"min_tokens_lost": self.min_tokens_lost, "min_repeat": self.min_repeat},
            "findings": [f.to_dict() for f in self.findings],
            "tokens_lost": self.tokens_lost,
            "usd_lost": self.usd_lost,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "diagnosis") -> "Diagnosis":
        """The inverse of `to_dict`; a malformed field raises `ProfilerError` naming it."""
        from profiler.records import expect_list, expect_mapping, record_from_dict

        d = expect_mapping(d, where)
        findings = tuple(
            record_from_dict(Finding, f, f"{where}.findings[{i}]", nested={
                "steps": tuple(str(s) for s in expect_list(expect_mapping(f, f"{where}.findings[{i}]"),
                                                           "steps", f"{where}.findings[{i}]"))})
            for i, f in enumerate(expect_list(d, "findings", where)))
        options = expect_mapping(d.get("options", {}), f"{where}.options")
        return record_from_dict(cls, options, f"{where}.options", nested={
            "findings": findings,
            "warnings": tuple(str(w) for w in expect_list(d, "warnings", where))})


# --- dynamic values ----------------------------------------------------------------------------------

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DYNAMIC_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (what, re.compile(rx, re.IGNORECASE)) for what, rx in (
        ("uuid", r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        ("timestamp", r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                      r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?"),
        ("date", r"\b\d{4}-\d{2}-\d{2}\b"),
        ("date", rf"\b(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"),
        ("date", rf"\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}"),
        ("date", r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
        ("timestamp", r"\b\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?(?:am|pm|Z|UTC|GMT))?"),
        ("timestamp", r"\b1[5-9]\d{8}(?:\d{3})?(?:\.\d+)?\b"),  # unix seconds or milliseconds
        ("request id", r"\b(?:request|req|session|trace|span|run|conversation|chat|call|correlation|"
                       r"message|msg|job|task)[ _-]?id\b\s*[:=#]?\s*[\"']?[\w-]{4,}"),
        ("request id", r"\b(?:req|sess|chatcmpl|msg|run|call|trace)[_-][A-Za-z0-9]{6,}"),
        ("id", r"\b[0-9a-f]{16,}\b"),
        ("counter", r"\b(?:step|turn|attempt|iteration|retry|round|try|call|page|loop)\s*(?:#|no\.?)?\s*\d+"),
        ("counter", r"#\d+\b"),
    ))


def dynamic_value_at(before: str, after: str, offset: int) -> str | None:
    """What kind of dynamic value spans character `offset` in both texts (which agree before it)."""
    for what, rx in _DYNAMIC_PATTERNS:
        if _spans(rx, before, offset) and _spans(rx, after, offset):
            return what
    return None


def _spans(rx: re.Pattern[str], text: str, offset: int) -> bool:
    return any(m.start() <= offset <= m.end() and m.end() > m.start() for m in rx.finditer(text)
               if m.start() <= offset)


# --- structure of a prompt -------------------------------------------------------------------------

def _digest(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def _message_key(m: Mapping[str, Any]) -> str:
    return _digest([m.get("role"), m.get("name"), render_message_body(m)])


def _units(step: Step, with_output: bool) -> tuple[list[str], list[Mapping[str, Any]]]:
    """(tool digests, messages) of a text step; with its output message appended when asked."""
    p = step.prompt
    tools = [_digest(t) for t in (p.tools or ())]
    if p.messages is not None:
        messages = list(p.messages)
    else:
        messages = [{"role": "user", "content": p.text or ""}]
    if with_output:
        o = step.output
        if o.message is not None:
            messages.append(o.message)
        elif o.text is not None:
            messages.append({"role": "assistant", "content": o.text})
    return tools, messages


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class _Cause:
    kind: str
    where: str
    detail: str
    fix: str
    label: str  # groups findings: same kind + where + label = same finding


def _where_message(k: int, message: Mapping[str, Any]) -> str:
    role = str(message.get("role", "?"))
    if k == 0 and role in ("system", "developer"):
        return "system prompt"
    return f"message {k} ({role})"


def _structural_cause(step: Step, source: Step) -> _Cause:
    """Why a text prompt differs from an earlier text step, at the level of tools and messages."""
    a_tools, a_msgs = _units(source, with_output=True)
    b_tools, b_msgs = _units(step, with_output=False)
    if a_tools != b_tools:
        if a_tools and sorted(a_tools) == sorted(b_tools):
            return _Cause("reordered", "tools", "the same tool definitions are sent in another order",
                          "send the tools in one fixed order (e.g. sorted by name) in every step",
                          "tools")
        how = ("added" if not a_tools else "removed" if not b_tools else "changed")
        return _Cause("other", "tools",
                      f"the tool definitions differ from the earlier step's ({how}); tools come before "
                      "the messages, so everything after them is computed again",
                      "send the same tool definitions in every step that shares this context (tools "
                      "are rendered before the messages)", f"tools {how}")
    if step.prompt.response_format != source.prompt.response_format:
        # The schema is rendered after the tools and before the messages.
        return _Cause("other", "response format",
                      "the structured-output schema differs from the earlier step's; the provider "
                      "puts it before the messages, so everything after it is computed again",
                      "ask for one schema in the steps that share this context, or move the "
                      "per-step output instructions into the last message", "response_format")
    a_keys = [_message_key(m) for m in a_msgs]
    b_keys = [_message_key(m) for m in b_msgs]
    k = 0
    while k < len(a_keys) and k < len(b_keys) and a_keys[k] == b_keys[k]:
        k += 1
    if k >= len(a_keys) or k >= len(b_keys):
        return _Cause("other", "prompt", "the prompt differs from the earlier step's inside its rendering",
                      "make the repeated part of the prompt byte-identical to what earlier steps sent",
                      "rendering")
    where = _where_message(k, b_msgs[k])
    answered = source.output.message is not None or source.output.text is not None
    if answered and k == len(a_msgs) - 1 and str(b_msgs[k].get("role")) == "assistant":
        return _Cause("rewritten_history", where,
                      f"{where} is the earlier step's answer, sent back in another form than the model "
                      "returned it (e.g. re-serialised tool calls, stripped or added fields)",
                      "send the assistant's answer back exactly as it was returned", "answer re-serialised")
    a_later, b_later = a_keys[k] in b_keys[k + 1:], b_keys[k] in a_keys[k + 1:]
    if a_later and b_later:
        return _Cause("reordered", where, f"earlier messages are sent in another order from {where} on",
                      "keep earlier messages in their original order and append new ones at the end",
                      "messages")
    if b_later:
        return _Cause("rewritten_history", where,
                      f"{where} of the earlier prompt was dropped while later messages were kept",
                      "keep the history append-only; if it must be trimmed, trim rarely and in one go "
                      "so the trimmed prefix is reused afterwards", "dropped")
    if a_later:
        return _Cause("rewritten_history", where,
                      f"a new message was inserted at {where}, before history sent earlier",
                      "append new messages after the existing history instead of inserting them earlier",
                      "inserted")
    a_text = render_message_body(a_msgs[k])
    b_text = render_message_body(b_msgs[k])
    # Inside the message: are its lines (retrieved passages, list items) the earlier ones reordered?
    a_lines, b_lines = _lines(a_text), _lines(b_text)
    d = 0
    while d < len(a_lines) and d < len(b_lines) and a_lines[d] == b_lines[d]:
        d += 1
    shared = set(a_lines[d:]) & set(b_lines[d:])
    moved = d < len(a_lines) and d < len(b_lines) and (b_lines[d] in a_lines[d + 1:]
                                                       or a_lines[d] in b_lines[d + 1:])
    if moved or (len(shared) >= 2 and [x for x in a_lines[d:] if x in shared]
                 != [x for x in b_lines[d:] if x in shared]):
        return _Cause("reordered", where,
                      f"{where} carries lines sent before (e.g. retrieved passages) in another order",
                      "keep repeated passages in a stable order (e.g. by document id) and add new "
                      "ones after those already sent", "lines")
    if k < len(b_msgs) - 1:
        shorter = len(b_text) < 0.5 * len(a_text)
        return _Cause("rewritten_history", where,
                      f"{where} was {'shortened (summarised?)' if shorter else 'edited'} after it was "
                      "sent, and the conversation continues after it",
                      "do not edit sent messages: append corrections as new messages (or compact the "
                      "history rarely, in one go)", "summarised" if shorter else "edited")
    return _Cause("other", where,
                  f"{where}, the newest message, starts differently from the earlier step's and then "
                  "repeats earlier context",
                  "put the step-specific text after the content it shares with earlier steps",
                  "leading text")


def _dynamic_cause(what: str, where: str) -> _Cause:
    top = where in ("system prompt", "tools") or where.startswith("message 0")
    if top:
        fix = (f"move the {what} from the top of the {where} to the end of the prompt (e.g. the newest "
               f"message), or make it coarser (e.g. the date only)")
    else:
        fix = f"move the {what} after the content that repeats (to the end of the prompt)"
    return _Cause("dynamic_value", where,
                  f"a {what} in the {where} changes between steps, so nothing after it is reused",
                  fix, what)


# --- per run -------------------------------------------------------------------------------------------

@dataclass
class _Occurrence:
    run_id: str
    step: Step
    step_index: int
    source: Step | None
    position: int
    cause: _Cause
    before: str
    after: str
    tokens_lost: int


def _lcp(a: np.ndarray, b: np.ndarray) -> int:
    n = min(a.size, b.size)
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def _decoder(tok: StepTokenizer, step: Step):
    """The step's tokenizer's `decode`, or None (token ids of an unnamed or unavailable tokenizer)."""
    if step.prompt.level == "tokens" and not step.prompt.tokenizer:
        return None
    try:
        return getattr(tok.tokenizer(step), "decode", None)
    except ProfilerError:
        return None


def _show(decode, ids: np.ndarray) -> str:
    if decode is None:
        return "[" + ", ".join(str(int(i)) for i in ids) + "]"
    # A token slice can begin or end inside a multi-byte character; drop the halves it decodes to.
    return trim_partial(decode([int(i) for i in ids]))


def _short(text: str, offset: int, *, cut_before: bool, before: int = 40, after: int = 50) -> str:
    """`text` around character `offset`, newlines shown as \\n, with an ellipsis where it was cut
    (`cut_before`: the text itself starts inside the prompt)."""
    start = max(0, offset - before)
    while start > 0 and not is_boundary(text, start):
        start -= 1  # never split an emoji or a letter from its accents
    end = min(len(text), offset + after)
    while end < len(text) and not is_boundary(text, end):
        end += 1
    piece = visible(text[start:end].replace("\n", "\\n"))
    return ("…" if start > 0 or cut_before else "") + piece + ("…" if end < len(text) else "")


class _RunDiagnoser:
    CONTEXT_TOKENS = 16  # decoded before the break (shared by both sides)
    DIFF_TOKENS = 24  # decoded after it

    def __init__(self, tok: StepTokenizer, min_repeat: int, min_tokens_lost: int) -> None:
        self.tok = tok
        self.k = min_repeat
        self.min_lost = min_tokens_lost
        self.powers = _Powers()

    def run(self, run: Run) -> list[_Occurrence]:
        llm = [s for s in run.steps if s.kind == "llm"]
        content = [(i, s) for i, s in enumerate(llm) if s.prompt.level in ("text", "tokens")]
        if len(content) < 2:
            return []
        tok = self.tok
        spaces = {(s.model, tok.namespace(s)) for _, s in content}
        cross_model = len(spaces) > 1
        same: dict[tuple[str | None, str], ReuseIndex] = {}
        cross: dict[str, tuple[ReuseIndex, list[int], StepTokenizer]] = {}
        steps: list[Step] = []
        seqs: list[np.ndarray] = []
        found: list[_Occurrence] = []
        for ordinal, (index, step) in enumerate(content):
            prompt = tok.prompt_tokens(step)
            output = tok.output_tokens(step)
            seq = np.concatenate([prompt, output]) if output.size else prompt
            ns = tok.namespace(step)
            reuse = same.setdefault((step.model, ns), ReuseIndex(self.k, self.powers))
            hashes = reuse.hashes(seq, namespace_salt(f"{ns}|{step.model}"))
            match = reuse.match(int(prompt.size), hashes)
            reuse.insert(hashes, ordinal, match)
            occurrence = None
            if cross_model:
                occurrence = self._model_change(run, index, step, ordinal, prompt, seq, ns, match.prefix,
                                                cross, steps)
            if occurrence is None and ordinal > 0:
                occurrence = self._break(run, index, step, ordinal, prompt, match, steps, seqs)
            if occurrence is not None:
                found.append(occurrence)
            steps.append(step)
            seqs.append(seq)
        return found

    # A step on another model (or tokenizer) had this context: a cache of this model cannot serve it.
    def _model_change(self, run: Run, index: int, step: Step, ordinal: int, prompt: np.ndarray,
                      seq: np.ndarray, ns: str, same_prefix: int,
                      cross: dict[str, tuple[ReuseIndex, list[int], StepTokenizer]],
                      earlier: list[Step]) -> _Occurrence | None:
        tok = self.tok
        if ns not in cross:
            fixed = tok.tokenizer(step) if step.prompt.level == "text" else None
            retok = StepTokenizer(tokenizer_for=(lambda s, t=fixed: t)) if fixed is not None else tok
            cross[ns] = (ReuseIndex(self.k, self.powers), [], retok)
        index_x, members, retok = cross[ns]
        salt = namespace_salt(ns)
        for j in range(len(members), ordinal):  # bring the earlier steps into this id space once
            prev = earlier[j]
            if prev.prompt.level == "text" and retok is not tok:
                p, o = retok.prompt_tokens(prev), retok.output_tokens(prev)
            elif tok.namespace(prev) == ns:
                p, o = tok.prompt_tokens(prev), tok.output_tokens(prev)
            else:
                members.append(j)
                continue
            s = np.concatenate([p, o]) if o.size else p
            h = index_x.hashes(s, salt)
            index_x.insert(h, j)
            members.append(j)
        h = index_x.hashes(seq, salt)
        match = index_x.match(int(prompt.size), h)
        index_x.insert(h, ordinal, match)
        members.append(ordinal)
        if match.prefix_source is None or match.prefix - same_prefix < self.min_lost:
            return None
        source = earlier[match.prefix_source]
        if (source.model, tok.namespace(source)) == (step.model, ns):
            return None
        before = f"model {source.model or '?'} ({tok.namespace(source)})"
        after = f"model {step.model or '?'} ({ns})"
        cause = _Cause("model_change", "model",
                       f"step {source.step_id} ran this context on {source.model or 'another model'}; "
                       f"this step uses {step.model or 'another model'}, whose cache has none of it",
                       "run the steps that share this context on one model (a prefix cache belongs to "
                       "one model), or switch models where little context is shared",
                       f"{source.model}->{step.model}")
        return _Occurrence(run.run_id, step, index, source, same_prefix, cause, before, after,
                           match.prefix - same_prefix)

    def _break(self, run: Run, index: int, step: Step, ordinal: int, prompt: np.ndarray, match,
               steps: list[Step], seqs: list[np.ndarray]) -> _Occurrence | None:
        position = match.prefix
        if position >= prompt.size:
            return None
        if int(match.covered[position:].sum()) < self.min_lost:
            return None  # (an upper bound of what the fix saves: nothing to find)
        source_ordinal = self._best_source(step, prompt, match, steps, seqs, ordinal)
        if source_ordinal is None:
            return None
        source, source_seq = steps[source_ordinal], seqs[source_ordinal]
        if _lcp(prompt, source_seq) >= source_seq.size:
            return None  # the prompt extends that sequence: nothing breaks here
        lost = self._fixable(prompt, source_seq, position, match.covered)
        if lost < self.min_lost:
            return None
        decode = _decoder(self.tok, step)
        start = max(0, position - self.CONTEXT_TOKENS)
        head = _show(decode, prompt[start:position])
        before = _show(decode, source_seq[start:position + self.DIFF_TOKENS])
        after = _show(decode, prompt[start:position + self.DIFF_TOKENS])
        cause = None
        structural = None
        if step.prompt.level == "text" and source.prompt.level == "text":
            structural = _structural_cause(step, source)
        if decode is not None:
            what = dynamic_value_at(before, after, len(head))
            if what is not None:
                where = structural.where if structural is not None else "prompt"
                cause = _dynamic_cause(what, where)
        if cause is None:
            cause = structural or _Cause("other", "prompt", "the prompt differs from the earlier "
                                         "sequence here and repeats earlier context after it",
                                         "put what changes after what repeats", "tokens")
        return _Occurrence(run.run_id, step, index, source, position, cause,
                           _short(before, len(head), cut_before=start > 0),
                           _short(after, len(head), cut_before=start > 0), lost)

    def _fixable(self, prompt: np.ndarray, source_seq: np.ndarray, position: int,
                 covered: np.ndarray) -> int:
        """Tokens the fix would make prefix-reusable: with the break repaired, the prompt could match
        the source sequence past `position`, so what it gains is the repeated tokens after the break
        that repeat *that sequence* (windows of `k` tokens found in it), and never more than the
        source has after the break. Text repeated from other steps stays unreusable after the fix."""
        k = self.k
        if prompt.size - position < k or source_seq.size < k:
            return 0
        index = ReuseIndex(k, self.powers)
        in_source = np.isin(index.hashes(prompt, 0).window[position:], index.hashes(source_seq, 0).window)
        # Token t lies in a window of the source when some window starting in (t - k, t] was found.
        marks = np.zeros(prompt.size + 1, dtype=np.int64)
        starts = np.flatnonzero(in_source) + position
        np.add.at(marks, starts, 1)
        np.add.at(marks, starts + k, -1)
        inside = np.cumsum(marks[:-1]) > 0
        inside[:position] = False
        return min(int((inside & covered).sum()), int(source_seq.size) - position)

    def _best_source(self, step: Step, prompt: np.ndarray, match, steps: list[Step],
                     seqs: list[np.ndarray], ordinal: int) -> int | None:
        """The earlier same-model step to compare with: among the step that first had the matched
        prefix and the two latest ones, the one matching longest (latest on ties)."""
        candidates = {o for o in (match.prefix_source, ordinal - 1, ordinal - 2) if o is not None and o >= 0}
        candidates = {o for o in candidates if steps[o].model == step.model}
        if not candidates:
            covered = match.sources[match.sources >= 0]
            if not covered.size:
                return None
            candidates = {int(np.bincount(covered).argmax())}
        return max(candidates, key=lambda o: (_lcp(prompt, seqs[o]), o))


# --- grouping and pricing --------------------------------------------------------------------------------

def _usd(prices: PriceLookup | None, step: Step, tokens: int) -> float | None:
    if prices is None:
        return None
    price = prices.lookup(step.model, step.provider)
    if price is None or price.input_usd_per_mtok is None or price.cache_read_usd_per_mtok is None:
        return None
    return tokens * (price.input_usd_per_mtok - price.cache_read_usd_per_mtok) / 1e6


def _group(occurrences: Sequence[_Occurrence], prices: PriceLookup | None) -> list[Finding]:
    groups: dict[tuple[str, str, str], list[_Occurrence]] = {}
    for occ in occurrences:
        # "message 6 (assistant)" and "message 8 (assistant)" are the same cause at a later turn
        where = re.sub(r"^message \d+ ", "message ", occ.cause.where)
        groups.setdefault((occ.cause.kind, where, occ.cause.label), []).append(occ)
    findings = []
    for items in groups.values():
        first = items[0]
        usd = [_usd(prices, o.step, o.tokens_lost) for o in items]
        known = [u for u in usd if u is not None]
        runs = {o.run_id for o in items}
        detail = first.cause.detail
        if len(items) > 1:
            detail += f" ({len(items)} steps in {len(runs)} run{'s' if len(runs) > 1 else ''})"
        findings.append(Finding(
            run_id=first.run_id, step_id=first.step.step_id, step_index=first.step_index,
            token_position=first.position, kind=first.cause.kind, before_text=first.before,
            after_text=first.after, tokens_lost=sum(o.tokens_lost for o in items),
            usd_lost=sum(known) if known else None, fix=first.cause.fix, detail=detail,
            occurrences=len(items), steps=tuple(f"{o.run_id}/{o.step.step_id}" for o in items),
            where=first.cause.where, source_step_id=None if first.source is None else first.source.step_id))
    findings.sort(key=lambda f: (-f.tokens_lost, f.run_id, f.step_index))
    return findings


def diagnose(traces: Trace | Iterable[Trace], *, analysis: Analysis | None = None,
             tokenizer: StepTokenizer | None = None, prices: PriceLookup | None = None,
             min_repeat: int = 32, min_tokens_lost: int = 64,
             progress: Callable[[int, int], None] | None = None) -> Diagnosis:
    """Find where prefix reuse breaks in each run although the content repeats (see module docstring).
    `progress`, when given, is called with (steps, tokens) after each run.

    `analysis`, when given, lets runs that cannot have a finding be skipped: those with one model
    whose steps repeat fewer than `min_tokens_lost` tokens.
    """
    trace_list = [traces] if isinstance(traces, Trace) else list(traces)
    tok = tokenizer or StepTokenizer()
    worth: set[str] | None = None
    if analysis is not None:
        worth = {r.run_id for r in analysis.runs
                 if any(s.repeated_tokens >= min_tokens_lost for s in r.steps)
                 or len({s.model for s in r.steps}) > 1}
    diagnoser = _RunDiagnoser(tok, min_repeat, min_tokens_lost)
    occurrences: list[_Occurrence] = []
    warnings = [w for t in trace_list for w in t.warnings]
    for trace in trace_list:
        for run in trace.runs:
            if worth is None or run.run_id in worth:
                occurrences += diagnoser.run(run)
            if progress is not None:
                llm = [s for s in run.steps if s.kind == "llm"]
                progress(len(llm), sum(s.prompt.num_tokens or 0 for s in llm))
    if any(s.prompt.level == "hashes" for t in trace_list for s in t.steps):
        warnings.append("content-free steps (block hashes only) carry no text to diagnose; they were "
                        "left out")
    if prices is None and occurrences:
        warnings.append("no price table: dollars are unknown")
    return Diagnosis(findings=tuple(_group(occurrences, prices)), min_tokens_lost=min_tokens_lost,
                     min_repeat=min_repeat, warnings=tuple(warnings))
