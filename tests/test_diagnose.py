"""Diagnosis of prefix-reuse breaks: position, cause, fix and savings on hand-built runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from profiler.analysis import analyze
from profiler.diagnose import diagnose, dynamic_value_at
from profiler.tokens import StepTokenizer
from profiler.trace.io import load_trace, write_trace
from profiler.trace.model import Output, Prompt, Step, Trace

ROOT = Path(__file__).resolve().parent.parent
K = 32

DOC = "\n\n".join(
    f"## Section {i}\nRefunds for order class {i} are approved when the invoice is settled, the customer "
    f"has no open dispute and the amount is below the limit of tier {i}. Escalate every other case to "
    f"a human agent with a summary of the ticket, the invoice state and the policy section."
    for i in range(1, 9))


@dataclass(frozen=True)
class _Price:
    input_usd_per_mtok: float | None
    cache_read_usd_per_mtok: float | None


class TinyPrices:
    """A two-model price table with the interface of `profiler.pricing.PriceTable.lookup` (the real
    table is not needed to test the arithmetic): gpt-4o at $2.50 / $1.25 per million tokens."""

    def lookup(self, model, provider):
        base = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model or "")  # dated snapshots share the price
        return {"gpt-4o": _Price(2.50, 1.25), "gpt-4o-mini": _Price(0.15, 0.075)}.get(base)


def step(i: int, messages: list[dict], answer: str, *, model: str = "gpt-4o", run: str = "r",
         tools: list[dict] | None = None) -> Step:
    return Step(run_id=run, step_id=f"{run}-{i}", model=model, provider="openai", start_unix_s=100.0 + i,
                prompt=Prompt(messages=tuple(messages), tools=None if tools is None else tuple(tools)),
                output=Output(message={"role": "assistant", "content": answer}))


def sys_msg(text: str) -> dict:
    return {"role": "system", "content": text}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def conversation(system_for, *, turns: int = 3, model_for=lambda i: "gpt-4o", user_for=None) -> Trace:
    """A chat whose history grows every turn; `system_for(i)` is turn i's system prompt."""
    steps, history = [], [user("Ticket 1: the customer asks for a refund of order A-17.")]
    for i in range(turns):
        answer = f"Answer {i}: checked the invoice and the policy; next I look at section {i + 2}."
        msgs = [sys_msg(system_for(i)), *(user_for(i, history) if user_for else history)]
        steps.append(step(i, msgs, answer, model=model_for(i)))
        history = history + [assistant(answer), user(f"Follow-up {i}: what about order B-{i}?")]
    return Trace.from_steps(steps)


def brute_force_lost(trace: Trace, tok: StepTokenizer) -> list[tuple[int, int]]:
    """ORACLE: per step, (first differing token vs the best earlier sequence, tokens after it inside a
    K-token window that occurs in that sequence, at most its length after the break), by plain list
    comparisons. The best sequence matches longest; the latest wins a tie."""
    seqs, out = [], []
    for s in trace.steps:
        p = tok.prompt_tokens(s).tolist()
        if seqs:
            def lcp(q):
                n = 0
                while n < min(len(p), len(q)) and p[n] == q[n]:
                    n += 1
                return n
            pos, best = max((lcp(q), i) for i, q in enumerate(seqs))
            source = seqs[best]
            windows = {tuple(source[j:j + K]) for j in range(len(source) - K + 1)}
            covered = [False] * len(p)
            for j in range(len(p) - K + 1):
                if tuple(p[j:j + K]) in windows:
                    for x in range(j, j + K):
                        covered[x] = True
            out.append((pos, min(sum(covered[pos:]), len(source) - pos)))
        seqs.append(p + tok.output_tokens(s).tolist())
    return out


# --- dynamic values -----------------------------------------------------------------------------------

def test_a_timestamp_at_the_top_of_the_system_prompt_is_found_with_position_and_savings():
    # GIVEN a chat whose system prompt starts with the current time, which changes every turn
    times = ["2025-11-24 16:00:00", "2025-11-24 16:05:30", "2025-11-24 16:11:02"]
    trace = conversation(lambda i: f"Current time: {times[i]}\nYou are a support agent.\n\n{DOC}")
    tok = StepTokenizer()
    oracle = brute_force_lost(trace, tok)
    # WHEN diagnosed with prices
    result = diagnose(trace, tokenizer=tok, prices=TinyPrices())
    # THEN one grouped finding: a timestamp in the system prompt, breaking steps 1 and 2
    assert len(result.findings) == 1
    f = result.findings[0]
    assert (f.kind, f.where, f.occurrences) == ("dynamic_value", "system prompt", 2)
    assert f.steps == ("r/r-1", "r/r-2") and (f.step_id, f.step_index) == ("r-1", 1)
    assert "timestamp" in f.detail and "timestamp" in f.fix and "end of the prompt" in f.fix
    # at the first token that differs, which lies inside the timestamp
    assert f.token_position == oracle[0][0]
    prompt = tok.prompt_tokens(trace.steps[1])
    decoded_head = tok.tokenizer(trace.steps[1]).decode(prompt[: f.token_position].tolist())
    assert decoded_head.endswith("Current time: 2025-11-24 16:0") or decoded_head.endswith(
        "Current time: 2025-11-24 16:")
    assert "16:00:00" in f.before_text and "16:05:30" in f.after_text
    # saving: the repeated tokens after the break that the fix makes a prefix, in both steps
    assert f.tokens_lost == oracle[0][1] + oracle[1][1]
    assert f.tokens_lost > 2 * 400  # (the system prompt alone is ~500 tokens)
    assert f.usd_lost == pytest.approx(f.tokens_lost * (2.50 - 1.25) / 1e6)


def test_unknown_prices_leave_dollars_unknown():
    trace = conversation(lambda i: f"Current time: 2025-11-24 16:0{i}:00\n{DOC}")
    assert diagnose(trace, prices=None).findings[0].usd_lost is None
    trace = conversation(lambda i: f"Current time: 2025-11-24 16:0{i}:00\n{DOC}", model_for=lambda i: "o9")
    assert diagnose(trace, prices=TinyPrices()).findings[0].usd_lost is None


@pytest.mark.parametrize("before,after,what", [
    ("request id: 5f0c2a9e-1b7d-4c8e-9f3a-2d6b8e1c4a70 then", "request id: 9a1b7c3d-2e4f-4a6b-8c0d-1e2f3a4b5c6d then",
     "uuid"),
    ("Request ID: req_8f2k3j4h5g then", "Request ID: req_1a2b3c4d5e then", "request id"),
    ("This is attempt 3 of 5", "This is attempt 4 of 5", "counter"),
    ("Today is November 24, 2025.", "Today is November 25, 2025.", "date"),
    ("epoch 1764000000 now", "epoch 1764000417 now", "timestamp"),
])
def test_dynamic_values_are_recognised_at_the_break(before, after, what):
    offset = next(i for i, (a, b) in enumerate(zip(before, after)) if a != b)
    assert dynamic_value_at(before, after, offset) == what


def test_ordinary_words_are_not_dynamic_values():
    assert dynamic_value_at("Plan the resolution", "Verify the execution", 0) is None


# --- reordering, rewriting, model changes ----------------------------------------------------------------

def _tool(name: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": f"{name.replace('_', ' ').capitalize()} for a customer account, with "
                                     "the audit trail, the policy checks and the approval state.",
        "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}}}}}


def test_reordered_tools_are_classified_with_the_break_inside_the_tools():
    # GIVEN the same four tools sent in another order in the second step
    tools = [_tool(n) for n in ("search_orders", "get_invoice", "issue_refund", "escalate_ticket")]
    s0 = step(0, [sys_msg(DOC), user("Ticket 7: refund order A-17.")], "Looking it up.", tools=tools)
    s1 = step(1, [sys_msg(DOC), user("Ticket 7: refund order A-17."), assistant("Looking it up."),
                  user("Any news?")], "Refund issued.", tools=[tools[2], tools[0], tools[1], tools[3]])
    trace = Trace.from_steps([s0, s1])
    tok = StepTokenizer()
    # WHEN diagnosed
    f, = diagnose(trace, tokenizer=tok).findings
    # THEN the cause is reordered tools, at the first differing token, with the system prompt lost
    assert (f.kind, f.where, f.step_id) == ("reordered", "tools", "r-1")
    pos, lost = brute_force_lost(trace, tok)[0]
    assert f.token_position == pos and f.tokens_lost == lost
    assert "search_orders" in f.before_text and "issue_refund" in f.after_text
    assert "fixed order" in f.fix


def test_an_edited_earlier_message_is_rewritten_history():
    # GIVEN a conversation whose first user message is edited in the third step while it continues
    first, edited = user(f"Ticket 9: {DOC[:400]}"), user(f"Ticket 9 (updated): {DOC[:400]}")

    def users(i, history):
        return [edited, *history[1:]] if i == 2 else history
    trace = conversation(lambda i: DOC, user_for=users)
    assert trace.steps[0].prompt.messages[1] != first  # (the builder's own first message is used)
    result = diagnose(trace)
    # THEN the break in message 1 is rewritten history, found once (step 2)
    f, = result.findings
    assert (f.kind, f.where, f.step_id) == ("rewritten_history", "message 1 (user)", "r-2")
    assert "edited" in f.detail and f.tokens_lost >= 64


def test_a_dropped_earlier_message_is_rewritten_history():
    # GIVEN a third step that drops the first exchange but keeps the rest of the history
    def users(i, history):
        return history[2:] if i == 2 else history
    trace = conversation(lambda i: DOC, user_for=users, turns=3)
    f, = diagnose(trace, min_tokens_lost=16).findings
    assert (f.kind, f.step_id) == ("rewritten_history", "r-2")
    assert "dropped" in f.detail


def test_an_answer_sent_back_in_another_form_is_rewritten_history():
    # GIVEN a step whose tool call comes back in the next prompt re-serialised (an extra field)
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    answer = {"role": "assistant", "content": "Checking.", "tool_calls": [call]}
    resent = {**answer, "tool_calls": [{**call, "index": 0}]}
    s0 = Step(run_id="r", step_id="r-0", model="gpt-4o", start_unix_s=1.0,
              prompt=Prompt(messages=(sys_msg(DOC), user("Ticket 3."))), output=Output(message=answer))
    s1 = step(1, [sys_msg(DOC), user("Ticket 3."), resent,
                  {"role": "tool", "tool_call_id": "call_1", "content": DOC[:600]}], "Done.")
    s2 = step(2, [sys_msg(DOC), user("Ticket 3."), resent,
                  {"role": "tool", "tool_call_id": "call_1", "content": DOC[:600]}, assistant("Done."),
                  user("Thanks, and order B?")], "Looking.")
    # WHEN diagnosed THEN step 1 is found (step 2 continues step 1 exactly)
    f, = diagnose(Trace.from_steps([s0, s1, s2]), min_tokens_lost=1).findings
    assert (f.kind, f.where, f.step_id) == ("rewritten_history", "message 2 (assistant)", "r-1")
    assert "answer" in f.detail and "exactly as it was returned" in f.fix


def test_a_model_change_loses_the_prefix_the_other_model_had():
    # GIVEN the same growing chat, with the second step on another model of the same tokenizer
    trace = conversation(lambda i: DOC, turns=2, model_for=lambda i: ["gpt-4o", "gpt-4o-mini"][i])
    f, = diagnose(trace, prices=TinyPrices()).findings
    # THEN the step's model cache has nothing: the break is at token 0 and the whole earlier
    # sequence it repeats (its prompt minus the new turn) is lost
    assert (f.kind, f.where, f.token_position, f.step_id) == ("model_change", "model", 0, "r-1")
    assert "gpt-4o" in f.before_text and "gpt-4o-mini" in f.after_text
    tok = StepTokenizer()
    p1 = tok.prompt_tokens(trace.steps[1]).tolist()
    s0 = tok.prompt_tokens(trace.steps[0]).tolist() + tok.output_tokens(trace.steps[0]).tolist()
    shared = next(i for i, (a, b) in enumerate(zip(p1, s0 + [-1])) if a != b)
    assert f.tokens_lost == shared
    assert f.usd_lost == pytest.approx(shared * (0.15 - 0.075) / 1e6)


def test_a_tokenizer_change_is_a_model_change_too():
    # gpt-4 (cl100k_base) then gpt-4o (o200k_base): the earlier text is re-tokenized to compare
    trace = conversation(lambda i: DOC, turns=2, model_for=lambda i: ["gpt-4", "gpt-4o"][i])
    f, = diagnose(trace).findings
    assert f.kind == "model_change" and "cl100k_base" in f.before_text and "o200k_base" in f.after_text


def test_append_only_histories_and_retries_have_no_findings():
    assert diagnose(conversation(lambda i: DOC, turns=4)).findings == ()
    same = [step(i, [sys_msg(DOC), user("Extract the fields.")], "{}") for i in range(3)]
    assert diagnose(Trace.from_steps(same)).findings == ()


# --- sample trace and CLI -----------------------------------------------------------------------------

SAMPLE = ROOT / "sample_traces" / "timestamp_prefix.jsonl"


@pytest.mark.skipif(not SAMPLE.exists(), reason="sample traces not present")
def test_timestamp_sample_names_the_timestamp_and_the_saving():
    trace = load_trace(SAMPLE)
    f = diagnose(trace, prices=TinyPrices()).findings[0]
    assert (f.kind, f.where) == ("dynamic_value", "system prompt")
    assert "Current time: 2025-11-24" in f.before_text and "timestamp" in f.fix
    repeated = sum(s.repeated_tokens for s in analyze(trace).steps)
    assert f.tokens_lost == repeated and f.occurrences == len(trace.steps) - 1
    assert f.usd_lost == pytest.approx(repeated * 1.25 / 1e6)


def _cli(argv: list[str]) -> int:
    from profiler.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def test_cli_diagnose_json(tmp_path, capsys):
    # GIVEN a trace file with the timestamp problem
    path = tmp_path / "t.jsonl"
    write_trace(conversation(lambda i: f"Now: 2025-11-24T16:0{i}:00Z\n{DOC}"), path)
    # WHEN `ctxprof diagnose --format json` runs
    code = _cli(["diagnose", str(path), "--format", "json"])
    # THEN it exits 0 and names the timestamp (dollars are known only where a price table is installed)
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out.out)
    assert data["schema"] == "ctxprof.diagnosis/1"
    finding = data["findings"][0]
    assert finding["kind"] == "dynamic_value" and finding["occurrences"] == 2
    assert finding["usd_lost"] is None or finding["usd_lost"] > 0


def test_cli_diagnose_table_to_a_file(tmp_path, capsys):
    path, report = tmp_path / "t.jsonl", tmp_path / "out" / "report.txt"
    write_trace(conversation(lambda i: f"Now: 2025-11-24T16:0{i}:00Z\n{DOC}"), path)
    # A missing folder is an error, not created behind the user's back
    assert _cli(["diagnose", str(path), "-o", str(report)]) == 2
    assert "does not exist" in capsys.readouterr().err
    report.parent.mkdir()
    assert _cli(["diagnose", str(path), "-o", str(report)]) == 0
    text = report.read_text()
    assert "dynamic_value" in text and "fix:" in text and "timestamp" in text
    assert f"Wrote {report}" in capsys.readouterr().err


def test_cli_diagnose_bad_trace_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert _cli(["diagnose", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "Traceback" not in err


def test_token_id_traces_are_diagnosed_with_ids_or_decoded_text():
    # GIVEN token-id steps: step 1 changes token 3 and repeats the 100 tokens after it
    body = list(range(1000, 1100))
    def tstep(i, ids, tokenizer):
        return Step(run_id="t", step_id=f"t-{i}", model="m", start_unix_s=float(i),
                    prompt=Prompt(token_ids=tuple(ids), tokenizer=tokenizer))
    for tokenizer, shown in ((None, "[7, 8, 9"), ("o200k_base", None)):
        trace = Trace.from_steps([tstep(0, [7, 8, 9, 1] + body, tokenizer),
                                  tstep(1, [7, 8, 9, 2] + body, tokenizer)])
        f, = diagnose(trace).findings
        # THEN the break is at token 3, the 100 repeated tokens are lost, and the text is shown as
        # ids without a tokenizer, decoded with one
        assert (f.kind, f.token_position, f.tokens_lost) == ("other", 3, 100)
        if shown:
            assert f.before_text.startswith(shown) and f.after_text.startswith(shown)
        else:
            assert "[" not in f.before_text[:3]


def test_an_answer_sent_back_with_its_keys_reordered_is_not_a_break():
    # The provider renders tool calls from their fields, so their JSON key order cannot break reuse.
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    answer = {"role": "assistant", "content": "Checking.", "tool_calls": [call]}
    reordered = {"role": "assistant", "content": "Checking.",
                 "tool_calls": [{"function": call["function"], "id": "call_1", "type": "function"}]}
    s0 = Step(run_id="r", step_id="r-0", model="gpt-4o", start_unix_s=1.0,
              prompt=Prompt(messages=(sys_msg(DOC), user("Ticket 3."))), output=Output(message=answer))
    s1 = step(1, [sys_msg(DOC), user("Ticket 3."), reordered, user("And?")], "Done.")
    assert diagnose(Trace.from_steps([s0, s1]), min_repeat=4, min_tokens_lost=1).findings == ()



def test_text_repeated_from_another_step_is_not_counted_as_lost():
    # GIVEN two steps with one time-stamped system prompt and different documents, and a third step
    # (new time) quoting both: repairing its timestamp lets it continue the second step's prefix, but
    # the first step's document, quoted after that, would still not be a prefix
    other = "\n\n".join(f"## Shipping rule {i}\nParcels to zone {i} leave the warehouse on weekdays "
                         f"before noon; heavy parcels of class {i} go by freight with a tracking link "
                         f"mailed to the buyer." for i in range(1, 9))
    s0 = step(0, [sys_msg("Time: 2025-11-24 16:00:00\nAgent."), user(f"Doc A:\n{other}")], "ok A")
    s1 = step(1, [sys_msg("Time: 2025-11-24 16:00:00\nAgent."), user(f"Doc B:\n{DOC}")], "ok B")
    s2 = step(2, [sys_msg("Time: 2025-11-24 16:09:41\nAgent."), user(f"Doc B:\n{DOC}"),
                  assistant("ok B"), user(f"Compare with doc A:\n{other}")], "done")
    trace = Trace.from_steps([s0, s1, s2])
    tok = StepTokenizer()
    # WHEN diagnosed
    f, = diagnose(trace, tokenizer=tok).findings
    # THEN the loss is what continues step 1 (the oracle's count) ...
    assert (f.kind, f.steps) == ("dynamic_value", ("r/r-2",))
    pos, lost = brute_force_lost(trace, tok)[1]
    assert (f.token_position, f.tokens_lost) == (pos, lost)
    assert lost <= tok.prompt_tokens(s1).size + tok.output_tokens(s1).size - pos
    # ... not every repeated token after the break (the old count, doc A included), which is far more
    old_count = analyze(trace).steps[2].repeated_tokens
    assert old_count - f.tokens_lost > 150


def test_a_changed_structured_output_schema_is_named_as_the_cause():
    from dataclasses import replace

    # GIVEN two steps with the same long context, the second asking for another JSON schema
    def with_schema(s: Step, props: list[str]) -> Step:
        fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
            "type": "object", "properties": {p: {"type": "string"} for p in props}}}}
        return replace(s, prompt=replace(s.prompt, response_format=fmt))
    s0 = with_schema(step(0, [sys_msg(DOC), user("Ticket 3: refund A-17?")], "Yes."), ["answer"])
    s1 = with_schema(step(1, [sys_msg(DOC), user("Ticket 3: refund A-17?"), assistant("Yes."),
                              user("And B-2?")], "No."), ["answer", "reason"])
    # WHEN diagnosed THEN the finding points at the schema, before the system prompt it repeats
    f, = diagnose(Trace.from_steps([s0, s1])).findings
    assert (f.kind, f.where) == ("other", "response format")
    assert f.tokens_lost > 400
