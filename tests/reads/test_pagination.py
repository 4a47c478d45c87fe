"""Cursor pagination, both ways, against orderings computed here in Python.

The data is chosen to hit the hard cases: many customers created at the same moment (ties broken
by id), duplicate and NULL display names, NULL last-seen times, and orderings of several keys in
mixed directions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from tests.conftest import GraphQLClient
from tests.factories import T0, Factory, gid, minutes

CUSTOMERS_PAGE = """
query ($first: Int, $after: String, $last: Int, $before: String,
       $order: [CustomerOrderBy!], $filter: CustomerFilter) {
  customers(first: $first, after: $after, last: $last, before: $before,
            orderBy: $order, filter: $filter) {
    totalCount
    edges { cursor node { id } }
    nodes { id }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@dataclass
class Row:
    id: uuid.UUID
    name: str | None
    created_at: datetime
    last_seen_at: datetime | None


# (display name, created_at offset in minutes, last_seen_at offset or None)
SPEC: list[tuple[str | None, int, int | None]] = [
    ("Cara", 0, 50),
    ("Ana", 0, None),
    ("Ben", 0, 30),
    (None, 0, None),
    ("Ana", 5, 30),
    ("Dan", 0, 10),
    ("Ben", 5, None),
    (None, 7, 40),
    ("Eve", 0, 30),
    ("Ana", 0, 20),
    ("Finn", 9, None),
    ("Cara", 0, 60),
    ("Gus", 0, 5),
]


@pytest.fixture
async def rows(db: asyncpg.Connection) -> list[Row]:
    f = Factory(db)
    result = []
    for name, created, seen in SPEC:
        cid = await f.customer(name, created_at=T0 + minutes(created))
        seen_at = T0 + minutes(seen) if seen is not None else None
        await db.execute("UPDATE customers SET last_seen_at = $2 WHERE id = $1", cid, seen_at)
        result.append(Row(cid, name, T0 + minutes(created), seen_at))
    return result


NEG_INF = datetime.min


def _key(row: Row, order: str) -> Any:
    if order.startswith("CREATED_AT"):
        return row.created_at.timestamp()
    if order.startswith("LAST_SEEN_AT"):
        return row.last_seen_at.timestamp() if row.last_seen_at else float("-inf")
    return row.name or ""


def expected_order(rows: list[Row], orders: list[str]) -> list[str]:
    """Sort as documented: each key in turn, NULL names as "", never-seen as -infinity, then
    the id in the direction of the last key. Stable sorts applied from the last key back."""
    orders = orders or ["CREATED_AT_ASC"]
    result = sorted(rows, key=lambda r: r.id.int, reverse=orders[-1].endswith("_DESC"))
    for order in reversed(orders):
        result = sorted(result, key=lambda r: _key(r, order), reverse=order.endswith("_DESC"))
    return [gid("Customer", r.id) for r in result]


async def walk(
    gql: GraphQLClient, size: int, backwards: bool, **variables: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every id of the list, page by page, in list order; plus every pageInfo seen."""
    ids: list[str] = []
    infos: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        page_vars = (
            {"last": size, "before": cursor} if backwards else {"first": size, "after": cursor}
        )
        data = (await gql.data(CUSTOMERS_PAGE, {**variables, **page_vars}))["customers"]
        page = [edge["node"]["id"] for edge in data["edges"]]
        assert [n["id"] for n in data["nodes"]] == page
        info = data["pageInfo"]
        if page:
            assert info["startCursor"] == data["edges"][0]["cursor"]
            assert info["endCursor"] == data["edges"][-1]["cursor"]
        infos.append(info)
        if backwards:
            ids = page + ids
            if not info["hasPreviousPage"]:
                return ids, infos
            cursor = info["startCursor"]
        else:
            ids += page
            if not info["hasNextPage"]:
                return ids, infos
            cursor = info["endCursor"]
    raise AssertionError("pagination did not end")


ORDERINGS = [
    [],
    ["CREATED_AT_ASC"],
    ["CREATED_AT_DESC"],
    ["DISPLAY_NAME_ASC"],
    ["DISPLAY_NAME_DESC"],
    ["DISPLAY_NAME_ASC", "CREATED_AT_DESC"],
    ["DISPLAY_NAME_DESC", "LAST_SEEN_AT_ASC"],
    ["LAST_SEEN_AT_ASC"],
    ["LAST_SEEN_AT_DESC"],
    ["LAST_SEEN_AT_DESC", "DISPLAY_NAME_ASC", "CREATED_AT_ASC"],
]


@pytest.mark.parametrize("orders", ORDERINGS, ids=lambda o: "+".join(o) or "default")
async def test_walk_forwards_and_backwards(
    gql: GraphQLClient, rows: list[Row], orders: list[str]
) -> None:
    expected = expected_order(rows, orders)
    forwards, infos = await walk(gql, 3, backwards=False, order=orders or None)
    assert forwards == expected
    assert infos[0]["hasPreviousPage"] is False
    assert all(info["hasNextPage"] for info in infos[:-1])
    assert all(info["hasPreviousPage"] for info in infos[1:])
    backwards, infos = await walk(gql, 4, backwards=True, order=orders or None)
    assert backwards == expected
    assert infos[0]["hasNextPage"] is False
    assert all(info["hasPreviousPage"] for info in infos[:-1])
    assert all(info["hasNextPage"] for info in infos[1:])


async def test_page_size_one_and_whole_list(gql: GraphQLClient, rows: list[Row]) -> None:
    expected = expected_order(rows, ["DISPLAY_NAME_ASC", "CREATED_AT_DESC"])
    order = ["DISPLAY_NAME_ASC", "CREATED_AT_DESC"]
    assert (await walk(gql, 1, backwards=False, order=order))[0] == expected
    assert (await walk(gql, 1, backwards=True, order=order))[0] == expected
    data = (await gql.data(CUSTOMERS_PAGE, {"first": 100, "order": order}))["customers"]
    assert [n["id"] for n in data["nodes"]] == expected
    assert data["pageInfo"]["hasNextPage"] is False and data["totalCount"] == len(rows)


async def test_middle_pages_in_both_directions(gql: GraphQLClient, rows: list[Row]) -> None:
    order = ["LAST_SEEN_AT_ASC"]
    expected = expected_order(rows, order)
    whole = (await gql.data(CUSTOMERS_PAGE, {"first": 100, "order": order}))["customers"]
    cursors = [edge["cursor"] for edge in whole["edges"]]
    # After the 4th: the 5th to 7th.
    data = await gql.data(CUSTOMERS_PAGE, {"first": 3, "after": cursors[3], "order": order})
    assert [n["id"] for n in data["customers"]["nodes"]] == expected[4:7]
    # Before the 6th: the 3rd to 5th, the cursor row itself excluded.
    data = await gql.data(CUSTOMERS_PAGE, {"last": 3, "before": cursors[5], "order": order})
    page = data["customers"]
    assert [n["id"] for n in page["nodes"]] == expected[2:5]
    assert page["pageInfo"]["hasPreviousPage"] is True and page["pageInfo"]["hasNextPage"] is True
    # `last` alone is the end of the list.
    data = await gql.data(CUSTOMERS_PAGE, {"last": 2, "order": order})
    assert [n["id"] for n in data["customers"]["nodes"]] == expected[-2:]
    assert data["customers"]["pageInfo"]["hasNextPage"] is False
    # Before the first row / after the last row: nothing.
    data = await gql.data(CUSTOMERS_PAGE, {"last": 3, "before": cursors[0], "order": order})
    assert data["customers"]["nodes"] == []
    assert data["customers"]["pageInfo"]["hasPreviousPage"] is False
    data = await gql.data(CUSTOMERS_PAGE, {"first": 3, "after": cursors[-1], "order": order})
    assert data["customers"]["nodes"] == []
    assert data["customers"]["pageInfo"]["hasNextPage"] is False


async def test_first_zero_and_default_size(gql: GraphQLClient, rows: list[Row]) -> None:
    data = (await gql.data(CUSTOMERS_PAGE, {"first": 0}))["customers"]
    assert data["edges"] == [] and data["nodes"] == []
    assert data["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }
    assert data["totalCount"] == len(rows)
    data = (await gql.data(CUSTOMERS_PAGE, {}))["customers"]
    assert len(data["nodes"]) == len(rows)  # default page size 20 > 13


async def test_empty_list(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    for variables in ({"first": 5}, {"last": 5}, {}):
        data = (await gql.data(CUSTOMERS_PAGE, variables))["customers"]
        assert data == {
            "totalCount": 0,
            "edges": [],
            "nodes": [],
            "pageInfo": {
                "hasNextPage": False,
                "hasPreviousPage": False,
                "startCursor": None,
                "endCursor": None,
            },
        }


async def test_cursors_survive_inserts_before_them(
    gql: GraphQLClient, rows: list[Row], db: asyncpg.Connection
) -> None:
    first = (await gql.data(CUSTOMERS_PAGE, {"first": 4}))["customers"]
    await Factory(db).customer("Early bird", created_at=T0 - minutes(60))
    second = await gql.data(CUSTOMERS_PAGE, {"first": 4, "after": first["pageInfo"]["endCursor"]})
    expected = expected_order(rows, [])
    assert [n["id"] for n in second["customers"]["nodes"]] == expected[4:8]
    assert second["customers"]["totalCount"] == len(rows) + 1


# ---- interaction lists: newest first, ties on occurred_at broken by id ----


@pytest.fixture
async def activity(
    db: asyncpg.Connection,
) -> tuple[Factory, uuid.UUID, list[tuple[datetime, uuid.UUID]]]:
    f = Factory(db)
    await f.touchpoint("Shop", "WEB", "WEBSITE")
    await f.touchpoint("App", "MOBILE", "MOBILE_APP")
    ana = await f.customer("Ana")
    other = await f.customer("Other")
    made = []
    for n in range(11):
        at = T0 + minutes(n // 3)  # three interactions share each minute
        made.append((at, await f.interaction(ana, "Shop" if n % 2 else "App", at=at)))
    await f.interaction(other, "Shop", at=T0)
    return f, ana, made


INTERACTIONS_PAGE = """
query ($id: ID!, $first: Int, $after: String, $order: InteractionOrderBy) {
  customer(id: $id) {
    interactions(first: $first, after: $after, orderBy: $order) {
      totalCount edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor }
    }
  }
}
"""


@pytest.mark.parametrize("order", ["OCCURRED_AT_DESC", "OCCURRED_AT_ASC"])
async def test_customer_interactions_walk(gql: GraphQLClient, activity: Any, order: str) -> None:
    _, ana, made = activity
    newest_first = order == "OCCURRED_AT_DESC"
    expected = [
        gid("Interaction", i)
        for _, i in sorted(made, key=lambda m: (m[0], m[1].int), reverse=newest_first)
    ]
    got: list[str] = []
    cursor = None
    pages = 0
    for _ in range(10):  # three pages expected: a paging bug fails instead of looping
        data = await gql.data(
            INTERACTIONS_PAGE,
            {"id": gid("Customer", ana), "first": 4, "after": cursor, "order": order},
        )
        connection = data["customer"]["interactions"]
        assert connection["totalCount"] == 11
        assert connection["pageInfo"]["hasPreviousPage"] is (cursor is not None)
        got += [edge["node"]["id"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        cursor = connection["pageInfo"]["endCursor"]
    assert got == expected and pages == 3


async def test_touchpoint_and_global_interaction_walks(gql: GraphQLClient, activity: Any) -> None:
    f, _, _ = activity
    shop = f.touchpoints["Shop"]
    # Newest first, ties by id descending: ordered here, not by the database.
    rows = sorted(
        await f.db.fetch("SELECT id, touchpoint_id, occurred_at FROM interactions"),
        key=lambda r: (r["occurred_at"], r["id"].int),
        reverse=True,
    )
    assert len(rows) == 12
    expected_all = [gid("Interaction", r["id"]) for r in rows]
    expected_shop = [gid("Interaction", r["id"]) for r in rows if r["touchpoint_id"] == shop]

    async def collect(query: str, path: str, **variables: Any) -> list[str]:
        got: list[str] = []
        cursor = None
        for _ in range(20):  # at most 12 interactions: a paging bug fails instead of looping
            data = await gql.data(query, {**variables, "after": cursor})
            for part in path.split("."):
                data = data[part]
            got += [edge["node"]["id"] for edge in data["edges"]]
            if not data["pageInfo"]["hasNextPage"]:
                return got
            cursor = data["pageInfo"]["endCursor"]
        raise AssertionError(f"no last page after 20 pages: {got}")

    everything = await collect(
        """query ($after: String) { interactions(first: 5, after: $after) {
            edges { node { id } } pageInfo { hasNextPage endCursor } } }""",
        "interactions",
    )
    assert everything == expected_all
    at_shop = await collect(
        """query ($id: ID!, $after: String) { touchpoint(id: $id) {
            interactions(first: 2, after: $after) {
            edges { node { id } } pageInfo { hasNextPage endCursor } } } }""",
        "touchpoint.interactions",
        id=gid("Touchpoint", shop),
    )
    assert at_shop == expected_shop


async def test_touchpoints_walk_both_ways(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    f = Factory(db)
    for n in range(7):
        await f.touchpoint(f"Store {n % 3}", "PHYSICAL", "STORE")
    # By name, ties by id: ordered here, not by the database.
    rows = sorted(
        await db.fetch("SELECT id, name FROM touchpoints"), key=lambda r: (r["name"], r["id"].int)
    )
    expected = [gid("Touchpoint", r["id"]) for r in rows]
    assert [r["name"] for r in rows] == ["Store 0"] * 3 + ["Store 1"] * 2 + ["Store 2"] * 2
    query = """query ($first: Int, $after: String, $last: Int, $before: String) {
        touchpoints(first: $first, after: $after, last: $last, before: $before) {
        totalCount edges { node { id } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        } }"""
    got: list[str] = []
    cursor = None
    for _ in range(10):  # three pages expected
        data = (await gql.data(query, {"first": 3, "after": cursor}))["touchpoints"]
        got += [e["node"]["id"] for e in data["edges"]]
        assert data["totalCount"] == 7
        if not data["pageInfo"]["hasNextPage"]:
            break
        cursor = data["pageInfo"]["endCursor"]
    assert got == expected
    got = []
    cursor = None
    for _ in range(10):  # four pages expected
        data = (await gql.data(query, {"last": 2, "before": cursor}))["touchpoints"]
        got = [e["node"]["id"] for e in data["edges"]] + got
        if not data["pageInfo"]["hasPreviousPage"]:
            break
        cursor = data["pageInfo"]["startCursor"]
    assert got == expected


async def test_interactions_first_zero(gql: GraphQLClient, activity: Any) -> None:
    _, ana, _ = activity
    data = await gql.data(INTERACTIONS_PAGE, {"id": gid("Customer", ana), "first": 0})
    connection = data["customer"]["interactions"]
    assert connection["edges"] == [] and connection["totalCount"] == 11
    assert connection["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "endCursor": None,
    }
