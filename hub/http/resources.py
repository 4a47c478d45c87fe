"""What the app's lifespan opens: engines and pools, the broker, replica routing, compiled paths.

Only the embedded mode and migrations touch the database while opening: with a server URL the
app starts even while the database is down, and ``/readyz`` reports the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.analytics.rollup import catch_up_forever
from hub.audiences.sweeper import drain_forever, sweep_forever
from hub.compiled.executor import CompiledReads
from hub.compiled.ingest import CompiledIngest
from hub.core.settings import Settings
from hub.db.engine import (
    DatabaseLocation,
    alocate_database,
    arelease_database,
    create_driver_pool,
    create_engine,
)
from hub.db.migrations import aupgrade
from hub.db.replica import ReadRouter
from hub.events.broker import Broker, PostgresBroker
from hub.graphql import schema
from hub.http.revocation import OpenSockets
from hub.http.webhooks import WebhookWorker
from hub.ops.metrics import HubMetrics
from hub.schema.permissions import personal_field_masks
from hub.vocabulary.registry import refresh_forever


@dataclass
class Resources:
    """What the lifespan opens, and closes again when it ends."""

    location: DatabaseLocation
    engine: AsyncEngine
    # Socket re-checks and the event broker share a small pool of their own (HTTP key checks
    # have theirs: ``key_pool``): a saturated request pool cannot lock keys out or stall live
    # events, and request statement counts stay about requests.
    control_engine: AsyncEngine
    # The audit rows of mutations (hub.schema.extensions.AccessGuard), on a small pool of their
    # own: a mutation does not run until its row is written, so a request pool saturated by the
    # mutations themselves must not starve the rows that let them run.
    audit_engine: AsyncEngine
    sockets: OpenSockets
    broker: Broker
    # The HTTP gate's key checks: a small bare asyncpg pool (no ping, no transaction per check).
    key_pool: Any
    # HUB_READ_DATABASE_URL: the replica's engine and the per-request routing (hub/db/replica.py).
    read_engine: AsyncEngine | None = None
    router: ReadRouter | None = None
    # HUB_COMPILED_READS / HUB_COMPILED_INGEST: the paths that answer without resolvers.
    compiled: CompiledReads | None = None
    ingest: CompiledIngest | None = None
    # HUB_WEBHOOKS_ENABLED: this process's webhook delivery worker (hub/http/webhooks.py).
    webhooks: WebhookWorker | None = None


@contextlib.asynccontextmanager
async def open_resources(settings: Settings, metrics: HubMetrics) -> AsyncIterator[Resources]:
    """Everything opened in order and closed in reverse, also when opening fails halfway."""
    async with contextlib.AsyncExitStack() as stack:
        location = await alocate_database(settings)
        stack.push_async_callback(arelease_database, location)
        if settings.migrate_on_start:
            await aupgrade(location.url)
        engine = create_engine(location.url, settings)
        stack.push_async_callback(engine.dispose)
        small = settings.model_copy(update={"pool_size": 3, "pool_max_overflow": 2})
        control_engine = create_engine(location.url, small)
        stack.push_async_callback(control_engine.dispose)
        # As wide as the request pool: every mutation on the resolver path writes its audit row
        # before it runs and its outcome after, so a narrower pool (it was 3 + 2) is the queue in
        # front of every mutation (96 concurrent calls on a loaded machine: its wait was the
        # largest part of their time, past the pool timeout). Still its own pool, so requests
        # saturating theirs cannot starve the rows that let mutations run.
        audit_engine = create_engine(location.url, settings)
        stack.push_async_callback(audit_engine.dispose)
        sockets = OpenSockets(lambda: control_engine, settings.key_recheck_seconds)
        stack.push_async_callback(sockets.close)
        broker = _broker(settings, control_engine, location.url)
        await broker.start()
        stack.push_async_callback(broker.close)
        read_engine: AsyncEngine | None = None
        router: ReadRouter | None = None
        if settings.read_database_url:
            read_engine = create_engine(settings.read_database_url, settings)
            stack.push_async_callback(read_engine.dispose)
            router = ReadRouter(engine, read_engine, settings)
            await router.start()
            stack.push_async_callback(router.close)
        metrics.bind(lambda: engine, lambda: broker, lambda: router)
        for counted in (engine, read_engine):
            if counted is not None:
                metrics.count_statements(counted)
        key_pool = await create_driver_pool(location.url, settings, "hub-keys", 5)
        stack.push_async_callback(key_pool.close)
        resources = Resources(
            location,
            engine,
            control_engine,
            audit_engine,
            sockets,
            broker,
            key_pool,
            read_engine,
            router,
        )
        if settings.compiled_reads:
            resources.compiled = await CompiledReads.open(
                location.url,
                schema._schema,
                settings,
                settings.read_database_url,
                personal_field_masks(schema._schema),
            )
            stack.push_async_callback(resources.compiled.close)
        if settings.compiled_ingest:
            resources.ingest = await CompiledIngest.open(
                location.url,
                schema._schema,
                settings,
                metrics,
                personal_field_masks(schema._schema),
            )
            stack.push_async_callback(resources.ingest.close)
        if settings.webhooks_enabled:
            # A pool of its own: deliveries never wait for request connections, and request
            # statement counts stay about requests. Background work may wait for a connection
            # longer than a request would (a burst of events for many webhooks queues here).
            patient = settings.model_copy(update={"db_pool_timeout_s": 120.0})
            webhook_engine = create_engine(location.url, patient)
            stack.push_async_callback(webhook_engine.dispose)
            resources.webhooks = WebhookWorker(settings, webhook_engine, broker, metrics)
            resources.webhooks.start()
            stack.push_async_callback(resources.webhooks.close)
        if settings.audiences_sweep_s > 0 or settings.audiences_drain_ms > 0:
            # A small pool of its own: the sweeper and the drainer never wait for request
            # connections (nor requests for them).
            audiences_engine = create_engine(
                location.url, settings.model_copy(update={"pool_size": 3, "pool_max_overflow": 1})
            )
            stack.push_async_callback(audiences_engine.dispose)
        if settings.audiences_sweep_s > 0:
            sweeping = sweep_forever(audiences_engine, settings.audiences_sweep_s)
            await stack.enter_async_context(_in_background(sweeping, "hub-audiences-sweeper"))
        if settings.audiences_drain_ms > 0:
            draining = drain_forever(audiences_engine, settings.audiences_drain_ms / 1000)
            await stack.enter_async_context(_in_background(draining, "hub-audiences-drainer"))
        if settings.vocabulary_refresh_s > 0:
            refreshing = refresh_forever(engine, settings.vocabulary_refresh_s)
            await stack.enter_async_context(_in_background(refreshing, "hub-vocabulary"))
        if settings.analytics_catch_up_s > 0:
            catching_up = catch_up_forever(engine, settings.analytics_catch_up_s)
            await stack.enter_async_context(_in_background(catching_up, "hub-analytics-catch-up"))
        yield resources


def _broker(settings: Settings, engine: AsyncEngine, url: str) -> Broker:
    if settings.broker == "redis":
        from hub.events.redis_broker import RedisBroker  # only this broker needs redis-py

        return RedisBroker(engine, url, settings)
    return PostgresBroker(engine, url, settings)


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """``work`` runs as a task while the block runs; cancelled at its end."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
