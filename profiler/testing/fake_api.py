"""A local HTTP server that answers like the OpenAI and Anthropic APIs, for offline tests and examples.

Endpoints: `POST /v1/chat/completions`, `POST /v1/responses` (OpenAI) and `POST /v1/messages`
(Anthropic), whole or streamed as server-sent events (`"stream": true`), with usage that includes
cached tokens: the server remembers every prompt it has seen and reports as cached the longest prefix
(in characters / 4, rounded down to `cache_granularity` tokens) that the new prompt shares with an
earlier one -- the same kind of figure a provider's prefix cache reports. For Anthropic, a request that
carries `cache_control` anywhere reports the uncached rest as a cache write.

Replies are deterministic. A request with tools whose last message is from the user gets a call of
its first tool; otherwise a text reply that quotes the last user message. `log` keeps, per request,
the path, the JSON body, whether an API key header came, the reply text and the usage the server sent, so tests can
compare what was recorded with what was served.

```python
with FakeLLMServer() as server:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
```
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                out.append(str(part.get("text") or part.get("content") or ""))
        return " ".join(out)
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


@dataclass
class Served:
    path: str
    body: dict[str, Any]
    had_api_key: bool
    usage: dict[str, Any] = field(default_factory=dict)
    reply: str = ""  # the text sent back (a tool call's JSON arguments when it called a tool)


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) makes the kernel reset connections when dozens of clients
    # connect at once, as the concurrency tests do.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        # A client that stops reading a stream early closes the socket: not an error here.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeLLMServer:
    """Start with `with FakeLLMServer() as s:` (or `start()` / `stop()`); see the module docstring."""

    def __init__(self, *, chunk_delay_s: float = 0.002, first_token_delay_s: float = 0.01,
                 cache_granularity: int = 16) -> None:
        self.chunk_delay_s = chunk_delay_s
        self.first_token_delay_s = first_token_delay_s
        self.cache_granularity = cache_granularity
        self.log: list[Served] = []
        self._seen: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeLLMServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-llm-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- cache model -----------------------------------------------------------------------------
    def _cached_tokens(self, prompt: str) -> int:
        with self._lock:
            best = 0
            for earlier in self._seen:
                n = min(len(earlier), len(prompt))
                i = 0
                while i < n and earlier[i] == prompt[i]:
                    i += 1
                best = max(best, i)
            self._seen.append(prompt)
        g = self.cache_granularity
        return (best // 4) // g * g

    def _record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)


def _reply_text(n: int, last_user: str) -> str:
    return f"Reply {n}: noted '{last_user[:60]}'. Next, check the facts and answer briefly."


class _Handler(BaseHTTPRequestHandler):
    server_owner: FakeLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        had_key = bool(self.headers.get("authorization") or self.headers.get("x-api-key"))
        path = self.path.split("?")[0]
        handlers = {"/v1/chat/completions": self._chat, "/v1/responses": self._responses,
                    "/v1/messages": self._messages}
        handler = handlers.get(path)
        if handler is None:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        served = Served(path=path, body=body, had_api_key=had_key)
        # Logged before answering (handlers fill in `usage` before the first byte goes out), so a
        # client that has its answer always finds the request in the log.
        self.server_owner._record(served)
        handler(body, served)

    # -- transport -------------------------------------------------------------------------------
    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: Iterator[tuple[str | None, Any]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        owner = self.server_owner
        first = True
        for name, data in events:
            if first:
                time.sleep(owner.first_token_delay_s)
                first = False
            else:
                time.sleep(owner.chunk_delay_s)
            payload = data if isinstance(data, str) else json.dumps(data)
            chunk = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()
        self.close_connection = True

    @staticmethod
    def _pieces(text: str, n: int = 4) -> list[str]:
        size = max(1, len(text) // n)
        return [text[i:i + size] for i in range(0, len(text), size)]

    # -- OpenAI chat completions -------------------------------------------------------------------
    def _chat(self, body: dict[str, Any], served: Served) -> None:
        owner = self.server_owner
        messages = body.get("messages") or []
        prompt = json.dumps([body.get("tools"), messages], sort_keys=True)
        prompt_tokens = _tokens(prompt)
        cached = min(owner._cached_tokens(prompt), prompt_tokens)
        last = messages[-1] if messages else {}
        last_user = _text_of(last.get("content"))
        n = len(owner.log)
        tool_call = None
        if body.get("tools") and last.get("role") == "user":
            fn = body["tools"][0].get("function", {}).get("name", "tool")
            tool_call = {"id": f"call_{n}", "type": "function",
                         "function": {"name": fn, "arguments": json.dumps({"query": last_user[:40]})}}
            text = None
        else:
            text = _reply_text(n, last_user)
        served.reply = text or tool_call["function"]["arguments"]  # type: ignore[index]
        completion_tokens = _tokens(served.reply)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
        model = body.get("model", "gpt-4o-mini")
        finish = "tool_calls" if tool_call else "stop"
        ident = f"chatcmpl-{n}"
        if not body.get("stream"):
            served.usage = usage
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if tool_call:
                message["tool_calls"] = [tool_call]
            self._json(200, {"id": ident, "object": "chat.completion", "created": 1_700_000_000,
                             "model": model, "choices": [{"index": 0, "message": message,
                                                          "finish_reason": finish, "logprobs": None}],
                             "usage": usage})
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        served.usage = usage if include_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"id": ident, "object": "chat.completion.chunk", "created": 1_700_000_000,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish_reason}]}

        def events() -> Iterator[tuple[str | None, Any]]:
            yield None, chunk({"role": "assistant", "content": ""})
            if tool_call:
                args = tool_call["function"]["arguments"]
                yield None, chunk({"tool_calls": [{"index": 0, "id": tool_call["id"], "type": "function",
                                                   "function": {"name": tool_call["function"]["name"],
                                                                "arguments": ""}}]})
                for piece in self._pieces(args):
                    yield None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            else:
                for piece in self._pieces(text or ""):
                    yield None, chunk({"content": piece})
            yield None, chunk({}, finish)
            if include_usage:
                yield None, {"id": ident, "object": "chat.completion.chunk", "created": 1_700_000_000,
                             "model": model, "choices": [], "usage": usage}
            yield None, "[DONE]"

        self._sse(events())

    # -- OpenAI Responses --------------------------------------------------------------------------
    def _responses(self, body: dict[str, Any], served: Served) -> None:
        owner = self.server_owner
        inp = body.get("input")
        prompt = json.dumps([body.get("instructions"), body.get("tools"), inp], sort_keys=True)
        input_tokens = _tokens(prompt)
        cached = min(owner._cached_tokens(prompt), input_tokens)
        if isinstance(inp, str):
            last_user = inp
        else:
            users = [i for i in (inp or []) if isinstance(i, dict) and i.get("role") == "user"]
            last_user = _text_of(users[-1].get("content")) if users else ""
        n = len(owner.log)
        text = _reply_text(n, last_user)
        served.reply = text
        output_tokens = _tokens(text)
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached},
                 "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": input_tokens + output_tokens}
        served.usage = usage
        model = body.get("model", "gpt-4o-mini")
        item = {"id": f"msg_{n}", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}

        def response(status: str, output: list[Any], with_usage: bool) -> dict[str, Any]:
            return {"id": f"resp_{n}", "object": "response", "created_at": 1_700_000_000,
                    "status": status, "model": model, "output": output, "parallel_tool_calls": True,
                    "tool_choice": "auto", "tools": body.get("tools") or [],
                    "usage": usage if with_usage else None, "error": None,
                    "incomplete_details": None, "instructions": body.get("instructions"),
                    "metadata": {}, "temperature": 1.0, "top_p": 1.0, "text": {"format": {"type": "text"}}}

        if not body.get("stream"):
            self._json(200, response("completed", [item], True))
            return

        def events() -> Iterator[tuple[str | None, Any]]:
            seq = iter(range(1000))
            yield "response.created", {"type": "response.created", "sequence_number": next(seq),
                                       "response": response("in_progress", [], False)}
            empty = {**item, "status": "in_progress", "content": []}
            yield "response.output_item.added", {"type": "response.output_item.added",
                                                 "sequence_number": next(seq), "output_index": 0,
                                                 "item": empty}
            part = {"type": "output_text", "text": "", "annotations": []}
            yield "response.content_part.added", {"type": "response.content_part.added",
                                                  "sequence_number": next(seq), "item_id": item["id"],
                                                  "output_index": 0, "content_index": 0, "part": part}
            for piece in self._pieces(text):
                yield "response.output_text.delta", {
                    "type": "response.output_text.delta", "sequence_number": next(seq),
                    "item_id": item["id"], "output_index": 0, "content_index": 0, "delta": piece,
                    "logprobs": []}
            yield "response.output_text.done", {"type": "response.output_text.done",
                                                "sequence_number": next(seq), "item_id": item["id"],
                                                "output_index": 0, "content_index": 0, "text": text,
                                                "logprobs": []}
            yield "response.content_part.done", {"type": "response.content_part.done",
                                                 "sequence_number": next(seq), "item_id": item["id"],
                                                 "output_index": 0, "content_index": 0,
                                                 "part": {**part, "text": text}}
            yield "response.output_item.done", {"type": "response.output_item.done",
                                                "sequence_number": next(seq), "output_index": 0,
                                                "item": item}
            yield "response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                         "response": response("completed", [item], True)}

        self._sse(events())

    # -- Anthropic messages ------------------------------------------------------------------------
    def _messages(self, body: dict[str, Any], served: Served) -> None:
        owner = self.server_owner
        messages = body.get("messages") or []
        prompt = json.dumps([body.get("tools"), body.get("system"), messages], sort_keys=True)
        total = _tokens(prompt)
        cache_read = min(owner._cached_tokens(prompt), total)
        cache_write = total - cache_read if "cache_control" in prompt else 0
        last = messages[-1] if messages else {}
        last_user = _text_of(last.get("content"))
        n = len(owner.log)
        if body.get("tools") and last.get("role") == "user" and isinstance(last.get("content"), str):
            block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_{n}",
                                     "name": body["tools"][0].get("name", "tool"),
                                     "input": {"query": last_user[:40]}}
            stop = "tool_use"
            out_text = json.dumps(block["input"])
        else:
            out_text = _reply_text(n, last_user)
            block = {"type": "text", "text": out_text}
            stop = "end_turn"
        served.reply = out_text
        output_tokens = _tokens(out_text)
        usage = {"input_tokens": total - cache_read - cache_write, "output_tokens": output_tokens,
                 "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write}
        served.usage = usage
        model = body.get("model", "claude-haiku-4-5")
        message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            self._json(200, message)
            return

        def events() -> Iterator[tuple[str | None, Any]]:
            start_usage = {**usage, "output_tokens": 1}
            yield "message_start", {"type": "message_start",
                                    "message": {**message, "content": [], "stop_reason": None,
                                                "usage": start_usage}}
            if block["type"] == "text":
                yield "content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}
                for piece in self._pieces(out_text):
                    yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": piece}}
            else:
                yield "content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {**block, "input": {}}}
                for piece in self._pieces(out_text):
                    yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "input_json_delta",
                                                            "partial_json": piece}}
            yield "content_block_stop", {"type": "content_block_stop", "index": 0}
            yield "message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": stop, "stop_sequence": None},
                                    "usage": {"output_tokens": output_tokens}}
            yield "message_stop", {"type": "message_stop"}

        self._sse(events())


def main() -> None:
    """Serve until interrupted (`python -m profiler.testing.fake_api`); prints the base URLs."""
    server = FakeLLMServer().start()
    print(f"OpenAI base_url:    {server.openai_base_url}\nAnthropic base_url: {server.anthropic_base_url}",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
