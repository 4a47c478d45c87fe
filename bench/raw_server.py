"""The raw ceiling: a bare Starlette + asyncpg endpoint per scenario, one hand-written SQL each.

No GraphQL at all: the request names the customer, PostgreSQL builds the whole answer as JSON
and the bytes go out untouched. Run: ``python -m bench.raw_server --url URL --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.core.ids import to_global_id
from hub.db.engine import asyncpg_dsn

CUSTOMER_JSON = """json_build_object(
  'id', c.id, 'displayName', c.display_name, 'traits', c.traits,
  'createdAt', c.created_at, 'lastSeenAt', c.last_seen_at,
  'currentStage', (SELECT json_build_object('code', s.code, 'name', s.name)
                   FROM journey_stages s WHERE s.code = c.current_stage),
  'identities', (SELECT coalesce(json_agg(json_build_object('kind', i.kind, 'value', i.value)
                                          ORDER BY i.kind, i.created_at, i.id), '[]')
                 FROM identities i WHERE i.customer_id = c.id),
  'interactions', (SELECT coalesce(json_agg(json_build_object(
                     'id', x.id, 'occurredAt', x.occurred_at, 'type', x.type,
                     'direction', x.direction, 'summary', x.summary, 'sentiment', x.sentiment,
                     'touchpoint', json_build_object('id', t.id, 'name', t.name, 'kind', t.kind,
                       'channel', json_build_object('code', ch.code, 'name', ch.name)))
                     ORDER BY x.occurred_at DESC, x.id DESC), '[]')
                   FROM (SELECT * FROM interactions WHERE customer_id = c.id
                         ORDER BY occurred_at DESC, id DESC LIMIT 20) x
                   JOIN touchpoints t ON t.id = x.touchpoint_id
                   JOIN channels ch ON ch.code = t.channel_code))"""

SCENARIO_1 = f"""SELECT convert_to(json_build_object('customer', {CUSTOMER_JSON})::text, 'UTF8')
FROM customers c WHERE c.id = $1"""

SCENARIO_2 = f"""SELECT convert_to(json_build_object('customers',
  coalesce(json_agg({CUSTOMER_JSON} ORDER BY c.created_at, c.id), '[]'))::text, 'UTF8')
FROM (SELECT * FROM customers WHERE merged_into_id IS NULL
      ORDER BY created_at, id LIMIT $1) c"""


# Scenarios 3 and 4: the ceiling of recording an interaction for a known person. One statement
# per request finds the customer by e-mail, stores the interaction, moves last_seen_at and writes
# the outbox event; no validation, journey rules, conversations, idempotency or audit, which the
# hub does on top. Scenario 3 sends the same for many events as parallel arrays.
RECORD_MANY = """WITH item AS (
  SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::text[],
                       $6::text[], $7::text[], $8::jsonb[])
         AS u(email, id, touchpoint_id, occurred_at, type, direction, summary, attributes)),
stored AS (
  INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at, type,
                            direction, summary, attributes)
  SELECT item.id, i.customer_id, t.id, t.channel_code, item.occurred_at, item.type,
         item.direction, item.summary, item.attributes
  FROM item
  JOIN identities i ON i.kind = 'EMAIL' AND i.value = item.email
  JOIN touchpoints t ON t.id = item.touchpoint_id
  RETURNING id, customer_id, touchpoint_id, channel_code, occurred_at),
locked AS (  -- in id order, so that concurrent batches cannot deadlock on customers
  SELECT c.id FROM customers c WHERE c.id IN (SELECT customer_id FROM stored)
  ORDER BY c.id FOR NO KEY UPDATE),
seen AS (
  UPDATE customers c SET last_seen_at = greatest(c.last_seen_at, s.last)
  FROM (SELECT customer_id, max(occurred_at) AS last FROM stored GROUP BY customer_id) s
  JOIN locked l ON l.id = s.customer_id
  WHERE c.id = s.customer_id),
published AS (
  INSERT INTO events (kind, customer_id, subject_id, channel_code, touchpoint_id, payload)
  SELECT 'INTERACTION_RECORDED', customer_id, id, channel_code, touchpoint_id, '{}'::jsonb
  FROM stored)
SELECT convert_to(json_agg(json_build_object('id', id))::text, 'UTF8') FROM stored"""


def _record_arguments(items: list[dict[str, Any]]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(8)]
    for item in items:
        columns[0].append(item["email"])
        columns[1].append(item["id"])
        columns[2].append(item["touchpointId"])
        columns[3].append(datetime.fromisoformat(item["occurredAt"]))
        columns[4].append(item["type"])
        columns[5].append(item["direction"])
        columns[6].append(item.get("summary"))
        columns[7].append(orjson.dumps(item.get("attributes", {})).decode())
    return columns


# Scenario 5: the fan-out ceiling. One LISTEN connection hears each recorded interaction's id
# (bench/subscriptions.py puts a NOTIFY trigger on the outbox), one statement loads the new rows,
# and each message is built once and sent as the same bytes to every subscriber: the least a
# server must do. It speaks just enough graphql-transport-ws for the benchmark's client.
FEED_ROWS = "SELECT id, type, occurred_at FROM interactions WHERE id = ANY($1::uuid[])"
FEED_TOPIC = "bench_interaction_recorded"


def _global_id(interaction: uuid.UUID) -> str:
    return to_global_id("Interaction", str(interaction))


class Feed:
    def __init__(self) -> None:
        self.sockets: set[WebSocket] = set()
        self.pending: list[str] = []
        self.wake = asyncio.Event()

    def heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.pending.append(payload)
        self.wake.set()

    async def deliver(self, pool: asyncpg.Pool) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            ids, self.pending = self.pending, []
            async with pool.acquire() as connection:
                rows = await connection.fetch(FEED_ROWS, ids)
            messages = [
                orjson.dumps(
                    {
                        "id": "1",
                        "type": "next",
                        "payload": {
                            "data": {
                                "interactionRecorded": {
                                    "interaction": {
                                        "id": _global_id(row["id"]),
                                        "type": row["type"],
                                        "occurredAt": row["occurred_at"].isoformat(),
                                    }
                                }
                            }
                        },
                    }
                ).decode()
                for row in rows
            ]
            await asyncio.gather(*(self._send(socket, messages) for socket in list(self.sockets)))

    async def _send(self, socket: WebSocket, messages: list[str]) -> None:
        with contextlib.suppress(Exception):  # a client that left
            for message in messages:
                await socket.send_text(message)


async def _keep_session(connection: Any) -> None:
    return None


def create_app(url: str) -> Starlette:
    state: dict[str, Any] = {}
    feed = Feed()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=1,
            max_size=10,
            server_settings={"TimeZone": "UTC"},
            reset=_keep_session,  # no RESET ALL round trip per release: the ceiling
        )
        listener = await asyncpg.connect(asyncpg_dsn(url))
        await listener.add_listener(FEED_TOPIC, feed.heard)
        delivery = asyncio.create_task(feed.deliver(state["pool"]))
        try:
            yield
        finally:
            delivery.cancel()
            await listener.close()
            await state["pool"].close()

    async def run(statement: str, *args: Any) -> Response:
        async with state["pool"].acquire() as connection:
            data = await connection.fetchval(statement, *args)
        return Response(b'{"data":' + data + b"}", media_type="application/json")

    async def customer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return await run(SCENARIO_1, body["id"])

    async def customers(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return await run(SCENARIO_2, int(body.get("first", 50)))

    async def record(request: Request) -> Response:
        body = orjson.loads(await request.body())
        items = body.get("items", [body])
        arguments = _record_arguments(items)
        for attempt in range(3):
            try:
                return await run(RECORD_MANY, *arguments)
            except asyncpg.DeadlockDetectedError:  # two batches crossing on the same customers
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def subscribe(socket: WebSocket) -> None:
        await socket.accept(subprotocol="graphql-transport-ws")
        try:
            while True:
                message = orjson.loads(await socket.receive_text())
                if message["type"] == "connection_init":
                    await socket.send_text('{"type":"connection_ack"}')
                elif message["type"] == "subscribe":
                    feed.sockets.add(socket)
                elif message["type"] == "ping":
                    await socket.send_text('{"type":"pong"}')
        except WebSocketDisconnect:
            pass
        finally:
            feed.sockets.discard(socket)

    async def failed(request: Request, error: Exception) -> Response:
        # Counted as an error by the load generator, instead of a dropped connection.
        return Response(orjson.dumps({"errors": [{"message": repr(error)}]}), status_code=500)

    return Starlette(
        exception_handlers={Exception: failed},
        routes=[
            WebSocketRoute("/graphql", subscribe),
            Route("/customer", customer, methods=["POST"]),
            Route("/customers", customers, methods=["POST"]),
            Route("/record", record, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.url),
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
