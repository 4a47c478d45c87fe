"""The redis broker (hub/events/redis_broker.py) through real `hub serve` processes and Redis.

The machine's Redis is shared: every test uses a key prefix of its own and deletes its keys.
The outage test runs a private `redis-server` it can stop and start again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from hub.events.outbox import START, Position, StoredEvent, decode_cursor, read_after
from hub.events.redis_broker import LEADER_TTL_S, encode_events
from tests.factories import gid
from tests.feed_sync import (
    await_live,
    await_live_each,
    drain_to,
    interaction_probe,
    outbox_positions,
)
from tests.live_server import (
    Client,
    Server,
    Writer,
    answers,
    connect,
    free_port,
    metric,
    redis_broker_settings,
    redis_url,
    shop_writer,
    start_server,
    start_servers,
    wait_until,
)

FEED = "subscription { interactionRecorded { cursor interaction { id } } }"


@pytest.fixture
def broker() -> Iterator[dict[str, str]]:
    with redis_broker_settings() as settings:
        yield settings


@pytest.fixture
async def writer(engine: Any, db: asyncpg.Connection) -> Writer:
    return await shop_writer(engine, db)


async def received(client: Client, count: int) -> list[tuple[str, str]]:
    """The next ``count`` events as (interaction id, cursor)."""
    events = []
    for _ in range(count):
        data = (await client.next_data())["interactionRecorded"]
        events.append((data["interaction"]["id"], data["cursor"]))
    return events


def assert_in_cursor_order(events: list[tuple[str, str]]) -> None:
    positions = [decode_cursor(cursor) for _, cursor in events]
    assert positions == sorted(set(positions)), "events out of order or repeated"


async def eventually(condition: Any, what: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """``wait_until`` without blocking the event loop (open websockets keep being served)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def append(client: redis.Redis, prefix: str, prev: Position, events: list[StoredEvent]) -> None:
    """A stream entry as a leader appends it: the events after ``prev``."""

    def text(position: Position) -> str:
        return f"{position.xid}:{position.id}"

    client.xadd(
        f"{prefix}events",
        {"prev": text(prev), "last": text(events[-1].position), "events": encode_events(events)},
    )


def readiness(server: Server) -> int:
    return httpx.get(f"{server.http_url}/readyz", timeout=5).status_code


def broker_status(server: Server) -> str:
    status: str = httpx.get(f"{server.http_url}/readyz", timeout=5).json()["broker"]
    return status


async def test_concurrent_writers_reach_both_processes_once_in_order(
    database_url: str, tmp_path: Path, writer: Writer, broker: dict[str, str]
) -> None:
    process_a, process_b = start_servers(2, database_url, tmp_path, **broker)
    probe = interaction_probe(writer)
    try:
        async with connect(process_a) as on_a, connect(process_b) as on_b:
            op_a = await on_a.subscribe(FEED)
            op_b = await on_b.subscribe(FEED)
            await await_live(on_a, {op_a: "interactionRecorded"}, probe)
            start = await await_live(on_b, {op_b: "interactionRecorded"}, probe)

            async def write(n: int) -> list[str]:
                return [gid("Interaction", await writer.record()) for _ in range(n)]

            # Four writers at once: transactions commit out of id order, which is what the
            # outbox horizon and the stream have to get right.
            batches = await asyncio.gather(*(write(15) for _ in range(4)))
            written = [interaction for batch in batches for interaction in batch]
            marker = await probe()
            outbox = await outbox_positions(writer.engine, start, marker, ["INTERACTION_RECORDED"])
            for client, op in ((on_a, op_a), (on_b, op_b)):
                got = (await drain_to(client, {op: "interactionRecorded"}, marker))[op]
                events = [(e["interaction"]["id"], e["cursor"]) for p, e in got if p > start]
                assert sorted(i for i, _ in events) == sorted(written)
                # Once each, in cursor order: exactly the outbox up to the final marker.
                assert [decode_cursor(c) for _, c in events] == outbox[:-1]
            assert (
                metric(process_a, "hub_broker_redis_leader")
                + metric(process_b, "hub_broker_redis_leader")
                == 1
            )
    finally:
        process_a.stop()
        process_b.stop()


async def test_when_the_leader_stops_another_process_takes_over(
    database_url: str, tmp_path: Path, writer: Writer, broker: dict[str, str]
) -> None:
    servers = start_servers(2, database_url, tmp_path, **broker)
    try:
        await eventually(
            lambda: sum(metric(s, "hub_broker_redis_leader") for s in servers) == 1, "a leader"
        )
        leader, follower = sorted(servers, key=lambda s: -metric(s, "hub_broker_redis_leader"))
        async with connect(follower) as client:
            op = await client.subscribe(FEED)
            probe = interaction_probe(writer)
            await await_live(client, {op: "interactionRecorded"}, probe)
            before = gid("Interaction", await writer.record())
            assert [i for i, _ in await received(client, 1)] == [before]
            leader.stop()  # it releases the lock; the follower takes over from the stream's tail
            after = [gid("Interaction", await writer.record()) for _ in range(3)]
            marker = await probe()
            events = (await drain_to(client, {op: "interactionRecorded"}, marker))[op]
            assert [e["interaction"]["id"] for _, e in events] == after
        assert metric(follower, "hub_broker_redis_leader") == 1
    finally:
        for server in servers:
            server.stop()


# The documented bound (docs/subscriptions.md): a dead leader stops delivery for at most the lock
# expiry. Measured on Redis's clock (TIME when the leader is dead, and the millisecond id of the
# entry the new leader appends first), not the test's. The allowance beyond the remaining lock
# time covers one poll interval (75 ms) and a follower descheduled on a loaded 2-core machine.
TAKEOVER_ALLOWANCE_MS = 1000


async def test_a_killed_leader_is_replaced_within_the_lock_expiry(
    database_url: str, tmp_path: Path, writer: Writer, broker: dict[str, str]
) -> None:
    prefix = broker["redis_key_prefix"]
    client = redis.Redis.from_url(redis_url())
    servers = start_servers(2, database_url, tmp_path, **broker)
    try:
        await eventually(
            lambda: sum(metric(s, "hub_broker_redis_leader") for s in servers) == 1, "a leader"
        )
        leader, follower = sorted(servers, key=lambda s: -metric(s, "hub_broker_redis_leader"))
        async with connect(follower) as subscriber:
            op = await subscriber.subscribe(FEED)
            probe = interaction_probe(writer)
            await await_live(subscriber, {op: "interactionRecorded"}, probe)
            # Killed: no graceful release of the lock, it has to expire.
            os.killpg(leader.process.pid, signal.SIGKILL)
            leader.process.wait(timeout=30)
            seconds, micros = client.time()
            dead_at_ms = seconds * 1000 + micros // 1000
            lock_left_ms = client.pttl(f"{prefix}leader")
            last_entry = client.xrevrange(f"{prefix}events", count=1)[0][0]
            # Whatever is written while nobody leads is delivered after the takeover.
            during = [gid("Interaction", await writer.record()) for _ in range(3)]
            marker = await probe()
            events = (await drain_to(subscriber, {op: "interactionRecorded"}, marker))[op]
            assert [e["interaction"]["id"] for _, e in events] == during
            assert metric(follower, "hub_broker_redis_leader") == 1
        # The first entry after the dead leader's last one is the new leader's empty one.
        first_new = client.xrange(f"{prefix}events", min=f"({last_entry.decode()}", count=1)
        [(entry_id, fields)] = first_new
        assert fields[b"events"] == encode_events([])
        taken_over_ms = int(entry_id.split(b"-")[0])
        assert 0 < lock_left_ms <= LEADER_TTL_S * 1000
        # Not before the lock expired (the lock is what decides), and within the bound.
        assert taken_over_ms >= dead_at_ms + lock_left_ms - 5
        assert taken_over_ms - dead_at_ms <= LEADER_TTL_S * 1000 + TAKEOVER_ALLOWANCE_MS
    finally:
        for server in servers:
            server.stop()
        client.close()


async def test_a_gap_in_the_stream_is_read_from_the_outbox(
    database_url: str, tmp_path: Path, writer: Writer, broker: dict[str, str], engine: Any
) -> None:
    # The test holds the leader lock, so no process polls the outbox: the stream entries the
    # test appends are all the processes hear about. One entry skips two events (as after a
    # trimmed or restarted stream): the process must read them from the outbox, in order.
    prefix = broker["redis_key_prefix"]
    client = redis.Redis.from_url(redis_url())
    client.set(f"{prefix}leader", "the-test", px=120_000)
    server = start_server(database_url, tmp_path, **broker)
    try:
        async with connect(server) as subscriber:
            op = await subscriber.subscribe(FEED)
            streamed = START

            async def probe() -> Position:
                # The test is the leader: it appends the probe's event to the stream itself.
                nonlocal streamed
                async with writer.transaction() as transaction:
                    await writer.record_in(transaction)
                async with engine.connect() as connection:
                    [event] = await read_after(connection, streamed, 100)
                append(client, prefix, streamed, [event])
                streamed = event.position
                return event.position

            await await_live(subscriber, {op: "interactionRecorded"}, probe)
            written = [gid("Interaction", await writer.record()) for _ in range(3)]
            # Nobody polls: nothing arrives yet. (A window cannot prove a negative; it lets a
            # process that polls anyway show itself, and cannot fail a correct one.)
            with pytest.raises(TimeoutError):
                await subscriber.receive(timeout=1.0)
            async with engine.connect() as connection:
                events = await read_after(connection, streamed, 100)
            assert len(events) == 3
            append(client, prefix, events[1].position, events[2:])  # events[:2] skipped
            got = await received(subscriber, 3)
            assert [i for i, _ in got] == written
            assert_in_cursor_order(got)
            # A second leader repeating a batch (after a lock expiry) changes nothing: the next
            # thing delivered is the final marker.
            append(client, prefix, events[0].position, events[1:])
            streamed = events[-1].position
            marker = await probe()
            assert (await drain_to(subscriber, {op: "interactionRecorded"}, marker))[op] == []
    finally:
        server.stop()
        client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Any]:
    """A `redis-server` of this test's own (it is stopped and started again by the test)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (apt-get install redis-server)"
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1"]  # noqa: RUF005
            + ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        probe = redis.Redis(port=port)
        wait_until(lambda: answers(probe), "the private redis to start")
        probe.close()

    def stop() -> None:
        process = processes[-1]
        process.terminate()
        process.wait(timeout=10)

    start()
    try:
        yield type(
            "PrivateRedis", (), {"url": f"redis://127.0.0.1:{port}/0", "start": start, "stop": stop}
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_without_redis_every_process_polls_the_outbox_and_returns_to_redis(
    database_url: str, tmp_path: Path, writer: Writer, private_redis: Any
) -> None:
    settings = {"broker": "redis", "redis_url": private_redis.url, "redis_key_prefix": "hub:"}
    servers = start_servers(2, database_url, tmp_path, **settings)
    try:
        async with connect(servers[0]) as on_a, connect(servers[1]) as on_b:
            op_a = await on_a.subscribe(FEED)
            op_b = await on_b.subscribe(FEED)
            probe = interaction_probe(writer)
            subscribers = [(on_a, op_a, "interactionRecorded"), (on_b, op_b, "interactionRecorded")]
            await await_live_each(subscribers, probe)
            history: dict[int, list[tuple[str, str]]] = {0: [], 1: []}
            written: list[str] = []

            async def round_trip() -> None:
                batch = [gid("Interaction", await writer.record()) for _ in range(3)]
                written.extend(batch)
                for index, client in enumerate((on_a, on_b)):
                    events = await received(client, 3)
                    assert [i for i, _ in events] == batch
                    history[index].extend(events)

            await round_trip()
            assert all(broker_status(s) == "redis" for s in servers)

            private_redis.stop()
            await eventually(
                lambda: all(broker_status(s) != "redis" for s in servers), "the outbox fallback"
            )
            # Readiness stays: delivery goes on from the outbox.
            assert all(readiness(s) == 200 for s in servers)
            await round_trip()

            private_redis.start()  # empty: it kept nothing
            await eventually(
                lambda: all(broker_status(s) == "redis" for s in servers), "redis again"
            )
            await round_trip()
            marker = await probe()
            for index, (client, op) in enumerate(((on_a, op_a), (on_b, op_b))):
                # Nothing after the last round trip but the final marker: no late duplicate.
                assert (await drain_to(client, {op: "interactionRecorded"}, marker))[op] == []
                assert [i for i, _ in history[index]] == written
                assert_in_cursor_order(history[index])
    finally:
        for server in servers:
            server.stop()
