"""Merging customers, and undoing a merge, with a ledger that explains and reverses each one.

A merge moves the identities, interactions, conversations and stage history of the merged
customers to the survivor, combines traits per trait (``hub.identity.traits``), and keeps the merged
customers' rows with ``merged_into_id`` set (reads of their ids answer with the survivor). The
``merges`` row records the survivor, the merged ids, the rule and identifier that caused it, who
did it, and a snapshot: each merged customer's row and the ids of every row that moved, plus the
survivor's row before and after.

Unmerge restores each merged customer from the snapshot and sends back what moved. Interactions
recorded after the merge go with the identity that brought them (``matched_identity_id``): one
brought by an identifier that belonged to a merged customer goes back to it. Anything of the
survivor that changed after the merge (a trait, the stage, the name) keeps its newer value;
anything still as the merge left it returns to its value before the merge.

**Survivor rule**: the customer known longest (oldest ``created_at``, then smallest id) survives.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import BadUserInput, Conflict, NotFound
from hub.core.ids import uuid7
from hub.core.settings import Settings
from hub.events.emit import EventKind, NewEvent, emit_many
from hub.identity.traits import merge_traits

RULE_IDENTITY_MATCH = "IDENTITY_MATCH"
RULE_MANUAL = "MANUAL"
MOVED_TABLES = ("identities", "interactions", "conversations", "stage_history")
# Columns an unmerge writes back onto a customer row.
RESTORED_COLUMNS = (
    "display_name",
    "traits",
    "trait_updated_at",
    "current_stage",
    "stage_entered_at",
    "stage_channel_code",
    "stage_signal_at",
    "first_seen_at",
    "last_seen_at",
    "merged_into_id",
)
STAGE_COLUMNS = ("current_stage", "stage_entered_at", "stage_channel_code", "stage_signal_at")


def survivor_order(row: dict[str, Any]) -> tuple[str, str]:
    """The survivor rule as a sort key: oldest ``created_at`` first, then the smallest id."""
    created = row["created_at"]
    return (created if isinstance(created, str) else created.isoformat(), str(row["id"]))


async def _customers_json(
    connection: AsyncConnection, ids: Sequence[uuid.UUID], *, lock: bool
) -> dict[uuid.UUID, dict[str, Any]]:
    """Customer rows as JSON (how snapshots store them), optionally locked in id order."""
    result = await connection.execute(
        sa.text(
            "SELECT c.id, to_jsonb(c) AS row FROM customers c"
            " WHERE c.id = ANY(CAST(:ids AS uuid[])) ORDER BY c.id"
            + (" FOR UPDATE" if lock else "")
        ),
        {"ids": sorted(set(ids))},
    )
    return {row.id: row.row for row in result}


def _check_ids(survivor_id: uuid.UUID, merged_ids: Sequence[uuid.UUID]) -> None:
    if not merged_ids:
        raise BadUserInput("name at least one customer to merge into the survivor")
    if survivor_id in merged_ids:
        raise BadUserInput("a customer cannot be merged with itself")
    if len(set(merged_ids)) != len(merged_ids):
        raise BadUserInput("a customer is named twice in `mergedIds`")


def _check_rows(
    rows: dict[uuid.UUID, dict[str, Any]], survivor_id: uuid.UUID, merged_ids: Sequence[uuid.UUID]
) -> None:
    for cid in [survivor_id, *merged_ids]:
        row = rows.get(cid)
        if row is None:
            raise NotFound(f"no customer with id {str(cid)!r}")
        if row["merged_into_id"] is not None:
            raise Conflict(
                f"customer {cid} was already merged into {row['merged_into_id']}",
                mergedIntoId=str(row["merged_into_id"]),
            )


async def _kind_counts(connection: AsyncConnection, ids: Sequence[uuid.UUID]) -> Counter[str]:
    result = await connection.execute(
        sa.text(
            "SELECT kind, count(*) AS n FROM identities WHERE customer_id = ANY(CAST(:ids AS"
            " uuid[])) GROUP BY kind"
        ),
        {"ids": list(ids)},
    )
    return Counter({row.kind: row.n for row in result})


def _too_many(counts: Counter[str], settings: Settings) -> list[str]:
    return sorted(k for k, n in counts.items() if n > settings.max_identities_per_kind)


def _signal_time(row: dict[str, Any]) -> datetime | None:
    """A JSON row's newest stage signal (``stage_entered_at`` for rows from before 0016)."""
    at = row.get("stage_signal_at") or row.get("stage_entered_at")
    return datetime.fromisoformat(at) if isinstance(at, str) else None


def combine(
    survivor: dict[str, Any], merged: Sequence[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """The survivor's row after absorbing ``merged`` (JSON rows in, JSON row out)."""
    result = dict(survivor)
    traits, stamps = survivor["traits"], survivor["trait_updated_at"]
    for row in merged:
        traits, stamps = merge_traits(
            traits, stamps, row["traits"], row["trait_updated_at"], settings.trait_survivorship
        )
    result["traits"], result["trait_updated_at"] = traits, stamps
    if not result["display_name"]:
        result["display_name"] = next(
            (r["display_name"] for r in merged if r["display_name"]), None
        )
    everyone = [survivor, *merged]
    firsts = [r["first_seen_at"] for r in everyone if r["first_seen_at"]]
    lasts = [r["last_seen_at"] for r in everyone if r["last_seen_at"]]
    # Timestamps in to_jsonb form share one UTC offset only if the server's TimeZone is UTC:
    # compare them as datetimes.
    result["first_seen_at"] = min(firsts, key=datetime.fromisoformat) if firsts else None
    result["last_seen_at"] = max(lasts, key=datetime.fromisoformat) if lasts else None
    # The stage of whichever had the newest stage signal (hub.journeys.engine).
    staged = [(at, r) for r in everyone if (at := _signal_time(r)) is not None]
    if staged:
        _, newest = max(staged, key=lambda pair: pair[0])
        for column in STAGE_COLUMNS:
            result[column] = newest.get(column)
    return result


@dataclass(frozen=True)
class MergePreview:
    survivor_id: uuid.UUID
    merged_ids: list[uuid.UUID]
    moved: dict[str, int]
    result: dict[str, Any]
    problems: list[str]


async def preview_merge(
    connection: AsyncConnection, customer_ids: Sequence[uuid.UUID], settings: Settings
) -> MergePreview:
    """What merging ``customer_ids`` would do, survivor chosen by the survivor rule."""
    if len(customer_ids) < 2:
        raise BadUserInput("a merge needs at least two customers")
    if len(set(customer_ids)) != len(customer_ids):
        raise BadUserInput("a customer is named twice")
    rows = await _customers_json(connection, customer_ids, lock=False)
    for cid in customer_ids:
        # A missing customer (or one the caller's row security hides) is an error, not a
        # preview of the others: the same answer either way.
        if cid not in rows:
            raise NotFound(f"no customer with id {str(cid)!r}")
    ordered = sorted((rows[cid] for cid in customer_ids), key=survivor_order)
    survivor_id = uuid.UUID(ordered[0]["id"]) if ordered else customer_ids[0]
    merged_ids = [uuid.UUID(r["id"]) for r in ordered[1:]]
    _check_rows(rows, survivor_id, merged_ids)
    return await _preview(connection, rows, survivor_id, merged_ids, settings)


async def preview_chosen(
    connection: AsyncConnection,
    survivor_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    settings: Settings,
) -> MergePreview:
    """What merging ``merged_ids`` into the given survivor would do (a dry run)."""
    _check_ids(survivor_id, merged_ids)
    rows = await _customers_json(connection, [survivor_id, *merged_ids], lock=False)
    _check_rows(rows, survivor_id, merged_ids)
    return await _preview(connection, rows, survivor_id, merged_ids, settings)


async def _preview(
    connection: AsyncConnection,
    rows: dict[uuid.UUID, dict[str, Any]],
    survivor_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    settings: Settings,
) -> MergePreview:
    counts = await connection.execute(
        sa.text(
            " UNION ALL ".join(
                f"SELECT '{table}' AS tbl, count(*) AS n FROM {table}"
                " WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
                for table in MOVED_TABLES
            )
        ),
        {"ids": list(merged_ids)},
    )
    moved = {str(row.tbl): int(row.n) for row in counts}
    kinds = await _kind_counts(connection, [survivor_id, *merged_ids])
    problems = [
        f"the merged customer would hold more than {settings.max_identities_per_kind} "
        f"identifiers of kind {kind}"
        for kind in _too_many(kinds, settings)
    ]
    result = combine(rows[survivor_id], [rows[cid] for cid in merged_ids], settings)
    return MergePreview(survivor_id, list(merged_ids), moved, result, problems)


async def merge_customers(
    connection: AsyncConnection,
    survivor_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    settings: Settings,
    *,
    rule: str,
    actor: str,
    identity: tuple[str, str] | None = None,
) -> RowMapping:
    """Merge ``merged_ids`` into ``survivor_id`` in the caller's transaction; the ledger row."""
    _check_ids(survivor_id, merged_ids)
    rows = await _customers_json(connection, [survivor_id, *merged_ids], lock=True)
    _check_rows(rows, survivor_id, merged_ids)
    kinds = await _kind_counts(connection, [survivor_id, *merged_ids])
    too_many = _too_many(kinds, settings)
    if too_many:
        raise Conflict(
            f"the merged customer would hold more than {settings.max_identities_per_kind} "
            f"identifiers of kind {', '.join(too_many)}"
        )
    moved_ids = await connection.execute(
        sa.text(
            "SELECT c.id, jsonb_build_object("
            + ", ".join(
                f"'{table}', (SELECT coalesce(jsonb_agg(t.id ORDER BY t.id), '[]') FROM {table} t"
                " WHERE t.customer_id = c.id)"
                for table in MOVED_TABLES
            )
            + ") AS ids FROM customers c WHERE c.id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": list(merged_ids)},
    )
    merged_snapshot = {str(row.id): {"row": rows[row.id], "moved": row.ids} for row in moved_ids}
    params = {"survivor": survivor_id, "ids": list(merged_ids)}
    for table in MOVED_TABLES:
        await connection.execute(
            sa.text(
                f"UPDATE {table} SET customer_id = :survivor"
                " WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
            ),
            params,
        )
    after = combine(rows[survivor_id], [rows[cid] for cid in merged_ids], settings)
    await _write_row(connection, survivor_id, after)
    await connection.execute(
        sa.text(
            "UPDATE customers SET merged_into_id = :survivor, updated_at = now()"
            " WHERE id = ANY(CAST(:ids AS uuid[]))"
        ),
        params,
    )
    after_json = (await _customers_json(connection, [survivor_id], lock=False))[survivor_id]
    merge_id = uuid7()
    snapshot = {
        "survivor": {"before": rows[survivor_id], "after": after_json},
        "merged": merged_snapshot,
    }
    result = await connection.execute(
        sa.text(
            "INSERT INTO merges (id, survivor_id, merged_ids, rule, identity_kind,"
            " identity_value, actor, snapshot) VALUES (:id, :survivor, CAST(:ids AS uuid[]),"
            " :rule, :kind, :value, :actor, CAST(:snapshot AS jsonb)) RETURNING *"
        ),
        {
            **params,
            "id": merge_id,
            "rule": rule,
            "kind": identity[0] if identity else None,
            "value": identity[1] if identity else None,
            "actor": actor,
            "snapshot": orjson.dumps(snapshot).decode(),
        },
    )
    ledger = result.mappings().one()
    await emit_many(
        connection,
        [
            NewEvent(
                EventKind.CUSTOMER_MERGED,
                customer_id=survivor_id,
                subject_id=merge_id,
                payload={
                    "mergedIds": [str(cid) for cid in merged_ids],
                    "rule": rule,
                    "identityKind": identity[0] if identity else None,
                },
            )
        ],
    )
    return ledger


async def _write_row(
    connection: AsyncConnection, customer_id: uuid.UUID, row: dict[str, Any]
) -> None:
    """Write the restorable columns of a JSON customer row (``jsonb_populate_record``)."""
    columns = ", ".join(RESTORED_COLUMNS)
    await connection.execute(
        sa.text(
            f"UPDATE customers c SET ({columns}) = (SELECT {columns} FROM"
            " jsonb_populate_record(NULL::customers, CAST(:row AS jsonb))), updated_at = now()"
            " WHERE c.id = :id"
        ),
        {"id": customer_id, "row": orjson.dumps(row).decode()},
    )


def _unchanged_since(
    current: dict[str, Any], after: dict[str, Any], columns: Sequence[str]
) -> bool:
    return all(current.get(c) == after.get(c) for c in columns)


def restore_survivor(
    current: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """The survivor's row after an unmerge: what the merge set and nobody changed since returns
    to its value before the merge; what changed after the merge stays."""
    result = dict(current)
    traits = dict(current["traits"])
    stamps = dict(current["trait_updated_at"])
    for key in set(after["traits"]) | set(before["traits"]):
        same = traits.get(key) == after["traits"].get(key) and stamps.get(key) == after[
            "trait_updated_at"
        ].get(key)
        if not same:
            continue
        for target, source in ((traits, before["traits"]), (stamps, before["trait_updated_at"])):
            if key in source:
                target[key] = source[key]
            else:
                target.pop(key, None)
    result["traits"], result["trait_updated_at"] = traits, stamps
    if _unchanged_since(current, after, STAGE_COLUMNS):
        for column in STAGE_COLUMNS:
            result[column] = before.get(column)  # a snapshot from before 0016 has no signal time
    if current["display_name"] == after["display_name"]:
        result["display_name"] = before["display_name"]
    # First/last seen: from the snapshot, widened below by the interactions it still has.
    result["first_seen_at"] = before["first_seen_at"]
    result["last_seen_at"] = before["last_seen_at"]
    return result


async def unmerge_customer(
    connection: AsyncConnection, merge_id: uuid.UUID, *, actor: str
) -> tuple[RowMapping, list[uuid.UUID]]:
    """Reverse a merge in the caller's transaction; the updated ledger row and restored ids."""
    result = await connection.execute(
        sa.text("SELECT * FROM merges WHERE id = :id FOR UPDATE"), {"id": merge_id}
    )
    ledger = result.mappings().first()
    if ledger is None:
        raise NotFound(f"no merge with id {str(merge_id)!r}")
    if ledger["reversed_at"] is not None:
        raise Conflict(f"merge {merge_id} was already reversed at {ledger['reversed_at']}")
    survivor_id: uuid.UUID = ledger["survivor_id"]
    merged_ids: list[uuid.UUID] = list(ledger["merged_ids"])
    rows = await _customers_json(connection, [survivor_id, *merged_ids], lock=True)
    if rows[survivor_id]["merged_into_id"] is not None:
        raise Conflict(
            f"the survivor {survivor_id} was merged again later (into "
            f"{rows[survivor_id]['merged_into_id']}): reverse that merge first"
        )
    snapshot = ledger["snapshot"]
    for cid in merged_ids:
        entry = snapshot["merged"][str(cid)]
        moved = entry["moved"]
        params = {"survivor": survivor_id, "customer": cid}
        await connection.execute(
            sa.text(
                "UPDATE identities SET customer_id = :customer WHERE customer_id = :survivor"
                " AND id = ANY(CAST(:ids AS bigint[]))"
            ),
            {**params, "ids": moved["identities"]},
        )
        await connection.execute(
            sa.text(
                "UPDATE interactions SET customer_id = :customer WHERE customer_id = :survivor"
                " AND (id = ANY(CAST(:ids AS uuid[]))"
                " OR matched_identity_id = ANY(CAST(:identities AS bigint[])))"
            ),
            {**params, "ids": moved["interactions"], "identities": moved["identities"]},
        )
        for table, cast in (("conversations", "uuid[]"), ("stage_history", "bigint[]")):
            await connection.execute(
                sa.text(
                    f"UPDATE {table} SET customer_id = :customer WHERE customer_id = :survivor"
                    f" AND id = ANY(CAST(:ids AS {cast}))"
                ),
                {**params, "ids": moved[table]},
            )
        await _write_row(connection, cid, entry["row"])
    survivor = snapshot["survivor"]
    await _write_row(
        connection,
        survivor_id,
        restore_survivor(rows[survivor_id], survivor["before"], survivor["after"]),
    )
    # Interactions recorded after the merge may widen first/last seen of either side.
    await connection.execute(
        sa.text(
            "UPDATE customers c SET first_seen_at = LEAST(c.first_seen_at, s.first),"
            " last_seen_at = GREATEST(c.last_seen_at, s.last)"
            " FROM (SELECT customer_id, min(occurred_at) AS first, max(occurred_at) AS last"
            " FROM interactions WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
            " GROUP BY customer_id) AS s WHERE c.id = s.customer_id"
        ),
        {"ids": [survivor_id, *merged_ids]},
    )
    updated = await connection.execute(
        sa.text(
            "UPDATE merges SET reversed_at = now(), reversed_by = :actor WHERE id = :id RETURNING *"
        ),
        {"id": merge_id, "actor": actor},
    )
    await emit_many(
        connection,
        [
            NewEvent(
                EventKind.CUSTOMER_UNMERGED,
                customer_id=cid,
                subject_id=merge_id,
                payload={
                    "survivorId": str(survivor_id),
                    "restoredIds": [str(c) for c in merged_ids],
                },
            )
            for cid in [survivor_id, *merged_ids]
        ],
    )
    return updated.mappings().one(), merged_ids
