"""The README's example queries and configuration table stay true: each block is run here."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from hub.core.settings import Settings
from tests.conftest import ROOT, GraphQLClient
from tests.factories import Factory, minutes

# The README's examples filter on January 2026: their data is written straight to the tables
# (no `occurredAt` validation against the clock), at the dates the README shows.
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)^## ", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


EXAMPLES = {
    re.search(r"query (\w+)", block).group(1): block  # type: ignore[union-attr]
    for block in re.findall(r"```graphql\n(.*?)```", section("Example queries"), re.S)
}


@pytest.fixture
async def shop(db: asyncpg.Connection) -> Factory:
    f = Factory(db)
    await f.touchpoint("Fashion site", "WEB", "WEBSITE", address="https://fashion.example",
                       business_line="Fashion")  # fmt: skip
    await f.touchpoint("iOS app", "MOBILE", "MOBILE_APP", address="com.example.shop")
    await f.touchpoint("Contact centre", "ASSISTED", "VOICE", address="+442079460000")
    await f.touchpoint("Flagship", "PHYSICAL", "STORE", address="1 Main St")
    ana = await f.customer(
        "Ana",
        traits={"tier": "gold"},
        stage="PURCHASE",
        identities=[("EMAIL", "ana@example.com"), ("PHONE", "+442079460958")],
    )
    ben = await f.customer("Ben", traits={"tier": "silver"}, stage="CONSIDERATION")
    cy = await f.customer("Cy", traits={"tier": "gold"}, stage="PURCHASE")
    dee = await f.customer("Dee", stage="CONSIDERATION")
    call = await f.conversation(ana, "CASE-1", at=T0 + minutes(30))
    await f.interaction(ana, "Fashion site", at=T0, type="PRODUCT_VIEW")
    await f.interaction(ana, "iOS app", at=T0 + minutes(20), type="ORDER")
    await f.interaction(ana, "Contact centre", at=T0 + minutes(30), type="CALL",
                        conversation_id=call, summary="Where is my parcel?")  # fmt: skip
    await f.stage_change(ana, "PURCHASE", previous=None, transition="INITIAL",
                         at=T0 + minutes(20), channel="MOBILE")  # fmt: skip
    await f.interaction(ben, "Fashion site", at=T0 + minutes(5))
    await f.interaction(cy, "Flagship", at=T0 + minutes(6), type="STORE_VISIT")
    await f.interaction(cy, "Fashion site", at=T0 + minutes(7))
    await f.interaction(dee, "Fashion site", at=T0 + minutes(8))
    await f.interaction(dee, "iOS app", at=T0 + minutes(9), type="SEARCH")
    return f


def test_every_example_is_checked() -> None:
    assert set(EXAMPLES) == set(CHECKS)


async def check_customer_360(gql: GraphQLClient) -> None:
    c = (await gql.data(EXAMPLES["Customer360"]))["customerByIdentity"]
    assert c["displayName"] == "Ana" and c["currentStage"]["code"] == "PURCHASE"
    assert {i["value"] for i in c["identities"]} == {"ana@example.com", "+442079460958"}
    assert c["lastInteraction"]["summary"] == "Where is my parcel?"
    assert c["conversations"][0]["channels"] == [{"code": "ASSISTED"}]
    assert [u["channel"]["code"] for u in c["channelsUsed"]] == ["WEB", "MOBILE", "ASSISTED"]
    assert c["interactions"]["totalCount"] == 3 and len(c["stageHistory"]) == 1


async def check_by_phone(gql: GraphQLClient) -> None:
    c = (await gql.data(EXAMPLES["ByPhone"]))["customerByIdentity"]
    assert c["displayName"] == "Ana" and c["requestedId"] is None


async def check_customer_page(gql: GraphQLClient) -> None:
    names: list[str] = []
    after = None
    for _ in range(5):  # four customers: a paging bug fails the assertion below, not hangs
        page = (await gql.data(EXAMPLES["CustomerPage"], {"after": after}))["customers"]
        assert page["totalCount"] == 4
        names += [edge["node"]["displayName"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert names == ["Ana", "Dee", "Cy", "Ben"]  # most recently seen first


async def check_previous_page(gql: GraphQLClient) -> None:
    names: list[str] = []
    before = None
    for _ in range(5):  # four customers: a paging bug fails the assertion below, not hangs
        page = (await gql.data(EXAMPLES["PreviousPage"], {"before": before}))["customers"]
        names = [node["displayName"] for node in page["nodes"]] + names
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert names == ["Ana", "Ben", "Cy", "Dee"]


async def check_prospects(gql: GraphQLClient) -> None:
    found = (await gql.data(EXAMPLES["Prospects"]))["customers"]
    assert [n["displayName"] for n in found["nodes"]] == ["Ana", "Dee"]
    assert found["totalCount"] == 2


async def check_inbound_service(gql: GraphQLClient) -> None:
    found = (await gql.data(EXAMPLES["InboundService"]))["interactions"]
    assert [(n["type"], n["customer"]["displayName"]) for n in found["nodes"]] == [
        ("CALL", "Ana"),
        ("ORDER", "Ana"),
        ("SEARCH", "Dee"),
    ]


async def check_catalogue(gql: GraphQLClient) -> None:
    data = await gql.data(EXAMPLES["Catalogue"])
    assert len(data["channels"]) == 6
    assert data["channels"][0]["touchpoints"][0]["address"] == "https://fashion.example"
    counts = {s["code"]: s["customerCount"] for s in data["journeyStages"]}
    assert counts["PURCHASE"] == 2 and counts["CONSIDERATION"] == 2


CHECKS: dict[str, Callable[[GraphQLClient], Awaitable[None]]] = {
    "Customer360": check_customer_360,
    "ByPhone": check_by_phone,
    "CustomerPage": check_customer_page,
    "PreviousPage": check_previous_page,
    "Prospects": check_prospects,
    "InboundService": check_inbound_service,
    "Catalogue": check_catalogue,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_readme_example(gql: GraphQLClient, shop: Factory, name: str) -> None:
    await CHECKS[name](gql)


def test_configuration_lists_every_setting_with_its_default() -> None:
    table = section("Configuration")
    for name, field in Settings.model_fields.items():
        row = next(
            (line for line in table.splitlines() if line.startswith(f"| `HUB_{name.upper()}`")),
            None,
        )
        assert row is not None, f"HUB_{name.upper()} is missing from the README"
        default: Any = field.get_default(call_default_factory=True)
        shown = row.split("|")[2].strip()
        if isinstance(default, dict):
            assert shown == f"`{json.dumps(default)}`", row
        elif isinstance(default, list):
            assert shown == (f"`{','.join(default)}`" if default else "empty"), row
        elif default is None:
            assert shown == "unset", row
        else:
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            assert shown == f"`{expected}`", row


def test_cli_section_names_every_command() -> None:
    from hub.cli import app

    table = section("CLI")
    for command in app.registered_commands:
        name = command.name or command.callback.__name__  # type: ignore[union-attr]
        assert f"`hub {name}" in table, name
