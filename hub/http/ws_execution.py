"""Running subscription operations for websockets: once per operation, serialized once.

``execute`` turns one operation's ``schema.stream`` into protocol messages with the hub's error
codes. ``SharedExecutions`` lets live subscriptions (no `after`) with the same query, variables,
operation name and access (``EventScope.share_key``) join one ``SharedExecution``: it runs once
and hands the same payload text to every member connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.error import GraphQLSyntaxError
from strawberry.schema import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from hub.context import Context
from hub.core.faults import client_fault
from hub.events.broker import SubscriberTooSlow
from hub.graphql import code_for
from hub.schema.extensions import token_code

logger = logging.getLogger("hub.ws")

UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"


def dumps(value: Any) -> str:
    """Compact JSON, as sent on the wire."""
    return json.dumps(value, separators=(",", ":"), default=str)


def frame(operation_id: str, kind: str, payload: str) -> str:
    """A protocol message around an already serialized payload (shared by many connections)."""
    return f'{{"id":{dumps(operation_id)},"type":"{kind}","payload":{payload}}}'


def error_payload(message: str, code: str) -> str:
    """The payload of an `error` message with one coded error."""
    return dumps([{"message": message, "extensions": {"code": code}}])


def failure_payload(error: Exception) -> str:
    """The `error` message for an operation that raised: retryable if the database went away."""
    fault = client_fault(error)
    if fault is not None:
        logger.warning("subscription ended, %s: %r", fault.name, error)
        return dumps([{"message": fault.message, "extensions": fault.extensions}])
    logger.error("subscription failed", exc_info=error)
    return error_payload("Unexpected error.", "INTERNAL_SERVER_ERROR")


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


@functools.lru_cache(maxsize=512)
def resumes(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether the subscription's root field is given `after` (then it replays privately).
    Parsed under the token limit: a huge document must not be parsed in full here, before the
    schema's own (limited) parse."""
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLSyntaxError:
        return True  # let the private path report the syntax error (or the token limit)
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


@dataclasses.dataclass(eq=False)
class SubscriptionRequest:
    """The operation a `subscribe` message asks for."""

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
                # The guard's clean-up of pre-execution errors runs after Strawberry built this
                # result (it does for HTTP): the token limit gets its code here.
                limit = context.settings.max_tokens
                errors = [token_code(error, limit) for error in result.errors or []]
                yield "error", dumps([_client_error(error) for error in errors])
                return
            if not isinstance(result, ExecutionResult):
                yield (
                    "error",
                    error_payload(
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
                    yield "error", dumps(payload["errors"])
                    return
            yield "next", dumps(payload)
    yield "complete", ""


class Member(Protocol):
    """A connection that receives a shared execution's results (``HubTransportWSHandler``)."""

    def deliver(self, operation_id: str, kind: str, payload: str, *, final: bool) -> None: ...

    def cut_off(self) -> None: ...


class SharedExecution:
    """One running operation whose results go to every member connection."""

    def __init__(self, registry: SharedExecutions, key: tuple[str, ...]) -> None:
        self.registry = registry
        self.key = key
        self.members: dict[tuple[Member, str], None] = {}
        self.task: asyncio.Task[None] | None = None

    async def run(self, schema: BaseSchema, request: SubscriptionRequest, context: Context) -> None:
        try:
            async for kind, payload in execute(schema, request, context):
                if kind == "too_slow":
                    for member, _ in list(self.members):
                        member.cut_off()
                    return
                final = kind in ("error", "complete")
                for member, operation_id in list(self.members):
                    member.deliver(operation_id, kind, payload, final=final)
                if final:
                    return
        except Exception as error:
            payload = failure_payload(error)
            for member, operation_id in list(self.members):
                member.deliver(operation_id, "error", payload, final=True)
        finally:
            self.registry.forget(self)

    def leave(self, member: Member, operation_id: str) -> None:
        """One member's operation ended; the last one to leave stops the execution."""
        self.members.pop((member, operation_id), None)
        if not self.members and self.task is not None:
            self.registry.forget(self)
            self.task.cancel()


class SharedExecutions:
    """Process-wide index of shared executions, by (query, variables, operation, access)."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, ...], SharedExecution] = {}

    def join(
        self,
        member: Member,
        operation_id: str,
        schema: BaseSchema,
        request: SubscriptionRequest,
        context: Context,
    ) -> SharedExecution:
        """The running execution of this operation, started if there is none yet."""
        key = (
            request.query,
            dumps(request.variables or {}),
            request.operation_name or "",
            context.event_scope.share_key,
        )
        shared = self.running.get(key)
        if shared is None:
            shared = SharedExecution(self, key)
            self.running[key] = shared
            own_context = dataclasses.replace(context, loaders=context.fresh_loaders())
            shared.task = asyncio.create_task(
                shared.run(schema, request, own_context), name="hub-shared-subscription"
            )
        shared.members[(member, operation_id)] = None
        return shared

    def forget(self, shared: SharedExecution) -> None:
        if self.running.get(shared.key) is shared:
            del self.running[shared.key]

    async def close(self) -> None:
        """Stop every shared execution (the app is shutting down)."""
        for shared in list(self.running.values()):
            if shared.task is not None:
                shared.task.cancel()
        self.running.clear()
