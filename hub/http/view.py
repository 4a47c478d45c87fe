"""``HubGraphQL``: Strawberry's ASGI app with the hub's context, websocket authentication and
the per-request pipeline (``run``): the compiled paths first, Strawberry for everything else."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from typing import Any

from graphql import OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from hub.context import NOBODY, Context
from hub.core.request_keys import (
    METRICS_KEY,
    OPERATION_KEY,
    OUTCOME_KEY,
    PRINCIPAL_KEY,
    REPLICA_KEY,
    ROUTER_KEY,
)
from hub.graphql import schema
from hub.http.compiled_paths import compiled_ingest, compiled_read, timeout_error
from hub.http.gate import KeyCheck
from hub.http.operation import operation_name, operation_type, parse_body, runs_an_operation
from hub.http.state import HubState
from hub.http.tracing import traced_operation
from hub.http.web import explorer_html
from hub.http.ws import HubTransportWSHandler
from hub.ops import tracing


class HubGraphQL(GraphQL[Context, None]):
    """``/graphql`` over HTTP and websockets, for one app's ``HubState``."""

    graphql_transport_ws_handler_class = HubTransportWSHandler

    def __init__(self, state: HubState, keys: KeyCheck) -> None:
        settings = state.settings
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
        self.state = state
        self.keys = keys
        # Per app, not process-wide: one span per HTTP operation when this app traces.
        self.traced = settings.otel_enabled
        # What hub.http.ws reads off its view (WebSocketHost).
        self.metrics = state.metrics
        self.shared_executions = state.shared_executions

    # ---- the HTTP pipeline ----

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """One GraphQL request over HTTP, step by step; websockets go to Strawberry as they are."""
        if not isinstance(request, Request):
            return await super().run(request, context, root_value)
        payload = await parse_body(request)
        name = request.scope[OPERATION_KEY] = operation_name(request, payload)
        await self._route_to_replica(request, payload)
        answer = functools.partial(self._answer, request, context, root_value, payload)
        if self.traced and runs_an_operation(request):
            return await traced_operation(request.scope, name, answer)
        return await answer()

    async def _route_to_replica(self, request: Request, payload: Any) -> None:
        """Queries read the replica when it has caught up with the caller's own writes
        (mutations record the caller's read fence: hub.db.replica.ReadFence)."""
        router = self.state.running.router
        if router is None or operation_type(request, payload) is not OperationType.QUERY:
            return
        replica = await router.use_replica(request.scope.get(PRINCIPAL_KEY, NOBODY))
        request.scope[REPLICA_KEY] = replica
        self.metrics.reads_routed.labels(target="replica" if replica else "primary").inc()

    async def _answer(self, request: Request, context: Any, root_value: Any, payload: Any) -> Any:
        """The compiled paths answer what they cover (each within the operation timeout, and
        counted); Strawberry answers the rest (its timeout: ``execute_operation``)."""
        response = await compiled_ingest(self.state, request, payload)
        if response is None:
            response = await compiled_read(self.state, request, payload)
        if response is not None:
            return response
        if payload is not None:  # a POSTed operation
            self.metrics.execution_path.labels(path="resolvers").inc()
        return await super().run(request, context, root_value)

    # ---- Strawberry's hooks ----

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        resources = self.state.running
        # HTTP: the gate has authenticated; websockets: on_ws_connect does, at connection_init.
        principal = request.scope.get(PRINCIPAL_KEY, NOBODY)
        on_replica = resources.read_engine is not None and request.scope.get(REPLICA_KEY, False)
        engine = resources.read_engine if on_replica and resources.read_engine else resources.engine
        context = Context.build(
            engine, self.state.settings, request, principal, primary_engine=resources.engine
        )
        context.broker = resources.broker
        if resources.router is not None:
            context.extras[ROUTER_KEY] = resources.router
        context.extras[METRICS_KEY] = self.metrics
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket by the Authorization in its connection_init payload (or
        its upgrade request's header); no valid key closes it with 4403."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if not isinstance(authorization, str) and isinstance(context.request, WebSocket):
            authorization = context.request.headers.get("authorization")
        principal = await self.keys.principal(
            authorization if isinstance(authorization, str) else None
        )
        if principal is None:
            raise ConnectionRejectionError({"message": "a valid API key is required"})
        context.act_as(principal)  # the engines and loaders follow the principal
        if principal.key_id is not None and isinstance(context.request, WebSocket):
            self.state.running.sockets.add(context.request, principal.key_id)
        return await super().on_ws_connect(context)

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """HTTP operations get ``operation_timeout_seconds``; beyond it, a TIMEOUT error."""
        settings = self.state.settings
        try:
            return await asyncio.wait_for(
                super().execute_operation(*args, **kwargs), settings.operation_timeout_seconds
            )
        except TimeoutError:
            return ExecutionResult(data=None, errors=[timeout_error(settings)])

    async def process_result(self, request: Any, result: ExecutionResult) -> Any:
        if result.errors and isinstance(request, Request):
            request.scope[OUTCOME_KEY] = "error"  # for hub.http.observe's metrics and log line
            if tracing.ENABLED:
                tracing.record_error_codes(request.scope, result.errors)
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> Response:
        # The hub's own GraphiQL page: libraries served locally, example tabs, API key field.
        return HTMLResponse(explorer_html())
