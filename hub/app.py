"""``create_app()``: the ASGI application. Its lifespan owns the database engine."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from hub.broker import Broker, PostgresBroker
from hub.context import Context
from hub.database import DatabaseLocation, alocate_database, create_engine
from hub.event_scope import scope_from_connection
from hub.graphql import schema
from hub.migrations import aupgrade
from hub.settings import Settings
from hub.ws import HubTransportWSHandler, SharedExecutions

logger = logging.getLogger("hub")


@dataclass
class HubState:
    settings: Settings
    location: DatabaseLocation
    engine: AsyncEngine
    broker: Broker


class HubGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with the hub's context built per request."""

    graphql_transport_ws_handler_class = HubTransportWSHandler

    def __init__(self, app_state: dict[str, Any], settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,)
            + ((GRAPHQL_WS_PROTOCOL,) if settings.ws_legacy_protocol else ()),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_s),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            allowed_origins=settings.ws_allowed_origins,
            keep_alive=settings.ws_keepalive_s > 0,
            keep_alive_interval=settings.ws_keepalive_s,
        )
        self._app_state = app_state
        self.shared_executions = SharedExecutions()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state: HubState = self._app_state["hub"]
        context = Context.build(state.engine, state.settings, request)
        context.broker = state.broker
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.extras.get("connection_params")
        context.event_scope = scope_from_connection(params if isinstance(params, dict) else {})
        return cast(UnsetType, UNSET)


async def _database_ready(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness check failed", exc_info=True)
        return False
    return True


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    app_state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        location = await alocate_database(settings)
        if settings.migrate_on_start:
            await aupgrade(location.url)
        engine = create_engine(location.url, settings)
        broker = PostgresBroker(engine, location.url, settings)
        await broker.start()
        app_state["hub"] = HubState(
            settings=settings, location=location, engine=engine, broker=broker
        )
        try:
            yield
        finally:
            await graphql_app.shared_executions.close()
            await broker.close()
            await engine.dispose()

    graphql_app = HubGraphQL(app_state, settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        state: HubState | None = app_state.get("hub")
        if state is not None and await _database_ready(state.engine):
            return JSONResponse({"status": "ready", "database": "ok"})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)

    app = Starlette(
        routes=[
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
    app.state.hub_state = app_state
    return app
