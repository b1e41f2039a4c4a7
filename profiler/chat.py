"""Chat rendering: the text a provider builds from a prompt's parts (message contents, tool calls,
tool definitions, a structured-output format), before tokenization.

Contract: pure functions from trace data to text, the same text for the same content whatever key
order or client serialised it: `render_content`, `render_message_body`, `render_tools`,
`render_response_format`, `role_header` (the `<|im_start|>` line of a message). `profiler.tokens`
assembles them into one ChatML-like sequence per step; the importers, the provider cache simulators,
the diagnosis and replay use them to find where a prompt's parts start.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence


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


def role_header(message: Mapping[str, Any]) -> str:
    role = str(message.get("role", "user"))
    name = message.get("name")
    return f"{role} name={name}" if isinstance(name, str) and name else role
