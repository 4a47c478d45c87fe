"""Graceful shutdown under uvicorn: drain, close websockets after flushing, exit by a deadline.

Uvicorn's own sequence on SIGTERM/SIGINT is: close the listening sockets, close every websocket
at once with 1012 (without the application flushing anything), wait for in-flight HTTP requests
(``timeout_graceful_shutdown``), then the lifespan shutdown. The application hears of the signal
only at that last step. ``GracefulShutdown`` therefore wraps uvicorn's signal handler (in the
lifespan startup, when uvicorn's handler is the one installed) and runs the hub's steps FIRST:

1. ``draining``: ``/readyz`` answers 503 from the moment the signal arrives; requests are still
   served for ``HUB_SHUTDOWN_DRAIN_S`` (default 0) so a load balancer can take the instance out.
2. ``refusing``: new ``/graphql`` requests get 503 ``SERVICE_UNAVAILABLE`` (``retryable: true``,
   ``Retry-After``), new websockets are closed with 1012; every open websocket stops its
   operations, sends what was already queued for it, then closes with 1012 ("service restart":
   reconnect and resume from your last cursor).
3. Uvicorn's sequence (above) with ``timeout_graceful_shutdown`` set to what is left of the
   deadline: in-flight requests finish; then the broker stops and the pools close.

A backstop thread ends the process at ``HUB_SHUTDOWN_DEADLINE_S`` whatever is still running. A
second signal hands over to uvicorn at once. With ``hub serve --workers N`` the supervisor
forwards SIGTERM to every worker, and each worker runs this sequence for itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from hub.core.faults import RETRY_AFTER_S
from hub.core.settings import Settings
from hub.http.gate import send_error

logger = logging.getLogger("hub.shutdown")

CLOSE_SERVICE_RESTART = 1012
RESTART_REASON = "service restart: reconnect (to another instance) and resume with `after`"
SHUTDOWN_MESSAGE = "this hub instance is shutting down; retry (another instance will answer)"
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What is kept back from the deadline for the lifespan shutdown (broker, pools) after uvicorn
# stops waiting for in-flight requests.
LIFESPAN_RESERVE_S = 2.0
WEBSOCKET_FLUSH_MAX_S = 5.0

SignalHandler = Callable[[int, FrameType | None], Any]


def _uvicorn_server(handler: object) -> Any | None:
    """The uvicorn ``Server`` whose ``handle_exit`` is ``handler``, if it is one."""
    owner = getattr(handler, "__self__", None)
    try:
        from uvicorn.server import Server
    except ImportError:  # pragma: no cover - uvicorn is a dependency
        return None
    return owner if isinstance(owner, Server) else None


class GracefulShutdown:
    """One app's shutdown state (read by /readyz and the request layers) and sequence."""

    def __init__(
        self, settings: Settings, close_websockets: Callable[[float], Awaitable[None]]
    ) -> None:
        self.settings = settings
        self._close_websockets = close_websockets
        self.draining = False  # /readyz is 503 from here on
        self.refusing = False  # new requests and websockets are turned away from here on
        self._started: float | None = None
        self._previous: dict[int, SignalHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._handed_over = False

    # ---- installation (lifespan) ----

    def install(self) -> bool:
        """Put the hub's steps in front of uvicorn's signal handling; False (and nothing done)
        when not running under uvicorn's signal capture (e.g. in tests, or off the main
        thread)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in HANDLED_SIGNALS:
            previous = signal.getsignal(sig)
            if _uvicorn_server(previous) is not None:
                self._previous[sig] = previous  # type: ignore[assignment]
                signal.signal(sig, self._on_signal)
        self._loop = asyncio.get_running_loop()
        return bool(self._previous)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()

    # ---- the sequence ----

    def remaining(self) -> float:
        if self._started is None:
            return self.settings.shutdown_deadline_s
        return self.settings.shutdown_deadline_s - (time.monotonic() - self._started)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous[sig]
        if self.draining:  # a second signal: uvicorn's own handling, now
            if self._handed_over:
                previous(sig, frame)  # uvicorn's rules: a second SIGINT forces its exit
            else:
                self._hand_over(previous, sig, frame)
            return
        self.draining = True
        self._started = time.monotonic()
        self._start_backstop()
        assert self._loop is not None
        # Signal handlers run between bytecodes of the loop's thread: schedule, do not await.
        self._loop.call_soon_threadsafe(self._begin, sig, frame, previous)

    def _begin(self, sig: int, frame: FrameType | None, previous: SignalHandler) -> None:
        self._task = asyncio.create_task(self._run(sig, frame, previous), name="hub-shutdown")

    async def _run(self, sig: int, frame: FrameType | None, previous: SignalHandler) -> None:
        name = signal.Signals(sig).name
        logger.info(
            "%s received: draining (readiness 503), deadline %.1fs",
            name,
            self.settings.shutdown_deadline_s,
        )
        try:
            drain = min(
                self.settings.shutdown_drain_s, max(self.remaining() - 2 * LIFESPAN_RESERVE_S, 0)
            )
            if drain > 0:
                await asyncio.sleep(drain)
            self.refusing = True
            flush = min(WEBSOCKET_FLUSH_MAX_S, max(self.remaining() / 3, 0.1))
            await self._close_websockets(flush)
        except Exception:  # the rest of the shutdown must happen anyway
            logger.exception("graceful shutdown step failed")
        finally:
            server = _uvicorn_server(previous)
            if server is not None:
                # Uvicorn now waits for in-flight requests: at most what is left of the
                # deadline, minus time for the lifespan shutdown.
                server.config.timeout_graceful_shutdown = max(
                    self.remaining() - LIFESPAN_RESERVE_S, 0.1
                )
            logger.info("websockets closed; stopping the listener, finishing in-flight requests")
            self._hand_over(previous, sig, frame)

    def _hand_over(self, previous: SignalHandler, sig: int, frame: FrameType | None) -> None:
        """Uvicorn's handler, once from here: it closes the listener, waits for in-flight
        requests and runs the lifespan shutdown."""
        if not self._handed_over:
            self._handed_over = True
            previous(sig, frame)

    def _start_backstop(self) -> None:
        def force_exit() -> None:
            logger.error(
                "shutdown deadline of %.1fs passed; exiting now", self.settings.shutdown_deadline_s
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(1)

        timer = threading.Timer(self.settings.shutdown_deadline_s, force_exit)
        timer.daemon = True  # a normal exit before the deadline does not wait for it
        timer.start()


class RefuseWhenStopping:
    """In front of ``/graphql`` (HTTP and websocket): once the shutdown refuses new work, an
    HTTP request gets 503 SERVICE_UNAVAILABLE (retryable, ``Retry-After``, ``Connection:
    close``) and a websocket is accepted and closed at once with 1012."""

    def __init__(self, app: Any, shutdown: GracefulShutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.shutdown.refusing:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            message = await receive()
            if message["type"] == "websocket.connect":
                subprotocols = scope.get("subprotocols") or []
                accept: dict[str, Any] = {"type": "websocket.accept"}
                if subprotocols:
                    accept["subprotocol"] = subprotocols[0]
                await send(accept)
                await send(
                    {
                        "type": "websocket.close",
                        "code": CLOSE_SERVICE_RESTART,
                        "reason": RESTART_REASON,
                    }
                )
            return
        await send_error(
            send,
            503,
            SHUTDOWN_MESSAGE,
            "SERVICE_UNAVAILABLE",
            {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"},
            retryable=True,
        )
