"""`ctxprof collect`: an OTLP/HTTP receiver that appends GenAI spans to a trace file as they arrive.

Any OpenTelemetry-instrumented application (any language) records into ctxprof by exporting to it:
`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`. Contract:

- `POST /v1/traces` with an `ExportTraceServiceRequest`, JSON (`application/json`) or protobuf
  (`application/x-protobuf`, decoded with `opentelemetry-proto`, the `ctxprof[collect]` extra, into the
  same dict shape), optionally gzip-compressed. Each payload is mapped with
  `profiler.otel.trace_of_request` and its runs and steps are appended at once, one flushed
  line per record (the recorder's `TraceWriter`), so a killed collector leaves every received step
  readable.
- Memory is bounded: a payload is at most `max_body_bytes` (413 otherwise) and is not kept after it
  is written; only the ids of written runs and steps are remembered (at most `max_remembered`, oldest
  forgotten first) so an exporter's retry of a batch is not written twice.
- A malformed payload gets HTTP 400 with a one-line message (the field that is wrong); the server
  keeps serving. Unknown paths get 404.
- It binds to 127.0.0.1 unless told otherwise: spans carry prompts.
- Steps are named as the importer names them: the nearest enclosing agent span *in the same payload*
  (exporters batch, so an agent span that ends later may come in a later payload), else the span name.
"""

from __future__ import annotations

import base64
import zlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from profiler.errors import ConfigError, TraceFormatError
from profiler.trace.io import TraceWriter
from profiler.trace.model import TraceHeader

DEFAULT_PORT = 4318  # the OTLP/HTTP port exporters use by default
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_REMEMBERED = 200_000
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


@dataclass(frozen=True)
class CollectStats:
    payloads: int
    steps_written: int
    rejected: int


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """An OTLP protobuf `ExportTraceServiceRequest` in the OTLP JSON dict shape (hex ids)."""
    try:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise ConfigError("protobuf OTLP needs opentelemetry-proto: pip install 'ctxprof[collect]' "
                          "(or export JSON: OTEL_EXPORTER_OTLP_PROTOCOL=http/json)") from None
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as e:
        raise TraceFormatError(f"not an OTLP protobuf ExportTraceServiceRequest ({e})") from None
    request = MessageToDict(message)
    # Protobuf JSON writes bytes as base64; OTLP JSON writes trace and span ids as hex.
    for rs in request.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in _ID_FIELDS:
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    request.setdefault("resourceSpans", [])
    return request


class Collector:
    """Receives OTLP/HTTP payloads and appends their steps to `path` (see the module docstring)."""

    def __init__(self, path: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_remembered: int = DEFAULT_MAX_REMEMBERED, fsync: bool = False) -> None:
        self.path = Path(path)
        self.host = host
        self.requested_port = port
        self.max_body_bytes = max_body_bytes
        self.max_remembered = max_remembered
        header = TraceHeader(producer="ctxprof", content_level="text",
                             attributes={"source": "otlp-http"})
        self._writer = TraceWriter(self.path, header, fsync=fsync)
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, None] = OrderedDict()
        self._steps: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._payloads = self._written = self._rejected = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the mapping ---------------------------------------------------------------------------------
    def ingest(self, request: dict[str, Any]) -> int:
        """Append the steps of one decoded payload; returns how many were written."""
        from profiler.otel import trace_of_request

        trace = trace_of_request(request, source="otlp-http")
        written = 0
        with self._lock:
            self._payloads += 1
            for run in trace.runs:
                if run.run_id not in self._runs:
                    self._remember(self._runs, run.run_id)
                    self._writer.write_run(run)
                for step in run.steps:
                    key = (step.run_id, step.step_id)
                    if key in self._steps:
                        continue  # an exporter's retry of a batch already written
                    self._remember(self._steps, key)
                    self._writer.write_step(step)
                    written += 1
            self._written += written
        return written

    def _remember(self, seen: "OrderedDict[Any, None]", key: Any) -> None:
        seen[key] = None
        while len(seen) > self.max_remembered:
            seen.popitem(last=False)

    def reject(self) -> None:
        with self._lock:
            self._rejected += 1

    @property
    def stats(self) -> CollectStats:
        with self._lock:
            return CollectStats(self._payloads, self._written, self._rejected)

    # -- the server ----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "collector not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "Collector":
        owner = self

        class Handler(_Handler):
            collector = owner

        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="ctxprof-collect")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.start()
        assert self._thread is not None
        self._thread.join()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._writer.close()

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes (a small gzip body can expand to gigabytes)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise TraceFormatError(f"gzip body could not be decompressed ({e})") from None
    if len(out) > limit:
        raise TraceFormatError(f"decompressed payload exceeds the {limit}-byte limit; export "
                               "smaller batches")
    return out


class _Handler(BaseHTTPRequestHandler):
    collector: Collector
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        path = self.path.split("?")[0].rstrip("/")
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.collector.max_body_bytes:
            self._reply(413, f"payload of {length} bytes refused (limit "
                             f"{self.collector.max_body_bytes}; export smaller batches)")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        if path != "/v1/traces":
            self._reply(404, f"no route {path}: send traces to /v1/traces")
            return
        try:
            request = self._decode(body)
            self.collector.ingest(request)
        except (TraceFormatError, ConfigError) as e:
            self.collector.reject()
            self._reply(400, str(e))
            return
        self._reply(200, None)

    def _decode(self, body: bytes) -> dict[str, Any]:
        if (self.headers.get("content-encoding") or "").lower() == "gzip":
            body = _gunzip(body, self.collector.max_body_bytes)
        ctype = (self.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-protobuf":
            return decode_protobuf(body)
        if ctype not in ("application/json", ""):
            raise TraceFormatError(f"unsupported content-type {ctype!r}: send application/json or "
                                   "application/x-protobuf")
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TraceFormatError(f"body is not JSON ({e})") from None
        if not isinstance(request, dict):
            raise TraceFormatError("expected an ExportTraceServiceRequest object",
                                   field="resourceSpans")
        return request

    def _reply(self, status: int, message: str | None) -> None:
        protobuf = (self.headers.get("content-type") or "").startswith("application/x-protobuf")
        if status == 200:
            # An empty ExportTraceServiceResponse (no partial success), in the request's encoding.
            data, ctype = (b"", "application/x-protobuf") if protobuf else (b"{}", "application/json")
        else:
            data, ctype = json.dumps({"code": status, "message": message}).encode(), "application/json"
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
