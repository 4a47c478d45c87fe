"""The OpenTelemetry side of ``hub.ops.tracing``: imported only when ``HUB_OTEL_ENABLED=true``
(by ``hub.http.tracing``, which also holds the HTTP server span's ASGI middleware).

Three kinds of spans, one trace per HTTP request:

* the HTTP server span (``opentelemetry-instrumentation-asgi``, wired in ``hub.http.tracing``;
  HTTP only: a websocket lives for hours, and health probes and scrapes are left out);
* one span per GraphQL operation (``traced_operation``: the compiled paths and the resolvers
  alike), named ``{type} {name}`` with the ``graphql.operation.*`` attributes, the path that
  answered and the answer's error codes;
* one span per SQL statement (``opentelemetry-instrumentation-asyncpg``: the compiled path talks
  to asyncpg directly, SQLAlchemy's asyncpg dialect through prepared statements; both are
  wrapped at the asyncpg level, so each statement is traced once).

The exporter, endpoint, service name and batching come from the SDK's standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_*``...). ``OTEL_TRACES_SAMPLER``
(e.g. ``parentbased_traceidratio``) decides which requests are traced, all by default; a trace
never starts outside a request: the notifier's outbox polls (every 75 ms) and the pruner's
deletes would otherwise each start one.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.sdk.trace.sampling import _get_from_env_or_default as _sampler_from_env
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from hub.core.request_keys import ERROR_CODES_KEY, OPERATION_TYPE_KEY, READ_PATH_KEY
from hub.ops import tracing

TRACER_NAME = "hub"
DEFAULT_SERVICE_NAME = "hub"

_provider: TracerProvider | None = None


class RequestRoots(Sampler):
    """Traces start at requests: a span without a parent that is not a server span (a
    background task's SQL) is dropped; everything else is up to ``delegate`` (the sampler
    ``OTEL_TRACES_SAMPLER`` names, else every request and children following their parent)."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind != SpanKind.SERVER:
            return SamplingResult(Decision.DROP, None, trace_state)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"RequestRoots{{{self.delegate.get_description()}}}"


def _exporters() -> list[SpanExporter]:
    """``OTEL_TRACES_EXPORTER``: ``otlp`` (default: OTLP over HTTP/protobuf), ``console``,
    ``none``, or several comma-separated."""
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    exporters: list[SpanExporter] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name not in ("none", ""):
            raise RuntimeError(
                f"OTEL_TRACES_EXPORTER={names!r}: the hub knows otlp, console and none"
            )
    return exporters


def configure() -> TracerProvider:
    """The process's tracer provider, set up on the first call (which switches
    ``hub.ops.tracing`` on)."""
    global _provider
    if _provider is not None:
        return _provider
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    chosen = _sampler_from_env() if os.environ.get("OTEL_TRACES_SAMPLER") else None
    sampler = RequestRoots(chosen or ParentBased(ALWAYS_ON))
    provider = TracerProvider(resource=resource, sampler=sampler)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _provider = provider
    tracing.started(current_ids)
    return provider


def force_flush() -> None:
    """Export what is buffered (the lifespan's end: a worker going away keeps its spans)."""
    if _provider is not None:
        _provider.force_flush()


def current_ids() -> tuple[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


async def traced_operation(
    scope: MutableMapping[str, Any], operation_name: str, run: Callable[[], Awaitable[Any]]
) -> Any:
    """Run one GraphQL operation (either read path) under its span."""
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=configure())
    with tracer.start_as_current_span("GraphQL Operation", kind=SpanKind.INTERNAL) as span:
        response = await run()
        operation_type = scope.get(OPERATION_TYPE_KEY)
        codes: list[str] = scope.get(ERROR_CODES_KEY, [])
        if operation_type is not None:
            span.update_name(f"{operation_type} {operation_name}")
            span.set_attribute("graphql.operation.type", operation_type)
        span.set_attribute("graphql.operation.name", operation_name)
        span.set_attribute("hub.read_path", scope.get(READ_PATH_KEY, "resolvers"))
        span.set_attribute("hub.outcome", "error" if codes else "ok")
        if codes:
            distinct = sorted(set(codes))
            span.set_attribute("hub.error_codes", distinct)
            span.set_status(Status(StatusCode.ERROR, ",".join(distinct)))
        return response
