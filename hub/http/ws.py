"""The hub's graphql-transport-ws handler: Strawberry's protocol, the hub's delivery.

Strawberry's ``BaseGraphQLTransportWSHandler`` keeps the protocol (the 4408 init timer, ack,
ping/pong, 4401, 4409, 4429, ``on_ws_connect`` and its 4403). This subclass overrides only what
Strawberry offers no hook for, each override saying why:

* **Bounded, never-blocking fan-out.** Every connection has one writer task draining a bounded
  ``ConnectionOutbox`` (``hub.http.ws_outbox``). Producers never await a slow socket: when the
  outbox is full the connection is cut off (``SUBSCRIBER_TOO_SLOW`` error on each operation,
  then close 4008), its backlog dropped.
* **Shared execution** (``hub.http.ws_execution``). Live subscriptions run once per distinct
  operation and access; resuming ones (`after:` given) replay their own history privately, with
  backpressure from the outbox.
* **Connection rules.** Malformed messages close with 4400 instead of raising; a cap on active
  operations (error ``TOO_MANY_SUBSCRIPTIONS``); a token bucket of `subscribe` messages per
  connection (error ``RATE_LIMITED``); keep-alive pings; 1013 when the key cannot be checked,
  4429 when the address spent its failed-key budget; 1012 after flushing on shutdown.

``tests/http/test_ws_overrides.py`` pins the signatures of the Strawberry methods overridden here;
``pyproject.toml`` bounds ``strawberry-graphql`` to the versions that test has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Protocol, cast

from starlette.websockets import WebSocket
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)

from hub.access.rate_limit import RateLimiter, retry_after
from hub.context import Context
from hub.core.faults import database_unavailable
from hub.events.broker import SubscriberTooSlow
from hub.http.documents import DocumentIds
from hub.http.gate import KeysThrottled
from hub.http.shutdown import CLOSE_SERVICE_RESTART, RESTART_REASON
from hub.http.wire import GraphQLParams, RequestRefused
from hub.http.ws_execution import (
    SharedExecution,
    SharedExecutions,
    SubscriptionRequest,
    dumps,
    error_payload,
    execute,
    failure_payload,
    frame,
    resumes,
)
from hub.http.ws_outbox import CLOSE_TOO_SLOW, TOO_SLOW_REASON, ConnectionOutbox

if TYPE_CHECKING:
    from hub.ops.metrics import HubMetrics

logger = logging.getLogger("hub.ws")

CLOSE_TRY_AGAIN_LATER = 1013  # the key could not be checked (database unreachable)
TRY_AGAIN_REASON = "database unavailable: connect again shortly"
CLOSE_RATE_LIMITED = 4429  # failed key attempts over the address's budget
THROTTLED_REASON = "too many failed API key attempts"


class WebSocketHost(Protocol):
    """What the view (``hub.app.HubGraphQL``) keeps for its websocket handlers."""

    shared_executions: SharedExecutions
    # Documents by id (trusted documents, APQ) and the per-key rule (hub.http.documents).
    documents: DocumentIds
    # Open handlers, in one registry: hub.ops.metrics counts them and their active operations
    # at scrape time, and the graceful shutdown closes each (close_for_restart).
    metrics: HubMetrics


class HubTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """One graphql-transport-ws connection (installed as the view's
    ``graphql_transport_ws_handler_class``)."""

    # Per-connection state, set up when ``handle`` starts (the constructor stays Strawberry's).
    outbox: ConnectionOutbox
    active: dict[str, SharedExecution | asyncio.Task[None]]
    subscribes: RateLimiter
    _writer: asyncio.Task[None] | None
    _keepalive: asyncio.Task[None] | None
    _watchdog: asyncio.Task[None] | None

    # ---- overrides of Strawberry's handler ----

    async def handle(self) -> None:
        # Why: the base has no hook spanning a connection's life; the single writer task must
        # run for all of it, and the view's registries (shutdown, metrics) see it meanwhile.
        host = cast(WebSocketHost, self.view)
        websocket = self.context.request
        if not isinstance(websocket, WebSocket):
            raise TypeError("a websocket handler needs the Starlette WebSocket as its request")
        self.outbox = ConnectionOutbox(websocket, self.context.settings.subscriber_queue_size)
        self.active = {}
        settings = self.context.settings
        # One bucket per connection: subscribe messages are its only operations.
        self.subscribes = RateLimiter(settings.ws_subscribe_per_second, settings.ws_subscribe_burst)
        self._keepalive = self._watchdog = None
        self._writer = asyncio.create_task(self._write(), name="hub-ws-writer")
        host.metrics.sockets.add(self)
        try:
            await super().handle()
        finally:
            host.metrics.sockets.discard(self)

    async def shutdown(self) -> None:
        # Why: the base stops only its own ``operations``; the hub's live in ``active``, and the
        # writer, ping and watchdog tasks are the hub's too.
        for operation_id in list(self.active):
            await self.cleanup_operation(operation_id)
        for task in (self._keepalive, self._writer, self._watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await super().shutdown()

    async def handle_message(self, message: Message) -> None:
        # Why: the base indexes ``message["type"]`` and ``message["id"]`` and catches only
        # KeyError; a JSON array or number, or an unhashable id, would raise out of the
        # connection instead of closing it with 4400.
        raw = cast(Any, message)
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            await self.handle_invalid_message("Message must be an object with a string `type`")
            return
        if raw["type"] == "complete" and not isinstance(raw.get("id"), str):
            await self.handle_invalid_message("Invalid complete message")
            return
        await super().handle_message(message)

    async def send_message(self, message: Message) -> None:
        # Why: the base awaits the socket on every send; the hub queues into the bounded outbox
        # (a full one cuts the connection off) so no producer waits for a slow client.
        if not self.outbox.put_nowait(dumps(message)):
            self.cut_off()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        # Why: ``on_ws_connect`` can only accept or reject (4403); a key check that cannot reach
        # the database must close 1013 (try again later) instead. And graphql-transport-ws has
        # no server keep-alive in Strawberry (the view's keep_alive is the legacy protocol's):
        # pings start here, once acknowledged.
        try:
            await super().handle_connection_init(message)
        except KeysThrottled:
            # The address spent its failed-key budget (hub.http.gate.KeyCheck): no lookup made.
            await self.websocket.close(code=CLOSE_RATE_LIMITED, reason=THROTTLED_REASON)
            return
        except Exception as error:
            if not database_unavailable(error):
                raise
            logger.warning("websocket key check: database unavailable: %r", error)
            await self.websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason=TRY_AGAIN_REASON)
            return
        interval = self.context.settings.ws_keepalive_s
        if self.connection_acknowledged and interval > 0 and self._keepalive is None:
            self._keepalive = asyncio.create_task(self._ping_every(interval), name="hub-ws-ping")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Why: the base runs every operation privately with awaited sends, trusts the payload's
        # shape, and its limit error has no code; the hub validates (4400), answers
        # TOO_MANY_SUBSCRIPTIONS, and shares live executions through the outbox.
        if not self.connection_acknowledged:
            await self.websocket.close(code=4401, reason="Unauthorized")
            return
        raw = cast(Any, message)
        operation_id = raw.get("id")
        payload = raw.get("payload")
        if (
            not isinstance(operation_id, str)
            or not operation_id
            or not isinstance(payload, dict)
            or not isinstance(payload.get("query", ""), str)
            or not isinstance(payload.get("documentId", ""), str)
            or not isinstance(payload.get("extensions") or {}, dict)
            or not isinstance(payload.get("variables") or {}, dict)
            or not isinstance(payload.get("operationName") or "", str)
        ):
            await self.handle_invalid_message("Invalid subscribe message")
            return
        wait = self.subscribes.take(None)
        if wait > 0:
            # Over the connection's budget (HUB_WS_SUBSCRIBE_*): this operation is refused, the
            # connection and its running operations stay.
            limited = dumps(
                [
                    {
                        "message": "too many subscribe messages on this connection; retry later",
                        "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after(wait)},
                    }
                ]
            )
            self.outbox.put_nowait(frame(operation_id, "error", limited))
            return
        params = GraphQLParams(
            payload.get("query") or "",
            payload.get("variables"),
            payload.get("operationName"),
            payload.get("extensions"),
            payload.get("documentId"),
        )
        host = cast(WebSocketHost, self.view)
        try:
            # A document by id, and the key's rule: the same as over HTTP. (Before the checks
            # below: no await between them and the operation's registration.)
            params = await host.documents.resolve(params, self.context.principal)
        except RequestRefused as refused:
            refusal = error_payload(refused.message, refused.code)
            self.outbox.put_nowait(frame(operation_id, "error", refusal))
            return
        if not params.query:
            await self.handle_invalid_message("Invalid subscribe message")
            return
        if operation_id in self.active:
            await self.websocket.close(
                code=4409, reason=f"Subscriber for {operation_id} already exists"
            )
            return
        limit = self.context.settings.ws_max_subscriptions
        if len(self.active) >= limit:
            too_many = error_payload(
                f"at most {limit} active subscriptions per connection", "TOO_MANY_SUBSCRIPTIONS"
            )
            self.outbox.put_nowait(frame(operation_id, "error", too_many))
            return
        request = SubscriptionRequest(params.query, params.variables, params.operation_name)
        settings = self.context.settings
        if settings.ws_shared_execution and not resumes(
            request.query, request.operation_name, settings.max_tokens
        ):
            self.active[operation_id] = host.shared_executions.join(
                self, operation_id, self.schema, request, self.context
            )
        else:
            self.active[operation_id] = asyncio.create_task(
                self._run_private(operation_id, request)
            )

    async def cleanup_operation(self, operation_id: str) -> None:
        # Why: the base looks the id up in its own ``operations``; the hub's operations are
        # shared-execution memberships or private tasks in ``active``. (The base's
        # ``handle_complete`` calls this.)
        self._stop(operation_id)

    # ---- the hub's own ----

    async def close_for_restart(self, timeout: float) -> None:  # noqa: ASYNC109
        """Shutdown: stop every operation, send what was already queued (results delivered
        before this point), then close with 1012. The client resumes elsewhere with `after:`
        set to the last cursor it received, so nothing is lost and nothing is sent twice."""
        for operation_id in list(self.active):
            self._stop(operation_id)
        if self._keepalive is not None:
            self._keepalive.cancel()
        self.outbox.close_after_queued(CLOSE_SERVICE_RESTART, RESTART_REASON)
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(writer), timeout=timeout)
                return
            writer.cancel()
        with contextlib.suppress(Exception):  # a client that does not read: close anyway
            await asyncio.wait_for(
                self.websocket.close(code=CLOSE_SERVICE_RESTART, reason=RESTART_REASON), 1
            )

    def deliver(self, operation_id: str, kind: str, payload: str, *, final: bool) -> None:
        """Queue one result for this connection; never waits (a full outbox cuts it off)."""
        if operation_id not in self.active:
            return
        if final:
            self.active.pop(operation_id, None)
        text = (
            f'{{"id":{dumps(operation_id)},"type":"complete"}}'
            if kind == "complete"
            else frame(operation_id, kind, payload)
        )
        if not self.outbox.put_nowait(text):
            self.cut_off()

    def cut_off(self) -> None:
        """The consumer fell behind: tell each operation, drop the backlog, close 4008."""
        if self.outbox.cut_off:
            return
        logger.warning("cutting off a slow websocket consumer (%d operations)", len(self.active))
        error = error_payload(str(SubscriberTooSlow().message), SubscriberTooSlow.code)
        farewell = [frame(operation_id, "error", error) for operation_id in self.active]
        for operation_id in list(self.active):
            self._stop(operation_id)
        self.outbox.replace_with_farewell(farewell)
        self._watchdog = asyncio.create_task(self._drop_after_grace())

    async def _write(self) -> None:
        with contextlib.suppress(Exception):  # a vanished client ends the writer, nothing else
            await self.outbox.run()

    async def _ping_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.send_message({"type": "ping"})

    async def _run_private(self, operation_id: str, request: SubscriptionRequest) -> None:
        context = dataclasses.replace(self.context, loaders=self.context.fresh_loaders())
        try:
            async for kind, payload in execute(self.schema, request, context):
                if kind == "too_slow":
                    self.cut_off()
                    return
                if kind == "next":
                    patience = self.context.settings.subscriber_cutoff_grace_s
                    if not await self.outbox.put(frame(operation_id, "next", payload), patience):
                        self.cut_off()
                        return
                else:
                    self.deliver(operation_id, kind, payload, final=True)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.deliver(operation_id, "error", failure_payload(error), final=True)

    async def _drop_after_grace(self) -> None:
        """A client that does not even read its error within the grace period is dropped."""
        writer = self._writer
        if writer is None:
            return
        grace = self.context.settings.subscriber_cutoff_grace_s
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(writer), timeout=grace)
            return
        writer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.websocket.close(code=CLOSE_TOO_SLOW, reason=TOO_SLOW_REASON), timeout=1
            )

    def _stop(self, operation_id: str) -> None:
        running = self.active.pop(operation_id, None)
        if isinstance(running, SharedExecution):
            running.leave(self, operation_id)
        elif running is not None and running is not asyncio.current_task():
            running.cancel()


__all__ = ["HubTransportWSHandler", "SharedExecutions", "WebSocketHost"]
