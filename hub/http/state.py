"""The app's one typed state: what ``create_app`` builds, and what its lifespan opens."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from hub.core.settings import Settings
from hub.http.resources import Resources
from hub.http.shutdown import GracefulShutdown
from hub.http.ws import HubTransportWSHandler, SharedExecutions
from hub.ops.metrics import HubMetrics

logger = logging.getLogger("hub")


@dataclass
class HubState:
    """Everything one app holds (``app.state.hub``). ``resources`` exists while the lifespan
    runs; the rest lives as long as the app."""

    settings: Settings
    # Per app, never process-wide: tests build many apps in one process.
    metrics: HubMetrics = field(init=False)
    # Live subscriptions that run once for many websockets (hub.http.ws).
    shared_executions: SharedExecutions = field(default_factory=SharedExecutions)
    shutdown: GracefulShutdown = field(init=False)
    resources: Resources | None = None

    def __post_init__(self) -> None:
        self.metrics = HubMetrics(self.settings.metrics_max_operation_names)
        self.shutdown = GracefulShutdown(self.settings, self.close_websockets)

    @property
    def running(self) -> Resources:
        """The lifespan's resources; only requests, which the lifespan outlives, ask."""
        if self.resources is None:
            raise RuntimeError("the app's lifespan is not running")
        return self.resources

    async def close_websockets(self, timeout: float) -> None:  # noqa: ASYNC109
        """Graceful shutdown: every open websocket sends what was queued, then closes 1012."""
        # The open handlers register in the metrics' set (hub.http.ws), the one registry.
        handlers: list[HubTransportWSHandler] = list(self.metrics.sockets)
        if handlers:
            logger.info("closing %d websockets with 1012 (service restart)", len(handlers))
            await asyncio.gather(*(handler.close_for_restart(timeout) for handler in handlers))
