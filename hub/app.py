"""``create_app()``: the ASGI application. Its lifespan owns the database engine.

``/graphql`` over HTTP passes, outermost first: the HTTP server span (with tracing on), the
request observer (request id, log line, metrics), the shutdown's refusal, the access gate, then
``HubGraphQL.run``'s pipeline. Websockets skip the observer and the gate: they authenticate at
``connection_init``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from hub.access.dev_mode import dev_mode_banner
from hub.core.settings import Settings
from hub.http import tracing
from hub.http.export import export_routes
from hub.http.gate import AccessGate, KeyCheck
from hub.http.metrics import metrics_routes
from hub.http.observe import RequestObserver
from hub.http.probes import probe_routes
from hub.http.resources import open_resources
from hub.http.shutdown import RefuseWhenStopping
from hub.http.state import HubState
from hub.http.tracking import tracking_routes
from hub.http.view import HubGraphQL
from hub.http.web import web_routes

logger = logging.getLogger("hub")


def create_app(settings: Settings | None = None) -> Starlette:
    """The hub's ASGI app; ``app.state.hub`` is its ``HubState``."""
    settings = settings or Settings()
    # First: the SDK must be set up before any engine exists (asyncpg is instrumented
    # process-wide), and a missing extra must fail here, not at the first request.
    traced = tracing.tracing_middleware(settings.otel_enabled)
    state = HubState(settings)
    keys = KeyCheck(settings, lambda: state.running.key_pool, state.metrics)
    graphql = HubGraphQL(state, keys)
    refuse_when_stopping = Middleware(RefuseWhenStopping, state.shutdown)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with open_resources(settings, state.metrics) as resources:
                state.resources = resources
                if settings.dev_mode:
                    logger.warning(dev_mode_banner())
                state.shutdown.install()  # only under uvicorn's signal handling (hub serve)
                # Everything built so far (schema, plans, pools, imported modules) lives as long
                # as the process: out of the cyclic GC's sight, so that a full collection walks
                # only what requests allocate (a batch of 1,000 events triggered full
                # collections of the whole heap: ~0.1 s each on a loaded machine). O(1).
                gc.freeze()
                try:
                    yield
                finally:
                    gc.unfreeze()
                    await keys.cache.close()  # its rounds use the key pool, closed next
                    state.shutdown.uninstall()
                    state.resources = None  # /readyz: unavailable from here on
                    await state.shared_executions.close()
        finally:
            tracing.flush()  # a worker going away keeps its spans

    app = Starlette(
        routes=[
            Route(
                "/graphql",
                graphql,
                # No methods list: the gate answers all but GET and POST with a coded JSON 405.
                middleware=[
                    Middleware(RequestObserver, state.metrics),
                    refuse_when_stopping,
                    Middleware(AccessGate, keys),
                ],
            ),
            WebSocketRoute("/graphql", graphql, middleware=[refuse_when_stopping]),
            # Segment's tracking API (docs/sources.md): observed and refused when stopping as
            # /graphql is; it authenticates SOURCE keys itself (HTTP Basic).
            *tracking_routes(
                state,
                keys,
                [Middleware(RequestObserver, state.metrics), refuse_when_stopping],
            ),
            # Bulk export as NDJSON (docs/import-export.md): Bearer keys, scoped and masked.
            *export_routes(
                state,
                keys,
                [Middleware(RequestObserver, state.metrics), refuse_when_stopping],
            ),
            *probe_routes(state),
            *web_routes(),
            *metrics_routes(state.metrics, settings),
        ],
        middleware=traced,
        lifespan=lifespan,
    )
    app.state.hub = state
    return app
