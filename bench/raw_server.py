"""The raw ceiling: a bare Starlette + asyncpg endpoint per scenario, one hand-written SQL each.

No GraphQL at all: the request names the customer, PostgreSQL builds the whole answer as JSON
and the bytes go out untouched. Run: ``python -m bench.raw_server --url URL --port P``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.database import asyncpg_dsn

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


async def _keep_session(connection: Any) -> None:
    return None


def create_app(url: str) -> Starlette:
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=1,
            max_size=10,
            server_settings={"TimeZone": "UTC"},
            reset=_keep_session,  # no RESET ALL round trip per release: the ceiling
        )
        try:
            yield
        finally:
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

    return Starlette(
        routes=[
            Route("/customer", customer, methods=["POST"]),
            Route("/customers", customers, methods=["POST"]),
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
