"""The per-process cache of verified API keys (hub/access/key_cache.py).

What it must keep: a revoked key stops working in every process within a second, unknown keys
are looked up (and throttled) every time, the cache is bounded, and a cached key costs no
statement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.access.key_cache import TRUST_S, KeyCache
from hub.access.keys import hash_key, key_prefix, revoke_key, verify_key
from tests.conftest import GraphQLClient, make_key
from tests.driver_statements import DriverStatements
from tests.live_server import Server, start_server
from tests.waiting import until

QUERY = {"query": "{ channels { code } }"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _cached(cache: KeyCache, engine: Any, key: str) -> str:
    principal = await verify_key(engine, key)
    assert principal is not None
    digest = hash_key(key)
    cache.put(digest, key_prefix(key) or "", principal, cache.clock())
    return digest


async def test_an_entry_is_trusted_only_while_recently_confirmed(engine: Any, db: object) -> None:
    clock = Clock()
    cache = KeyCache(lambda: engine, size=10, interval=0.5, clock=clock)
    try:
        key = await make_key(engine, "FRONTEND")
        digest = await _cached(cache, engine, key)
        assert cache.get(digest) is not None
        clock.now += TRUST_S - 0.01
        assert cache.get(digest) is not None
        clock.now += 0.02  # no round confirmed it: it must be looked up again
        assert cache.get(digest) is None
        await cache.check()  # a round confirms it as of the round's start
        assert cache.get(digest) is not None
        assert cache.get(hash_key(key + "x")) is None  # only the exact key's hash
    finally:
        await cache.close()


async def test_a_round_drops_revoked_deleted_and_changed_keys(engine: Any, db: Any) -> None:
    clock = Clock()
    cache = KeyCache(lambda: engine, size=10, interval=0.5, clock=clock)
    try:
        keys = [await make_key(engine, "FRONTEND") for _ in range(4)]
        digests = [await _cached(cache, engine, key) for key in keys]
        # Revoked, deleted and given the pii scope behind this process's back: only a round
        # can learn of it. The fourth is untouched.
        await db.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1", digests[0])
        await db.execute("DELETE FROM api_keys WHERE key_hash = $1", digests[1])
        await db.execute("UPDATE api_keys SET scopes = '{pii}' WHERE key_hash = $1", digests[2])
        await cache.check()
        assert [cache.get(d) is not None for d in digests] == [False, False, False, True]
        assert len(cache) == 1
    finally:
        await cache.close()


async def test_a_revocation_in_this_process_drops_the_key_at_once(engine: Any, db: object) -> None:
    cache = KeyCache(lambda: engine, size=10, interval=0.5, clock=Clock())
    try:
        key = await make_key(engine, "ANALYST")
        digest = await _cached(cache, engine, key)
        principal = cache.get(digest)
        assert principal is not None
        async with engine.begin() as connection:
            await revoke_key(connection, principal.name)
        assert cache.get(digest) is None and len(cache) == 0
    finally:
        await cache.close()


async def test_the_cache_is_bounded_least_recently_used_first(engine: Any, db: object) -> None:
    cache = KeyCache(lambda: engine, size=2, interval=0.5, clock=Clock())
    try:
        keys = [await make_key(engine, "FRONTEND") for _ in range(3)]
        first, second = [await _cached(cache, engine, key) for key in keys[:2]]
        assert cache.get(first) is not None  # used: the second is now the oldest
        third = await _cached(cache, engine, keys[2])
        assert len(cache) == 2
        assert [cache.get(d) is not None for d in (first, second, third)] == [True, False, True]
    finally:
        await cache.close()


async def test_a_cached_key_costs_no_statement(
    gql: GraphQLClient, count_driver_statements: DriverStatements
) -> None:
    await gql.data("{ channels { code } }")  # the first request looks the key up: cached
    count_driver_statements.clear()
    await gql.data("{ channels { code } }")
    assert not [s for s in count_driver_statements.statements if "api_keys" in s], (
        count_driver_statements.report()
    )
    assert count_driver_statements.count == 1, count_driver_statements.report()


async def test_unknown_keys_are_not_cached_and_stay_throttled(
    app_with: Any, count_driver_statements: DriverStatements
) -> None:
    async with app_with(failed_key_burst=3, failed_key_per_second=0.001) as (http, engine):
        valid = await make_key(engine, "FRONTEND")
        wrong = valid[:-4] + ("aaaa" if not valid.endswith("aaaa") else "bbbb")
        ok = await http.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {valid}"})
        assert ok.status_code == 200
        count_driver_statements.clear()
        statuses = [
            (
                await http.post(
                    "/graphql", json=QUERY, headers={"Authorization": f"Bearer {wrong}"}
                )
            ).status_code
            for _ in range(4)
        ]
        # Every wrong attempt was looked up (same prefix as a cached key: no shortcut), and the
        # budget of three ran out as without a cache.
        assert statuses == [401, 401, 401, 429]
        lookups = [s for s in count_driver_statements.statements if "FROM api_keys" in s]
        assert len(lookups) == 3, count_driver_statements.report()


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    settings = {
        "dev_mode": "false",
        "rate_limit_per_second": 100000,
        "rate_limit_burst": 100000,
        # The revoked key's refusals would spend the address's failed-key budget (429 after
        # ten): a budget that outlasts the test keeps every refusal a 401.
        "failed_key_burst": 100000,
    }
    first = start_server(database_url, tmp_path, **settings)
    try:
        second = start_server(database_url, tmp_path, **settings)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.mark.slow
async def test_a_revocation_reaches_another_process_within_a_second(
    two_servers: tuple[Server, Server], engine: Any, db: object
) -> None:
    revoker, other = two_servers
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND")
    principal = await verify_key(engine, frontend)
    assert principal is not None
    auth = {"Authorization": f"Bearer {frontend}"}
    revoke = "mutation($n: String!) { revokeApiKey(name: $n) { name } }"
    async with httpx.AsyncClient(timeout=10) as http:

        async def status(server: Server) -> int:
            response = await http.post(f"{server.http_url}/graphql", json=QUERY, headers=auth)
            return response.status_code

        assert [await status(s) for s in two_servers] == [200, 200]  # cached in both now
        revoked = await http.post(
            f"{revoker.http_url}/graphql",
            json={"query": revoke, "variables": {"n": principal.name}},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert revoked.status_code == 200 and "errors" not in revoked.json(), revoked.text
        committed = time.monotonic()  # the answer came after the commit
        assert await status(revoker) == 401  # its own cache forgot the key at once
        # Ask the other process until it refuses and for a while after one second past the
        # commit: every request SENT a second or more after the commit must be refused (the
        # promise), and once refused the key stays refused.
        answers: list[tuple[float, int]] = []

        async def refused_for_good() -> bool:
            sent = time.monotonic() - committed
            answers.append((sent, await status(other)))
            return sent > 1.2 and answers[-1][1] == 401

        await until(refused_for_good, "the other process to refuse the revoked key")
    late = [(sent, code) for sent, code in answers if sent >= 1.0 and code != 401]
    assert late == [], answers
    first_refusal = next(i for i, (_, code) in enumerate(answers) if code == 401)
    assert {code for _, code in answers[first_refusal:]} == {401}, answers
