"""``create_app()``: the ASGI application. Its lifespan owns the database engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from hub.context import Context
from hub.database import DatabaseLocation, alocate_database, arelease_database, create_engine
from hub.graphql import schema
from hub.migrations import aupgrade
from hub.settings import Settings

logger = logging.getLogger("hub")


@dataclass
class HubState:
    settings: Settings
    location: DatabaseLocation
    engine: AsyncEngine


class HubGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with the hub's context built per request."""

    def __init__(self, app_state: dict[str, Any], settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self._app_state = app_state

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state: HubState = self._app_state["hub"]
        return Context.build(state.engine, state.settings, request)


READINESS_TIMEOUT_S = 5.0


async def _database_ready(engine: AsyncEngine) -> bool:
    try:
        # A probe must answer quickly: an unreachable host would otherwise hang for asyncpg's
        # 60 s connect timeout.
        async with asyncio.timeout(READINESS_TIMEOUT_S), engine.connect() as connection:
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
        # Only the embedded mode and migrations touch the database here: with a server URL the
        # app starts even while the database is down, and /readyz reports the truth.
        location = await alocate_database(settings)
        try:
            if settings.migrate_on_start:
                await aupgrade(location.url)
            engine = create_engine(location.url, settings)
            app_state["hub"] = HubState(settings=settings, location=location, engine=engine)
            try:
                yield
            finally:
                app_state.pop("hub", None)
                await engine.dispose()
        finally:
            await arelease_database(location)

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
