"""Resuming with `after:` and the (xid, id) watermark: no gap, no duplicate, late commits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from hub.events.outbox import decode_cursor, prune
from tests.factories import Factory, gid
from tests.feed_sync import await_live, drain_to, interaction_probe, outbox_positions
from tests.live_server import TIMEOUT, Client, Server, Writer, connect, start_server

FEED = """
subscription Feed($after: String) {
  interactionRecorded(after: $after) { cursor interaction { id } }
}
"""


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("serve"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def writer(engine: Any, db: asyncpg.Connection) -> Writer:
    factory = Factory(db)
    touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
    customer = await factory.customer("Ada")
    return Writer(engine, customer, "Shop", touchpoint, "WEB")


async def next_event(client: Client) -> tuple[str, str]:
    data = await client.next_data()
    event = data["interactionRecorded"]
    return event["cursor"], event["interaction"]["id"]


async def test_a_later_commit_waits_for_an_earlier_transaction_still_open(
    server: Server, writer: Writer
) -> None:
    async with connect(server) as client:
        op = await client.subscribe(FEED)
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
        async with writer.transaction() as early:
            first = await writer.record_in(early)  # takes the lower transaction id
            second = await writer.record()  # a later transaction commits first
            # Delivering `second` now would let a resume skip `first` forever. Nothing can
            # prove a negative without waiting: this window only gives a wrong delivery the
            # chance to show (it cannot make a correct hub fail).
            with pytest.raises(TimeoutError):
                await client.receive(timeout=0.6)
        delivered = [await next_event(client) for _ in range(2)]
    assert [interaction for _, interaction in delivered] == [
        gid("Interaction", first),
        gid("Interaction", second),
    ]
    assert decode_cursor(delivered[0][0]) < decode_cursor(delivered[1][0])


class Commits:
    """A count of committed writes that a test can wait on (instead of sleeping)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Condition()

    async def add(self) -> None:
        async with self.changed:
            self.count += 1
            self.changed.notify_all()

    async def reach(self, count: int, unless: Callable[[], bool] = lambda: False) -> None:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: self.count >= count or unless()), TIMEOUT
            )


async def _write_concurrently(writer: Writer, writers: int, each: int, commits: Commits) -> None:
    rng = random.Random(7)
    finished = 0

    async def one_writer(index: int) -> None:
        nonlocal finished
        for n in range(each):
            await asyncio.sleep(rng.random() * 0.02)  # pacing: interleaves the writers
            if index == 0 and n == each // 2:
                # Hold a transaction open until three later ones have committed after it (or
                # every other writer is done).
                async with writer.transaction() as held:
                    interaction = await writer.record_in(held)
                    await commits.reach(commits.count + 3, unless=lambda: finished == writers - 1)
                writer.written.append(interaction)
            else:
                await writer.record()
            await commits.add()
        async with commits.changed:
            finished += 1
            commits.changed.notify_all()

    await asyncio.gather(*(one_writer(i) for i in range(writers)))


async def test_resuming_with_the_last_cursor_delivers_every_event_exactly_once(
    server: Server, writer: Writer
) -> None:
    seen: list[str] = []
    cursors: list[str] = []
    commits = Commits()
    probe = interaction_probe(writer)
    async with connect(server) as first:
        op = await first.subscribe(FEED)
        start = await await_live(first, {op: "interactionRecorded"}, probe)
        writing = asyncio.create_task(_write_concurrently(writer, 4, 15, commits))
        for _ in range(12):
            cursor, interaction = await next_event(first)
            cursors.append(cursor)
            seen.append(interaction)
    # Disconnected mid-stream while the writers go on: resume once five more have committed.
    await commits.reach(len(seen) + 5)
    async with connect(server) as second:
        op = await second.subscribe(FEED, {"after": cursors[-1]})
        await asyncio.wait_for(writing, TIMEOUT)
        marker = await probe()
        for position, event in (await drain_to(second, {op: "interactionRecorded"}, marker))[op]:
            cursors.append(position.cursor)
            seen.append(event["interaction"]["id"])
    assert len(writer.written) == 60
    assert sorted(seen) == sorted(gid("Interaction", i) for i in writer.written)
    assert len(set(seen)) == len(seen) == 60
    # Every committed event between the last probe and the final marker, once, in order.
    outbox = await outbox_positions(writer.engine, start, marker, ["INTERACTION_RECORDED"])
    assert [decode_cursor(c) for c in cursors] == outbox[:-1]


async def test_a_resumed_stream_replays_then_continues_live(server: Server, writer: Writer) -> None:
    for _ in range(3):  # before anyone subscribes: never part of what is replayed below
        await writer.record()
    async with connect(server) as client:
        op = await client.subscribe(FEED)
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
        marker = await writer.record()
        cursor, first = await next_event(client)
        assert first == gid("Interaction", marker)
    missed = [await writer.record() for _ in range(3)]
    async with connect(server) as client:
        await client.subscribe(FEED, {"after": cursor})
        replayed = [(await next_event(client))[1] for _ in missed]
        live = await writer.record()
        assert (await next_event(client))[1] == gid("Interaction", live)
    assert replayed == [gid("Interaction", i) for i in missed]


async def test_bad_unknown_and_expired_cursors_are_refused(
    server: Server, writer: Writer, engine: Any, db: asyncpg.Connection
) -> None:
    async with connect(server) as client:
        op = await client.subscribe(FEED)
        # The last probe's event was delivered: its cursor is a real one.
        probed = await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
        cursor = probed.cursor
        # Done with the live feed: otherwise the event written below could arrive on it before
        # the expected error (a race that a loaded machine lost).
        await client.send({"id": op, "type": "complete"})

        op = await client.subscribe(FEED, {"after": "not-a-cursor"})
        [error] = await client.errors(op)
        assert error["extensions"]["code"] == "CURSOR_INVALID"

        position = decode_cursor(cursor)
        unknown = type(position)(position.xid + 1000, position.id + 1000).cursor
        op = await client.subscribe(FEED, {"after": unknown})
        [error] = await client.errors(op)
        assert error["extensions"]["code"] == "CURSOR_INVALID"

        aged = await db.execute("UPDATE events SET created_at = now() - interval '8 days'")
        assert await prune(engine, retention_days=7) == int(aged.split()[-1]) > 0
        await writer.record()  # a newer event survives the window
        op = await client.subscribe(FEED, {"after": cursor})
        [error] = await client.errors(op)
        assert error["extensions"]["code"] == "CURSOR_EXPIRED"
        assert "7-day" in error["message"]
