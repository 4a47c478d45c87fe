"""Recording interactions: locks, idempotency, identity resolution, then the writes.

Validation lives in ``hub.ingest.validation``, the decision in ``hub.identity.resolution``, the
writes in ``hub.ingest.store``. The statements run on an ``hub.db.statements.IngestSql``: a bare
asyncpg connection (the compiled ingest path) or a SQLAlchemy connection (the resolvers).

One engine serves ``recordInteraction`` (a batch of one; errors raise) and
``recordInteractions`` (up to ``max_batch_size``; invalid items are rejected one by one).

Batch semantics (documented in docs/ingest.md): every item is validated on its own and invalid
ones are reported as rejected (index, code, message); all valid items are then stored in ONE
transaction, so a batch that reports success has stored every item it lists as stored, and a
database failure stores none of them.

Concurrency: the transaction first takes PostgreSQL advisory locks on every identifier and every
(touchpoint, idempotency key) of the batch, in sorted order (no deadlocks between batches). Two
calls sharing an identifier or a key therefore run one after the other: the second sees the
first's customer and interaction, so one person never becomes two customers and a retried key
returns the original interaction. The unique index ``uq_interactions_idempotency`` stays the last
word: the insert uses ``ON CONFLICT DO NOTHING``, and a row it did not insert aborts the
transaction with CONFLICT (the client's retry then gets the original back).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.audiences.queue import enqueue
from hub.audiences.refresh import ChangeReason, on_customers_changed
from hub.audiences.relevance import Touched
from hub.core.errors import Conflict, HubError, NotFound, UnknownCode
from hub.core.settings import Settings
from hub.db.locks import lock_key
from hub.db.statements import IngestSql, Statement
from hub.identity.merges import STAGE_COLUMNS, merge_customers
from hub.identity.resolution import (
    BatchPlan,
    CustomerState,
    Draft,
    Guards,
    IdentifierKey,
    plan_batch,
)
from hub.ingest.store import AuditRow, ItemResult, store_plan
from hub.ingest.validation import InteractionInput, validate
from hub.journeys.engine import StageRules
from hub.privacy.erasure import identity_hash
from hub.vocabulary.registry import Vocabulary, current, latest

MAX_RESOLUTION_ROUNDS = 5


# The customers' columns the plan needs, in this order, in CLAIMS' ``customers`` records.
_CUSTOMER_COLUMNS = (
    "id",
    "created_at",
    *STAGE_COLUMNS,
    "first_seen_at",
    "last_seen_at",
    "merged_into_id",
    "kind_counts",
)
# Read after the advisory locks (a new statement, so its snapshot sees what the previous lock
# holder committed): who holds each identifier, which idempotency keys exist, which identifiers
# belonged to erased customers (by hash, hub.privacy.erasure.identity_hash), the catalogue (the
# touchpoints' channels, the stage rules), and the holders themselves, locked FOR NO KEY UPDATE
# in id order (ingests of a customer wait for each other, merges and other changes' FOR UPDATE
# too; the audiences drainer's FOR KEY SHARE does not make an ingest wait; a locked row is its
# latest committed version, so a holder merged away since the
# snapshot shows its ``merged_into_id``): one round trip.
CLAIMS = Statement.named(
    "SELECT"
    f" (SELECT array_agg(ROW({', '.join(f's.{c}' for c in _CUSTOMER_COLUMNS)}) ORDER BY s.id)"
    f"  FROM (SELECT {', '.join(f'c.{c}' for c in _CUSTOMER_COLUMNS[:-1])},"
    "  (SELECT coalesce(jsonb_object_agg(kind, n), '{}') FROM"
    "  (SELECT kind, count(*) AS n FROM identities WHERE customer_id = c.id GROUP BY kind)"
    "  AS counts) AS kind_counts FROM customers c WHERE c.id IN (SELECT i.customer_id FROM"
    "  identities i JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS k(kind, value)"
    "  ON i.kind = k.kind AND i.value = k.value) ORDER BY c.id FOR NO KEY UPDATE OF c) AS s)"
    " AS customers,"
    " (SELECT coalesce(jsonb_object_agg(id::text, channel_code), '{}') FROM touchpoints"
    "  WHERE id = ANY(CAST(:catalogue_tps AS uuid[]))) AS channels,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_array(interaction_type, channel_code,"
    "  stage)), '[]') FROM stage_rules) AS rules,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_array(i.kind, i.value, i.customer_id)),"
    "  '[]') FROM identities i JOIN unnest(CAST(:kinds AS text[]),"
    "  CAST(:vals AS text[])) AS k(kind, value) ON i.kind = k.kind AND i.value = k.value)"
    " AS owners,"
    " (SELECT array_agg(x) FROM interactions x"
    "  JOIN unnest(CAST(:tps AS uuid[]), CAST(:ikeys AS text[])) AS k(tp, key)"
    "  ON x.touchpoint_id = k.tp AND x.idempotency_key = k.key) AS duplicates,"
    " (SELECT coalesce(jsonb_agg(DISTINCT h), '[]') FROM erasures e,"
    "  unnest(e.identity_hashes) AS h WHERE e.identity_hashes && CAST(:hashes AS text[])"
    "  AND h = ANY(CAST(:hashes AS text[]))) AS erased,"
    # The segments and their revisions (hub.audiences.membership): read here, so a stored batch
    # re-evaluates memberships without a round trip of its own, and with none when none exist.
    " (SELECT coalesce(jsonb_agg(jsonb_build_array(key, revision) ORDER BY key), '[]')"
    "  FROM segments) AS segments,"
    " (SELECT ARRAY[epoch::text, version::text] FROM vocabulary_version) AS vocabulary"
)


class NeedsMerge(Exception):
    """The plan merges existing customers and the connection cannot run merges (the compiled
    ingest path): nothing has been written; the caller rolls back and takes the resolver path."""


@dataclass
class Claims:
    """What the database says about a batch's identifiers, keys and touchpoints."""

    existing: dict[tuple[uuid.UUID, str], Any]  # stored interactions by (touchpoint, key)
    owners: dict[IdentifierKey, uuid.UUID]
    erased: set[IdentifierKey]  # identifiers that belonged to erased customers
    channels: dict[uuid.UUID, str]  # the channel of each touchpoint that exists
    rules: StageRules
    customers: dict[uuid.UUID, CustomerState]  # the holders, locked FOR NO KEY UPDATE
    segments: list[tuple[str, int]]  # (key, revision) of every segment
    stable: bool  # False: a holder was merged away meanwhile (a concurrent merge): read again
    vocabulary: tuple[str, str] | None = None  # the vocabulary's (epoch, version) now


def _customers(
    records: Sequence[Sequence[Any]] | None,
) -> tuple[dict[uuid.UUID, CustomerState], bool]:
    """CLAIMS' ``customers`` records as states; False if one was merged away meanwhile."""
    customers: dict[uuid.UUID, CustomerState] = {}
    for record_ in records or ():
        row = dict(zip(_CUSTOMER_COLUMNS, record_, strict=True))
        if row["merged_into_id"] is not None:
            return {}, False
        counts = row["kind_counts"]
        customers[row["id"]] = CustomerState(
            id=row["id"],
            created_at=row["created_at"],
            is_new=False,
            current_stage=row["current_stage"],
            stage_entered_at=row["stage_entered_at"],
            stage_channel_code=row["stage_channel_code"],
            stage_signal_at=row["stage_signal_at"],
            first_seen_at=row["first_seen_at"],
            last_seen_at=row["last_seen_at"],
            kind_counts=Counter(orjson.loads(counts) if isinstance(counts, str) else counts),
        )
    return customers, True


async def _read_claims(sql: IngestSql, drafts: list[Draft], keys: set[IdentifierKey]) -> Claims:
    """Interactions already stored under the drafts' idempotency keys, who holds each
    identifier (the holders locked), which identifiers belonged to erased customers, and the
    catalogue, in one round trip (the duplicates as whole rows: records of the table's type)."""
    keyed = [d for d in drafts if d.idempotency_key is not None]
    ordered = sorted(keys)
    by_hash = {identity_hash(kind, value): (kind, value) for kind, value in ordered}
    [row] = await sql.fetch(
        CLAIMS,
        {
            "kinds": [k for k, _ in ordered],
            "vals": [v for _, v in ordered],
            "tps": [d.touchpoint_id for d in keyed],
            "ikeys": [d.idempotency_key for d in keyed],
            "hashes": list(by_hash),
            "catalogue_tps": list({d.touchpoint_id for d in drafts}),
        },
    )
    customers, stable = _customers(row["customers"])
    existing: dict[tuple[uuid.UUID, str], Any] = {}
    for duplicate in row["duplicates"] or ():
        existing[(duplicate["touchpoint_id"], duplicate["idempotency_key"])] = duplicate
    return Claims(
        existing=existing,
        owners={(kind, value): uuid.UUID(cid) for kind, value, cid in row["owners"]},
        erased={by_hash[h] for h in row["erased"] if h in by_hash},
        channels={uuid.UUID(key): value for key, value in row["channels"].items()},
        rules={(itype, channel): stage for itype, channel, stage in row["rules"]},
        customers=customers,
        segments=[(key, revision) for key, revision in row["segments"]],
        stable=stable,
        vocabulary=(row["vocabulary"][0], row["vocabulary"][1]) if row["vocabulary"] else None,
    )


async def record(
    sql: IngestSql,
    items: Sequence[InteractionInput],
    settings: Settings,
    *,
    actor: str = "ingest",
    prefailed: dict[int, HubError] | None = None,
    audit: AuditRow | None = None,
) -> list[ItemResult]:
    """Record ``items`` in the caller's transaction; one result per item, in input order.

    ``prefailed`` carries items the caller already rejected (e.g. a malformed id), by index.
    ``audit`` is the caller's audit row, written by the store statement when there is one (see
    ``hub.ingest.store``); ``stored_any(results)`` tells whether there was.
    """
    now = datetime.now(UTC)
    results = [ItemResult(index=i) for i in range(len(items))]
    # Items are checked against this process's vocabulary snapshot, and CLAIMS says whether it
    # is still the database's: if not (a type or kind defined since, by any process), the fresh
    # vocabulary is read and every item checked again (once per change per process). So the
    # common call costs no round trip for the vocabulary (tests/compiled/test_ingest_statements).
    vocabulary = latest()
    checked = _validate_all(items, results, prefailed, settings, now, vocabulary)
    if not checked:
        if not any(isinstance(r.error, UnknownCode) for r in results):
            return results
        fresh = await current(sql)  # nothing valid: a code this process has not seen yet?
        if fresh is vocabulary:
            return results
        vocabulary = fresh
        checked = _validate_all(items, results, prefailed, settings, now, vocabulary)
        if not checked:
            return results
    identifiers = {key for d in checked for key in d.identities}
    locks = _lock_keys(checked, identifiers)
    await sql.lock(sorted(locks))
    claims = await _read_claims(sql, checked, identifiers)
    if claims.vocabulary != _state(vocabulary):
        vocabulary = await current(sql)
        checked = _validate_all(items, results, prefailed, settings, now, vocabulary)
        if not checked:
            return results
        identifiers = {key for d in checked for key in d.identities}
        # Locks for items valid only now, after the first ones (not in one sorted order: a
        # deadlock is possible in principle, then PostgreSQL aborts one side and the ingest's
        # retry of deadlocks runs it again; this happens once per vocabulary change).
        more = _lock_keys(checked, identifiers) - locks
        if more:
            await sql.lock(sorted(more))
        claims = await _read_claims(sql, checked, identifiers)
    drafts: list[Draft] = []
    for draft in checked:
        channel = claims.channels.get(draft.touchpoint_id)
        if channel is None:
            message = f"no touchpoint with id {str(draft.touchpoint_id)!r}"
            results[draft.index].error = NotFound(message)
        else:
            drafts.append(replace(draft, channel_code=channel))
    if not drafts:
        return results
    owners = claims.owners
    drafts = _answer_stored(drafts, claims.existing, results)
    # An identifier nobody holds may have belonged to an erased person: it must not be stored
    # or used to link again (the person asked to be forgotten).
    drafts = _one_per_event(drafts, claims.erased - owners.keys(), results)
    if not drafts:
        return results
    plan = await _plan(sql, drafts, settings, now, results, actor, claims)
    rows = await store_plan(sql, plan, results, now, audit)
    touched = Touched()
    for r in results:
        if r.customer_id is not None and not r.duplicate and r.error is None:
            touched.add(r.customer_id, r.interaction, created=r.created)
        for merge in r.merges:
            touched.everything.update([merge["survivor_id"], *merge["merged_ids"]])
    # Computed traits and segment membership of every customer the batch touched (every ingest
    # path ends here) are the audiences drainer's (hub.audiences.queue): queued in this
    # transaction when a definition exists. The claims statement listed the segments and the
    # store statement said which computed traits exist (read after the locks, which hold the
    # definitions lock shared): no round trip when there are none.
    version = rows[0]["traits_version"] if rows else None
    if claims.segments or version != "":
        await enqueue(sql, touched)
    return results


def _state(vocabulary: Vocabulary) -> tuple[str, str] | None:
    if vocabulary.epoch is None:
        return None
    return (str(vocabulary.epoch), str(vocabulary.version))


def _lock_keys(checked: list[Draft], identifiers: set[IdentifierKey]) -> set[int]:
    return {lock_key("identity", *key) for key in identifiers} | {
        lock_key("idempotency", str(d.touchpoint_id), d.idempotency_key)
        for d in checked
        if d.idempotency_key is not None
    }


def _validate_all(
    items: Sequence[InteractionInput],
    results: list[ItemResult],
    prefailed: dict[int, HubError] | None,
    settings: Settings,
    now: datetime,
    vocabulary: Vocabulary,
) -> list[Draft]:
    """Each item checked (its error, if any, in ``results``); the valid ones as drafts."""
    checked: list[Draft] = []
    for i in range(len(items)):
        failed = (prefailed or {}).get(i)
        results[i].error = failed
        if failed is not None:
            continue
        try:
            # The channel is filled in once the touchpoint has been read.
            checked.append(validate(items[i], i, "", settings, now, vocabulary))
        except HubError as error:
            results[i].error = error
    return checked


class ErasedIdentity(HubError):
    code = "ERASED_IDENTITY"


def _answer_stored(
    drafts: list[Draft],
    existing: dict[tuple[uuid.UUID, str], Any],
    results: list[ItemResult],
) -> list[Draft]:
    """Answer drafts whose (touchpoint, key) was stored before with that interaction (a
    duplicate); the rest go on."""
    kept: list[Draft] = []
    for draft in drafts:
        key = (draft.touchpoint_id, draft.idempotency_key or "")
        row = existing.get(key) if draft.idempotency_key is not None else None
        if row is None:
            kept.append(draft)
            continue
        results[draft.index].interaction = row
        results[draft.index].customer_id = row["customer_id"]
        results[draft.index].duplicate = True
    return kept


def _one_per_event(
    drafts: list[Draft], erased: set[IdentifierKey], results: list[ItemResult]
) -> list[Draft]:
    """The drafts to store: erased identifiers removed, and one draft per event (touchpoint,
    idempotency key) — the first that keeps an identifier; the event's other items are its
    duplicates (their interaction filled in after the write), as a retry of the batch would
    answer them. A draft left without identifiers is refused when no item of its event is
    stored (whichever of them came first)."""
    kept: list[Draft] = []
    stored_by: dict[tuple[uuid.UUID, str], int] = {}
    for draft in drafts:
        identities = tuple(key for key in draft.identities if key not in erased)
        event = (draft.touchpoint_id, draft.idempotency_key or "")
        if identities and (draft.idempotency_key is None or event not in stored_by):
            kept.append(replace(draft, identities=identities))
            if draft.idempotency_key is not None:
                stored_by[event] = draft.index
    chosen = {draft.index for draft in kept}
    for draft in drafts:
        if draft.index in chosen:
            continue
        event = (draft.touchpoint_id, draft.idempotency_key or "")
        if draft.idempotency_key is not None and event in stored_by:
            results[draft.index].duplicate = True
            results[draft.index].interaction = stored_by[event]  # resolved after the write
        else:
            results[draft.index].error = ErasedIdentity(
                "every identifier of this interaction belonged to a customer whose data was "
                "erased on request; it is not linked again. Record it with another identifier "
                "the person gives you anew."
            )
    return kept


async def _load_state(
    sql: IngestSql, keys: set[IdentifierKey], claims: Claims | None
) -> tuple[dict[IdentifierKey, uuid.UUID], dict[uuid.UUID, CustomerState], bool]:
    """Who holds each identifier and the holders locked FOR NO KEY UPDATE (read again unless
    ``claims`` has them); False if one was merged away meanwhile (a concurrent manual merge):
    start again."""
    if claims is None:
        claims = await _read_claims(sql, [], keys)
    return claims.owners, claims.customers, claims.stable


async def _plan(
    sql: IngestSql,
    drafts: list[Draft],
    settings: Settings,
    now: datetime,
    results: list[ItemResult],
    actor: str,
    first: Claims,
) -> BatchPlan:
    """Plan; when the plan merges existing customers, merge them first and plan again."""
    guards = Guards(frozenset(settings.weak_identity_kinds), settings.max_identities_per_kind)
    keys = {key for d in drafts for key in d.identities}
    rules = first.rules
    known: Claims | None = first
    for _ in range(MAX_RESOLUTION_ROUNDS):
        owners, customers, stable = await _load_state(sql, keys, known)
        known = None  # later rounds read the identities again
        if not stable:
            continue
        plan = plan_batch(drafts, owners, customers, rules, guards, now)
        if not plan.merges:
            return plan
        connection = sql.merge_connection
        if connection is None:
            raise NeedsMerge(f"{len(plan.merges)} merge(s) planned")
        for merge in plan.merges:
            survivor = merge.survivor_id
            merged_row = await merge_customers(
                connection,
                survivor,
                list(merge.merged_ids),
                settings,
                rule="IDENTITY_MATCH",
                identity=merge.identity,
                actor=actor,
            )
            results[merge.index].merges.append(merged_row)
            # Segment membership of the merged-away customers (they leave their segments) and
            # the survivor; the survivor is evaluated again once the batch is stored.
            await on_customers_changed(
                sql,
                [survivor, *merge.merged_ids],
                reason=ChangeReason.MERGE,
                locked=True,  # ingest's lock statement holds the definitions lock shared
                segments=first.segments,
            )
    raise Conflict("identity resolution did not settle (too many concurrent merges); retry")
