"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: the load balancer's probe)."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.core.faults import database_unavailable
from hub.http.state import HubState

logger = logging.getLogger("hub")

READINESS_TIMEOUT_S = 5.0


def probe_routes(state: HubState) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if state.shutdown.draining:  # take this instance out of the load balancer
            return JSONResponse({"status": "shutting down"}, status_code=503)
        resources = state.resources
        if resources is None:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        # Readiness is the primary's: a broker polling the outbox without Redis still delivers,
        # and queries read the primary while the replica is down or behind. Both are reported.
        details = {"broker": resources.broker.status}
        if resources.router is not None:
            details["replica"] = resources.router.status
        if await _database_ready(resources.engine):
            return JSONResponse({"status": "ready", "database": "ok", **details})
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", **details}, status_code=503
        )

    return [Route("/healthz", healthz), Route("/readyz", readyz)]


async def _database_ready(engine: AsyncEngine) -> bool:
    try:
        # A probe must answer quickly: an unreachable host would otherwise hang for asyncpg's
        # 60 s connect timeout.
        async with asyncio.timeout(READINESS_TIMEOUT_S), engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any failure means "not ready"; the reason goes to the log
        if database_unavailable(error):  # expected during an outage: one line, no traceback
            logger.warning("readiness check failed: database unavailable: %r", error)
        else:
            logger.warning("readiness check failed", exc_info=True)
        return False
    return True
