"""The audiences tests' clients drain the audiences queue after every request.

Ingest queues the customers it changed and a drainer evaluates them shortly after
(``hub.audiences.queue``); the in-process app of the tests runs no drainer (the suite's
settings), so these clients do what it would have done by the time a caller looks: after each
request, ``settled`` drains the queue through the hub's own code until it is empty. The queue
itself (its rows, coalescing, the background drainer of ``hub serve``) is tested in
``test_queue.py`` without this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hub.audiences.queue import settled
from tests.conftest import GraphQLClient


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
def graphql_client(engine: Any) -> Callable[[httpx.AsyncClient], GraphQLClient]:
    """``gql`` and ``gql_as`` here build ``SettlingClient``s."""
    return lambda http: SettlingClient(http, engine)
