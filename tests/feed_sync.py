"""Synchronising a test with live feeds without sleeping: probes, a final marker, the outbox.

A live subscription starts at the broker's position when it registers, which happens some time
after the `subscribe` frame is sent; an event committed before that is (correctly) not part of
the stream. Instead of sleeping and hoping, a test proves the subscription receives: it writes a
*probe* event that the subscription must deliver, waits a bounded time for it, writes another if
it did not come, and stops when every operation has delivered a probe written after it was
listening. Delivery is in cursor order, so once an operation delivered the last probe, no earlier
probe is still on its way: the events under test come next.

Absence of duplicates is checked the same way, with no quiet window: the test writes a final
*marker*, reads until each operation delivered it, and compares what arrived with the outbox's
final state (`outbox_positions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events.emit import NewEvent, emit_many
from hub.events.outbox import START, Position, decode_cursor
from tests.live_server import TIMEOUT, Client, Writer

Probe = Callable[[], Awaitable[Position]]

# One probe waits this long for its delivery before the next is written (a bound, not a pause):
# on a loaded machine several probes may be written; the extra ones are drained.
PROBE_WAIT = 1.0
PROBE_ATTEMPTS = 30


async def first_of_last_transaction(engine: AsyncEngine) -> Position:
    """The position of the first event of the newest transaction in the outbox: what a probe
    that just committed returns (tests write one transaction at a time while probing)."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT x.xid, min(e.id) AS id FROM events e,"
                    " (SELECT max(xid::text::bigint) AS xid FROM events) x"
                    " WHERE e.xid::text::bigint = x.xid GROUP BY x.xid"
                )
            )
        ).one()
    return Position(row.xid, row.id)


async def outbox_positions(
    engine: AsyncEngine,
    after: Position,
    upto: Position,
    kinds: list[str],
    where: str = "true",
    **params: Any,
) -> list[Position]:
    """The committed events of ``kinds`` in transactions after the one of ``after`` (a probe's,
    whose other events are probes too) and up to ``upto`` (and
    matching the SQL condition ``where`` with ``params``), in delivery order: what a subscriber
    between those two points must receive, once each. Written in SQL on purpose: an account of
    the outbox independent of the feed's own filtering."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.text(
                    "SELECT xid::text::bigint AS xid, id FROM events"
                    " WHERE xid::text::bigint > :axid"
                    " AND (xid::text::bigint, id) <= (:uxid, :uid) AND kind = ANY(:kinds)"
                    f" AND ({where})"
                    " ORDER BY xid, id"
                ),
                {
                    "axid": after.xid,
                    "uxid": upto.xid,
                    "uid": upto.id,
                    "kinds": kinds,
                    **params,
                },
            )
        ).all()
    return [Position(row.xid, row.id) for row in rows]


def _position(message: dict[str, Any], operations: Mapping[str, str]) -> tuple[str, Position]:
    operation = message.get("id")
    assert message["type"] == "next" and operation in operations, message
    assert "errors" not in message["payload"], message
    event = message["payload"]["data"][operations[operation]]
    return operation, decode_cursor(event["cursor"])


async def await_live(client: Client, operations: Mapping[str, str], probe: Probe) -> Position:
    """Write probes until every operation (id → its subscription field, whose selection includes
    ``cursor``) delivered one; returns the last probe's position. ``probe`` commits one
    transaction with at most one event per operation, each matching that operation's filter,
    and returns the position of its first event."""
    waiting = set(operations)
    for _ in range(PROBE_ATTEMPTS):
        target = await probe()
        waiting = set(operations)
        try:
            while waiting:
                operation, position = _position(await client.receive(PROBE_WAIT), operations)
                if position >= target:
                    waiting.discard(operation)
        except TimeoutError:
            continue  # not registered yet, or slow: the next probe decides
        return target
    raise AssertionError(f"operations {sorted(waiting)} delivered none of {PROBE_ATTEMPTS} probes")


async def drain_to(
    client: Client, operations: Mapping[str, str], marker: Position
) -> dict[str, list[tuple[Position, dict[str, Any]]]]:
    """Read until every operation delivered an event at or after ``marker`` (the final marker the
    test wrote); returns, per operation, what it delivered before the marker, in arrival order."""
    received: dict[str, list[tuple[Position, dict[str, Any]]]] = {op: [] for op in operations}
    waiting = set(operations)
    while waiting:
        message = await client.receive(TIMEOUT)
        operation, position = _position(message, operations)
        if position >= marker:
            assert operation in waiting, f"{operation} delivered beyond the marker twice: {message}"
            waiting.discard(operation)
        else:
            assert operation in waiting, f"{operation} delivered after the marker: {message}"
            data = message["payload"]["data"][operations[operation]]
            received[operation].append((position, data))
    return received


def interaction_probe(writer: Writer) -> Probe:
    """A probe for `interactionRecorded` feeds: an interaction recorded by ``writer`` (not
    counted in ``writer.written``)."""

    async def probe() -> Position:
        async with writer.transaction() as transaction:
            await writer.record_in(transaction)
        return await first_of_last_transaction(writer.engine)

    return probe


def event_probe(engine: AsyncEngine, *events: NewEvent) -> Probe:
    """A probe of ``events`` emitted in one transaction (for feeds whose real writes cannot be
    repeated freely: merges, per-customer and per-conversation feeds). They only prove the
    subscription receives; the events under test come from the real write path."""

    async def probe() -> Position:
        async with engine.begin() as connection:
            await emit_many(connection, list(events))
        return await first_of_last_transaction(engine)

    return probe


async def await_live_each(subscribers: list[tuple[Client, str, str]], probe: Probe) -> Position:
    """``await_live`` for subscribers on several connections (client, operation id, field), then
    each reads up to the last probe: probes written for one connection also reach the others,
    and none of them is left pending anywhere."""
    start = START
    for client, operation, field in subscribers:
        start = await await_live(client, {operation: field}, probe)
    for client, operation, field in subscribers[:-1]:  # the last one just delivered it
        await drain_to(client, {operation: field}, start)
    return start


async def take(
    client: Client, operations: Mapping[str, str], counts: Mapping[str, int]
) -> dict[str, list[tuple[Position, dict[str, Any]]]]:
    """The next ``counts[op]`` deliveries of each operation (and nothing for the others). Feeds
    that load the entity at delivery time (customerUpdated, conversationUpdated) show it as it
    is then: a test that checks each state waits for it before the next change."""
    received: dict[str, list[tuple[Position, dict[str, Any]]]] = {op: [] for op in operations}
    while any(len(received[op]) < count for op, count in counts.items()):
        message = await client.receive(TIMEOUT)
        operation, position = _position(message, operations)
        assert len(received[operation]) < counts.get(operation, 0), f"unexpected: {message}"
        received[operation].append((position, message["payload"]["data"][operations[operation]]))
    return received


def extend(
    into: dict[str, list[tuple[Position, dict[str, Any]]]],
    more: dict[str, list[tuple[Position, dict[str, Any]]]],
) -> None:
    for operation, items in more.items():
        into.setdefault(operation, []).extend(items)
