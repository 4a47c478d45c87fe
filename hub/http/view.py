"""``HubGraphQL``: Strawberry's ASGI app with the hub's context, websocket authentication and
the per-request pipeline (``run``): the compiled paths first, Strawberry for everything else."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from hub.access.policy import can_use_graphql
from hub.context import NOBODY, Context
from hub.core.request_keys import (
    AUDIT_ENGINE_KEY,
    METRICS_KEY,
    OPERATION_KEY,
    OUTCOME_KEY,
    PRINCIPAL_KEY,
    REPLICA_KEY,
    ROUTER_KEY,
    TRUSTED_DOCUMENT_KEY,
)
from hub.graphql import schema
from hub.http.compiled_paths import compiled_ingest, compiled_read, timeout_error
from hub.http.documents import DocumentIds, cacheable
from hub.http.gate import KeyCheck, client_address
from hub.http.operation import not_executed, read_params, refused_response, runs_an_operation
from hub.http.state import HubState
from hub.http.tracing import traced_operation
from hub.http.web import explorer_html
from hub.http.wire import (
    GRAPHQL_RESPONSE_JSON,
    GraphQLParams,
    RequestRefused,
    response_media_type,
    selected_operation,
)
from hub.http.ws import HubTransportWSHandler
from hub.http.ws_adapter import SizedWebSocketAdapter
from hub.ops import tracing
from hub.ops.metrics import operation_label

logger = logging.getLogger("hub.errors")


class HubGraphQL(GraphQL[Context, None]):
    """``/graphql`` over HTTP and websockets, for one app's ``HubState``."""

    graphql_transport_ws_handler_class = HubTransportWSHandler
    # Websocket messages over ws_max_message_bytes close 1009 before they are parsed.
    websocket_adapter_class = SizedWebSocketAdapter

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
        # Documents by id (trusted documents, APQ), looked up on the key-check pool.
        self.documents = DocumentIds(settings, lambda: state.running.key_pool)
        # Per app, not process-wide: one span per HTTP operation when this app traces.
        self.traced = settings.otel_enabled
        # What hub.http.ws reads off its view (WebSocketHost).
        self.metrics = state.metrics
        self.shared_executions = state.shared_executions

    # ---- the HTTP pipeline ----

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """One GraphQL request over HTTP, step by step; websockets go to Strawberry as they
        are, and a browser's bare GET gets the explorer's page."""
        if not isinstance(request, Request):
            return await super().run(request, context, root_value)
        page = not runs_an_operation(request) and self.graphql_ide
        if page and self.should_render_graphql_ide(self.request_adapter_class(request)):
            return await self.render_graphql_ide(request)
        # Anything else, a bare GET too (explorer off, or not asking for HTML), is a request.
        media = response_media_type(request.headers.get("accept"))
        settings = self.state.settings
        try:
            params = await read_params(request, settings.max_json_depth)
            params = await self.documents.resolve(params, request.scope.get(PRINCIPAL_KEY, NOBODY))
            kind = selected_operation(params, request.method, settings.max_tokens)
        except RequestRefused as refused:
            request.scope[OUTCOME_KEY] = "error"
            return refused_response(refused, media)
        name = request.scope[OPERATION_KEY] = operation_label(params.operation_name)
        await self._route_to_replica(request, kind)
        answer = functools.partial(self._answer, request, context, root_value, params, media, kind)
        if self.traced:
            response: Response = await traced_operation(request.scope, name, answer)
        else:
            response = await answer()
        if params.trusted and request.method == "GET" and kind is OperationType.QUERY:
            return cacheable(request, response, settings.document_cache_control)
        return response

    async def _route_to_replica(self, request: Request, kind: OperationType | None) -> None:
        """Queries read the replica when it has caught up with the caller's own writes
        (mutations record the caller's read fence: hub.db.replica.ReadFence)."""
        router = self.state.running.router
        if router is None or kind is not OperationType.QUERY:
            return
        replica = await router.use_replica(request.scope.get(PRINCIPAL_KEY, NOBODY))
        request.scope[REPLICA_KEY] = replica
        self.metrics.count(self.metrics.reads_routed, "replica" if replica else "primary")

    async def _answer(
        self,
        request: Request,
        context: Any,
        root_value: Any,
        params: GraphQLParams,
        media: str,
        kind: OperationType | None,
    ) -> Response:
        """The compiled paths answer what they cover (each within the operation timeout, and
        counted); Strawberry answers the rest (its timeout: ``execute_operation``). ``kind``:
        the selected operation's type, when known, spares a query the ingest path's checks
        and a mutation the read path's."""
        # A trusted document by GET takes the compiled path too (its parameters are read).
        payload = params.payload() if request.method == "POST" or params.trusted else None
        response = None
        if kind is not OperationType.QUERY:
            response = await compiled_ingest(self.state, request, payload)
        if response is None and kind is not OperationType.MUTATION:
            response = await compiled_read(self.state, request, payload)
        if response is not None:
            response.headers["content-type"] = media  # data, or an execution error: 200
            return response
        if payload is not None:  # a POSTed operation
            self.metrics.count(self.metrics.execution_path, "resolvers")
        return await self._execute(request, context, root_value, params, media)

    async def _execute(
        self, request: Request, context: Any, root_value: Any, params: GraphQLParams, media: str
    ) -> Response:
        """Strawberry's execution of the already-read request, answered in ``media``: with
        ``application/graphql-response+json``, a request that never started executing (parse,
        validation or variable-coercion errors) is a 400 without ``data``."""
        sub_response = await self.get_sub_response(request)
        if context is UNSET:
            context = await self.get_context(request, response=sub_response)
        if params.parsed is not None:  # a trusted document: Strawberry does not parse it again
            context.extras[TRUSTED_DOCUMENT_KEY] = params.parsed
        if root_value is UNSET:
            root_value = None  # the hub has no root value (Strawberry's default)
        data = GraphQLRequestData(
            query=params.query,
            variables=params.variables,
            operation_name=params.operation_name,
            extensions=params.extensions,
            protocol="http",
        )
        try:
            result = await self.execute_operation(
                request=request,
                request_adapter=self.request_adapter_class(request),
                request_data=data,
                context=context,
                root_value=root_value,
                sub_response=sub_response,
            )
        except HTTPException as refused:  # what hub.http.wire did not already refuse
            request.scope[OUTCOME_KEY] = "error"
            return refused_response(RequestRefused(400, "BAD_REQUEST", refused.reason), media)
        if not isinstance(result, ExecutionResult):
            raise TypeError(f"an HTTP operation gave {type(result).__name__}")
        body = await self.process_result(request, result)
        status = 200
        if media == GRAPHQL_RESPONSE_JSON and not_executed(result):
            status = 400
            body.pop("data", None)
        response = Response(self.encode_json(body), status_code=status, media_type=media)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

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
        context.extras[AUDIT_ENGINE_KEY] = resources.audit_engine
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket by the Authorization in its connection_init payload (or
        its upgrade request's header); no valid key closes it with 4403."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if not isinstance(authorization, str) and isinstance(context.request, WebSocket):
            authorization = context.request.headers.get("authorization")
        address = client_address(context.request.scope) if context.request else "unknown"
        principal = await self.keys.principal(
            authorization if isinstance(authorization, str) else None, address
        )
        if principal is None:
            raise ConnectionRejectionError({"message": "a valid API key is required"})
        if not can_use_graphql(principal):
            raise ConnectionRejectionError(
                {"message": "a SOURCE key only sends tracking data to /v1/*; no GraphQL"}
            )
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
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request really is being cancelled (client gone, shutdown)
            # A CancelledError that is not ours escaped the execution (a shared future a
            # cancelled sibling took down): a coded error, never a 500.
            logger.error("a stray CancelledError escaped the execution", exc_info=True)
            error = GraphQLError("Unexpected error.", extensions={"code": "INTERNAL_SERVER_ERROR"})
            return ExecutionResult(data=None, errors=[error])

    async def process_result(self, request: Any, result: ExecutionResult) -> Any:
        if result.errors and isinstance(request, Request):
            request.scope[OUTCOME_KEY] = "error"  # for hub.http.observe's metrics and log line
            if tracing.ENABLED:
                tracing.record_error_codes(request.scope, result.errors)
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> Response:
        # The hub's own GraphiQL page: libraries served locally, example tabs, API key field.
        return HTMLResponse(explorer_html())
