"""The compiled read path checks the access layer's limits without walking the document per
request (hub.access.request_limits), and a request over them still goes to the resolvers,
which refuse it with its code."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from hub.app import create_app
from hub.core.settings import Settings
from tests.conftest import make_key
from tests.factories import Factory, gid

QUERY = """query($n: Int, $m: Int) {
  customers(first: $n) { nodes { id displayName interactions(first: $m) { nodes { id } } } } }"""


def compiled_answers(app: Any) -> float:
    value: float = app.state.hub.metrics.execution_path.labels(path="compiled")._value.get()
    return value


async def test_one_walk_per_page_size_and_over_the_cost_still_refused(
    settings: Settings, db: asyncpg.Connection
) -> None:
    f = Factory(db)
    ana = await f.customer("Ana")
    # Cost (hub.access.limits): customers 1, then nodes, id, displayName and interactions n each,
    # then nodes and id n * m each: 1 + 4n + 2nm, i.e. 17 for (2, 2) and 641 for (10, 30).
    app = create_app(settings.model_copy(update={"max_query_cost": 200}))
    async with app.router.lifespan_context(app):
        key = await make_key(app.state.hub.running.engine, "FRONTEND")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            answers = []
            for n, m in ((2, 2), (10, 30), (2, 2), (10, 30), (2, 2)):
                before = compiled_answers(app)
                body = (
                    await http.post(
                        "/graphql", json={"query": QUERY, "variables": {"n": n, "m": m}}
                    )
                ).json()
                answers.append((compiled_answers(app) - before, body))
        prepared = app.state.hub.running.compiled.documents.get(QUERY)
        assert prepared is not None and prepared.limits is not None
        assert prepared.limits.walks == 2  # (2, 2) and (10, 30), each once
    for (n, _m), (compiled, body) in zip(
        ((2, 2), (10, 30), (2, 2), (10, 30), (2, 2)), answers, strict=True
    ):
        if n == 2:
            assert compiled == 1
            assert body == {
                "data": {
                    "customers": {
                        "nodes": [
                            {
                                "id": gid("Customer", ana),
                                "displayName": "•••",
                                "interactions": {"nodes": []},
                            }
                        ]
                    }
                }
            }
        else:
            assert compiled == 0
            assert body["data"] is None
            assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_COMPLEX"]
            assert body["errors"][0]["extensions"]["cost"] == 1 + 4 * 10 + 2 * 10 * 30
