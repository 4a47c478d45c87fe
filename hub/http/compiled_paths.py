"""The compiled paths' steps of the GraphQL pipeline: ingest and reads answered by one statement
each, without resolvers, for the callers they cover; ``None`` hands the request on.

Reads serve every role: ``CompiledReads.respond`` takes the principal and derives the rest (a
caller without ``pii`` gets the masked plan; a row-scoped (PARTNER) caller's statement runs on a
connection whose session has the partner role and the key's scope, so PostgreSQL's row security
applies it), on the replica when read routing chose it. Compiled ingest serves every caller who
may write and is not row-scoped (ADMIN, FRONTEND with or without ``pii``: masked without it); a
PARTNER cannot write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.access.keys import Principal
from hub.access.policy import can_write
from hub.access.row_security import row_scoped
from hub.compiled.executor import DatabaseUnavailable
from hub.context import NOBODY
from hub.core.faults import UNAVAILABLE_MESSAGE, unavailable_extensions
from hub.core.request_keys import (
    OPERATION_TYPE_KEY,
    OUTCOME_KEY,
    PRINCIPAL_KEY,
    READ_PATH_KEY,
    REPLICA_KEY,
)
from hub.core.settings import Settings
from hub.http.state import HubState
from hub.ops import tracing

logger = logging.getLogger("hub")


def timeout_error(settings: Settings) -> GraphQLError:
    """The answer to an operation stopped after ``operation_timeout_seconds``."""
    return GraphQLError(
        f"the operation took longer than {settings.operation_timeout_seconds}s and was stopped",
        extensions={"code": "TIMEOUT"},
    )


async def compiled_ingest(state: HubState, request: Request, payload: Any) -> Response | None:
    """A covered ingest mutation's answer."""
    ingest = state.running.ingest
    principal: Principal = request.scope.get(PRINCIPAL_KEY, NOBODY)
    # Masked callers too (the payload is masked as the resolvers mask it); never a row-scoped
    # one (a PARTNER cannot write anyway).
    if ingest is None or payload is None or row_scoped(principal) or not can_write(principal):
        return None
    answer = ingest.respond(request, principal, payload)
    response = await _within_timeout(request, state.settings, answer, "compiled ingest")
    if response is None:
        return None
    # Resolver-path mutations record the caller's read fence in ReadFence; this path skips
    # Strawberry's extensions, so it records the fence itself.
    if state.running.router is not None:
        await state.running.router.record_write(principal)
    return _answered(state, request, response, "mutation")


async def compiled_read(state: HubState, request: Request, payload: Any) -> Response | None:
    """A covered query's answer, from the replica when read routing chose it."""
    running = state.running
    compiled = running.compiled
    if compiled is None:
        return None
    principal: Principal = request.scope.get(PRINCIPAL_KEY, NOBODY)
    replica = bool(request.scope.get(REPLICA_KEY, False))
    # The principal decides masking and row scope inside respond (one enforcement point).
    answer = compiled.respond(request, principal, payload, replica)
    response = await _within_timeout(request, state.settings, answer, "compiled read")
    if response is None:
        return None
    state.metrics.count(state.metrics.sql_statements, "compiled")  # its one statement
    return _answered(state, request, response, "query")


def _answered(state: HubState, request: Request, response: Response, kind: str) -> Response:
    """A compiled path answered (no resolvers ran): metrics and the operation span say so."""
    state.metrics.count(state.metrics.execution_path, "compiled")
    if tracing.ENABLED:
        request.scope[OPERATION_TYPE_KEY] = kind
        request.scope[READ_PATH_KEY] = "compiled"
    return response


async def _within_timeout(
    request: Request,
    settings: Settings,
    answer: Coroutine[Any, Any, Response | None],
    path: str,
) -> Response | None:
    """A compiled path's answer; the TIMEOUT error after ``operation_timeout_seconds``; the
    retryable SERVICE_UNAVAILABLE error when the database cannot be reached."""
    try:
        # asyncio.timeout, not wait_for: no task per request on the hot path.
        async with asyncio.timeout(settings.operation_timeout_seconds):
            return await answer
    except TimeoutError:
        request.scope[OUTCOME_KEY] = "error"
        error = timeout_error(settings)
        if tracing.ENABLED:
            tracing.record_error_codes(request.scope, [error])
        return JSONResponse({"data": None, "errors": [error.formatted]})
    except DatabaseUnavailable as unreachable:
        logger.warning("database unreachable (%s): %r", path, unreachable.__cause__)
        request.scope[OUTCOME_KEY] = "error"
        unavailable = {"message": UNAVAILABLE_MESSAGE, "extensions": unavailable_extensions()}
        return JSONResponse({"data": None, "errors": [unavailable]})
