"""Prometheus metrics of one app, served at ``GET /metrics`` by ``hub.http.metrics``
(docs/operations.md).

Every app has its own ``CollectorRegistry`` (never the process-wide default): tests build many
apps in one process, and two apps must not share or re-register counters. Gauges that describe
live state (pool, sockets, broker) are computed when Prometheus scrapes, not kept in step by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from weakref import WeakSet

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.request_keys import METRICS_KEY

# Operation names become label values: only plain GraphQL names of bounded length, so a client
# cannot blow up the number of series with arbitrary strings.
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
ANONYMOUS = "anonymous"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def operation_label(name: object) -> str:
    """The label for a client-sent operation name: itself if a plain identifier ≤ 64 chars."""
    if isinstance(name, str) and _OPERATION_NAME.fullmatch(name):
        return name
    return ANONYMOUS


OTHER = "other"


class HubMetrics:
    """The metric objects of one app and the live state its scrape-time gauges read.

    ``max_operation_names``: the first that many distinct operation names get a label value of
    their own, later ones count as ``other`` (a client cannot grow the series without bound)."""

    def __init__(self, max_operation_names: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.max_operation_names = max_operation_names
        self._operation_names: set[str] = {ANONYMOUS}
        # Labelled children kept (``_child``): ``labels()`` takes a lock and builds a key on
        # every call, and the request path counts three or four things per request. Bounded by
        # the label values: fixed few, and operation names capped by ``max_operation_names``.
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self.key_checks = Counter(
            "hub_api_key_checks",
            "API keys presented, by outcome: cached (valid, served by the process's key "
            "cache), valid, invalid (looked up in the database, no match) or throttled (refused "
            "before any lookup: the client address is over its failed-key budget).",
            ["outcome"],
            registry=self.registry,
        )
        self.requests = Counter(
            "hub_graphql_requests",
            "GraphQL HTTP requests by operation name and outcome (error: any error in the answer).",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hub_graphql_request_duration_seconds",
            "Time from receiving a GraphQL HTTP request to the end of its response.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.execution_path = Counter(
            "hub_graphql_execution_path",
            "GraphQL HTTP operations by how they were answered: compiled (one SQL statement "
            "building the JSON) or resolvers (Strawberry fields and DataLoaders).",
            ["path"],
            registry=self.registry,
        )
        self.sql_statements = Counter(
            "hub_sql_statements",
            "SQL statements sent to PostgreSQL by the request engine (resolvers, loaders, "
            "mutations) and by the compiled read path.",
            ["path"],
            registry=self.registry,
        )
        self.interactions_stored = Counter(
            "hub_ingest_interactions_stored",
            "Interactions newly stored by ingest (idempotent replays and rejections excluded).",
            registry=self.registry,
        )
        self.reads_routed = Counter(
            "hub_read_queries",
            "Queries by where they read, with a read replica configured (replica or primary).",
            ["target"],
            registry=self.registry,
        )
        # Open graphql-transport-ws handlers (hub.http.ws registers each while it runs).
        self.sockets: WeakSet[Any] = WeakSet()
        self._engine: Callable[[], Any] = lambda: None
        self._broker: Callable[[], Any] = lambda: None
        self._router: Callable[[], Any] = lambda: None
        Gauge(
            "hub_websocket_connections",
            "Open GraphQL websocket connections.",
            registry=self.registry,
        ).set_function(lambda: len(self.sockets))
        Gauge(
            "hub_subscriptions_active",
            "Active subscription operations over all websocket connections.",
            registry=self.registry,
        ).set_function(self._active_subscriptions)
        Gauge(
            "hub_db_pool_checked_out",
            "Connections of the request pool in use right now.",
            registry=self.registry,
        ).set_function(self._pool_checked_out)
        Gauge(
            "hub_db_pool_size", "Connections the request pool keeps open.", registry=self.registry
        ).set_function(self._pool_size)
        Gauge(
            "hub_broker_lag_seconds",
            "Delay between the creation of the last event the notifier delivered and its delivery.",
            registry=self.registry,
        ).set_function(lambda: self._broker_value("lag_seconds"))
        Gauge(
            "hub_broker_last_event_created_timestamp_seconds",
            "created_at (Unix time) of the last event the notifier delivered (0: none yet).",
            registry=self.registry,
        ).set_function(lambda: self._broker_value("last_created_timestamp"))
        Gauge(
            "hub_broker_redis_connected",
            "1 while the redis broker reads its stream, 0 while it polls the outbox itself "
            "(Redis unreachable) or the broker is not redis.",
            registry=self.registry,
        ).set_function(lambda: float(bool(getattr(self._broker(), "redis_connected", False))))
        Gauge(
            "hub_broker_redis_leader",
            "1 while this process is the redis broker's leader (the one polling the outbox).",
            registry=self.registry,
        ).set_function(lambda: float(bool(getattr(self._broker(), "leading", False))))
        Gauge(
            "hub_read_replica_lag_seconds",
            "How far the read replica is behind the primary (0: caught up or no replica).",
            registry=self.registry,
        ).set_function(lambda: float(getattr(self._router(), "lag_seconds", 0.0)))
        Gauge(
            "hub_read_replica_up",
            "1 while the read replica answers and is within HUB_READ_REPLICA_MAX_LAG_S.",
            registry=self.registry,
        ).set_function(lambda: float(bool(getattr(self._router(), "usable", False))))

    def bind(
        self,
        engine: Callable[[], Any],
        broker: Callable[[], Any],
        router: Callable[[], Any] = lambda: None,
    ) -> None:
        """Where the scrape-time gauges look: callables, as they exist only inside the lifespan."""
        self._engine = engine
        self._broker = broker
        self._router = router

    def count_statements(self, engine: AsyncEngine) -> None:
        """Count every statement the request engine sends (a SQLAlchemy cursor event: no work
        on the query path beyond an increment)."""
        statements = self.sql_statements.labels(path="resolvers")

        def counted(*_: object) -> None:
            statements.inc()

        event.listen(engine.sync_engine, "after_cursor_execute", counted)

    def operation_label(self, operation: str) -> str:
        """``operation`` if it already has its label or a new one fits, else ``other``."""
        names = self._operation_names
        if operation in names:
            return operation
        if len(names) > self.max_operation_names:  # ``anonymous`` does not count
            return OTHER
        names.add(operation)
        return operation

    def _child(self, metric: Counter, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per distinct label values."""
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    def count(self, metric: Counter, label: str) -> None:
        """``metric.labels(label).inc()`` for a metric of one label whose values are a fixed
        few (a path, an outcome)."""
        self._child(metric, label).inc()

    def observe_request(self, operation: str, outcome: str, seconds: float) -> None:
        self._child(self.requests, self.operation_label(operation), outcome).inc()
        self.latency.observe(seconds)

    def _active_subscriptions(self) -> float:
        return float(sum(len(handler.active) for handler in list(self.sockets)))

    def _pool(self) -> Any:
        engine = self._engine()
        return None if engine is None else engine.pool

    def _pool_checked_out(self) -> float:
        pool = self._pool()
        return float(pool.checkedout()) if pool is not None else 0.0

    def _pool_size(self) -> float:
        pool = self._pool()
        return float(pool.size()) if pool is not None else 0.0

    def _broker_value(self, name: str) -> float:
        broker = self._broker()
        delivered: tuple[datetime, float] | None = getattr(broker, "last_delivered", None)
        if delivered is None:
            return 0.0
        created_at, delivered_at = delivered
        if name == "lag_seconds":
            return max(0.0, delivered_at - created_at.timestamp())
        return created_at.timestamp()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def count_stored(extras: Mapping[str, object], results: Iterable[Any]) -> None:
    """After an ingest transaction committed: count the items ``hub.ingest.record.record`` newly
    stored (``ItemResult.created``). ``extras`` is the request context's, which carries the
    app's metrics (absent for the CLI and seeds, which count nothing)."""
    metrics = extras.get(METRICS_KEY)
    if isinstance(metrics, HubMetrics):
        stored = sum(1 for result in results if result.created and result.error is None)
        if stored:
            metrics.interactions_stored.inc(stored)
