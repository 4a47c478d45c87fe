"""OpenTelemetry tracing (HUB_OTEL_ENABLED): a real `hub serve` exporting OTLP/HTTP to a real
receiver in this test, and a process with tracing off that never loads the SDK."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.live_server import ROOT, Server, start_server

POLL_S = 15.0  # upper bound of a bounded poll; never asserted as a duration
SERVER, CLIENT, INTERNAL = ProtoSpan.SPAN_KIND_SERVER, ProtoSpan.SPAN_KIND_CLIENT, 1
STATUS_ERROR = 2


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class ExportedSpan:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    status: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


class Receiver:
    """A tiny OTLP/HTTP trace receiver: POST /v1/traces with a protobuf
    ExportTraceServiceRequest, decoded with opentelemetry-proto."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces" and self.headers["Content-Type"] == (
                    "application/x-protobuf"
                )
                if ok:
                    receiver.accept(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def accept(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ExportedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            status=span.status.code,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                        )
                    )
        with self.lock:
            self.requests += 1
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(self, trace_id: str, name: str) -> list[ExportedSpan]:
        """The spans of a trace once the span ``name`` (the last to end but the HTTP one) and
        the server span have arrived."""
        deadline = time.monotonic() + POLL_S
        while time.monotonic() < deadline:
            spans = self.trace(trace_id)
            names = {span.name for span in spans}
            if name in names and any(span.kind == SERVER for span in spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"no span {name!r} in trace {trace_id}: {self.trace(trace_id)}")

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


@pytest.fixture(scope="module")
def traced_server(
    database_url: str, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        env.setenv("OTEL_SERVICE_NAME", "hub-under-test")
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export every 50 ms (default 5 s)
        for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_EXPORTER"):
            env.delenv(name, raising=False)
        started = start_server(database_url, tmp_path_factory.mktemp("otel"), otel_enabled="true")
    try:
        yield started
    finally:
        started.stop()


def post(server: Server, query: str, name: str | None, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"query": query}
    if name is not None:
        body["operationName"] = name
    response = httpx.post(f"{server.http_url}/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def log_line(server: Server, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_S
    while time.monotonic() < deadline:
        for text in server.log.read_text().splitlines():
            if request_id in text and '"hub.requests"' in text:
                line: dict[str, Any] = json.loads(text)
                return line
        time.sleep(0.05)
    raise AssertionError(f"no request line for {request_id}:\n{server.log.read_text()}")


def descends_from(span: ExportedSpan, ancestor: ExportedSpan, spans: list[ExportedSpan]) -> bool:
    by_id = {s.span_id: s for s in spans}
    current: ExportedSpan | None = span
    while current is not None and current.parent_id:
        if current.parent_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_id)
    return False


def operation_trace(
    receiver: Receiver, server: Server, request_id: str, span_name: str
) -> tuple[ExportedSpan, ExportedSpan, list[ExportedSpan], dict[str, Any]]:
    """(HTTP span, operation span, SQL spans under the operation, request log line)."""
    line = log_line(server, request_id)
    spans = receiver.wait_for(line["trace_id"], span_name)
    [http] = [s for s in spans if s.kind == SERVER]
    [operation] = [s for s in spans if s.name == span_name]
    sql = [s for s in spans if s.kind == CLIENT and descends_from(s, operation, spans)]
    assert operation.kind == INTERNAL and operation.parent_id == http.span_id
    assert http.attributes.get("http.route", "/graphql") == "/graphql"
    assert http.resource["service.name"] == "hub-under-test"
    return http, operation, sql, line


def test_resolver_operation_has_sql_children_and_the_log_carries_its_trace(
    traced_server: Server, receiver: Receiver
) -> None:
    query = "query Stages { journeyStages { code customerCount } }"
    post(traced_server, query, "Stages", **{"X-Request-Id": "otel-resolvers"})
    http, operation, sql, line = operation_trace(
        receiver, traced_server, "otel-resolvers", "query Stages"
    )
    assert operation.attributes["graphql.operation.name"] == "Stages"
    assert operation.attributes["graphql.operation.type"] == "query"
    assert operation.attributes["hub.read_path"] == "resolvers"
    assert operation.attributes["hub.outcome"] == "ok" and operation.status != STATUS_ERROR
    # The SQLAlchemy path (asyncpg prepared statements) under the operation, same trace.
    assert sql, "no SQL span under the operation"
    assert all(s.trace_id == operation.trace_id == http.trace_id for s in sql)
    assert any("stage" in str(s.attributes.get("db.statement", "")) for s in sql), sql
    assert all(s.attributes.get("db.system") == "postgresql" for s in sql)
    # The JSON request line: the request id and the trace and span ids of the HTTP span.
    assert line["request_id"] == "otel-resolvers"
    assert line["trace_id"] == http.trace_id and line["span_id"] == http.span_id


def test_compiled_read_path_is_traced_too(traced_server: Server, receiver: Receiver) -> None:
    query = "query Customers { customers(first: 5) { totalCount nodes { id } } }"
    post(traced_server, query, "Customers", **{"X-Request-Id": "otel-compiled"})
    _, operation, sql, _ = operation_trace(
        receiver, traced_server, "otel-compiled", "query Customers"
    )
    assert operation.attributes["hub.read_path"] == "compiled"
    assert operation.attributes["graphql.operation.type"] == "query"
    # The compiled path's own asyncpg pool: one statement, under the operation.
    assert len(sql) == 1 and sql[0].attributes["db.system"] == "postgresql"


def test_an_error_answer_marks_the_operation_span_with_its_code(
    traced_server: Server, receiver: Receiver
) -> None:
    query = 'query Broken { customer(id: "not-a-global-id") { id } }'
    response = post(traced_server, query, "Broken", **{"X-Request-Id": "otel-error"})
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    _, operation, _, line = operation_trace(receiver, traced_server, "otel-error", "query Broken")
    assert operation.attributes["hub.outcome"] == "error"
    assert operation.attributes["hub.error_codes"] == ["BAD_USER_INPUT"]
    assert operation.status == STATUS_ERROR
    assert line["outcome"] == "error"


def test_incoming_trace_context_is_continued_and_probes_are_not_traced(
    traced_server: Server, receiver: Receiver
) -> None:
    probe_trace, page_trace = "1" * 32, "2" * 32
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    httpx.get(
        f"{traced_server.http_url}/healthz",
        headers={"traceparent": f"00-{probe_trace}-00f067aa0ba902b7-01"},
    ).raise_for_status()
    # The explorer's page (GET /graphql without a query) is a request, not an operation.
    httpx.get(
        f"{traced_server.http_url}/graphql",
        headers={"traceparent": f"00-{page_trace}-00f067aa0ba902b7-01", "accept": "text/html"},
    )
    post(
        traced_server,
        "{ journeyStages { code } }",
        None,
        **{"X-Request-Id": "otel-parent", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    line = log_line(traced_server, "otel-parent")
    assert line["trace_id"] == trace_id  # a gateway's or client's trace goes on here
    spans = receiver.wait_for(trace_id, "query anonymous")
    [http] = [s for s in spans if s.kind == SERVER]
    assert http.parent_id == "00f067aa0ba902b7"
    # The probe and the page ended before the GraphQL request: they would have been exported.
    assert receiver.trace(probe_trace) == []
    assert [span.kind for span in receiver.trace(page_trace)] == [SERVER]
    # Background SQL (the notifier polls the outbox every 75 ms) starts no trace of its own:
    # every exported trace begins at a server span.
    with receiver.lock:
        roots = [s for s in receiver.spans if not s.parent_id or s.parent_id == "00f067aa0ba902b7"]
    assert roots and all(s.kind == SERVER for s in roots), [(s.name, s.kind) for s in roots]


DISABLED_PROBE = """
import asyncio, sys
import httpx
from hub.app import create_app
from hub.core.settings import Settings

async def main() -> None:
    app = create_app(Settings(database_url=sys.argv[1], migrate_on_start=False, dev_mode=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            for query in ("{ journeyStages { code } }", "{ customers(first: 1) { totalCount } }"):
                response = await http.post("/graphql", json={"query": query})
                assert response.status_code == 200 and "errors" not in response.json()
    prefixes = ("opentelemetry", "hub.ops.otel")
    loaded = sorted(name for name in sys.modules if name.startswith(prefixes))
    print("LOADED", loaded)

asyncio.run(main())
"""


def test_tracing_off_imports_no_sdk_and_exports_nothing(
    database_url: str, receiver: Receiver
) -> None:
    def probe(service: str, enabled: bool) -> str:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": service,
        }
        env.pop("HUB_OTEL_ENABLED", None)
        if enabled:
            env["HUB_OTEL_ENABLED"] = "true"
        result = subprocess.run(
            [sys.executable, "-c", DISABLED_PROBE, database_url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def servers(service: str) -> int:
        with receiver.lock:
            return sum(
                s.kind == SERVER and s.resource.get("service.name") == service
                for s in receiver.spans
            )

    before = receiver.requests
    assert "LOADED []" in probe("hub-tracing-off", enabled=False)
    assert receiver.requests == before
    assert servers("hub-tracing-off") == 0
    # The control: the same probe with tracing on exports its two requests to this receiver by
    # the time the process has exited (the SDK flushes at exit), so the check above can fail.
    assert "LOADED []" not in probe("hub-tracing-on", enabled=True)
    assert servers("hub-tracing-on") == 2
    assert receiver.requests > before


def test_enabled_without_the_extra_fails_with_a_clear_message(tmp_path: Path) -> None:
    """`hub[otel]` not installed: the app refuses to start and says what to install."""
    blocker = tmp_path / "opentelemetry"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('opentelemetry is not installed')\n")
    script = (
        "from hub.app import create_app\n"
        "from hub.core.settings import Settings\n"
        "create_app(Settings(database_url='postgresql://nowhere/x', otel_enabled=True))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "pip install 'hub[otel]'" in result.stderr, result.stderr


def test_the_sampler_starts_traces_only_at_requests() -> None:
    """`RequestRoots` around the sampler OTEL_TRACES_SAMPLER names (here: none, all, or a
    ratio of 0): background SQL never starts a trace; requests follow the chosen sampler;
    children follow their parent."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    from hub.ops.otel import RequestRoots

    def decision(sampler: RequestRoots, kind: SpanKind, parent: bool) -> Decision:
        context = None
        if parent:
            sampled = SpanContext(7, 9, is_remote=False, trace_flags=TraceFlags(1))
            context = trace.set_span_in_context(NonRecordingSpan(sampled))
        return sampler.should_sample(context, 7, "span", kind).decision

    everything = RequestRoots(ParentBased(ALWAYS_ON))
    assert decision(everything, SpanKind.CLIENT, parent=False) == Decision.DROP
    assert decision(everything, SpanKind.SERVER, parent=False) == Decision.RECORD_AND_SAMPLE
    assert decision(everything, SpanKind.CLIENT, parent=True) == Decision.RECORD_AND_SAMPLE
    none = RequestRoots(ParentBased(TraceIdRatioBased(0.0)))
    assert decision(none, SpanKind.SERVER, parent=False) == Decision.DROP
    assert decision(none, SpanKind.CLIENT, parent=False) == Decision.DROP
    assert decision(none, SpanKind.INTERNAL, parent=True) == Decision.RECORD_AND_SAMPLE
