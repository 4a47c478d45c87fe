"""The audiences tests' clients drain the audiences queue after every request.

Ingest queues the customers it changed and a drainer evaluates them shortly after
(``hub.audiences.queue``); the in-process app of the tests runs no drainer (the suite's
settings), so these clients do what it would have done by the time a caller looks: after each
request, ``settled`` drains the queue through the hub's own code until it is empty. The queue
itself (its rows, coalescing, the background drainer of ``hub serve``) is tested in
``test_queue.py`` without this.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from hub.audiences.queue import settled
from tests.conftest import GraphQLClient, make_key


class SettlingClient(GraphQLClient):
    """A ``GraphQLClient`` that drains the audiences queue after each request."""

    def __init__(self, http: httpx.AsyncClient, engine: Any) -> None:
        super().__init__(http)
        self.engine = engine

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await super().__call__(query, variables)
        await settled(self.engine)
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient, engine: Any) -> GraphQLClient:
    return SettlingClient(client, engine)


@pytest.fixture
async def gql_as(
    app: Any, db: Any, engine: Any
) -> AsyncIterator[Callable[..., Awaitable[GraphQLClient]]]:
    """As the suite's ``gql_as``, with ``SettlingClient``s."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(role: str, **scopes: Any) -> GraphQLClient:
            key = await make_key(engine, role, **scopes)
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://hub.test",
                    headers={"Authorization": f"Bearer {key}"},
                )
            )
            return SettlingClient(http, engine)

        yield make
