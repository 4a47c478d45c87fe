"""One websocket connection's outgoing messages: bounded, drained by a single writer task.

Producers never await a slow socket; when the outbox is full the connection is cut off
(``hub.http.ws``) instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.websockets import WebSocket

from hub.core.settings import Settings

CLOSE_TOO_SLOW = 4008
TOO_SLOW_REASON = "SUBSCRIBER_TOO_SLOW: resume from your last cursor"
# uvicorn's own websocket keep-alive: a protocol ping this often (its default).
TRANSPORT_PING_INTERVAL_S = 20.0


def transport_ping_timeout(settings: Settings) -> float:
    """uvicorn's websocket ping timeout (pings every ``TRANSPORT_PING_INTERVAL_S``): a connection
    whose pong has not come back is dropped only after the hub's own grace for a cut-off
    consumer is over.

    A consumer that stopped reading cannot answer pings (its pongs wait behind the frames it has
    not read). With uvicorn's default timeout (20 s) such a client was dropped without a close
    frame before ``subscriber_cutoff_grace_s`` had passed, so instead of the documented
    ``SUBSCRIBER_TOO_SLOW`` error and close 4008 it saw a dropped connection (the slow-consumer
    test, under load, with a long grace). A ping sent just before the cut-off must not expire
    before the grace after it does: the timeout is the grace plus one ping interval.
    """
    return settings.subscriber_cutoff_grace_s + TRANSPORT_PING_INTERVAL_S


class ConnectionOutbox:
    """One connection's serialized outgoing messages; ``run`` is the connection's only writer."""

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self._websocket = websocket
        self._limit = limit
        self._queue: deque[str | None] = deque()  # None = close after sending what is before
        self._has_items = asyncio.Event()
        self._has_space = asyncio.Event()
        self._has_space.set()
        self.cut_off = False
        self.close_code = CLOSE_TOO_SLOW
        self.close_reason = TOO_SLOW_REASON

    def full(self) -> bool:
        return len(self._queue) >= self._limit

    def put_nowait(self, text: str) -> bool:
        """Queue without waiting; False when full (the caller cuts the connection off)."""
        if self.cut_off:
            return True  # the connection is going away; nothing more matters
        if self.full():
            return False
        self._queue.append(text)
        self._has_items.set()
        return True

    async def put(self, text: str, patience: float) -> bool:
        """Queue, waiting up to ``patience`` seconds for space (backpressure for a private
        stream); False when the consumer did not make room in time."""
        try:
            async with asyncio.timeout(patience):
                while self.full() and not self.cut_off:
                    self._has_space.clear()
                    await self._has_space.wait()
        except TimeoutError:
            return False
        return self.put_nowait(text)

    def replace_with_farewell(self, messages: list[str]) -> None:
        """Drop the backlog; send only these messages, then close (memory stays bounded)."""
        self.cut_off = True
        self._queue.clear()
        self._queue.extend(messages)
        self._queue.append(None)
        self._has_items.set()
        self._has_space.set()

    def close_after_queued(self, code: int, reason: str) -> None:
        """Send what is queued, then close with ``code``; nothing queued later is sent."""
        if self.cut_off:
            return  # already closing (e.g. a slow consumer's farewell)
        self.cut_off = True
        self.close_code = code
        self.close_reason = reason
        self._queue.append(None)
        self._has_items.set()
        self._has_space.set()

    async def run(self) -> None:
        """Send queued messages in order until the close marker."""
        while True:
            if not self._queue:
                self._has_items.clear()
                await self._has_items.wait()
                continue
            text = self._queue.popleft()
            if not self.full():
                self._has_space.set()
            if text is None:
                await self._websocket.close(code=self.close_code, reason=self.close_reason)
                return
            await self._websocket.send_text(text)
