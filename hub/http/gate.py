"""The HTTP gate in front of ``/graphql``: checks that need no GraphQL parsing.

In order: the method (405 but for GET and POST), request body size (413), CSRF (mutations and
queries only as POST with a JSON content type; GET queries need the ``X-Hub-Request`` header),
the API key (401; the GraphiQL page needs an ADMIN or ANALYST key, or development mode), the
rate limit per key (429 with Retry-After). Before the key's lookup, the client address's budget
of failed key attempts (``KeyCheck``: 429 TOO_MANY_FAILED_KEYS with Retry-After once spent, no
database lookup). The principal it finds goes into the ASGI scope, where ``get_context`` picks
it up. Websockets authenticate in ``connection_init`` instead (``HubGraphQL.on_ws_connect``),
asking the same ``KeyCheck``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.access.key_cache import KeyCache
from hub.access.keys import (
    DEV_PRINCIPAL,
    Principal,
    bearer_token,
    hash_key,
    key_prefix,
    verify_key,
)
from hub.access.policy import can_introspect, can_use_graphql
from hub.access.rate_limit import RateLimiter, retry_after
from hub.core.faults import RETRY_AFTER_S, database_unavailable
from hub.core.request_keys import PRINCIPAL_KEY
from hub.core.settings import Settings
from hub.ops.metrics import HubMetrics

logger = logging.getLogger("hub.access")
REQUEST_HEADER = "x-hub-request"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def error_body(message: str, code: str, **extensions: Any) -> bytes:
    return orjson.dumps(
        {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    )


async def send_error(
    send: Send,
    status: int,
    message: str,
    code: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    body = error_body(message, code, **extra)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class KeysThrottled(Exception):
    """The client address spent its budget of failed key attempts: no lookup was made."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many failed API key attempts; retry in {wait:.1f}s")
        self.retry_after = retry_after(wait)


def client_address(scope: Scope) -> str:
    """The peer's address (the proxy's unless the server trusts its forwarded headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class KeyCheck:
    """Who an ``Authorization`` header belongs to (None: nobody), for HTTP and websockets.

    Every key that fails costs its client address a token (``HUB_FAILED_KEY_*``); an address
    with none left is refused (``KeysThrottled``) before its key is looked up, so guessing keys
    cannot make the database do work. Valid keys cost nothing here, and once verified they are
    served from the process's ``KeyCache`` (no database round trip) for as long as it keeps
    confirming them (a revocation anywhere reaches it within a second)."""

    def __init__(
        self, settings: Settings, pool: Callable[[], Any], metrics: HubMetrics | None = None
    ) -> None:
        self.settings = settings
        # A callable returning the key-check pool (created in the lifespan): an asyncpg pool or an
        # AsyncEngine (hub.access.keys.verify_key takes either).
        self.pool = pool
        self.metrics = metrics
        self.failures = RateLimiter(settings.failed_key_per_second, settings.failed_key_burst)
        self.cache = KeyCache(
            pool, size=settings.key_cache_size, interval=settings.key_cache_check_seconds
        )

    async def principal(self, authorization: str | None, address: str) -> Principal | None:
        key = bearer_token(authorization)
        if key is None:
            return DEV_PRINCIPAL if self.settings.dev_mode else None
        return await self.principal_of_key(key, address)

    async def principal_of_key(self, key: str, address: str) -> Principal | None:
        """The principal of ``key`` (however it was sent), throttled per address the same way."""
        wait = self.failures.wait(address)
        if wait > 0:
            if self.metrics is not None:
                self.metrics.count(self.metrics.key_checks, "throttled")
            raise KeysThrottled(wait)
        digest = hash_key(key)
        principal = self.cache.get(digest)
        if principal is not None:
            if self.metrics is not None:
                self.metrics.count(self.metrics.key_checks, "cached")
            return principal
        read_at = self.cache.clock()  # before the read: the entry is as fresh as its start
        principal = await verify_key(
            self.pool(), key, touch_before=datetime.now(UTC) - LAST_USED_RESOLUTION
        )
        if principal is None:
            self.failures.take(address)
        else:
            self.cache.put(digest, key_prefix(key) or "", principal, read_at)
        if self.metrics is not None:
            self.metrics.count(self.metrics.key_checks, "valid" if principal else "invalid")
        return principal


class AccessGate:
    """ASGI middleware in front of ``/graphql`` over HTTP (websockets pass through)."""

    def __init__(self, app: ASGIApp, keys: KeyCheck) -> None:
        self.app = app
        self.keys = keys
        self.settings = keys.settings
        self.limiter = RateLimiter(
            self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        if method not in ("GET", "POST"):  # the route takes every method, to answer this in JSON
            await send_error(
                send,
                405,
                "GraphQL over HTTP takes GET (queries) and POST",
                "METHOD_NOT_ALLOWED",
                {"Allow": "GET, POST"},
            )
            return
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(
                send,
                413,
                f"the request body is over {limit} bytes",
                "PAYLOAD_TOO_LARGE",
                maxBytes=limit,
            )
            return
        if method == "POST" and not _is_json(headers.get("content-type", "")):
            await send_error(
                send,
                415,
                "send GraphQL requests as POST with Content-Type: application/json",
                "UNSUPPORTED_MEDIA_TYPE",
            )
            return
        query_string = scope.get("query_string", b"")
        if method == "GET" and query_string:
            if not self.settings.allow_get_queries:
                await send_error(
                    send, 405, "queries by GET are switched off; use POST", "METHOD_NOT_ALLOWED"
                )
                return
            if not headers.get(REQUEST_HEADER):
                await send_error(
                    send,
                    403,
                    "queries by GET need the X-Hub-Request header (CSRF protection); or use POST",
                    "CSRF_HEADER_REQUIRED",
                )
                return
        try:
            principal = await self.keys.principal(
                headers.get("authorization"), client_address(scope)
            )
        except KeysThrottled as throttled:
            await send_error(
                send,
                429,
                "too many failed API key attempts from this address; retry later",
                "TOO_MANY_FAILED_KEYS",
                {"Retry-After": throttled.retry_after},
            )
            return
        except Exception as error:  # say what happened, without internals
            if not database_unavailable(error):
                logger.error("API key check failed", exc_info=True)
                await send_error(send, 500, "Unexpected error.", "INTERNAL_SERVER_ERROR")
                return
            logger.warning("could not check an API key: database unavailable: %r", error)
            await send_error(
                send,
                503,
                "the hub cannot check API keys right now; try again shortly",
                "SERVICE_UNAVAILABLE",
                {"Retry-After": str(RETRY_AFTER_S)},
                retryable=True,
            )
            return
        graphiql_page = method == "GET" and not query_string
        if graphiql_page and principal is not None and not can_introspect(principal):
            # The GraphiQL page: for ADMIN and ANALYST keys (and development mode) only.
            await send_error(send, 403, "GraphiQL is for ADMIN and ANALYST keys", "FORBIDDEN")
            return
        if graphiql_page and principal is None:
            # A browser cannot send a bearer key when it navigates, so the explorer's page shell
            # (no data in it) is served; the key typed into the page authenticates each query,
            # and introspection, which the explorer needs, stays ADMIN/ANALYST only.
            await self.app(scope, receive, send)
            return
        if principal is None:
            await send_error(
                send,
                401,
                "a valid API key is required: send Authorization: Bearer <key>",
                "UNAUTHENTICATED",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        if not can_use_graphql(principal):
            await send_error(
                send,
                403,
                "a SOURCE key only sends tracking data to /v1/* (Segment's API); "
                "it cannot use GraphQL",
                "FORBIDDEN",
            )
            return
        # Per key: its id, with its (unique) name, so that an id handed out again after the
        # table was reset (the tests' RESTART IDENTITY) starts with a bucket of its own.
        wait = self.limiter.take((principal.key_id, principal.name))
        if wait > 0:
            await send_error(
                send,
                429,
                "too many requests for this key; retry later",
                "RATE_LIMITED",
                {"Retry-After": retry_after(wait)},
            )
            return
        body = await _read_body(receive, limit)
        if body is None:
            await send_error(
                send,
                413,
                f"the request body is over {limit} bytes",
                "PAYLOAD_TOO_LARGE",
                maxBytes=limit,
            )
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` (a chunked body has no Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
