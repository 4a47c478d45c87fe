"""The webhook delivery worker: every hub process runs one (``hub.http.resources``).

Leases (``hub.webhooks.store.claim``) make each webhook delivered by one process at a time; a
process that dies stops renewing them and another takes its webhooks over once they expire.
Each held webhook has a task of its own, so a slow receiver holds back only its own webhook
(and at most one of the process's ``webhook_max_concurrency`` request slots per attempt).

A task runs the webhook's stored subscription document through the same execution as a
websocket (``hub.http.ws_execution.execute``) with a ``Context`` built for the registering key
as it is now (scope, row security, masking), but the events come from a feed reading the
outbox after the webhook's own cursor, one event at a time: whatever the execution yields
while an event is current is that event's result, delivered (with retries) before the next
event is read. So deliveries are in cursor order, the ``webhook-id`` is the event's cursor
(stable across retries and replays), and at-least-once holds across crashes: the cursor moves
only after a 2xx or a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from typing import Any

import httpx
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.context import Context
from hub.core.settings import Settings
from hub.events.broker import Broker, SubscriberTooSlow
from hub.events.outbox import Position, StoredEvent, read_after
from hub.graphql import schema
from hub.http.ws_execution import SubscriptionRequest, execute
from hub.ops.metrics import HubMetrics
from hub.webhooks import sender, signing, store
from hub.webhooks.store import DeliveryStatus, WebhookStatus

logger = logging.getLogger("hub.webhooks")

# Attempt latencies: a receiver should answer in well under a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics(Collector):
    """Deliveries by outcome, attempt latency and the backlog per webhook."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.attempts = Counter(
            "hub_webhook_deliveries",
            "Webhook delivery attempts by outcome: succeeded, failed (retried) or dead_letter.",
            ["outcome"],
            registry=metrics.registry,
        )
        self.latency = Histogram(
            "hub_webhook_attempt_duration_seconds",
            "Time of one webhook delivery attempt (address check, request, capped answer).",
            buckets=LATENCY_BUCKETS,
            registry=metrics.registry,
        )
        self.backlog: dict[uuid.UUID, int] = {}
        metrics.registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hub_webhook_backlog_events",
            "Per webhook delivered by this process: outbox events after its cursor.",
            labels=["webhook"],
        )
        for webhook_id, count in sorted(self.backlog.items()):
            family.add_metric([str(webhook_id)], count)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


class _Feed:
    """The events of one webhook's subscription after its cursor, one at a time: from the
    outbox while behind, then from the broker's live stream (the events the process reads once
    for every subscriber, loads memoized on them), falling back to the outbox when the live
    queue overflowed because the receiver was slow."""

    def __init__(self, worker: WebhookWorker, task: _WebhookTask, start: Position) -> None:
        self.worker = worker
        self.task = task
        self.position = start  # everything up to here is handled
        self.current: StoredEvent | None = None

    async def _outbox(self, kinds: Collection[str]) -> AsyncIterator[StoredEvent]:
        """Committed events after the position, up to the horizon, page by page."""
        batch = self.worker.settings.events_batch_size
        while True:
            async with self.worker.engine.connect() as connection:
                events = await read_after(connection, self.position, batch, kinds)
            for event in events:
                yield event
            if len(events) < batch:
                return

    async def _one(self, event: StoredEvent) -> AsyncIterator[list[StoredEvent]]:
        self.current = event
        yield [event]  # the execution's results for it are delivered before this resumes
        self.current = None
        self.position = event.position

    async def __call__(self, kinds: Collection[str]) -> AsyncIterator[list[StoredEvent]]:
        while True:
            async for event in self._outbox(kinds):
                async for one in self._one(event):
                    yield one
            try:
                with self.worker.broker.subscribe(kinds) as live:
                    # The seam: what committed before the subscription started.
                    async for event in self._outbox(kinds):
                        async for one in self._one(event):
                            yield one
                    await self.task.skip_to(self.position)
                    async for events in live.batches():
                        for event in events:
                            if event.position <= self.position:
                                continue
                            async for one in self._one(event):
                                yield one
                        await self.task.skip_to(self.position)
            except SubscriberTooSlow:
                continue  # behind by more than the live queue: read the outbox again


class _LeaseLost(Exception):
    """The webhook changed (revision) or another process took it over: the task stops."""


class _WebhookTask:
    def __init__(self, worker: WebhookWorker, webhook_id: uuid.UUID, revision: int) -> None:
        self.worker = worker
        self.id = webhook_id
        self.revision = revision
        self.saved: Position | None = None
        self.task = asyncio.create_task(self.run(), name=f"hub-webhook-{webhook_id}")

    async def skip_to(self, to: Position) -> None:
        """Save progress over events that gave no delivery (filtered out, not visible)."""
        if self.saved is not None and to > self.saved:
            if not await store.skipped(
                self.worker.engine, self.id, self.worker.me, self.revision, to
            ):
                raise _LeaseLost()
            self.saved = to

    async def run(self) -> None:
        try:
            failures = 0
            while True:
                try:
                    if not await self.run_once():
                        return
                    failures = 0
                except (_LeaseLost, asyncio.CancelledError):
                    return
                except Exception:
                    failures += 1
                    logger.exception("webhook %s: delivery interrupted; starting again", self.id)
                    settings = self.worker.settings
                    await asyncio.sleep(
                        store.backoff_s(failures, 0.5, settings.webhook_backoff_max_s)
                    )
        except asyncio.CancelledError:
            return

    async def run_once(self) -> bool:
        """Deliver from the stored cursor until the stream ends; False when the task is done."""
        worker = self.worker
        row = await store.load(worker.engine, self.id)
        if row is None or row["status"] not in store.DELIVERING or row["revision"] != self.revision:
            return False
        principal = await store.principal_of(worker.engine, row)
        if principal is None:
            await store.disable(worker.engine, self.id, "the registering API key was revoked")
            return False
        checked = time.monotonic()
        self.saved = store.position(row)
        feed = _Feed(worker, self, self.saved)
        context = Context.build(worker.engine, worker.settings, principal=principal)
        context.broker = worker.broker
        context.event_feed = feed
        request = SubscriptionRequest(row["query"], row["variables"] or None, None)
        async for kind, payload in execute(schema, request, context):
            if kind == "next":
                event = feed.current
                if event is None:
                    continue  # cannot happen: results come while an event is current
                if time.monotonic() - checked > worker.settings.key_recheck_seconds:
                    if await store.principal_of(worker.engine, row) is None:
                        await store.disable(
                            worker.engine, self.id, "the registering API key was revoked"
                        )
                        return False
                    checked = time.monotonic()
                if not await self.deliver(row, event, payload):
                    return False
                self.saved = event.position
            elif kind == "error":
                # Said on the webhook (never silent), then tried again with backoff: a database
                # outage passes; a document that keeps failing shows its reason.
                logger.warning("webhook %s: the subscription ended with %s", self.id, payload)
                await store.failing(worker.engine, self.id, f"the subscription failed: {payload}")
                raise RuntimeError("subscription error")
            else:
                return True
        return True

    async def deliver(self, row: Any, event: StoredEvent, payload: str) -> bool:
        """Deliver one event's result until a 2xx or the retry time is over (dead letter).
        True when the task goes on with the next event."""
        worker = self.worker
        settings = worker.settings
        body = payload.encode()
        message_id = event.position.cursor
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            secrets = store.secrets_of(row)
            headers = signing.headers(secrets, message_id, int(time.time()), body)
            async with worker.slots:
                result = await worker.post(row["url"], headers, body)
            worker.metrics.latency.observe(result.latency_s)
            if result.ok:
                worker.metrics.attempts.labels("succeeded").inc()
                logged = self._attempt(event, attempt, DeliveryStatus.SUCCEEDED, payload, result)
                if not await store.delivered(
                    worker.engine, worker.me, self.revision, event.position, logged
                ):
                    raise _LeaseLost()
                return True
            wait = result.retry_after_s
            if wait is None:
                wait = store.backoff_s(
                    attempt, settings.webhook_backoff_initial_s, settings.webhook_backoff_max_s
                )
            if result.permanent or time.monotonic() - started + wait > (
                settings.webhook_retry_seconds
            ):
                worker.metrics.attempts.labels("dead_letter").inc()
                await store.record(
                    worker.engine,
                    self._attempt(event, attempt, DeliveryStatus.DEAD_LETTER, payload, result),
                )
                reason = (
                    f"event {message_id} dead-lettered after {attempt} attempts: {result.error}"
                )
                status = await store.dead_letter(
                    worker.engine,
                    self.id,
                    worker.me,
                    self.revision,
                    event.position,
                    reason,
                    settings.webhook_pause_after,
                )
                if status is None:
                    raise _LeaseLost()
                logger.warning("webhook %s: %s (now %s)", self.id, reason, status)
                return status == WebhookStatus.FAILING.value
            worker.metrics.attempts.labels("failed").inc()
            await store.record(
                worker.engine,
                self._attempt(event, attempt, DeliveryStatus.FAILED, payload, result),
            )
            await asyncio.sleep(wait)  # backoff between attempts (the task is cancellable)

    def _attempt(
        self,
        event: StoredEvent,
        attempt: int,
        status: DeliveryStatus,
        body: str,
        result: sender.Attempt,
    ) -> store.LoggedAttempt:
        return store.LoggedAttempt(
            self.id,
            event.position.cursor,
            attempt,
            status,
            body,
            status_code=result.status_code,
            latency_s=result.latency_s,
            error=result.error,
        )


class WebhookWorker:
    """Holds leases on webhooks and runs one task per held webhook."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, broker: Broker, metrics: HubMetrics
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.broker = broker
        self.metrics = WebhookMetrics(metrics)
        # Who holds a lease: this process (its pid, for operators and tests) and this worker.
        self.me = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.slots = asyncio.Semaphore(settings.webhook_max_concurrency)
        self.client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self.tasks: dict[uuid.UUID, _WebhookTask] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> sender.Attempt:
        return await sender.post(
            self.client,
            url,
            headers,
            body,
            allow_private=self.settings.webhook_allow_private,
            timeout_s=self.settings.webhook_timeout_s,
            max_response_bytes=self.settings.webhook_max_response_bytes,
        )

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._manage(), name="hub-webhooks-leases"),
        ]

    def wake(self) -> None:
        """A webhook changed in this process: claim and (re)start at once."""
        self._wake.set()

    async def _manage(self) -> None:
        interval = self.settings.webhook_lease_s / 3
        while True:
            try:
                await self.tick()
            except Exception as error:  # a database outage: the leases wait for it
                logger.warning("webhook leases: renewal failed (%r); trying again", error)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    async def tick(self) -> None:
        held = await store.claim(self.engine, self.me, self.settings.webhook_lease_s)
        for webhook_id, task in list(self.tasks.items()):
            if held.get(webhook_id) != task.revision or task.task.done():
                task.task.cancel()
                del self.tasks[webhook_id]
        for webhook_id, revision in held.items():
            if webhook_id not in self.tasks:
                self.tasks[webhook_id] = _WebhookTask(self, webhook_id, revision)
        backlogs = await store.backlogs(self.engine) if held else {}
        self.metrics.backlog = {k: v for k, v in backlogs.items() if k in held}

    async def close(self) -> None:
        for loop in self._loops:
            loop.cancel()
        tasks = [task.task for task in self.tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*self._loops, *tasks, return_exceptions=True)
        self.tasks.clear()
        # Released at once for the next process; bounded, so a database outage cannot hold
        # the shutdown (the leases then expire instead).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await store.release(self.engine, self.me)
        await self.client.aclose()
