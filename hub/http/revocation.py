"""Closing open websockets whose key was revoked, in every process.

Each process keeps its open authenticated websockets and, while there are any, asks the
database every ``key_recheck_seconds`` which of their keys are no longer valid (one small
query per process, whichever process revoked the key). Sockets of revoked keys are closed with
code 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.websockets import WebSocket, WebSocketState

from hub.access.keys import revoked_among

logger = logging.getLogger("hub.access")
REVOKED_CLOSE_CODE = 4403


class OpenSockets:
    def __init__(self, engine: Callable[[], AsyncEngine], interval: float) -> None:
        self._engine = engine
        self._interval = interval
        self._sockets: dict[WebSocket, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, websocket: WebSocket, key_id: int) -> None:
        self._sockets[websocket] = key_id
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while self._sockets:
            await asyncio.sleep(self._interval)
            for websocket in [
                ws
                for ws in self._sockets
                if WebSocketState.DISCONNECTED in (ws.client_state, ws.application_state)
            ]:
                self._sockets.pop(websocket, None)
            try:
                revoked = await revoked_among(self._engine(), sorted(set(self._sockets.values())))
            except Exception:  # a database hiccup: try again next round
                logger.warning("could not re-check websocket keys", exc_info=True)
                continue
            for websocket, key_id in list(self._sockets.items()):
                if key_id in revoked:
                    self._sockets.pop(websocket, None)
                    with contextlib.suppress(Exception):  # it may be closing already
                        await websocket.close(code=REVOKED_CLOSE_CODE, reason="API key revoked")

    async def close(self) -> None:
        self._sockets.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
