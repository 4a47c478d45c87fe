"""Manual merges, previews, unmerges, the ledger, and their bad inputs."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.factories import gid
from tests.ingest_support import interaction, record, row_id, touchpoints

MERGE = """
mutation($input: MergeCustomersInput!) {
  mergeCustomers(input: $input) {
    merge { id survivorId mergedIds rule actor active }
    preview { survivorId mergedIds identitiesMoved interactionsMoved traits problems }
  }
}
"""
UNMERGE = """
mutation($id: ID!) {
  unmergeCustomer(mergeId: $id) {
    merge { id active reversedAt }
    customers { id identities { value } interactions { totalCount } }
  }
}
"""
TRAITS = """
mutation($id: ID!, $traits: JSON!) { updateTraits(customerId: $id, traits: $traits) { traits } }
"""


async def _two(gql: Any, db: asyncpg.Connection) -> tuple[dict[str, str], str, str]:
    tp = await touchpoints(db)
    ana = await record(gql, interaction(tp["web"], ("EMAIL", "ana@example.com")))
    phone = await record(
        gql,
        interaction(
            tp["call"], ("PHONE", "+4915112345670"), type="SUPPORT_TICKET", conversationKey="T-1"
        ),
    )
    return tp, ana["customer"]["id"], phone["customer"]["id"]


async def test_dry_run_previews_and_writes_nothing(gql: Any, db: asyncpg.Connection) -> None:
    _, ana, other = await _two(gql, db)
    await gql.data(TRAITS, {"id": ana, "traits": {"tier": "gold"}})
    await gql.data(TRAITS, {"id": other, "traits": {"city": "Lyon", "tier": "silver"}})
    result = await gql.data(
        MERGE, {"input": {"survivorId": ana, "mergedIds": [other], "dryRun": True}}
    )
    preview = result["mergeCustomers"]["preview"]
    assert result["mergeCustomers"]["merge"] is None
    assert preview["identitiesMoved"] == 1 and preview["interactionsMoved"] == 1
    assert preview["traits"] == {"tier": "silver", "city": "Lyon"}  # most recent wins
    assert await db.fetchval("SELECT count(*) FROM merges") == 0
    query = "query($ids: [ID!]!) { previewMerge(customerIds: $ids) { survivorId mergedIds } }"
    by_rule = await gql.data(query, {"ids": [other, ana]})
    assert by_rule["previewMerge"] == {"survivorId": ana, "mergedIds": [other]}


async def test_merge_then_unmerge_restores_both_customers(gql: Any, db: asyncpg.Connection) -> None:
    tp, ana, other = await _two(gql, db)
    merged = await gql.data(MERGE, {"input": {"survivorId": ana, "mergedIds": [other]}})
    merge = merged["mergeCustomers"]["merge"]
    assert merge["rule"] == "MANUAL" and merge["mergedIds"] == [other]
    # After the merge, the phone brings a new interaction: on unmerge it goes with the phone.
    after = await record(gql, interaction(tp["call"], ("PHONE", "+4915112345670")))
    assert after["customer"]["id"] == ana
    history = await gql.data(
        "query($id: ID!) { customer(id: $id) { merges { id active } } }", {"id": other}
    )
    assert history["customer"]["merges"] == [{"id": merge["id"], "active": True}]
    undone = (await gql.data(UNMERGE, {"id": merge["id"]}))["unmergeCustomer"]
    assert undone["merge"]["active"] is False and undone["merge"]["reversedAt"]
    survivor, restored = undone["customers"]
    assert survivor["id"] == ana and restored["id"] == other
    assert restored["identities"] == [{"value": "+4915112345670"}]
    assert restored["interactions"]["totalCount"] == 2
    assert survivor["interactions"]["totalCount"] == 1
    conversation_owner = await db.fetchval("SELECT customer_id FROM conversations")
    assert conversation_owner == row_id(other)
    kinds = await db.fetch("SELECT kind FROM events WHERE kind LIKE 'CUSTOMER_%MERGED'")
    assert sorted(k["kind"] for k in kinds) == ["CUSTOMER_MERGED"] + ["CUSTOMER_UNMERGED"] * 2
    ledger = await gql.data("{ mergeHistory { id active } }")
    assert ledger["mergeHistory"] == [{"id": merge["id"], "active": False}]
    query = "query($id: ID!) { mergeHistory(customerId: $id) { id survivor { id } } }"
    for customer in (ana, other):
        mine = await gql.data(query, {"id": customer})
        assert mine["mergeHistory"] == [{"id": merge["id"], "survivor": {"id": ana}}]


async def test_bad_merges_and_unmerges_are_coded_errors(gql: Any, db: asyncpg.Connection) -> None:
    _, ana, other = await _two(gql, db)
    itself = await gql.error(MERGE, {"input": {"survivorId": ana, "mergedIds": [ana]}})
    assert itself["extensions"]["code"] == "BAD_USER_INPUT" and "itself" in itself["message"]
    unknown = gid("Customer", uuid.uuid4())
    missing = await gql.error(MERGE, {"input": {"survivorId": ana, "mergedIds": [unknown]}})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    merge = (await gql.data(MERGE, {"input": {"survivorId": ana, "mergedIds": [other]}}))[
        "mergeCustomers"
    ]["merge"]
    again = await gql.error(MERGE, {"input": {"survivorId": ana, "mergedIds": [other]}})
    assert again["extensions"]["code"] == "CONFLICT" and "already merged" in again["message"]
    nothing = await gql.error(UNMERGE, {"id": gid("Merge", uuid.uuid4())})
    assert nothing["extensions"]["code"] == "NOT_FOUND"
    await gql.data(UNMERGE, {"id": merge["id"]})
    twice = await gql.error(UNMERGE, {"id": merge["id"]})
    assert twice["extensions"]["code"] == "CONFLICT" and "already reversed" in twice["message"]
    assert await db.fetchval("SELECT count(*) FROM merges") == 1


async def test_an_ingest_merge_is_reversible_and_the_phone_keeps_its_interactions(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp, ana, other = await _two(gql, db)
    both = await record(
        gql, interaction(tp["chat"], ("EMAIL", "ana@example.com"), ("PHONE", "+4915112345670"))
    )
    [merge] = both["merges"]
    undone = (await gql.data(UNMERGE, {"id": merge["id"]}))["unmergeCustomer"]
    survivor, restored = undone["customers"]
    # The bridging interaction was brought by the e-mail (its first identity): it stays with Ana.
    assert survivor["interactions"]["totalCount"] == 2
    assert restored["interactions"]["totalCount"] == 1
    assert restored["id"] == other and survivor["id"] == ana
