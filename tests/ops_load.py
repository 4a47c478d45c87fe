"""Load and a resuming subscriber for the resilience tests (tests/ops/test_resilience.py).

``IngestLoad`` runs several clients calling ``recordInteraction`` over HTTP against real
``hub serve`` processes and classifies every answer; ``Follower`` is a graphql-transport-ws
subscriber that resumes with `after:` whenever its stream ends (a retryable error, a 1012
close), possibly on another server, and records every event it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import websockets

from hub.db.engine import asyncpg_dsn
from hub.events.outbox import Position
from tests.live_server import PROTOCOL, Server

RECORD = """
mutation Record($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { interaction { id } }
}
"""
FEED = """
subscription Feed($after: String) {
  interactionRecorded(after: $after) { cursor interaction { id } }
}
"""
# Answered by the compiled read path (one SQL statement on its own asyncpg pool) for an ADMIN key.
READ = "query Customers { customers(first: 5) { totalCount nodes { id } } }"
WAIT_S = 30.0  # upper bound of every bounded wait; never asserted as a duration


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds; AssertionError after WAIT_S (a bound, not a claim)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Answer:
    sent_at: float  # time.monotonic() just before the request was sent
    kind: str  # "ok", "retryable", "transport" (no complete HTTP response) or "bad"
    status: int | None = None
    interaction: str | None = None
    detail: str = ""


def classify(sent_at: float, response: httpx.Response) -> Answer:
    """A complete answer: a stored interaction, or errors that are all SERVICE_UNAVAILABLE
    with ``retryable: true``; anything else (a 500, another code, no JSON) is "bad"."""
    try:
        body = response.json()
    except json.JSONDecodeError:
        return Answer(sent_at, "bad", response.status_code, detail=response.text[:300])
    errors: list[dict[str, Any]] = (body.get("errors") or []) if isinstance(body, dict) else []
    if response.status_code == 200 and not errors:
        recorded = body["data"].get("recordInteraction")
        interaction = recorded["interaction"]["id"] if recorded is not None else None
        return Answer(sent_at, "ok", 200, interaction)
    retryable = (
        response.status_code in (200, 503)
        and bool(errors)
        and all(
            error.get("extensions", {}).get("code") == "SERVICE_UNAVAILABLE"
            and error["extensions"].get("retryable") is True
            and "Traceback" not in error.get("message", "")
            for error in errors
        )
    )
    if response.status_code == 503 and "retry-after" not in response.headers:
        retryable = False
    kind = "retryable" if retryable else "bad"
    return Answer(sent_at, kind, response.status_code, detail=response.text[:300])


class IngestLoad:
    """``clients`` concurrent callers of recordInteraction, each with its own keep-alive HTTP
    connection. A client whose server refuses (503 or no connection) moves on to the next
    server in ``servers``, as a load balancer would."""

    def __init__(
        self,
        servers: list[Server],
        touchpoint: str,
        headers: dict[str, str] | None = None,
        clients: int = 4,
        readers: int = 0,
    ) -> None:
        self.servers = servers
        self.touchpoint = touchpoint
        self.headers = headers or {}
        self.clients = clients
        self.readers = readers
        self.answers: list[Answer] = []
        self.reads: list[Answer] = []
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._run = uuid.uuid4().hex[:8]

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]
        self._tasks += [asyncio.create_task(self._reader()) for _ in range(self.readers)]

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.gather(*self._tasks)

    def of(self, kind: str, reads: bool = False) -> list[Answer]:
        return [answer for answer in (self.reads if reads else self.answers) if answer.kind == kind]

    async def until(self, kind: str, count: int, reads: bool = False) -> None:
        """Wait (bounded) until ``count`` more answers of ``kind`` (to writes, or to reads)
        have come in."""
        target = len(self.of(kind, reads)) + count
        await eventually(
            lambda: len(self.of(kind, reads)) >= target, f"{count} more {kind} answers"
        )

    async def _reader(self) -> None:
        """Reads on the compiled path; answers go to ``reads``."""
        async with httpx.AsyncClient(timeout=WAIT_S) as http:
            while not self.stopping:
                sent_at = time.monotonic()
                try:
                    response = await http.post(
                        f"{self.servers[0].http_url}/graphql",
                        json={"query": READ},
                        headers=self.headers,
                    )
                except httpx.TransportError as error:
                    self.reads.append(Answer(sent_at, "transport", detail=repr(error)))
                else:
                    self.reads.append(classify(sent_at, response))
                await asyncio.sleep(0.05)

    async def _client(self, index: int) -> None:
        target = 0
        number = 0
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(timeout=WAIT_S, limits=limits) as http:
            while not self.stopping:
                number += 1
                email = f"load-{self._run}-{index}@example.org"
                item = {
                    "identities": [{"kind": "EMAIL", "value": email}],
                    "touchpointId": self.touchpoint,
                    "type": "PAGE_VIEW",
                    "direction": "INBOUND",
                    "idempotencyKey": f"{self._run}-{index}-{number}",
                }
                server = self.servers[target]
                sent_at = time.monotonic()
                try:
                    response = await http.post(
                        f"{server.http_url}/graphql",
                        json={"query": RECORD, "variables": {"input": item}},
                        headers=self.headers,
                    )
                except httpx.TransportError as error:
                    self.answers.append(Answer(sent_at, "transport", detail=repr(error)))
                    target = min(target + 1, len(self.servers) - 1)
                    await asyncio.sleep(0.05)
                    continue
                answer = classify(sent_at, response)
                self.answers.append(answer)
                if answer.kind != "ok":
                    if response.status_code == 503:
                        target = min(target + 1, len(self.servers) - 1)
                    await asyncio.sleep(0.05)


async def start_cursor(url: str) -> str:
    """A cursor to follow from: an event written before any load (a CUSTOMER_UPDATED, which
    `interactionRecorded` never delivers). A cursor from any feed is valid for every feed."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await connection.fetchrow(
            "INSERT INTO events (kind, payload) VALUES ('CUSTOMER_UPDATED', '{}')"
            " RETURNING xid::text::bigint AS xid, id"
        )
    finally:
        await connection.close()
    assert row is not None
    return Position(row["xid"], row["id"]).cursor


async def record_marker(load: IngestLoad) -> str:
    """One more interaction after the load, on its last server: the final marker a follower
    must receive last."""
    item = {
        "identities": [{"kind": "EMAIL", "value": f"marker-{uuid.uuid4().hex[:8]}@example.org"}],
        "touchpointId": load.touchpoint,
        "type": "PAGE_VIEW",
        "direction": "INBOUND",
    }
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        response = await http.post(
            f"{load.servers[-1].http_url}/graphql",
            json={"query": RECORD, "variables": {"input": item}},
            headers=load.headers,
        )
    body = response.json()
    assert "errors" not in body, body
    interaction: str = body["data"]["recordInteraction"]["interaction"]["id"]
    return interaction


@dataclass
class Follower:
    """A subscriber to interactionRecorded from ``cursor`` (see ``start_cursor``) that resumes
    after its last cursor whenever the stream ends, moving to the next server when one closes
    it with 1012."""

    servers: list[Server]
    cursor: str
    init_payload: dict[str, Any] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    stream_errors: list[Any] = field(default_factory=list)
    bad: list[Any] = field(default_factory=list)
    subscriptions: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.done = True
        if self._task is not None:
            await self._task

    async def until_seen(self, expected: set[str]) -> None:
        """Wait (bounded) until every interaction in ``expected`` was received."""
        await eventually(lambda: expected <= set(self.seen), "the subscriber to see every event")

    async def _run(self) -> None:
        index = 0
        while not self.done:
            server = self.servers[index]
            try:
                async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
                    await self._follow(ws)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                self.closes.append(code)
                if code == 1012:
                    index = min(index + 1, len(self.servers) - 1)
            except (OSError, websockets.InvalidHandshake, TimeoutError) as error:
                self.closes.append(None)
                self.stream_errors.append(repr(error))
                if index + 1 < len(self.servers):
                    index += 1
            await asyncio.sleep(0.2)

    async def _receive(self, ws: Any) -> dict[str, Any] | None:
        """The next message (pings answered), or None after a quiet second."""
        while True:
            try:
                async with asyncio.timeout(1.0):
                    message: dict[str, Any] = json.loads(await ws.recv())
            except TimeoutError:
                return None
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def _follow(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "connection_init", "payload": self.init_payload}))
        async with asyncio.timeout(WAIT_S):
            ack = await self._receive(ws)
            while ack is None:
                ack = await self._receive(ws)
        if ack["type"] != "connection_ack":
            self.bad.append(ack)
            return
        payload = {"query": FEED, "variables": {"after": self.cursor}}
        await ws.send(json.dumps({"id": "feed", "type": "subscribe", "payload": payload}))
        self.subscriptions += 1
        # Every subscription has `after:` (the first one ``start_cursor``): it replays whatever
        # was committed after that cursor, so nothing is missed however long it takes the
        # server to register it, and there is nothing to wait for.
        self.subscribed.set()
        while not self.done:
            message = await self._receive(ws)
            if message is None:
                continue
            if message["type"] == "next" and "errors" not in message["payload"]:
                event = message["payload"]["data"]["interactionRecorded"]
                self.cursor = event["cursor"]
                self.seen.append(event["interaction"]["id"])
            elif message["type"] == "error":
                self.stream_errors.append(message["payload"])
                codes = {error.get("extensions", {}).get("code") for error in message["payload"]}
                if codes != {"SERVICE_UNAVAILABLE"}:
                    self.bad.append(message)
                return  # resume after the last cursor
            else:
                self.bad.append(message)
                return
        with contextlib.suppress(Exception):
            await ws.send(json.dumps({"id": "feed", "type": "complete"}))
