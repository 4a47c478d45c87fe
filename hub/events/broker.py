"""The live event stream of one process: a ``Broker`` interface and its PostgreSQL implementation.

``PostgresBroker`` runs ONE notifier task per process. It polls the outbox with the watermark
query (``hub.events.outbox.read_after``) every few dozen milliseconds, optionally woken early by a
LISTEN on ``hub_events`` (a NOTIFY is never issued inside ingest transactions), and publishes
each batch to the in-process subscribers. Every process reads the same table, so a subscriber
on any replica sees every committed event, once, in ``(xid, id)`` order.

``RedisBroker`` (hub/events/redis_broker.py) implements the same interface with one outbox
poller for all processes and a Redis stream in between: ``publish`` fans a batch out to local
subscribers; ``subscribe`` registers one.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Collection, Coroutine, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.errors import HubError
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn
from hub.events.outbox import Position, StoredEvent, last_after, prune, read_after, start_position

logger = logging.getLogger("hub.broker")

NOTIFY_CHANNEL = "hub_events"
CLOSE_TIMEOUT_S = 5.0


class SubscriberTooSlow(HubError):
    code = "SUBSCRIBER_TOO_SLOW"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "this subscriber fell too far behind and was disconnected; "
            "subscribe again with `after:` set to the last cursor you received"
        )


class LiveSubscription:
    """Events published after subscribing, in a bounded queue.

    When the queue is full the subscription is marked overflowed, its backlog dropped (memory
    stays bounded) and the consumer raises ``SubscriberTooSlow`` on its next read.
    """

    def __init__(self, broker: Broker, kinds: Collection[str] | None, limit: int) -> None:
        self._broker = broker
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._limit = limit
        self._queue: deque[StoredEvent] = deque()
        self._wakeup = asyncio.Event()
        self.overflowed = False
        self.closed = False
        # The broker's position when this subscription started: it receives everything after it.
        self.start = broker.position

    def offer(self, event: StoredEvent) -> None:
        if self.overflowed or self.closed:
            return
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if len(self._queue) >= self._limit:
            self.overflowed = True
            self._queue.clear()
        else:
            self._queue.append(event)
        self._wakeup.set()

    def end(self) -> None:
        self.closed = True
        self._wakeup.set()

    def drain(self) -> list[StoredEvent]:
        """Everything queued now, without waiting."""
        if self.overflowed:
            raise SubscriberTooSlow()
        events = list(self._queue)
        self._queue.clear()
        return events

    async def __aiter__(self) -> AsyncIterator[StoredEvent]:
        while True:
            if self.overflowed:
                raise SubscriberTooSlow()
            if self._queue:
                yield self._queue.popleft()
                continue
            if self.closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def batches(self) -> AsyncIterator[list[StoredEvent]]:
        """Like iterating, but everything queued at once: lets a consumer batch its loads."""
        while True:
            if self.overflowed:
                raise SubscriberTooSlow()
            if self._queue:
                yield self.drain()
                continue
            if self.closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        self.closed = True
        self._broker.unsubscribe(self)

    def __enter__(self) -> LiveSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Broker(abc.ABC):
    """Fans committed events out to this process's live subscribers."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.position = Position(0, 0)
        self._subscribers: set[LiveSubscription] = set()
        # (created_at of the last event published, Unix time it was published): broker lag.
        self.last_delivered: tuple[datetime, float] | None = None

    def subscribe(self, kinds: Collection[str] | None = None) -> LiveSubscription:
        """Receive every event published from now on (``kinds``: only these)."""
        subscription = LiveSubscription(self, kinds, self.queue_size)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: LiveSubscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def status(self) -> str:
        """How events arrive, for /readyz."""
        return "postgres"

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Hand a batch, in delivery order, to every subscriber. Never blocks."""
        for event in events:
            for subscription in tuple(self._subscribers):
                subscription.offer(event)
        if events:
            self.position = events[-1].position
            self.last_delivered = (events[-1].created_at, time.time())

    @abc.abstractmethod
    async def start(self) -> None: ...

    async def close(self) -> None:
        for subscription in tuple(self._subscribers):
            subscription.end()
        self._subscribers.clear()


class PostgresBroker(Broker):
    """The outbox notifier: one polling task per process (plus an optional LISTEN wake-up)."""

    def __init__(self, engine: AsyncEngine, database_url: str, settings: Settings) -> None:
        super().__init__(settings.subscriber_queue_size)
        self._engine = engine
        self._database_url = database_url
        self._settings = settings
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection | None = None
        self._positioned = False
        self._closing = False
        self._poll_failures = 0  # consecutive failed polls (a database outage)

    async def start(self) -> None:
        try:
            await self._take_start_position()
        except Exception:  # the database may come up later; the notifier retries
            logger.warning("outbox position unavailable at start; will retry", exc_info=True)
        self._tasks = [asyncio.create_task(loop, name=name) for name, loop in self._loops()]
        if self._settings.events_listen_wakeup:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="hub-listener"))

    def _loops(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        return [("hub-notifier", self._notify_loop()), ("hub-event-pruner", self._prune_loop())]

    async def _listen_loop(self) -> None:
        """Keep a LISTEN connection open: reconnect (with backoff) whenever it is lost. Polling
        goes on meanwhile, so a lost wake-up delays nothing by more than one poll interval."""
        failures = 0
        while not self._closing:
            lost = asyncio.Event()
            try:
                self._listener = await asyncpg.connect(
                    asyncpg_dsn(self._database_url), timeout=self._settings.db_connect_timeout_s
                )
                await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                self._listener.add_termination_listener(lambda _, lost=lost: lost.set())
            except Exception as error:  # refused, timed out, starting up: try again later
                failures += 1
                if failures == 1:
                    logger.warning("LISTEN wake-up unavailable; polling only: %r", error)
                await self._close_listener()
                await asyncio.sleep(min(0.25 * 2**failures, 5.0))
                continue
            if failures:
                logger.info("LISTEN wake-up restored after %d failed attempts", failures)
            failures = 0
            self._wake.set()  # read at once: events may have committed while it was away
            while not lost.is_set() and not self._listener.is_closed() and not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await lost.wait()
            logger.warning("LISTEN connection lost; reconnecting")
            await self._close_listener()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.terminate()

    async def _take_start_position(self) -> None:
        async with self._engine.connect() as connection:
            self.position = await start_position(connection)
        self._positioned = True

    async def poll_once(self) -> int:
        """Read and publish every deliverable event; returns how many were published."""
        if not self._positioned:
            await self._take_start_position()
        if not self._subscribers:
            # Nobody listens in this process: move to where publishing everything would have
            # left the position and the lag gauge, without reading (and decoding) every event
            # (ingest writes two or more per interaction).
            async with self._engine.connect() as connection:
                last = await last_after(connection, self.position)
            if not self._subscribers:  # (one may have subscribed meanwhile: then read below)
                if last is not None:
                    self.position, created_at = last
                    self.last_delivered = (created_at, time.time())
                return 0
        published = 0
        while True:
            async with self._engine.connect() as connection:
                events = await read_after(
                    connection, self.position, self._settings.events_batch_size
                )
            self.publish(events)
            published += len(events)
            if len(events) < self._settings.events_batch_size:
                return published

    def _poll_failed(self, error: BaseException) -> None:
        """One failed poll: logged at the first of a run only (an outage fails every tick)."""
        self._poll_failures += 1
        if self._poll_failures == 1:
            logger.warning("outbox poll failed; retrying: %r", error)

    async def _guarded_poll(self) -> bool:
        """``poll_once`` that never raises: bounded in time, failures counted and logged once
        per run, the recovery logged. Whether it succeeded."""
        settings = self._settings
        # A poll on a connection whose packets vanish (no reset) would wait for TCP to give up
        # (many minutes): bound it by the timeouts a healthy poll stays far below.
        bound = (
            settings.statement_timeout_ms / 1000
            + settings.db_connect_timeout_s
            + settings.db_pool_timeout_s
        )
        try:
            async with asyncio.timeout(bound):
                await self.poll_once()
        except Exception as error:  # a database outage must not kill delivery: retry
            self._poll_failed(error)
            return False
        self._poll_succeeded()
        return True

    def _poll_succeeded(self) -> None:
        if self._poll_failures:
            logger.info("outbox polling recovered after %d failed polls", self._poll_failures)
        self._poll_failures = 0

    async def _notify_loop(self) -> None:
        interval = self._settings.events_poll_interval_ms / 1000
        while not self._closing:
            await self._guarded_poll()
            # While the database is away, poll less often (at most every 0.5 s): the position
            # stays where it was, so nothing is skipped when it is back.
            failures = self._poll_failures
            await self._wait_for_wake(
                interval if not failures else min(max(interval, 0.05 * failures), 0.5)
            )

    async def _wait_for_wake(self, interval: float) -> None:
        """Until a LISTEN wake-up or ``interval`` seconds. ``asyncio.timeout``, not
        ``wait_for``: on Python 3.11 ``wait_for`` can swallow a cancellation."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await self._wake.wait()
        self._wake.clear()

    async def _prune_loop(self) -> None:
        while not self._closing:
            try:
                deleted = await prune(self._engine, self._settings.events_retention_days)
                if deleted:
                    logger.info("pruned %d expired events", deleted)
            except Exception:  # retried at the next interval
                logger.warning("event pruning failed", exc_info=True)
            await asyncio.sleep(self._settings.events_prune_interval_s)

    async def close(self) -> None:
        # The flag ends every loop at its next turn even if a library swallowed the cancel;
        # shutdown waits a bounded time, never forever.
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            if pending:
                logger.warning("broker tasks still running at shutdown: %s", pending)
        await self._close_listener()
        await super().close()
