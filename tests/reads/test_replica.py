"""Queries on a read replica, read-your-writes for the writer (hub/db/replica.py), against a REAL
streaming replica: a private primary + standby pair (tests/replica_cluster.py).

``pg_wal_replay_pause()`` on the standby makes the lag deterministic: what the primary commits
meanwhile is not on the replica until ``pg_wal_replay_resume()``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hub.access.keys import Role, create_key
from hub.core.ids import uuid_from_global_id
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn, create_engine
from hub.db.migrations import upgrade
from hub.events.outbox import Position
from tests.factories import Factory, gid
from tests.feed_sync import await_live_each, drain_to
from tests.live_server import (
    Server,
    connect,
    metric,
    readyz,
    redis_broker_settings,
    start_server,
    wait_until,
)
from tests.replica_cluster import Cluster, replica_cluster

RECORD = """
mutation($tp: ID!, $key: String!, $email: String!) {
  recordInteraction(input: {identities: [{kind: EMAIL, value: $email}], touchpointId: $tp,
                            type: ORDER, direction: INBOUND, idempotencyKey: $key}) {
    interaction { id customer { id } }
  }
}
"""
# Every role takes the compiled read path for this one (ANALYST masked, PARTNER row-scoped).
CUSTOMER = "query($id: ID!) { customer(id: $id) { id interactions(first: 5) { totalCount } } }"
# Always the resolvers, with a DataLoader for the customer.
INTERACTION = "query($id: ID!) { interaction(id: $id) { id customer { id } } }"


@dataclass
class Replicated:
    cluster: Cluster
    primary: str
    replica: str
    touchpoint: str
    keys: dict[str, str]


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    with replica_cluster() as cluster:
        asyncio.run(_admin(cluster.primary_url(), 'CREATE DATABASE "hub"'))
        primary, replica = cluster.primary_url("hub"), cluster.replica_url("hub")
        upgrade(primary)
        touchpoint, keys = asyncio.run(_seed(primary))
        # The standby has replayed the schema and the keys when a key shows up there.
        wait_until(
            lambda: asyncio.run(_count(replica, "SELECT count(*) FROM api_keys")) > 0,
            "the replica to replay the setup",
        )
        yield Replicated(cluster, primary, replica, touchpoint, keys)


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _count(url: str, sql: str) -> int:
    try:
        connection = await asyncpg.connect(asyncpg_dsn(url))
    except (OSError, asyncpg.PostgresError):
        return 0
    try:
        return int(await connection.fetchval(sql))
    except asyncpg.PostgresError:
        return 0
    finally:
        await connection.close()


async def _seed(url: str) -> tuple[str, dict[str, str]]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        touchpoint = await Factory(connection).touchpoint("Shop", "WEB", "WEBSITE")
    finally:
        await connection.close()
    engine = create_engine(url, Settings(database_url=url))
    keys = {}
    try:
        async with engine.begin() as transaction:
            for name, role in (("writer", "ADMIN"), ("reader", "ADMIN"), ("analyst", "ANALYST")):
                created = await create_key(transaction, name=name, role=Role(role))
                keys[name] = created.key
            partner = await create_key(
                transaction, name="partner", role=Role.PARTNER, channels=["WEB"]
            )
            keys["partner"] = partner.key
    finally:
        await engine.dispose()
    return gid("Touchpoint", touchpoint), keys


@asynccontextmanager
async def replay_paused(data: Replicated) -> AsyncIterator[None]:
    """The standby stops replaying WAL (it still receives it) until the block ends."""
    await _admin(data.replica, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        await _admin(data.replica, "SELECT pg_wal_replay_resume()")


class Caller:
    """One API key talking to a hub; a fresh HTTP connection per request (so with several
    workers, consecutive requests may land on different worker processes)."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.key = key

    async def post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.http_url) as http:
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.key}"},
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def record(self, touchpoint: str) -> tuple[str, str]:
        """A new interaction of a new customer: (interaction id, customer id)."""
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        body = await self.post(RECORD, {"tp": touchpoint, "key": email, "email": email})
        assert "errors" not in body, body
        interaction = body["data"]["recordInteraction"]["interaction"]
        return interaction["id"], interaction["customer"]["id"]

    async def sees(self, interaction_id: str, customer_id: str) -> bool:
        """Both queries find the write (True) or neither does (False)."""
        state = await self.state(interaction_id, customer_id)
        assert state != "mixed"
        return state == "both"

    async def state(self, interaction_id: str, customer_id: str) -> str:
        """``both``, ``none`` or ``mixed``: what the customer and interaction queries find."""
        customer = await self.post(CUSTOMER, {"id": customer_id})
        interaction = await self.post(INTERACTION, {"id": interaction_id})
        found = []
        for body, field in ((customer, "customer"), (interaction, "interaction")):
            hit = (body.get("data") or {}).get(field) is not None
            if not hit:  # absent is NOT_FOUND or null, never another error
                codes = {e["extensions"]["code"] for e in body.get("errors", [])}
                assert codes <= {"NOT_FOUND"}, body
            found.append(hit)
        return "both" if all(found) else "none" if not any(found) else "mixed"

    async def sees_eventually(self, interaction_id: str, customer_id: str) -> bool:
        return await self.state(interaction_id, customer_id) == "both"


@pytest.fixture(scope="module")
def servers(replicated: Replicated, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("replica-serve")
    started = [
        start_server(replicated.primary, tmp, read_database_url=replicated.replica, dev_mode=False)
        for _ in range(2)
    ]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


async def event_position(primary: str, interaction: str) -> Position:
    """Where the outbox (on the primary) put the event of an interaction (global id)."""
    connection = await asyncpg.connect(asyncpg_dsn(primary))
    try:
        row = await connection.fetchrow(
            "SELECT xid::text::bigint AS xid, id FROM events"
            " WHERE kind = 'INTERACTION_RECORDED' AND subject_id = $1",
            uuid_from_global_id(interaction, "Interaction"),
        )
    finally:
        await connection.close()
    assert row is not None
    return Position(row["xid"], row["id"])


async def eventually(check: Any, what: str) -> None:
    for _ in range(300):  # an upper bound (~30 s), never asserted as a duration
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_writer_sees_its_write_at_once_other_callers_read_the_replica(
    replicated: Replicated, servers: list[Server]
) -> None:
    a, b = servers
    writer, reader = Caller(a, replicated.keys["writer"]), Caller(a, replicated.keys["reader"])
    analyst = Caller(a, replicated.keys["analyst"])
    writer_on_b = Caller(b, replicated.keys["writer"])
    reader_on_b = Caller(b, replicated.keys["reader"])
    async with replay_paused(replicated):
        interaction, customer = await writer.record(replicated.touchpoint)
        # Its own write, at once: through the compiled path, the resolvers and the loaders,
        # on the process it wrote through and on another one (the fence is on the primary).
        assert await writer.sees(interaction, customer)
        assert await writer_on_b.sees(interaction, customer)
        # Everyone else reads the replica, which has not replayed the write.
        assert not await reader.sees(interaction, customer)
        assert not await analyst.sees(interaction, customer)
        assert not await reader_on_b.sees(interaction, customer)
        assert await writer.sees(interaction, customer)
    # Replay resumed: everyone sees it.
    await eventually(
        lambda: reader.sees_eventually(interaction, customer), "the replica to catch up"
    )
    assert await analyst.sees(interaction, customer)
    assert await reader_on_b.sees(interaction, customer)
    # The writer is back on the replica once it has replayed past the write.
    before = metric_labelled(a, "hub_read_queries_total", 'target="replica"')
    await eventually(
        lambda: _sees_on_replica(writer, interaction, customer, before), "the writer on the replica"
    )
    assert readyz(a) == (
        200,
        {"status": "ready", "database": "ok", "broker": "postgres", "replica": "ok"},
    )


async def _sees_on_replica(caller: Caller, interaction: str, customer: str, before: float) -> bool:
    seen = await caller.sees_eventually(interaction, customer)
    # Two queries per `sees`: both on the replica, and nobody else is querying.
    after = metric_labelled(caller.server, "hub_read_queries_total", 'target="replica"')
    return seen and after - before >= 2


def metric_labelled(server: Server, name: str, label: str) -> float:
    for line in httpx.get(f"{server.http_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name}{{") and label in line:
            return float(line.split()[-1])
    return 0.0


async def test_a_partner_reads_the_replica_compiled_under_row_security(
    replicated: Replicated, servers: list[Server]
) -> None:
    """A partner's compiled statement runs on the replica (read routing chose it) with the key's
    role and scope there too: out-of-scope and non-sharing rows stay invisible."""
    a = servers[0]
    writer, partner = Caller(a, replicated.keys["writer"]), Caller(a, replicated.keys["partner"])
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    body = await writer.post(RECORD, {"tp": replicated.touchpoint, "key": email, "email": email})
    shared = body["data"]["recordInteraction"]["interaction"]["customer"]["id"]
    _, private = await writer.record(replicated.touchpoint)
    connection = await asyncpg.connect(asyncpg_dsn(replicated.primary))
    try:
        await connection.execute(
            "INSERT INTO consents (customer_id, purpose, channel, status, granted_at)"
            " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now())",
            uuid_from_global_id(shared, "Customer"),
        )
    finally:
        await connection.close()

    async def partner_sees_shared() -> bool:
        body = await partner.post(CUSTOMER, {"id": shared})
        return (body.get("data") or {}).get("customer") is not None

    await eventually(partner_sees_shared, "the replica to replay the consent")
    async with replay_paused(replicated):
        # The customer's second interaction, on the primary only: the replica still counts one.
        again = {"tp": replicated.touchpoint, "key": uuid.uuid4().hex, "email": email}
        assert "errors" not in await writer.post(RECORD, again)
        compiled = metric_labelled(a, "hub_graphql_execution_path_total", 'path="compiled"')
        replica = metric_labelled(a, "hub_read_queries_total", 'target="replica"')
        body = await partner.post(CUSTOMER, {"id": shared})
        assert body == {"data": {"customer": {"id": shared, "interactions": {"totalCount": 1}}}}
        assert metric_labelled(a, "hub_read_queries_total", 'target="replica"') == replica + 1
        assert (
            metric_labelled(a, "hub_graphql_execution_path_total", 'path="compiled"')
            == compiled + 1
        )
        hidden = await partner.post(CUSTOMER, {"id": private})
        assert hidden["data"] is None
        assert [e["extensions"]["code"] for e in hidden["errors"]] == ["NOT_FOUND"]
        listed = await partner.post("{ customers(first: 10) { nodes { id } } }", {})
        assert listed == {"data": {"customers": {"nodes": [{"id": shared}]}}}
    await eventually(
        lambda: _counts(partner, shared, 2), "the replica to replay the second interaction"
    )


async def _counts(caller: Caller, customer: str, total: int) -> bool:
    body = await caller.post(CUSTOMER, {"id": customer})
    return bool(body["data"]["customer"]["interactions"]["totalCount"] == total)


async def test_a_write_over_a_websocket_fences_the_callers_reads_too(
    replicated: Replicated, servers: list[Server]
) -> None:
    a = servers[0]
    writer, reader = Caller(a, replicated.keys["writer"]), Caller(a, replicated.keys["reader"])
    async with replay_paused(replicated), connect(a, init=False) as socket:
        await socket.init({"Authorization": f"Bearer {replicated.keys['writer']}"})
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        operation = await socket.subscribe(
            RECORD, {"tp": replicated.touchpoint, "key": email, "email": email}
        )
        interaction = (await socket.next_data())["recordInteraction"]["interaction"]
        assert await socket.receive() == {"id": operation, "type": "complete"}
        ids = interaction["id"], interaction["customer"]["id"]
        assert await writer.sees(*ids)
        assert not await reader.sees(*ids)


EXPORT = "query($id: ID!) { exportCustomer(id: $id) }"


async def test_an_export_read_on_the_replica_is_audited_on_the_primary(
    replicated: Replicated, servers: list[Server]
) -> None:
    # exportCustomer is a query that writes (its audit row): the read goes to the replica, the
    # write to the primary (a standby refuses writes).
    a = servers[0]
    writer, reader = Caller(a, replicated.keys["writer"]), Caller(a, replicated.keys["reader"])
    interaction, customer = await writer.record(replicated.touchpoint)
    await eventually(lambda: reader.sees_eventually(interaction, customer), "the replica")
    before = metric_labelled(a, "hub_read_queries_total", 'target="replica"')
    body = await reader.post(EXPORT, {"id": customer})
    assert "errors" not in body, body
    assert body["data"]["exportCustomer"]
    assert metric_labelled(a, "hub_read_queries_total", 'target="replica"') == before + 1
    connection = await asyncpg.connect(asyncpg_dsn(replicated.primary))
    try:
        audited = await connection.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'exportCustomer' AND actor = 'reader'"
            " AND $1 = ANY(target_ids)",
            customer,
        )
    finally:
        await connection.close()
    assert audited == 1


async def test_a_replica_too_far_behind_is_skipped(replicated: Replicated, tmp_path: Path) -> None:
    server = start_server(
        replicated.primary,
        tmp_path,
        read_database_url=replicated.replica,
        read_replica_max_lag_s=0.5,
        dev_mode=False,
    )
    try:
        writer = Caller(server, replicated.keys["writer"])
        reader = Caller(server, replicated.keys["reader"])
        async with replay_paused(replicated):
            interaction, customer = await writer.record(replicated.touchpoint)
            # Replay stays paused: only the fall-back to the primary can show the write.
            await eventually(
                lambda: reader.sees_eventually(interaction, customer), "the primary fallback"
            )
            assert readyz(server)[1]["replica"] == "lagging"
            assert metric(server, "hub_read_replica_up") == 0
            assert metric(server, "hub_read_replica_lag_seconds") > 0.5
        await eventually(
            lambda: asyncio.to_thread(lambda: metric(server, "hub_read_replica_up") == 1),
            "the replica to be used again",
        )
    finally:
        server.stop()


async def test_an_unreachable_replica_sends_every_query_to_the_primary(
    replicated: Replicated, tmp_path: Path
) -> None:
    nowhere = replicated.cluster.url(5999, "hub")  # no server has this socket
    server = start_server(replicated.primary, tmp_path, read_database_url=nowhere, dev_mode=False)
    try:
        status, body = readyz(server)
        assert status == 200
        assert body["replica"] == "unreachable"
        writer = Caller(server, replicated.keys["writer"])
        reader = Caller(server, replicated.keys["reader"])
        interaction, customer = await writer.record(replicated.touchpoint)
        assert await reader.sees(interaction, customer)
        assert metric_labelled(server, "hub_read_queries_total", 'target="replica"') == 0
    finally:
        server.stop()


FEED = "subscription { interactionRecorded { cursor interaction { id } } }"


async def test_several_workers_with_the_replica_and_the_redis_broker(
    replicated: Replicated, tmp_path: Path
) -> None:
    # `hub serve --workers 2`: each worker has its own broker, router and pools. Fresh
    # connections spread the requests over both workers.
    with redis_broker_settings() as broker:
        server = start_server(
            replicated.primary,
            tmp_path,
            workers=2,
            read_database_url=replicated.replica,
            dev_mode=False,
            **broker,
        )
        try:
            writer = Caller(server, replicated.keys["writer"])
            reader = Caller(server, replicated.keys["reader"])
            auth = {"Authorization": f"Bearer {replicated.keys['reader']}"}
            async with (
                connect(server, init=False) as first,
                connect(server, init=False) as second,
                connect(server, init=False) as third,
            ):
                subscribers = (first, second, third)
                operations = []
                for client in subscribers:
                    await client.init(auth)
                    operations.append(await client.subscribe(FEED))

                async def probe() -> Position:
                    interaction, _ = await writer.record(replicated.touchpoint)
                    return await event_position(replicated.primary, interaction)

                field = "interactionRecorded"
                await await_live_each(
                    [(c, op, field) for c, op in zip(subscribers, operations, strict=True)], probe
                )
                recorded = []
                async with replay_paused(replicated):
                    for _ in range(4):
                        interaction, customer = await writer.record(replicated.touchpoint)
                        recorded.append(interaction)
                        assert await writer.sees(interaction, customer)
                        assert not await reader.sees(interaction, customer)
                marker = await probe()
                for client, op in zip(subscribers, operations, strict=True):
                    got = (await drain_to(client, {op: field}, marker))[op]
                    # These four, once each, and nothing else before the final marker.
                    assert [e["interaction"]["id"] for _, e in got] == recorded
        finally:
            server.stop()
