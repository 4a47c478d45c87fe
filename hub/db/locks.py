"""Transaction-scoped advisory locks on namespaced keys (identifiers, idempotency keys).

Ingest and the profile mutations take the same identifier locks, so a profile change and an
interaction naming the same identifier never interleave.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.statements import AlchemySql


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for a namespaced string."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def take_locks(connection: AsyncConnection, keys: set[int]) -> None:
    """Advisory locks held to the end of the transaction, taken in sorted order (ingest's own
    lock statement, for the profile mutations that share its identifier locks)."""
    await AlchemySql(connection).lock(sorted(keys))
