"""``GET /metrics``: the app's Prometheus metrics (``hub.ops.metrics``) over HTTP, for scrapers
that show the scrape token (``HUB_METRICS_TOKEN``) or come from an allowed network
(``HUB_METRICS_ALLOWED_NETWORKS``, loopback by default); 403 FORBIDDEN for everyone else."""

from __future__ import annotations

import hmac
import ipaddress

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.access.keys import bearer_token
from hub.core.settings import Settings
from hub.http.gate import client_address, error_body
from hub.ops.metrics import HubMetrics


class ScrapeAccess:
    """Who may scrape: the token's bearer from anywhere, or any client of an allowed network."""

    def __init__(self, settings: Settings) -> None:
        token = settings.metrics_token
        self.token = token.get_secret_value().encode() if token is not None else None
        self.networks = [
            ipaddress.ip_network(network, strict=False)
            for network in settings.metrics_allowed_networks
        ]

    def allows(self, request: Request) -> bool:
        presented = bearer_token(request.headers.get("authorization"))
        if self.token is not None and presented is not None:
            # A wrong token is refused even from an allowed network: it is a mistake to see.
            return hmac.compare_digest(presented.encode(), self.token)
        try:
            address = ipaddress.ip_address(client_address(request.scope))
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def metrics_routes(metrics: HubMetrics, settings: Settings) -> list[BaseRoute]:
    """The scrape endpoint if ``HUB_METRICS`` is on."""
    access = ScrapeAccess(settings)

    async def endpoint(request: Request) -> Response:
        if not access.allows(request):
            body = error_body(
                "scraping /metrics needs HUB_METRICS_TOKEN as a bearer token, or an address "
                "in HUB_METRICS_ALLOWED_NETWORKS",
                "FORBIDDEN",
            )
            return Response(body, 403, media_type="application/json")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", endpoint)] if settings.metrics else []
