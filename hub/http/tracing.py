"""Tracing's wiring into the app: switching the SDK on, the HTTP server span, the operation span.

Nothing from OpenTelemetry is imported at module level: ``hub.ops.otel`` and the ASGI
instrumentation load only when ``HUB_OTEL_ENABLED=true`` (``tests/ops/test_tracing.py`` checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.ops import tracing

# Paths whose requests are not traced (regular expressions, as the ASGI instrumentation takes).
UNTRACED_PATHS = "/healthz,/readyz,/metrics,/static/"


def tracing_middleware(enabled: bool) -> list[Middleware]:
    """Nothing while tracing is off. Else the SDK is set up now, while the app is built — before
    any engine exists, as asyncpg is instrumented process-wide — and the HTTP server span goes
    outermost, the parent of everything a request does."""
    if not enabled:
        return []
    try:
        from hub.ops import otel
    except ImportError as missing:  # the optional extra is not installed
        raise RuntimeError(
            "HUB_OTEL_ENABLED=true needs the OpenTelemetry packages: pip install 'hub[otel]' "
            f"({missing})"
        ) from missing
    otel.configure()
    return [Middleware(TracedHTTP)]


class TracedHTTP:
    """An HTTP server span per request; websockets and the lifespan pass through untraced."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        from hub.ops import otel

        self.app = app
        self.traced = OpenTelemetryMiddleware(
            app,
            excluded_urls=UNTRACED_PATHS,
            tracer_provider=otel.configure(),
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.traced(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def traced_operation(scope: Scope, name: str, run: Callable[[], Awaitable[Any]]) -> Any:
    """``run()`` (one GraphQL operation, either read path) under its span: for apps built with
    tracing on (``tracing_middleware(True)`` has loaded the SDK)."""
    from hub.ops import otel

    return await otel.traced_operation(scope, name, run)


def flush() -> None:
    """Export what is buffered (the lifespan's end: a worker going away keeps its spans)."""
    if tracing.ENABLED:
        from hub.ops import otel

        otel.force_flush()
