"""``create_app()``: the ASGI application. Its lifespan owns the database engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from graphql import GraphQLError, OperationType
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from hub.access.dev_mode import dev_mode_banner
from hub.access.policy import can_write
from hub.analytics.rollup import catch_up_forever
from hub.compiled.executor import CompiledReads, DatabaseUnavailable, json_body
from hub.compiled.ingest import CompiledIngest
from hub.context import NOBODY, Context
from hub.core.faults import UNAVAILABLE_MESSAGE, database_unavailable, unavailable_extensions
from hub.core.settings import Settings
from hub.db.engine import (
    DatabaseLocation,
    alocate_database,
    arelease_database,
    create_driver_pool,
    create_engine,
)
from hub.db.migrations import aupgrade
from hub.db.replica import ROUTER_KEY, ReadRouter, operation_type
from hub.events.broker import Broker, PostgresBroker
from hub.graphql import schema
from hub.http.gate import PRINCIPAL_KEY, AccessGate
from hub.http.observe import OPERATION_KEY, OUTCOME_KEY, RequestObserver
from hub.http.revocation import OpenSockets
from hub.http.shutdown import GracefulShutdown, RefuseWhenStopping
from hub.http.web import explorer_html, web_routes
from hub.http.ws import HubTransportWSHandler, SharedExecutions
from hub.ops import tracing
from hub.ops.metrics import HubMetrics, metrics_endpoint, operation_label

logger = logging.getLogger("hub")
REPLICA_KEY = "hub.read_replica"
"""ASGI scope key: True when this request's query reads the replica."""


@dataclass
class HubState:
    settings: Settings
    location: DatabaseLocation
    engine: AsyncEngine
    sockets: OpenSockets
    broker: Broker
    # HUB_READ_DATABASE_URL: the replica's engine and the per-request routing (hub/db/replica.py).
    read_engine: AsyncEngine | None = None
    router: ReadRouter | None = None
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
        # One span per HTTP operation (hub.ops.otel) when tracing is on.
        self.traced = settings.otel_enabled
        self.live_handlers: set[HubTransportWSHandler] = set()

    async def close_websockets(self, timeout: float) -> None:  # noqa: ASYNC109
        """Graceful shutdown: every open websocket sends what was queued, then closes 1012."""
        handlers = list(self.live_handlers)
        if handlers:
            logger.info("closing %d websockets with 1012 (service restart)", len(handlers))
            await asyncio.gather(*(handler.close_for_restart(timeout) for handler in handlers))

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state: HubState = self._app_state["hub"]
        # HTTP: the gate has authenticated; websockets: on_ws_connect does, at connection_init.
        principal = request.scope.get(PRINCIPAL_KEY, NOBODY)
        on_replica = state.read_engine is not None and request.scope.get(REPLICA_KEY, False)
        engine = state.read_engine if on_replica and state.read_engine else state.engine
        context = Context.build(engine, state.settings, request, principal)
        context.primary_engine = state.engine
        context.broker = state.broker
        if state.router is not None:
            context.extras[ROUTER_KEY] = state.router
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
            request.scope[OUTCOME_KEY] = "error"  # for hub.http.observe's metrics and log line
            if tracing.ENABLED:
                tracing.record_error_codes(request.scope, result.errors)
        return await super().process_result(request, result)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # The body is parsed once here: for the metrics label and for the compiled path.
        is_post = isinstance(request, Request) and request.method == "POST"
        payload = await json_body(request) if is_post else None
        if not isinstance(request, Request):
            return await self._answer(request, context, root_value, payload)
        operation = request.scope[OPERATION_KEY] = _operation_name(request, payload)
        state: HubState | None = self._app_state.get("hub")
        router = state.router if state is not None else None
        if router is not None and _operation_type(request, payload) is OperationType.QUERY:
            replica = await router.use_replica(request.scope.get(PRINCIPAL_KEY, NOBODY))
            request.scope[REPLICA_KEY] = replica
            self.metrics.reads_routed.labels(target="replica" if replica else "primary").inc()
        # Mutations record the caller's read fence in hub.db.replica.ReadFence (HTTP and
        # websockets).
        # The explorer's page (GET without a query string) is no operation: no span for it.
        if self.traced and (is_post or request.scope.get("query_string")):
            from hub.ops import otel

            return await otel.traced_operation(
                request.scope,
                operation,
                lambda: self._answer(request, context, root_value, payload),
            )
        return await self._answer(request, context, root_value, payload)

    async def _answer(self, request: Any, context: Any, root_value: Any, payload: Any) -> Any:
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
            if ingest is not None and unrestricted and can_write(principal) and payload is not None:
                response = await _within_timeout(
                    request,
                    settings,
                    ingest.respond(request, principal, payload),
                    "compiled ingest",
                )
                if response is not None:
                    # Resolver-path mutations record the caller's read fence in ReadFence; this
                    # path skips Strawberry's extensions, so it records the fence itself.
                    state: HubState = self._app_state["hub"]
                    if state.router is not None:
                        await state.router.record_write(principal)
                    return self._compiled_answer(request, response, "mutation")
            if compiled is not None and unrestricted:
                replica = bool(request.scope.get(REPLICA_KEY, False))
                response = await _within_timeout(
                    request, settings, compiled.respond(request, payload, replica)
                )
                if response is not None:
                    self.metrics.sql_statements.labels(path="compiled").inc()  # its one statement
                    return self._compiled_answer(request, response, "query")
        if isinstance(request, Request) and payload is not None:  # a POSTed operation
            self.metrics.execution_path.labels(path="resolvers").inc()
        return await super().run(request, context, root_value)

    def _compiled_answer(self, request: Request, response: Response, kind: str) -> Response:
        """A compiled path answered (no resolvers ran): metrics and the operation span say so."""
        self.metrics.execution_path.labels(path="compiled").inc()
        if tracing.ENABLED:
            request.scope[tracing.OPERATION_TYPE_KEY] = kind
            request.scope[tracing.READ_PATH_KEY] = "compiled"
        return response

    async def render_graphql_ide(self, request: Request) -> Response:
        # The hub's own GraphiQL page: libraries served locally, example tabs, API key field.
        return HTMLResponse(explorer_html())


def _operation_type(request: Request, payload: Any) -> OperationType | None:
    """Query, mutation or subscription: what the request asks to run (None: unknown)."""
    if request.method == "GET":
        query, name = request.query_params.get("query"), request.query_params.get("operationName")
    elif isinstance(payload, dict):
        query, name = payload.get("query"), payload.get("operationName")
    else:
        return None
    if not isinstance(query, str) or not (name is None or isinstance(name, str)):
        return None
    return operation_type(query, name)


async def _within_timeout(
    request: Request,
    settings: Settings,
    answer: Coroutine[Any, Any, Response | None],
    path: str = "compiled read",
) -> Response | None:
    """A compiled path's answer; the TIMEOUT error after ``operation_timeout_seconds``; the
    retryable SERVICE_UNAVAILABLE error when the database cannot be reached."""
    try:
        # asyncio.timeout, not wait_for: no task per request on the hot path.
        async with asyncio.timeout(settings.operation_timeout_seconds):
            return await answer
    except TimeoutError:
        request.scope[OUTCOME_KEY] = "error"
        error = _timeout_error(settings)
        if tracing.ENABLED:
            tracing.record_error_codes(request.scope, [error])
        return JSONResponse({"data": None, "errors": [error.formatted]})
    except DatabaseUnavailable as unreachable:
        logger.warning("database unreachable (%s): %r", path, unreachable.__cause__)
        request.scope[OUTCOME_KEY] = "error"
        unavailable = {"message": UNAVAILABLE_MESSAGE, "extensions": unavailable_extensions()}
        return JSONResponse({"data": None, "errors": [unavailable]})


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
    except Exception as error:  # any failure means "not ready"; the reason goes to the log
        if database_unavailable(error):  # expected during an outage: one line, no traceback
            logger.warning("readiness check failed: database unavailable: %r", error)
        else:
            logger.warning("readiness check failed", exc_info=True)
        return False
    return True


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    if settings.otel_enabled:
        tracing.enable()  # before any engine exists: asyncpg is instrumented process-wide
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
            # Socket re-checks and the event broker share a small pool of their own (HTTP key
            # checks have theirs: ``key_pool``): a saturated request pool cannot lock keys out
            # or stall live events, and request statement counts stay about requests.
            control_engine = create_engine(
                location.url, settings.model_copy(update={"pool_size": 3, "pool_max_overflow": 2})
            )
            sockets = OpenSockets(lambda: control_engine, settings.key_recheck_seconds)
            broker: Broker
            if settings.broker == "redis":
                from hub.events.redis_broker import RedisBroker  # only this broker needs redis-py

                broker = RedisBroker(control_engine, location.url, settings)
            else:
                broker = PostgresBroker(control_engine, location.url, settings)
            await broker.start()
            read_engine: AsyncEngine | None = None
            router: ReadRouter | None = None
            if settings.read_database_url:
                read_engine = create_engine(settings.read_database_url, settings)
                router = ReadRouter(engine, read_engine, settings)
                await router.start()
            metrics.bind(lambda: engine, lambda: broker, lambda: router)
            metrics.count_statements(engine)
            if read_engine is not None:
                metrics.count_statements(read_engine)
            key_pool = await create_driver_pool(location.url, settings, "hub-keys", 5)
            app_state["hub"] = HubState(
                settings=settings,
                location=location,
                engine=engine,
                sockets=sockets,
                broker=broker,
                read_engine=read_engine,
                router=router,
                key_pool=key_pool,
            )
            if settings.compiled_reads:
                app_state["compiled"] = await CompiledReads.open(
                    location.url, schema._schema, settings, settings.read_database_url
                )
            if settings.compiled_ingest:
                app_state["ingest"] = await CompiledIngest.open(
                    location.url, schema._schema, settings, metrics
                )
            if settings.dev_mode:
                logger.warning(dev_mode_banner())
            shutdown.install()  # only under uvicorn's signal handling (hub serve)
            catching_up = (
                asyncio.create_task(
                    catch_up_forever(engine, settings.analytics_catch_up_s),
                    name="hub-analytics-catch-up",
                )
                if settings.analytics_catch_up_s > 0
                else None
            )
            try:
                yield
            finally:
                shutdown.uninstall()
                if catching_up is not None:
                    catching_up.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await catching_up
                app_state.pop("hub", None)
                await graphql_app.shared_executions.close()
                await broker.close()
                await sockets.close()
                if router is not None:
                    await router.close()
                if read_engine is not None:
                    await read_engine.dispose()
                await key_pool.close()
                await control_engine.dispose()
                await engine.dispose()
        finally:
            if "compiled" in app_state:
                await app_state.pop("compiled").close()
            if "ingest" in app_state:
                await app_state.pop("ingest").close()
            await arelease_database(location)
            if settings.otel_enabled:
                from hub.ops import otel

                otel.force_flush()

    graphql_app = HubGraphQL(app_state, settings)
    gate = AccessGate(graphql_app, settings, lambda: app_state["hub"].key_pool)
    graphql_app.gate = gate
    metrics = HubMetrics()  # per app: tests build many apps in one process
    graphql_app.metrics = metrics
    shutdown = GracefulShutdown(settings, graphql_app.close_websockets)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if shutdown.draining:  # take this instance out of the load balancer
            return JSONResponse({"status": "shutting down"}, status_code=503)
        state: HubState | None = app_state.get("hub")
        if state is None:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        # Readiness is the primary's: a broker polling the outbox without Redis still delivers,
        # and queries read the primary while the replica is down or behind. Both are reported.
        details = {"broker": state.broker.status}
        if state.router is not None:
            details["replica"] = state.router.status
        if await _database_ready(state.engine):
            return JSONResponse({"status": "ready", "database": "ok", **details})
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", **details}, status_code=503
        )

    app = Starlette(
        routes=[
            Route(
                "/graphql",
                RequestObserver(RefuseWhenStopping(gate, shutdown), metrics),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", RefuseWhenStopping(graphql_app, shutdown)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *web_routes(),
            *([Route("/metrics", metrics_endpoint(metrics))] if settings.metrics else []),
        ],
        lifespan=lifespan,
    )
    app.state.hub_state = app_state
    app.state.metrics = metrics
    app.state.shutdown = shutdown
    if settings.otel_enabled:
        from hub.ops import otel

        # Outermost: the HTTP server span is the parent of everything a request does.
        app.add_middleware(_Wrapped, wrap=otel.traced_http)
    return app


class _Wrapped:
    """Starlette middleware from a function that wraps an ASGI app."""

    def __init__(self, app: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app = wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
