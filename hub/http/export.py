"""``GET /export``: customers or interactions as NDJSON, streamed, as the key that asks may see
them (docs/import-export.md).

``GET /export?what=customers|interactions[&filter=<CustomerFilter as JSON>]`` with
``Authorization: Bearer <key>``. The lines are ``hub export``'s (``hub import`` reads them
back). Who may: ADMIN, ANALYST and PARTNER keys (FRONTEND and SOURCE keys: 403 ``FORBIDDEN``).
Rows: the statement runs on ``hub.access.row_security.engine_for`` — a partner's export holds
only the customers and interactions PostgreSQL's row security shows it. Fields: masked with
``hub.access.masking`` unless the key has ``pii``; a filter on personal values (display name,
a personal trait) is ``FORBIDDEN`` without it, as on ``customers(filter:)``. The body is
streamed through a server-side cursor in chunks of about 64 KB: memory does not grow with the
export. One audit row per export, written before the first line. Errors before the first line
are GraphQL-style JSON (``{"errors": [{"message", "extensions": {"code"}}]}``); a failure once
streaming has begun ends the body early (the status was sent): a client checks it got the
number of lines it expected, or re-runs the export.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub.access.keys import Principal, Role
from hub.access.policy import can_see_pii
from hub.access.rate_limit import RateLimiter, retry_after
from hub.access.row_security import engine_for
from hub.core.errors import BadUserInput, Forbidden, HubError
from hub.core.faults import RETRY_AFTER_S, database_unavailable
from hub.core.request_keys import PRINCIPAL_KEY
from hub.core.text import storable
from hub.db.statements import AlchemySql
from hub.http.gate import KeyCheck, KeysThrottled, client_address, error_body
from hub.http.state import HubState
from hub.models import AUDIT_LOG
from hub.sources.customer_filter import compile_filter, parse_filter
from hub.sources.transfer import EXPORTS, export_lines
from hub.vocabulary.registry import current

logger = logging.getLogger("hub.sources")

# Bulk reading roles. FRONTEND keys serve applications one customer at a time; a SOURCE key
# only sends. A PARTNER exports its row scope, always masked.
EXPORT_ROLES = frozenset({Role.ADMIN, Role.ANALYST, Role.PARTNER})
CHUNK_BYTES = 64 * 1024
MAX_FILTER_BYTES = 16 * 1024


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message, code), status, headers, media_type="application/json")


def _refuse_personal(what: str) -> None:
    raise Forbidden(f"{what} needs a key with the pii scope")


class ExportApi:
    """The ``/export`` endpoint of one app."""

    def __init__(self, state: HubState, keys: KeyCheck) -> None:
        self.state = state
        self.keys = keys
        settings = state.settings
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)

    async def _principal(self, request: Request) -> Principal | Response:
        try:
            principal = await self.keys.principal(
                request.headers.get("authorization"), client_address(request.scope)
            )
        except KeysThrottled as throttled:
            return _error(
                429,
                "too many failed API key attempts from this address; retry later",
                "TOO_MANY_FAILED_KEYS",
                {"Retry-After": throttled.retry_after},
            )
        except Exception as error:
            if not database_unavailable(error):
                raise
            return _error(
                503,
                "the hub cannot check API keys right now; try again shortly",
                "SERVICE_UNAVAILABLE",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        if principal is None:
            return _error(
                401,
                "an API key is required (Authorization: Bearer <key>)",
                "UNAUTHENTICATED",
                {"WWW-Authenticate": 'Bearer realm="hub"'},
            )
        if principal.role not in EXPORT_ROLES:
            return _error(
                403,
                f"a {principal.role} key may not export; ADMIN, ANALYST and PARTNER keys may",
                "FORBIDDEN",
            )
        request.scope[PRINCIPAL_KEY] = principal
        return principal

    async def endpoint(self, request: Request) -> Response:
        if request.method != "GET":
            return _error(405, "an export is a GET", "METHOD_NOT_ALLOWED", {"Allow": "GET"})
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        wait = self.limiter.take((principal.key_id, principal.name))
        if wait > 0:
            return _error(
                429,
                "too many requests for this key; retry later",
                "RATE_LIMITED",
                {"Retry-After": retry_after(wait)},
            )
        settings = self.state.settings
        pii = can_see_pii(principal)
        what = request.query_params.get("what", "")
        raw_filter = request.query_params.get("filter")
        try:
            if what not in EXPORTS:
                raise BadUserInput(f"`what` is one of {', '.join(EXPORTS)}; got {what!r}")
            if raw_filter is not None and len(raw_filter.encode()) > MAX_FILTER_BYTES:
                raise BadUserInput(f"the filter is over {MAX_FILTER_BYTES} bytes")
            if raw_filter is not None:
                parse_filter(raw_filter)  # its shape, before the database is asked
        except HubError as error:
            return _error(400, error.message, error.code)
        personal = (lambda _what: None) if pii else _refuse_personal
        where: list[sa.ColumnElement[bool]] = []
        running = self.state.running
        try:
            async with running.audit_engine.begin() as connection:
                if raw_filter is not None:
                    # The vocabulary as it is now: a consent purpose or identity kind defined a
                    # moment ago (in any process) may be filtered on at once.
                    vocabulary = await current(AlchemySql(connection))
                    where.append(compile_filter(raw_filter, settings, vocabulary, personal))
                await connection.execute(
                    AUDIT_LOG.insert().values(
                        key_id=principal.key_id,
                        actor=storable(principal.name),
                        role=principal.role.value,
                        action=f"export {what}",
                        target_ids=[what],
                        success=True,
                        details={"pii": pii, "filter": raw_filter is not None, "via": "http"},
                    )
                )
        except HubError as error:  # the filter (nothing audited: rolled back)
            status = 403 if error.code == "FORBIDDEN" else 400
            extensions = dict(error.extensions or {})
            code = extensions.pop("code", error.code)
            refusal = error_body(error.message, code, **extensions)  # UNKNOWN_CODE: which code
            return Response(refusal, status, media_type="application/json")
        except Exception as error:
            if not database_unavailable(error):
                raise
            return _error(
                503,
                "the hub cannot export right now; try again shortly",
                "SERVICE_UNAVAILABLE",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        body = self._lines(principal, what, pii, where)
        return StreamingResponse(
            body,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{what}.ndjson"'},
        )

    async def _lines(
        self,
        principal: Principal,
        what: str,
        pii: bool,
        where: Sequence[sa.ColumnElement[bool]],
    ) -> AsyncIterator[bytes]:
        engine = engine_for(self.state.running.engine, principal)
        settings = self.state.settings
        chunk: list[bytes] = []
        size = 0
        try:
            async with engine.connect() as connection, connection.begin():
                line: Any
                async for line in export_lines(connection, what, pii, settings, where):
                    data = orjson.dumps(line) + b"\n"
                    chunk.append(data)
                    size += len(data)
                    if size >= CHUNK_BYTES:
                        yield b"".join(chunk)
                        chunk, size = [], 0
        except Exception:
            # The status is sent: end the body early (the client sees fewer lines).
            logger.exception("export %s for key %s ended early", what, principal.name)
            return
        if chunk:
            yield b"".join(chunk)


def export_routes(
    state: HubState, keys: KeyCheck, middleware: Sequence[Middleware]
) -> list[BaseRoute]:
    api = ExportApi(state, keys)
    return [
        Route(
            "/export",
            api.endpoint,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            name="export",
            middleware=middleware,
        )
    ]
