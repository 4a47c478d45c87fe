"""``GET /metrics``: the app's Prometheus metrics (``hub.ops.metrics``) over HTTP."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.ops.metrics import HubMetrics


def metrics_routes(metrics: HubMetrics, enabled: bool) -> list[BaseRoute]:
    """The scrape endpoint (unauthenticated: for operators' scrapers) if ``HUB_METRICS`` is on."""

    async def endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", endpoint)] if enabled else []
