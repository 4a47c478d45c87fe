"""Requests by id: GraphQL-over-HTTP's ``documentId`` and Apollo's automatic persisted queries
(``extensions.persistedQuery``), and the per-key rule that some keys send only ids.

``DocumentIds.resolve`` turns a request's id into the document's text (cached per process,
bounded, each copy trusted for ``HUB_TRUSTED_DOCUMENTS_TTL_S``), so everything after it (the
operation checks of ``hub.http.wire``, the compiled path, Strawberry's validation cache) sees
the same text object every time and parses, validates and plans it once per process.

- trusted documents (``trusted_documents``, registered by an ADMIN) run for every key;
- an APQ hash sent with its query registers it in this process's APQ cache, only for keys
  allowed arbitrary documents (``ANY``); those keys may then send the hash alone. APQ entries
  are never trusted documents: a ``REGISTERED_ONLY`` key cannot run them;
- a ``REGISTERED_ONLY`` key that sends a document's text (without a registered id) is refused
  with 403 PERSISTED_QUERY_REQUIRED.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, parse
from starlette.requests import Request
from starlette.responses import Response

from hub.access.documents import FIND_DOCUMENT, document_id, is_sha256, registered_only
from hub.access.keys import Principal
from hub.core.faults import RETRY_AFTER_S, UNAVAILABLE_MESSAGE, database_unavailable
from hub.core.lru import LRU
from hub.core.request_keys import OUTCOME_KEY
from hub.core.settings import Settings
from hub.http.wire import GraphQLParams, RequestRefused

logger = logging.getLogger("hub")
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"  # what Apollo's persisted-query link looks for


def _required() -> RequestRefused:
    return RequestRefused(
        403,
        "PERSISTED_QUERY_REQUIRED",
        "this API key runs only registered documents: send `documentId` (or an APQ "
        "`extensions.persistedQuery.sha256Hash`) of a trusted document instead of its text",
    )


def _bad(message: str, code: str = "BAD_REQUEST") -> RequestRefused:
    return RequestRefused(400, code, message)


@dataclass(frozen=True)
class Trusted:
    """A trusted document as this process keeps it: its text, parsed once, until when."""

    text: str
    document: DocumentNode
    until: float


class DocumentIds:
    """One app's documents by id: trusted ones from the database, APQ ones from callers."""

    def __init__(self, settings: Settings, pool: Callable[[], Any]) -> None:
        self.settings = settings
        self.pool = pool  # the key-check asyncpg pool (hub.http.resources)
        self.trusted_documents: LRU[str, Trusted] = LRU(settings.trusted_documents_cache_size)
        self.apq: LRU[str, str] = LRU(max(settings.apq_cache_size, 1))
        self.lookups = 0  # database lookups made (tests read it: cached ids make none)

    async def trusted(self, id: str) -> Trusted | None:
        """A trusted document by id (None: not registered)."""
        now = time.monotonic()
        cached = self.trusted_documents.get(id)
        if cached is not None and cached.until > now:
            return cached
        self.lookups += 1
        try:
            async with self.pool().acquire() as connection:
                text: str | None = await connection.fetchval(FIND_DOCUMENT, id)
        except Exception as error:
            if not database_unavailable(error):
                raise
            logger.warning("could not look up a trusted document: %r", error)
            raise RequestRefused(
                503,
                "SERVICE_UNAVAILABLE",
                UNAVAILABLE_MESSAGE,
                headers={"Retry-After": str(RETRY_AFTER_S)},
                extensions={"retryable": True},
            ) from None
        if text is None:
            self.trusted_documents.pop(id)
            return None
        until = now + self.settings.trusted_documents_ttl_s
        if cached is not None and cached.text == text:
            # The same objects: the caches keyed by text (or by node) stay warm.
            found = dataclasses.replace(cached, until=until)
        else:
            found = Trusted(text, parse(text), until)  # valid: checked at registration
        self.trusted_documents.put(id, found)
        return found

    def _run(self, params: GraphQLParams, found: Trusted, **changes: Any) -> GraphQLParams:
        return dataclasses.replace(
            params, query=found.text, trusted=True, parsed=found.document, **changes
        )

    async def resolve(self, params: GraphQLParams, principal: Principal) -> GraphQLParams:
        """``params`` with the document's text; refused when the id is unknown or malformed,
        or when the key may not send what it sent."""
        only_registered = registered_only(principal, self.settings.env)
        extensions = params.extensions or {}
        if params.document_id is not None:
            if params.query:
                raise _bad("send either `query` or `documentId`, not both")
            found = await self.trusted(params.document_id)
            if found is None:
                raise _bad(
                    f"no trusted document with id {params.document_id[:80]!r}",
                    "PERSISTED_QUERY_NOT_FOUND",
                )
            return self._run(params, found)
        if "persistedQuery" in extensions:
            return await self._persisted_query(params, extensions, only_registered)
        if only_registered:
            raise _required()
        return params

    async def _persisted_query(
        self, params: GraphQLParams, extensions: dict[str, Any], only_registered: bool
    ) -> GraphQLParams:
        persisted = extensions["persistedQuery"]
        if (
            not isinstance(persisted, dict)
            or persisted.get("version") != 1
            or not isinstance(persisted.get("sha256Hash"), str)
            or not is_sha256(persisted["sha256Hash"])
        ):
            raise _bad(
                "`extensions.persistedQuery` must be {version: 1, sha256Hash: <64 lowercase hex>}",
                "PERSISTED_QUERY_INVALID",
            )
        hash_ = persisted["sha256Hash"]
        # The rest of the pipeline (the compiled path too) sees the request without it.
        rest = {k: v for k, v in extensions.items() if k != "persistedQuery"} or None
        if params.query:
            if document_id(params.query) != hash_:
                raise _bad(
                    "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`",
                    "PERSISTED_QUERY_HASH_MISMATCH",
                )
            found = await self.trusted(hash_)
            if found is not None:
                return self._run(params, found, extensions=rest)
            if only_registered:
                raise _required()  # APQ registers nothing for a registered-only key
            if self.settings.apq_cache_size > 0:
                self.apq.put(hash_, params.query)
            return dataclasses.replace(params, extensions=rest)
        found = await self.trusted(hash_)
        if found is not None:
            return self._run(params, found, extensions=rest)
        text = None if only_registered else self.apq.get(hash_)
        if text is None:
            # Apollo's clients answer this by sending the query with its hash (200, as Apollo
            # Server answers it); a registered-only key's client then gets
            # PERSISTED_QUERY_REQUIRED.
            raise RequestRefused(200, "PERSISTED_QUERY_NOT_FOUND", NOT_FOUND_MESSAGE)
        return dataclasses.replace(params, query=text, extensions=rest)


def cacheable(request: Request, response: Response, cache_control: str) -> Response:
    """A trusted query's answer by GET, for the caller's private cache: an ETag of its bytes,
    ``cache_control``, and 304 without a body when ``If-None-Match`` names that ETag. Answers
    with errors (a timeout, an outage) are not cacheable."""
    if response.status_code != 200 or request.scope.get(OUTCOME_KEY) == "error":
        response.headers["cache-control"] = "no-store"
        return response
    etag = f'"{hashlib.sha256(response.body).hexdigest()[:32]}"'
    headers = {"etag": etag, "cache-control": cache_control, "vary": "Authorization"}
    wanted = request.headers.get("if-none-match")
    tags = {tag.strip().removeprefix("W/") for tag in (wanted or "").split(",")}
    if wanted is not None and ("*" in tags or etag in tags):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response
