"""The graphql-transport-ws layer beneath Strawberry: bounded outboxes, shared execution, rules.

Strawberry's handler runs one task per operation and awaits each send. This subclass changes
three things:

* **Bounded, never-blocking fan-out.** Every connection has one writer task draining a bounded
  ``ConnectionOutbox``. Producers never await a slow socket: when the outbox is full the
  connection is cut off (``SUBSCRIBER_TOO_SLOW`` error on each operation, then close 4008), its
  backlog dropped.
* **Shared execution.** Live subscriptions (no `after`) with the same query, variables, operation
  name and access (``EventScope.share_key``) join one ``SharedExecution``: the operation runs
  once, each result is serialized once, and the same payload text is framed for every member.
  Resuming subscriptions (`after:` given) replay their own history, so they run privately, with
  backpressure from the outbox (a slow one fills its live queue and is cut off the same way).
* **Connection rules.** Malformed messages close with 4400 instead of raising; a cap on active
  operations (error ``TOO_MANY_SUBSCRIPTIONS``); keep-alive pings; the ``connection_init`` payload
  is kept for ``hub.access.event_scope``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, MutableSet
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.error import GraphQLSyntaxError
from starlette.websockets import WebSocket
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from hub.context import Context
from hub.core.faults import client_fault, database_unavailable
from hub.events.broker import SubscriberTooSlow
from hub.graphql import code_for
from hub.http.shutdown import CLOSE_SERVICE_RESTART, RESTART_REASON

if TYPE_CHECKING:
    from strawberry.http.async_base_view import AsyncBaseHTTPView, AsyncWebSocketAdapter

logger = logging.getLogger("hub.ws")

UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"
CLOSE_TOO_SLOW = 4008
CLOSE_TRY_AGAIN_LATER = 1013  # the key could not be checked (database unreachable)
TRY_AGAIN_REASON = "database unavailable: connect again shortly"
TOO_SLOW_REASON = "SUBSCRIBER_TOO_SLOW: resume from your last cursor"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _frame(operation_id: str, kind: str, payload: str) -> str:
    """A protocol message around an already serialized payload (shared by many connections)."""
    return f'{{"id":{_dumps(operation_id)},"type":"{kind}","payload":{payload}}}'


def _client_error(error: GraphQLError) -> dict[str, Any]:
    """As the HTTP path does (``hub.graphql.ErrorCodes``): a code on every error, bugs masked."""
    if error.extensions and "code" in error.extensions:
        return dict(error.formatted)
    if error.original_error is None or isinstance(error.original_error, GraphQLError):
        return {**error.formatted, "extensions": {"code": code_for(error)}}
    fault = client_fault(error.original_error)
    if fault is not None:
        logger.warning("%s at %s: %r", fault.name, error.path, error.original_error)
        return {"message": fault.message, "path": error.path, "extensions": fault.extensions}
    logger.error("unexpected error at %s", error.path, exc_info=error.original_error)
    return {
        "message": "Unexpected error.",
        "path": error.path,
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }


def _error_payload(message: str, code: str) -> str:
    return _dumps([{"message": message, "extensions": {"code": code}}])


def _failure_payload(error: Exception) -> str:
    """The `error` message for an operation that raised: retryable if the database went away."""
    fault = client_fault(error)
    if fault is not None:
        logger.warning("subscription ended, %s: %r", fault.name, error)
        return _dumps([{"message": fault.message, "extensions": fault.extensions}])
    logger.error("subscription failed", exc_info=error)
    return _error_payload("Unexpected error.", "INTERNAL_SERVER_ERROR")


@functools.lru_cache(maxsize=512)
def _resumes(query: str, operation_name: str | None) -> bool:
    """Whether the subscription's root field is given `after` (then it replays privately)."""
    try:
        document = parse(query)
    except GraphQLSyntaxError:
        return True  # let the private path report the syntax error
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is not None and (
            definition.name is None or definition.name.value != operation_name
        ):
            continue
        if definition.operation is not OperationType.SUBSCRIPTION:
            return True
        for selection in definition.selection_set.selections:
            arguments = getattr(selection, "arguments", None) or ()
            if any(argument.name.value == "after" for argument in arguments):
                return True
        return False
    return True


class ConnectionOutbox:
    """One connection's outgoing messages: bounded, drained by a single writer task."""

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self._websocket = websocket
        self._limit = limit
        self._queue: deque[str | None] = deque()  # None = close after sending what is before
        self._has_items = asyncio.Event()
        self._has_space = asyncio.Event()
        self._has_space.set()
        self.cut_off = False
        self.close_code = CLOSE_TOO_SLOW
        self.close_reason = TOO_SLOW_REASON

    def full(self) -> bool:
        return len(self._queue) >= self._limit

    def put_nowait(self, text: str) -> bool:
        """Queue without waiting; False when full (the caller cuts the connection off)."""
        if self.cut_off:
            return True  # the connection is going away; nothing more matters
        if self.full():
            return False
        self._queue.append(text)
        self._has_items.set()
        return True

    async def put(self, text: str, patience: float) -> bool:
        """Queue, waiting up to ``patience`` seconds for space (backpressure for a private
        stream); False when the consumer did not make room in time."""
        try:
            async with asyncio.timeout(patience):
                while self.full() and not self.cut_off:
                    self._has_space.clear()
                    await self._has_space.wait()
        except TimeoutError:
            return False
        return self.put_nowait(text)

    def replace_with_farewell(self, messages: list[str]) -> None:
        """Drop the backlog; send only these messages, then close (memory stays bounded)."""
        self.cut_off = True
        self._queue.clear()
        self._queue.extend(messages)
        self._queue.append(None)
        self._has_items.set()
        self._has_space.set()

    def close_after_queued(self, code: int, reason: str) -> None:
        """Send what is queued, then close with ``code``; nothing queued later is sent."""
        if self.cut_off:
            return  # already closing (e.g. a slow consumer's farewell)
        self.cut_off = True
        self.close_code = code
        self.close_reason = reason
        self._queue.append(None)
        self._has_items.set()
        self._has_space.set()

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._has_items.clear()
                await self._has_items.wait()
                continue
            text = self._queue.popleft()
            if not self.full():
                self._has_space.set()
            if text is None:
                await self._websocket.close(code=self.close_code, reason=self.close_reason)
                return
            await self._websocket.send_text(text)


@dataclasses.dataclass(eq=False)
class SubscriptionRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


async def execute(
    schema: BaseSchema, request: SubscriptionRequest, context: Context
) -> AsyncIterator[tuple[str, str]]:
    """Run one operation; yields (message type, serialized payload) — "next", "error", "complete".

    A ``SUBSCRIBER_TOO_SLOW`` error from the resolver comes out as ("too_slow", "").
    """
    source = await schema.stream(
        request.query,
        variable_values=request.variables,
        context_value=context,
        operation_name=request.operation_name,
    )
    async with aclosing(source):
        first = True
        async for result in source:
            if first and isinstance(result, PreExecutionError):
                yield "error", _dumps([_client_error(error) for error in result.errors or []])
                return
            if not isinstance(result, ExecutionResult):
                yield (
                    "error",
                    _error_payload(
                        "Incremental delivery is not supported over websockets", "BAD_REQUEST"
                    ),
                )
                return
            first = False
            errors = result.errors or []
            if any(
                (error.extensions or {}).get("code") == SubscriberTooSlow.code for error in errors
            ):
                yield "too_slow", ""
                return
            payload: dict[str, Any] = {"data": result.data}
            if errors:
                payload["errors"] = [_client_error(error) for error in errors]
                if any(
                    error["extensions"].get("code") == UNAVAILABLE_CODE
                    for error in payload["errors"]
                ):
                    # An event this operation could not load would be missing from the stream:
                    # end it instead; the client resumes from the last cursor it received.
                    yield "error", _dumps(payload["errors"])
                    return
            yield "next", _dumps(payload)
    yield "complete", ""


class SharedExecution:
    """One running operation whose results go to every member connection."""

    def __init__(self, registry: SharedExecutions, key: tuple[str, ...]) -> None:
        self.registry = registry
        self.key = key
        self.members: dict[tuple[HubTransportWSHandler, str], None] = {}
        self.task: asyncio.Task[None] | None = None

    async def run(self, schema: BaseSchema, request: SubscriptionRequest, context: Context) -> None:
        try:
            async for kind, payload in execute(schema, request, context):
                if kind == "too_slow":
                    for handler, _ in list(self.members):
                        handler.cut_off()
                    return
                final = kind in ("error", "complete")
                for handler, operation_id in list(self.members):
                    handler.deliver(operation_id, kind, payload, final=final)
                if final:
                    return
        except Exception as error:
            payload = _failure_payload(error)
            for handler, operation_id in list(self.members):
                handler.deliver(operation_id, "error", payload, final=True)
        finally:
            self.registry.forget(self)

    def leave(self, handler: HubTransportWSHandler, operation_id: str) -> None:
        self.members.pop((handler, operation_id), None)
        if not self.members and self.task is not None:
            self.registry.forget(self)
            self.task.cancel()


class SharedExecutions:
    """Process-wide index of shared executions, by (query, variables, operation, access)."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, ...], SharedExecution] = {}
        self.executions_started = 0

    def join(
        self,
        handler: HubTransportWSHandler,
        operation_id: str,
        request: SubscriptionRequest,
        context: Context,
    ) -> SharedExecution:
        key = (
            request.query,
            _dumps(request.variables or {}),
            request.operation_name or "",
            context.event_scope.share_key,
        )
        shared = self.running.get(key)
        if shared is None:
            shared = SharedExecution(self, key)
            self.running[key] = shared
            self.executions_started += 1
            own_context = dataclasses.replace(context, loaders=context.fresh_loaders())
            shared.task = asyncio.create_task(
                shared.run(handler.schema, request, own_context), name="hub-shared-subscription"
            )
        shared.members[(handler, operation_id)] = None
        return shared

    def forget(self, shared: SharedExecution) -> None:
        if self.running.get(shared.key) is shared:
            del self.running[shared.key]

    async def close(self) -> None:
        for shared in list(self.running.values()):
            if shared.task is not None:
                shared.task.cancel()
        self.running.clear()


class HubTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    def __init__(
        self,
        view: AsyncBaseHTTPView[Any, Any, Any, Any, Any, Context, None],
        websocket: AsyncWebSocketAdapter,
        context: Context,
        root_value: None,
        schema: BaseSchema,
        connection_init_wait_timeout: timedelta,
        max_subscriptions_per_connection: int | None = None,
    ) -> None:
        super().__init__(
            view,
            websocket,
            context,
            root_value,
            schema,
            connection_init_wait_timeout,
            max_subscriptions_per_connection,
        )
        settings = context.settings
        self.shared_executions: SharedExecutions = view.shared_executions  # type: ignore[attr-defined]
        # The view's open handlers: the graceful shutdown closes each (close_for_restart).
        self.live_handlers: MutableSet[HubTransportWSHandler] = getattr(
            view, "live_handlers", set()
        )
        # hub.ops.metrics counts open handlers and their active operations at scrape time.
        self.open_sockets: MutableSet[Any] | None = getattr(
            getattr(view, "metrics", None), "sockets", None
        )
        starlette_ws = cast(WebSocket, websocket.ws)  # type: ignore[attr-defined]
        self.outbox = ConnectionOutbox(starlette_ws, settings.subscriber_queue_size)
        self.active: dict[str, SharedExecution | asyncio.Task[None]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    # ---- lifecycle ----

    async def handle(self) -> None:
        self._writer = asyncio.create_task(self._write(), name="hub-ws-writer")
        if self.open_sockets is not None:
            self.open_sockets.add(self)
        self.live_handlers.add(self)
        try:
            await super().handle()
        finally:
            self.live_handlers.discard(self)
            if self.open_sockets is not None:
                self.open_sockets.discard(self)

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

    async def _write(self) -> None:
        with contextlib.suppress(Exception):  # a vanished client ends the writer, nothing else
            await self.outbox.run()

    async def shutdown(self) -> None:
        for operation_id in list(self.active):
            await self.cleanup_operation(operation_id)
        for task in (self._keepalive, self._writer, self._watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await super().shutdown()

    # ---- messages ----

    async def handle_message(self, message: Message) -> None:
        raw = cast(Any, message)
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            await self.handle_invalid_message("Message must be an object with a string `type`")
            return
        await super().handle_message(message)

    async def send_message(self, message: Message) -> None:
        if not self.outbox.put_nowait(_dumps(message)):
            self.cut_off()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        if isinstance(payload, dict):
            self.context.extras["connection_params"] = payload
        try:
            await super().handle_connection_init(message)
        except Exception as error:  # the key check could not reach the database
            if not database_unavailable(error):
                raise
            logger.warning("websocket key check: database unavailable: %r", error)
            await self.websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason=TRY_AGAIN_REASON)
            return
        interval = self.context.settings.ws_keepalive_s
        if self.connection_acknowledged and interval > 0 and self._keepalive is None:
            self._keepalive = asyncio.create_task(self._ping_every(interval), name="hub-ws-ping")

    async def _ping_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.send_message({"type": "ping"})

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
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
            or not isinstance(payload.get("query"), str)
            or not isinstance(payload.get("variables") or {}, dict)
            or not isinstance(payload.get("operationName") or "", str)
        ):
            await self.handle_invalid_message("Invalid subscribe message")
            return
        if operation_id in self.active:
            await self.websocket.close(
                code=4409, reason=f"Subscriber for {operation_id} already exists"
            )
            return
        limit = self.context.settings.ws_max_subscriptions
        if len(self.active) >= limit:
            self.outbox.put_nowait(
                _frame(
                    operation_id,
                    "error",
                    _error_payload(
                        f"at most {limit} active subscriptions per connection",
                        "TOO_MANY_SUBSCRIPTIONS",
                    ),
                )
            )
            return
        request = SubscriptionRequest(
            payload["query"], payload.get("variables"), payload.get("operationName")
        )
        if self.context.settings.ws_shared_execution and not _resumes(
            request.query, request.operation_name
        ):
            self.active[operation_id] = self.shared_executions.join(
                self, operation_id, request, self.context
            )
        else:
            task = asyncio.create_task(self._run_private(operation_id, request))
            self.active[operation_id] = task

    async def _run_private(self, operation_id: str, request: SubscriptionRequest) -> None:
        context = dataclasses.replace(self.context, loaders=self.context.fresh_loaders())
        try:
            async for kind, payload in execute(self.schema, request, context):
                if kind == "too_slow":
                    self.cut_off()
                    return
                if kind == "next":
                    patience = self.context.settings.subscriber_cutoff_grace_s
                    if not await self.outbox.put(_frame(operation_id, "next", payload), patience):
                        self.cut_off()
                        return
                else:
                    self.deliver(operation_id, kind, payload, final=True)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.deliver(operation_id, "error", _failure_payload(error), final=True)

    def deliver(self, operation_id: str, kind: str, payload: str, *, final: bool) -> None:
        """Queue one result for this connection; never waits (a full outbox cuts it off)."""
        if operation_id not in self.active:
            return
        if final:
            self.active.pop(operation_id, None)
        text = (
            f'{{"id":{_dumps(operation_id)},"type":"complete"}}'
            if kind == "complete"
            else _frame(operation_id, kind, payload)
        )
        if not self.outbox.put_nowait(text):
            self.cut_off()

    def cut_off(self) -> None:
        """The consumer fell behind: tell each operation, drop the backlog, close 4008."""
        if self.outbox.cut_off:
            return
        logger.warning("cutting off a slow websocket consumer (%d operations)", len(self.active))
        error = _error_payload(str(SubscriberTooSlow().message), SubscriberTooSlow.code)
        farewell = [_frame(operation_id, "error", error) for operation_id in self.active]
        for operation_id in list(self.active):
            self._stop(operation_id)
        self.outbox.replace_with_farewell(farewell)
        self._watchdog = asyncio.create_task(self._drop_after_grace())

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

    async def handle_complete(self, message: CompleteMessage) -> None:
        operation_id = cast(Any, message).get("id")
        if isinstance(operation_id, str):
            self._stop(operation_id)

    async def cleanup_operation(self, operation_id: str) -> None:
        self._stop(operation_id)

    def __repr__(self) -> str:  # handlers are dictionary keys in SharedExecution.members
        return f"<HubTransportWSHandler {id(self):x}>"


__all__ = ["HubTransportWSHandler", "SharedExecutions"]
