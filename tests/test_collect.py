"""`ctxprof collect`: the real OpenTelemetry SDK's OTLP/HTTP exporter (protobuf), driven by the real
OpenInference and OpenTelemetry openai-v2 instrumentations around the real openai SDK talking to the
local API server, and hand-sent JSON and malformed payloads."""

from __future__ import annotations

import gzip
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

from profiler.collect import Collector
from profiler.otel import export_otlp
from profiler.testing.fake_api import FakeLLMServer
from profiler.trace.io import load_trace
from profiler.usage import normalize_usage
from recording_helpers import records

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")


@pytest.fixture(scope="module")
def api() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(chunk_delay_s=0.0, first_token_delay_s=0.0) as s:
        yield s


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    with Collector(tmp_path / "collected.jsonl", port=0) as c:
        yield c


def _post(url: str, body: bytes, ctype: str = "application/json",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"content-type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _provider(collector: Collector) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=collector.endpoint + "/v1/traces")))
    return provider


def _calls(api: FakeLLMServer) -> None:
    client = openai.OpenAI(base_url=api.openai_base_url, api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": "What changed in the March invoice?"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                            stream_options={"include_usage": True}):
        pass


@pytest.mark.parametrize("instrumentation", ["openinference", "openai-v2"])
def test_the_real_exporter_and_instrumentations_record_into_the_trace(
        api: FakeLLMServer, collector: Collector, instrumentation: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an app instrumented with a real OpenTelemetry instrumentation, exporting OTLP protobuf
    provider = _provider(collector)
    if instrumentation == "openinference":
        pytest.importorskip("openinference.instrumentation.openai")
        from openinference.instrumentation.openai import OpenAIInstrumentor
    else:
        pytest.importorskip("opentelemetry.instrumentation.openai_v2")
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    before = len(api.log)
    try:
        # WHEN it makes calls
        _calls(api)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    served = api.log[before:]
    # THEN every call is a step of the collected trace, its usage as the server reported it
    steps = [s for s in records(collector.path, "step")]
    assert len(steps) == 2, steps
    assert collector.stats.rejected == 0
    by_input = sorted(s["usage"]["input_tokens"] for s in steps)
    assert by_input == sorted(normalize_usage(s.usage, "openai").input_tokens for s in served)
    assert all(s["model"] == "gpt-4o-mini" for s in steps)
    assert all(s["usage"]["output_tokens"] > 0 for s in steps)
    trace = load_trace(collector.path)  # a valid trace the analyzer reads
    assert len(trace.runs) == 2


def test_json_payloads_are_appended_and_retries_not_duplicated(collector: Collector,
                                                               tmp_path: Path) -> None:
    from builders import make_step, make_trace  # type: ignore[import-not-found]

    trace = make_trace([make_step(messages=[{"role": "user", "content": f"question {i}"}],
                                  answer=f"answer {i}", start=float(i + 1)) for i in range(3)])
    payload = json.dumps(export_otlp(trace)).encode()
    for _ in range(2):  # an exporter retrying the same batch
        assert _post(collector.endpoint + "/v1/traces", payload)[0] == 200
    gz = gzip.compress(payload)
    assert _post(collector.endpoint + "/v1/traces", gz,
                 headers={"content-encoding": "gzip"})[0] == 200
    steps = records(collector.path, "step")
    assert [s["output"]["message"]["content"] for s in steps] == ["answer 0", "answer 1", "answer 2"]


@pytest.mark.parametrize("body,ctype,needle", [
    (b"{not json", "application/json", "not JSON"),
    (b'{"resourceSpans": 3}', "application/json", "resourceSpans"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}', "application/json",
     "traceId"),
    (b"\xff\x00garbage", "application/x-protobuf", "protobuf"),
    (b"{}", "text/plain", "content-type"),
])
def test_a_malformed_payload_gets_400_with_a_message_and_the_server_keeps_running(
        collector: Collector, body: bytes, ctype: str, needle: str) -> None:
    status, reply = _post(collector.endpoint + "/v1/traces", body, ctype)
    assert status == 400 and needle in reply["message"]
    assert _post(collector.endpoint + "/v1/traces", b'{"resourceSpans": []}')[0] == 200
    assert collector.stats.rejected == 1


def test_oversized_payloads_are_refused_and_it_binds_to_localhost(tmp_path: Path) -> None:
    with Collector(tmp_path / "t.jsonl", port=0, max_body_bytes=100) as c:
        assert c.endpoint.startswith("http://127.0.0.1:")
        status, reply = _post(c.endpoint + "/v1/traces", b"{" + b" " * 200 + b"}")
        assert status == 413 and "limit" in reply["message"]
        assert _post(c.endpoint + "/v1/other", b"{}")[0] == 404
        bomb = gzip.compress(b" " * 10_000)  # small on the wire, over the limit once inflated
        assert len(bomb) < 100
        status, reply = _post(c.endpoint + "/v1/traces", bomb, headers={"content-encoding": "gzip"})
        assert status == 400 and "limit" in reply["message"]


def test_collect_is_a_cli_command() -> None:
    from typer.testing import CliRunner

    from profiler.cli import app as app_module

    app_module._register()
    result = CliRunner().invoke(app_module.app, ["collect", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and "/v1/traces" in result.output
    assert os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") is None


def test_a_killed_collector_leaves_every_received_step_readable(tmp_path: Path) -> None:
    import re
    import signal
    import subprocess
    import sys

    from builders import make_step, make_trace  # type: ignore[import-not-found]

    out = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "profiler", "collect", "-o", str(out),
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        endpoint = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)  # type: ignore[union-attr]
        trace = make_trace([make_step(messages=[{"role": "user", "content": "q"}], answer="a")])
        assert _post(endpoint + "/v1/traces", json.dumps(export_otlp(trace)).encode())[0] == 200
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    steps = load_trace(out).steps
    assert [s.output.message["content"] for s in steps] == ["a"]  # type: ignore[index]
