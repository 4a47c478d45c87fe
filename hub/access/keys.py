"""API keys and the principal a request acts as.

A key looks like ``hub_<prefix>_<secret>``: the prefix (public, unique) finds the row, the
SHA-256 of the whole key proves it. Keys are 32 random bytes, so a fast hash is enough (a slow
KDF protects guessable passwords, not random tokens); the key itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.access.scope import NOTHING, UNRESTRICTED, RowScope
from hub.core.enums import ChannelCode
from hub.core.errors import BadUserInput, Conflict, NotFound
from hub.core.faults import database_unavailable
from hub.core.ids import uuid_from_global_id
from hub.models import API_KEYS, TOUCHPOINTS

KEY_PREFIX = "hub_"
PII_SCOPE = "pii"
CHANNEL_SCOPE = "channel:"
TOUCHPOINT_SCOPE = "touchpoint:"


class Role(StrEnum):
    ADMIN = "ADMIN"  # everything, key management, audit log
    FRONTEND = "FRONTEND"  # read and write customer data; no analytics over all customers
    ANALYST = "ANALYST"  # read everything and analytics; masked unless the key has pii
    PARTNER = "PARTNER"  # reads and subscriptions in its channel/touchpoint scope; always masked
    SOURCE = "SOURCE"  # sends tracking data (/v1/*) for its one touchpoint; no GraphQL at all


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. ``key_id`` is None in development mode and for the CLI."""

    role: Role
    name: str
    key_id: int | None = None
    pii: bool = False
    channels: frozenset[str] = frozenset()
    touchpoints: frozenset[uuid.UUID] = frozenset()
    dev: bool = False
    scopes: tuple[str, ...] = field(default=())
    # REGISTERED_ONLY, ANY, or None: the role's default (hub.access.documents.effective_policy).
    documents: str | None = None

    @property
    def scope(self) -> RowScope:
        if self.role is Role.SOURCE:
            # Fail closed: were a SOURCE key ever to reach a read, row security shows it nothing
            # (the gate refuses it on /graphql before that).
            return NOTHING
        if self.role is not Role.PARTNER:
            return UNRESTRICTED
        return RowScope(restricted=True, channels=self.channels, touchpoints=self.touchpoints)

    @property
    def source_touchpoint(self) -> uuid.UUID | None:
        """The one touchpoint a SOURCE key sends for; None for every other role."""
        if self.role is not Role.SOURCE or len(self.touchpoints) != 1:
            return None
        return next(iter(self.touchpoints))

    @property
    def sees_pii(self) -> bool:
        return self.role is Role.ADMIN or (
            self.pii and self.role not in (Role.PARTNER, Role.SOURCE)
        )

    @property
    def actor(self) -> str:
        return self.name


DEV_PRINCIPAL = Principal(role=Role.ADMIN, name="development-mode", pii=True, dev=True)
CLI_PRINCIPAL = Principal(role=Role.ADMIN, name="cli", pii=True)


@dataclass(frozen=True)
class NewKey:
    principal: Principal
    key: str  # shown once, never stored


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_HEX_PREFIX = re.compile(r"[0-9a-f]{12}")


def key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    # The prefix is what is looked up: only the 12 hex digits create_key makes reach the
    # database (a NUL, which PostgreSQL cannot take as text, would fail the statement).
    if not sep or not _HEX_PREFIX.fullmatch(prefix) or len(secret) < 32:
        return None
    return prefix


def build_scopes(
    role: Role, pii: bool, channels: Sequence[str], touchpoints: Sequence[str]
) -> list[str]:
    """Validate a key's scopes for its role and encode them as stored."""
    if role is Role.SOURCE:
        if pii or channels or len(touchpoints) != 1:
            raise BadUserInput(
                "a SOURCE key is bound to exactly one touchpoint (--touchpoints ID), with no "
                "channels and no pii scope: it only sends tracking data"
            )
    elif role is Role.PARTNER:
        if pii:
            raise BadUserInput("a PARTNER key cannot have the pii scope: partners always see masks")
        if not channels and not touchpoints:
            raise BadUserInput("a PARTNER key needs at least one channel or touchpoint")
    elif channels or touchpoints:
        raise BadUserInput("only PARTNER and SOURCE keys are scoped to channels or touchpoints")
    scopes = [PII_SCOPE] if pii else []
    for code in channels:
        if code not in ChannelCode.__members__:
            raise BadUserInput(f"{code!r} is not a channel ({', '.join(ChannelCode)})")
        scopes.append(CHANNEL_SCOPE + code)
    for touchpoint in touchpoints:
        try:
            # A UUID or a Touchpoint global id (as GraphQL answers show it).
            scopes.append(TOUCHPOINT_SCOPE + str(uuid_from_global_id(touchpoint, "Touchpoint")))
        except (ValueError, BadUserInput):
            raise BadUserInput(f"{touchpoint!r} is not a touchpoint id") from None
    return scopes


def principal_from_row(row: Any) -> Principal:
    scopes: list[str] = list(row["scopes"] or [])
    return Principal(
        role=Role(row["role"]),
        name=row["name"],
        key_id=row["id"],
        pii=PII_SCOPE in scopes,
        channels=frozenset(s[len(CHANNEL_SCOPE) :] for s in scopes if s.startswith(CHANNEL_SCOPE)),
        touchpoints=frozenset(
            uuid.UUID(s[len(TOUCHPOINT_SCOPE) :]) for s in scopes if s.startswith(TOUCHPOINT_SCOPE)
        ),
        scopes=tuple(scopes),
        documents=row.get("documents"),
    )


DOCUMENT_POLICIES = ("REGISTERED_ONLY", "ANY")


def _document_policy(documents: str | None) -> str | None:
    if documents is not None and documents not in DOCUMENT_POLICIES:
        raise BadUserInput(f"documents is one of {', '.join(DOCUMENT_POLICIES)} (or unset)")
    return documents


async def create_key(
    connection: AsyncConnection,
    *,
    name: str,
    role: Role,
    pii: bool = False,
    channels: Sequence[str] = (),
    touchpoints: Sequence[str] = (),
    documents: str | None = None,
) -> NewKey:
    """Create a key in the caller's transaction; the returned ``key`` is the only copy.
    ``documents``: REGISTERED_ONLY, ANY, or None (its role's default, docs/trusted-documents.md)."""
    documents = _document_policy(documents)
    name = name.strip()
    if not name or len(name) > 100:
        raise BadUserInput("a key needs a name of 1 to 100 characters")
    scopes = build_scopes(role, pii, channels, touchpoints)
    wanted = {s[len(TOUCHPOINT_SCOPE) :] for s in scopes if s.startswith(TOUCHPOINT_SCOPE)}
    if wanted:
        found = await connection.scalars(
            sa.select(TOUCHPOINTS.c.id).where(TOUCHPOINTS.c.id.in_([uuid.UUID(t) for t in wanted]))
        )
        missing = wanted - {str(t) for t in found}
        if missing:
            raise BadUserInput(f"no touchpoint with id {', '.join(sorted(missing))}")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    exists = await connection.scalar(sa.select(API_KEYS.c.id).where(API_KEYS.c.name == name))
    if exists is not None:
        raise Conflict(f"a key named {name!r} exists already (names stay taken after revocation)")
    row = (
        (
            await connection.execute(
                API_KEYS.insert()
                .values(
                    name=name,
                    role=role.value,
                    scopes=scopes,
                    prefix=prefix,
                    key_hash=hash_key(key),
                    documents=documents,
                )
                .returning(API_KEYS)
            )
        )
        .mappings()
        .one()
    )
    return NewKey(principal=principal_from_row(row), key=key)


async def _update_key(connection: AsyncConnection, name: str, **values: Any) -> Any:
    """Update the key named ``name``; its row (``NotFound`` if there is none)."""
    row = (
        (
            await connection.execute(
                API_KEYS.update()
                .where(API_KEYS.c.name == name)
                .values(**values)
                .returning(API_KEYS)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no key named {name!r}")
    # This process's caches forget it now; the others within a second (hub.access.key_cache).
    for cache in list(_CACHES):
        cache.forget(row["prefix"])
    return row


class ForgetsKeys(Protocol):
    def forget(self, prefix: str) -> None: ...


# The key caches of this process (hub.access.key_cache.KeyCache registers itself): a revocation
# made here drops the key from them at once, before any re-check round.
_CACHES: weakref.WeakSet[ForgetsKeys] = weakref.WeakSet()


def register_cache(cache: ForgetsKeys) -> None:
    _CACHES.add(cache)


async def revoke_key(connection: AsyncConnection, name: str) -> Any:
    """Revoke a key by name in the caller's transaction; returns its row."""
    revoked_at = sa.func.coalesce(API_KEYS.c.revoked_at, sa.func.now())
    return await _update_key(connection, name, revoked_at=revoked_at)


async def set_key_documents(connection: AsyncConnection, name: str, documents: str | None) -> Any:
    """Set which documents a key may run (None: its role's default); its row."""
    return await _update_key(connection, name, documents=_document_policy(documents))


async def list_keys(connection: AsyncConnection) -> Sequence[Any]:
    result = await connection.execute(sa.select(API_KEYS).order_by(API_KEYS.c.created_at))
    return result.mappings().all()


_KEY_BY_PREFIX = "SELECT * FROM api_keys WHERE prefix = $1"
_TOUCH_KEY = "UPDATE api_keys SET last_used_at = now() WHERE id = $1"


def _usable(row: Any, key: str) -> bool:
    return (
        row is not None
        and row["revoked_at"] is None
        and hmac.compare_digest(row["key_hash"], hash_key(key))
    )


def _stale(row: Any, touch_before: datetime | None) -> bool:
    return touch_before is not None and (
        row["last_used_at"] is None or row["last_used_at"] < touch_before
    )


async def _verify_on_pool(
    pool: asyncpg.Pool, key: str, prefix: str, touch_before: datetime | None
) -> Principal | None:
    # Pooled connections may have died with the server (a restart): SQLAlchemy's pre-ping would
    # have replaced them. On a dropped connection every idle one is suspect: expire them all and
    # try once more on a fresh one (both statements are idempotent).
    for attempt in (1, 2):
        try:
            async with pool.acquire() as raw:
                row = await raw.fetchrow(_KEY_BY_PREFIX, prefix)
                if not _usable(row, key):
                    return None
                if _stale(row, touch_before):
                    await raw.execute(_TOUCH_KEY, row["id"])
            return principal_from_row(row)
        except Exception as error:
            if attempt == 2 or not database_unavailable(error):
                raise
            await pool.expire_connections()
    raise AssertionError("unreachable")


async def verify_key(
    engine: AsyncEngine | asyncpg.Pool, key: str, *, touch_before: datetime | None = None
) -> Principal | None:
    """The principal of a valid, unrevoked key, else None (the same answer for every failure).

    ``last_used_at`` is refreshed only when it is older than ``touch_before``, so a busy key does
    not cost a write per request. ``engine`` may be an asyncpg pool (the HTTP gate's, see
    ``hub.db.engine.create_driver_pool``): then the check is one prepared statement in autocommit,
    without SQLAlchemy's per-checkout ping and transaction.
    """
    prefix = key_prefix(key)
    if prefix is None:
        return None
    if isinstance(engine, asyncpg.Pool):
        return await _verify_on_pool(engine, key, prefix, touch_before)
    async with engine.connect() as connection:
        row = (
            (await connection.execute(sa.select(API_KEYS).where(API_KEYS.c.prefix == prefix)))
            .mappings()
            .first()
        )
        if row is None or not _usable(row, key):
            return None
        if _stale(row, touch_before):
            await connection.execute(
                API_KEYS.update()
                .where(API_KEYS.c.id == row["id"])
                .values(last_used_at=sa.func.now())
            )
            await connection.commit()
    return principal_from_row(row)


async def revoked_among(engine: AsyncEngine, key_ids: Sequence[int]) -> set[int]:
    """Which of these keys are revoked (or deleted) now: for open websocket connections."""
    if not key_ids:
        return set()
    async with engine.connect() as connection:
        live = await connection.scalars(
            sa.select(API_KEYS.c.id).where(
                API_KEYS.c.id.in_(list(key_ids)), API_KEYS.c.revoked_at.is_(None)
            )
        )
        alive = set(live)
    return {key_id for key_id in key_ids if key_id not in alive}


_LIVE_KEYS = (
    "SELECT id, name, role, scopes, prefix, key_hash, documents FROM api_keys"
    " WHERE prefix = ANY($1::text[]) AND revoked_at IS NULL"
)
_TOUCH_KEYS = "UPDATE api_keys SET last_used_at = now() WHERE prefix = ANY($1::text[])"


async def live_keys(
    engine: AsyncEngine | asyncpg.Pool, prefixes: Sequence[str], touch: Sequence[str] = ()
) -> dict[str, tuple[str, Principal]]:
    """``{prefix: (key_hash, principal)}`` of the keys among ``prefixes`` that are not revoked
    (nor deleted) now, in one statement (on the prefix's unique index); ``last_used_at`` of
    ``touch`` is refreshed first. For the per-process key cache's re-check rounds: an entry
    stays only while its hash and its principal (role, name, scopes, document rule) are still
    these."""
    if isinstance(engine, asyncpg.Pool):
        async with engine.acquire() as raw:
            if touch:
                await raw.execute(_TOUCH_KEYS, list(touch))
            rows: Sequence[Any] = await raw.fetch(_LIVE_KEYS, list(prefixes))
    else:
        async with engine.connect() as connection:
            if touch:
                await connection.execute(
                    API_KEYS.update()
                    .where(API_KEYS.c.prefix.in_(list(touch)))
                    .values(last_used_at=sa.func.now())
                )
                await connection.commit()
            rows = (
                (
                    await connection.execute(
                        sa.select(API_KEYS).where(
                            API_KEYS.c.prefix.in_(list(prefixes)), API_KEYS.c.revoked_at.is_(None)
                        )
                    )
                )
                .mappings()
                .all()
            )
    return {row["prefix"]: (row["key_hash"], principal_from_row(row)) for row in rows}


def bearer_token(value: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` value."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
