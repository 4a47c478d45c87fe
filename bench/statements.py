"""SQL statements per request of the hub, counted in-process.

The resolver path's statements are counted on the SQLAlchemy engine (``before_cursor_execute``,
the same hook as the tests' ``count_statements``); the compiled path runs exactly one statement
on its own pool whenever it answers, which ``CompiledReads.respond`` tells directly.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import event
from starlette.requests import Request

from bench.scenarios import Scenario
from hub.access.keys import DEV_PRINCIPAL
from hub.app import create_app
from hub.core.settings import Settings


def _starlette_request(body: bytes) -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    return Request(scope, receive)


async def hub_statements(url: str, scenario: Scenario, customer_id: str, compiled: bool) -> int:
    # Development mode, as the benchmarked servers: the request carries no key.
    settings = Settings(
        database_url=url, migrate_on_start=False, compiled_reads=compiled, dev_mode=True
    )
    app = create_app(settings)
    body = scenario.requests["hub"].body.replace("__ID__", customer_id).encode()
    async with app.router.lifespan_context(app):
        state = app.state.hub.running
        if compiled:
            response = await state.compiled.respond(_starlette_request(body), DEV_PRINCIPAL)
            if response is not None:
                return 1
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        engine = state.engine
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                answer = await client.post(
                    "/graphql", content=body, headers={"content-type": "application/json"}
                )
            assert "errors" not in json.loads(answer.content), answer.text
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        return len(statements)
