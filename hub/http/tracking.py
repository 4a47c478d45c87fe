"""Segment's tracking API on the hub: ``POST /v1/batch``, ``/v1/track``, ``/v1/identify``,
``/v1/page``, ``/v1/screen``, ``/v1/alias``, ``/v1/group`` (docs/sources.md).

Authenticated the way Segment's SDKs do it: the write key is the HTTP Basic user name (empty
password); the key must be a SOURCE key (``hub keys create --role SOURCE --touchpoints ID``),
and everything it sends is recorded on its touchpoint. Bodies are JSON, plain or
``Content-Encoding: gzip``: the compressed body is capped by ``max_body_bytes``, the
decompressed one by ``source_max_body_bytes`` (read in bounded steps, so a gzip bomb is a 413
after at most that many bytes, never a memory blow-up). Answers are JSON: 200 with
``{"success": true, ...}`` when every message was stored (or was a duplicate), 400 with each
message's outcome when some were rejected (the others are stored), and for a request refused
whole a ``{"success": false, "code", "message"}`` that Segment's SDKs report as it is.
"""

from __future__ import annotations

import base64
import binascii
import logging
import zlib
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.access.keys import Principal
from hub.access.policy import can_send_tracking
from hub.access.rate_limit import RateLimiter, retry_after
from hub.core.faults import RETRY_AFTER_S, database_unavailable, transaction_conflict
from hub.core.request_keys import PRINCIPAL_KEY
from hub.http.gate import KeyCheck, KeysThrottled, client_address
from hub.http.state import HubState
from hub.sources.segment import MESSAGE_TYPES, body_text_storable
from hub.sources.track import answer_body, store_messages

logger = logging.getLogger("hub.sources")
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class Refused(Exception):
    """The whole request is refused: its status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def refusal(error: Refused) -> Response:
    body = {"success": False, "code": error.code, "message": error.message}
    return Response(orjson.dumps(body), error.status, error.headers, media_type="application/json")


def write_key(authorization: str | None) -> str | None:
    """The user name of an ``Authorization: Basic`` value (Segment's write key), else None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


async def read_body(request: Request, raw_limit: int, limit: int) -> bytes:
    """The body, gunzipped when it says so, within both limits (``Refused`` otherwise)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise Refused(415, "UNSUPPORTED_MEDIA_TYPE", "send plain or gzip-encoded JSON")
    declared = request.headers.get("content-length")
    too_large = Refused(413, "PAYLOAD_TOO_LARGE", f"the request body is over {raw_limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > raw_limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > raw_limit:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if encoding == "identity":
        return raw
    return gunzip(raw, limit)


def gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes (``Refused`` 413 beyond, 400 if not gzip)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise Refused(
                413,
                "PAYLOAD_TOO_LARGE",
                f"the decompressed request body is over {limit} bytes",
            )
        if not inflater.eof:
            raise Refused(400, "BAD_REQUEST", "the gzip body is truncated")
    except zlib.error:
        raise Refused(400, "BAD_REQUEST", "the body is not valid gzip") from None
    return out


def messages_of(body: bytes, kind: str, max_batch: int) -> tuple[list[Any], str | None]:
    """The request's messages, and the type the path imposes (None for /v1/batch)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, "BAD_REQUEST", "the body is not JSON (UTF-8)") from None
    if kind != "batch":
        return [document], kind
    batch = document.get("batch") if isinstance(document, dict) else None
    if not isinstance(batch, list) or not batch:
        raise Refused(400, "BAD_REQUEST", "a batch is a JSON object with a non-empty `batch` list")
    if len(batch) > max_batch:
        raise Refused(
            400, "BAD_REQUEST", f"a batch holds at most {max_batch} messages; got {len(batch)}"
        )
    return batch, None


class TrackingApi:
    """The ``/v1/*`` endpoints of one app."""

    def __init__(self, state: HubState, keys: KeyCheck) -> None:
        self.state = state
        self.keys = keys
        settings = state.settings
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)

    def routes(self, middleware: Sequence[Middleware]) -> list[BaseRoute]:
        # Every method reaches the endpoint, which answers all but POST with a JSON 405.
        return [
            Route(
                f"/v1/{kind}",
                self.endpoint,
                methods=ANY_METHOD,
                name=f"tracking-{kind}",
                middleware=middleware,
            )
            for kind in ("batch", *MESSAGE_TYPES)
        ]

    async def _principal(self, request: Request) -> Principal:
        key = write_key(request.headers.get("authorization"))
        unauthenticated = Refused(
            401,
            "UNAUTHENTICATED",
            "a SOURCE key is required as the write key (HTTP Basic user name, empty password)",
            {"WWW-Authenticate": 'Basic realm="hub"'},
        )
        if key is None:
            raise unauthenticated
        try:
            principal = await self.keys.principal_of_key(key, client_address(request.scope))
        except KeysThrottled as throttled:
            raise Refused(
                429,
                "TOO_MANY_FAILED_KEYS",
                "too many failed API key attempts from this address; retry later",
                {"Retry-After": throttled.retry_after},
            ) from None
        if principal is None:
            raise unauthenticated
        if not can_send_tracking(principal):
            raise Refused(
                403,
                "FORBIDDEN",
                f"only SOURCE keys send tracking data; this is a {principal.role} key "
                "(create one with `hub keys create --role SOURCE --touchpoints ID`)",
            )
        request.scope[PRINCIPAL_KEY] = principal
        return principal

    async def endpoint(self, request: Request) -> Response:
        kind = request.url.path.rsplit("/", 1)[-1]
        settings = self.state.settings
        try:
            if request.method != "POST":
                raise Refused(405, "METHOD_NOT_ALLOWED", "send messages by POST", {"Allow": "POST"})
            try:
                principal = await self._principal(request)
            except Refused:
                raise
            except Exception as error:
                if not database_unavailable(error):
                    raise
                raise Refused(
                    503,
                    "SERVICE_UNAVAILABLE",
                    "the hub cannot check keys right now; try again shortly",
                    {"Retry-After": str(RETRY_AFTER_S)},
                ) from error
            wait = self.limiter.take((principal.key_id, principal.name))
            if wait > 0:
                raise Refused(
                    429,
                    "RATE_LIMITED",
                    "too many requests for this key; retry later",
                    {"Retry-After": retry_after(wait)},
                )
            body = await read_body(request, settings.max_body_bytes, settings.source_max_body_bytes)
            messages, forced = messages_of(body, kind, settings.max_batch_size)
            running = self.state.running
            outcomes = await store_messages(
                running.engine,
                principal,
                messages,
                forced,
                settings,
                request.url.path,
                # Interactions only: on the compiled ingest's bare asyncpg pool when it runs.
                pool=running.ingest.pool if running.ingest is not None else None,
                text_checked=body_text_storable(body),
            )
        except Refused as refused:
            return refusal(refused)
        except Exception as error:
            if database_unavailable(error) or transaction_conflict(error):
                logger.warning("tracking request not stored: %r", error)
                return refusal(
                    Refused(
                        503,
                        "SERVICE_UNAVAILABLE",
                        "nothing of this request was stored; try again shortly",
                        {"Retry-After": str(RETRY_AFTER_S)},
                    )
                )
            logger.exception("tracking request failed")
            return refusal(Refused(500, "INTERNAL_SERVER_ERROR", "Unexpected error."))
        status = 200 if all(o.status != "rejected" for o in outcomes) else 400
        return Response(answer_body(outcomes), status, media_type="application/json")


def tracking_routes(
    state: HubState, keys: KeyCheck, middleware: Sequence[Middleware]
) -> list[BaseRoute]:
    return TrackingApi(state, keys).routes(middleware)
