"""The outermost layer of ``/graphql`` over HTTP: request id, one log line, request metrics.

It wraps the access gate, so rejected requests (401, 413, 429...) are logged and counted too.
Inner layers leave what they learn in the ASGI scope (``hub.core.request_keys``): the gate the
principal (``PRINCIPAL_KEY``), ``HubGraphQL`` the operation name and whether the answer carried
errors (``OPERATION_KEY``, ``OUTCOME_KEY``). Nothing here reads the request body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.core.request_keys import OPERATION_KEY, OUTCOME_KEY, PRINCIPAL_KEY, REQUEST_ID_KEY
from hub.ops.metrics import ANONYMOUS, HubMetrics

logger = logging.getLogger("hub.requests")

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(headers: Headers) -> str:
    """The caller's X-Request-Id when it is safe to log and echo, else a fresh one."""
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if _VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


class RequestObserver:
    """ASGI middleware: the outermost layer of ``/graphql`` over HTTP (websockets pass through)."""

    def __init__(self, app: ASGIApp, metrics: HubMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(Headers(scope=scope))
        scope[REQUEST_ID_KEY] = request_id
        status = 500  # what the client sees if the app fails before starting a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._finish(scope, status, time.perf_counter() - started)

    def _finish(self, scope: Scope, status: int, seconds: float) -> None:
        operation = scope.get(OPERATION_KEY, ANONYMOUS)
        outcome = "error" if status >= 400 else scope.get(OUTCOME_KEY, "ok")
        graphiql_page = scope["method"] == "GET" and not scope.get("query_string")
        if self.metrics is not None and not graphiql_page:
            self.metrics.observe_request(operation, outcome, seconds)
        principal = scope.get(PRINCIPAL_KEY)
        fields = {
            "request_id": scope[REQUEST_ID_KEY],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "operation": operation,
            "outcome": outcome,
            "principal": principal.name if principal is not None else None,
        }
        logger.info(
            "%s %s %d %.1fms operation=%s principal=%s request_id=%s",
            fields["method"],
            fields["path"],
            status,
            fields["duration_ms"],
            operation,
            fields["principal"],
            fields["request_id"],
            extra=fields,
        )
