"""``create_app()``: the ASGI application. Its lifespan owns the database engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from hub.access_log import dev_mode_banner
from hub.broker import Broker, PostgresBroker
from hub.compiled.executor import CompiledReads, json_body
from hub.compiled.ingest import CompiledIngest
from hub.compiled.policy import ALLOW_ALL
from hub.context import NOBODY, Context
from hub.database import (
    DatabaseLocation,
    alocate_database,
    arelease_database,
    create_driver_pool,
    create_engine,
)
from hub.gate import PRINCIPAL_KEY, AccessGate
from hub.graphql import schema
from hub.metrics import HubMetrics, metrics_endpoint, operation_label
from hub.migrations import aupgrade
from hub.observe import OPERATION_KEY, OUTCOME_KEY, RequestObserver
from hub.policy import can_write
from hub.revocation import OpenSockets
from hub.settings import Settings
from hub.web import explorer_html, web_routes
from hub.ws import HubTransportWSHandler, SharedExecutions

logger = logging.getLogger("hub")


@dataclass
class HubState:
    settings: Settings
    location: DatabaseLocation
    engine: AsyncEngine
    sockets: OpenSockets
    # The small pool of key checks and the event notifier (see the lifespan).
    control_engine: AsyncEngine
    broker: Broker
    # The HTTP gate's key checks: a small bare asyncpg pool (no ping, no transaction per check).
    key_pool: Any = None


def _timeout_error(settings: Settings) -> GraphQLError:
    return GraphQLError(
        f"the operation took longer than {settings.operation_timeout_seconds}s and was stopped",
        extensions={"code": "TIMEOUT"},
    )


class HubGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with the hub's context built per request."""

    gate: AccessGate
    metrics: HubMetrics
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
        # HTTP: the gate has authenticated; websockets: on_ws_connect does, at connection_init.
        principal = request.scope.get(PRINCIPAL_KEY, NOBODY)
        context = Context.build(state.engine, state.settings, request, principal)
        context.broker = state.broker
        context.extras["metrics"] = self.metrics
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket by the Authorization in its connection_init payload (or
        its upgrade request's header); no valid key closes it with 4403."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if not isinstance(authorization, str) and isinstance(context.request, WebSocket):
            authorization = context.request.headers.get("authorization")
        principal = await self.gate.authenticate(
            authorization if isinstance(authorization, str) else None
        )
        if principal is None:
            raise ConnectionRejectionError({"message": "a valid API key is required"})
        context.principal = principal
        context.loaders = context.fresh_loaders()
        state: HubState = self._app_state["hub"]
        if principal.key_id is not None and isinstance(context.request, WebSocket):
            state.sockets.add(context.request, principal.key_id)
        return await super().on_ws_connect(context)

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """HTTP operations get ``operation_timeout_seconds``; beyond it, a TIMEOUT error."""
        settings: Settings = self._app_state["hub"].settings
        try:
            return await asyncio.wait_for(
                super().execute_operation(*args, **kwargs), settings.operation_timeout_seconds
            )
        except TimeoutError:
            return ExecutionResult(data=None, errors=[_timeout_error(settings)])

    async def process_result(self, request: Any, result: ExecutionResult) -> Any:
        if result.errors and isinstance(request, Request):
            request.scope[OUTCOME_KEY] = "error"  # for hub.observe's metrics and log line
        return await super().process_result(request, result)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # The body is parsed once here: for the metrics label and for the compiled path.
        is_post = isinstance(request, Request) and request.method == "POST"
        payload = await json_body(request) if is_post else None
        if isinstance(request, Request):
            request.scope[OPERATION_KEY] = _operation_name(request, payload)
        # The compiled ingest and read paths answer what they cover; everything else goes on as
        # before. Only for callers who see everything unmasked and unscoped (the policy they
        # know today); masked or partner-scoped callers take the resolver path, where masking
        # and scope live.
        compiled: CompiledReads | None = self._app_state.get("compiled")
        ingest: CompiledIngest | None = self._app_state.get("ingest")
        if (compiled is not None or ingest is not None) and isinstance(request, Request):
            principal = request.scope.get(PRINCIPAL_KEY, NOBODY)
            unrestricted = principal.sees_pii and not principal.scope.restricted
            settings: Settings = self._app_state["hub"].settings
            if ingest is not None and unrestricted and can_write(principal) and is_post:
                response = await _within_timeout(
                    request, settings, ingest.respond(request, principal, payload)
                )
                if response is not None:
                    return response
            if compiled is not None and unrestricted:
                response = await _within_timeout(
                    request, settings, compiled.respond(request, ALLOW_ALL, payload)
                )
                if response is not None:
                    return response
        return await super().run(request, context, root_value)

    async def render_graphql_ide(self, request: Request) -> Response:
        # The hub's own GraphiQL page: libraries served locally, example tabs, API key field.
        return HTMLResponse(explorer_html())


async def _within_timeout(
    request: Request, settings: Settings, answer: Coroutine[Any, Any, Response | None]
) -> Response | None:
    """A compiled path's answer, or the TIMEOUT error after ``operation_timeout_seconds``."""
    try:
        return await asyncio.wait_for(answer, settings.operation_timeout_seconds)
    except TimeoutError:
        request.scope[OUTCOME_KEY] = "error"
        return JSONResponse({"data": None, "errors": [_timeout_error(settings).formatted]})


def _operation_name(request: Request, payload: Any) -> str:
    """The metrics/log label of the operation the client named."""
    if request.method == "GET":
        return operation_label(request.query_params.get("operationName"))
    return operation_label(payload.get("operationName") if isinstance(payload, dict) else None)


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
            # Key checks, socket re-checks and the event notifier share a small pool of their
            # own: a saturated request pool cannot lock keys out or stall live events, and
            # request statement counts stay about requests.
            control_engine = create_engine(
                location.url, settings.model_copy(update={"pool_size": 3, "pool_max_overflow": 2})
            )
            sockets = OpenSockets(lambda: control_engine, settings.key_recheck_seconds)
            broker = PostgresBroker(control_engine, location.url, settings)
            await broker.start()
            metrics.bind(lambda: engine, lambda: broker)
            key_pool = await create_driver_pool(location.url, settings, "hub-keys", 5)
            app_state["hub"] = HubState(
                settings=settings,
                location=location,
                engine=engine,
                sockets=sockets,
                control_engine=control_engine,
                broker=broker,
                key_pool=key_pool,
            )
            if settings.compiled_reads:
                app_state["compiled"] = await CompiledReads.open(
                    location.url, schema._schema, settings
                )
            if settings.compiled_ingest:
                app_state["ingest"] = await CompiledIngest.open(
                    location.url, schema._schema, settings, metrics
                )
            if settings.dev_mode:
                logger.warning(dev_mode_banner())
            try:
                yield
            finally:
                app_state.pop("hub", None)
                await graphql_app.shared_executions.close()
                await broker.close()
                await sockets.close()
                await key_pool.close()
                await control_engine.dispose()
                await engine.dispose()
        finally:
            if "compiled" in app_state:
                await app_state.pop("compiled").close()
            if "ingest" in app_state:
                await app_state.pop("ingest").close()
            await arelease_database(location)

    graphql_app = HubGraphQL(app_state, settings)
    gate = AccessGate(graphql_app, settings, lambda: app_state["hub"].key_pool)
    graphql_app.gate = gate
    metrics = HubMetrics()  # per app: tests build many apps in one process
    graphql_app.metrics = metrics

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        state: HubState | None = app_state.get("hub")
        if state is not None and await _database_ready(state.engine):
            return JSONResponse({"status": "ready", "database": "ok"})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)

    app = Starlette(
        routes=[
            Route("/graphql", RequestObserver(gate, metrics), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *web_routes(),
            *([Route("/metrics", metrics_endpoint(metrics))] if settings.metrics else []),
        ],
        lifespan=lifespan,
    )
    app.state.hub_state = app_state
    app.state.metrics = metrics
    return app
