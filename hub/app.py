"""``create_app()``: the ASGI application. Its lifespan owns the database engine."""

from __future__ import annotations

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
from strawberry.types.unset import UNSET

from hub.compiled.executor import CompiledReads
from hub.compiled.policy import ALLOW_ALL
from hub.context import Context
from hub.database import DatabaseLocation, alocate_database, create_engine
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

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # The compiled read path answers what it covers; everything else goes on as before.
        compiled: CompiledReads | None = self._app_state.get("compiled")
        if compiled is not None and isinstance(request, Request):
            response = await compiled.respond(request, ALLOW_ALL)
            if response is not None:
                return response
        return await super().run(request, context, root_value)


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
        app_state["hub"] = HubState(settings=settings, location=location, engine=engine)
        if settings.compiled_reads:
            app_state["compiled"] = await CompiledReads.open(location.url, schema._schema, settings)
        try:
            yield
        finally:
            if "compiled" in app_state:
                await app_state.pop("compiled").close()
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
