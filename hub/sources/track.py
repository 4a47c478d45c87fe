"""Storing a request of tracking messages: one transaction, each message reported on its own.

Messages are translated (``hub.sources.segment``) with the event mappings read once per
request, then stored in message order: a run of consecutive interactions (track, page, screen)
goes through the batch ingest path (``hub.ingest.record.record``: identity resolution, journeys,
conversations, outbox events, ``messageId`` as the idempotency key on the source's touchpoint);
each profile change (identify, alias, group) finds or creates its customer, links its
identifiers and applies its traits with survivorship (``hub.identity.profiles``). Each part runs
in a savepoint, so one that fails is rolled back alone and reported for its messages. Then, in
the same transaction: the unmapped events' counters, one ``source_rejections`` row per message
that was not stored, and the request's audit row.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.access.keys import Principal
from hub.audiences.refresh import ChangeReason, on_customers_changed
from hub.core.errors import HubError
from hub.core.settings import Settings
from hub.core.text import storable, unstorable
from hub.db.statements import AlchemySql, DriverSql, Statement
from hub.db.transactions import retry_conflicts
from hub.identity.identifiers import normalize_identities
from hub.identity.profiles import create_customer, update_traits
from hub.ingest.record import ErasedIdentity, NeedsMerge, record
from hub.ingest.store import ItemResult
from hub.models import AUDIT_LOG, SOURCE_REJECTIONS
from hub.privacy.consent import set_consent, stored_channel
from hub.privacy.erasure import is_erased_identifier
from hub.sources.mapping import (
    COUNT_UNMAPPED_SQL,
    MAPPINGS_SQL,
    MAX_EVENT_NAME,
    EventMapping,
    count_unmapped,
    identity_paths,
    load_mappings,
    mappings_of,
)
from hub.sources.segment import (
    INTERACTION_TYPES,
    ProfileChange,
    Translated,
    event_name,
    message_id,
    message_type,
    translate,
)
from hub.vocabulary.registry import current, unknown_code

logger = logging.getLogger("hub.sources")
# What a bare asyncpg connection raises when the database fails or refuses a statement.
DATABASE_FAULTS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


@dataclass
class Outcome:
    """What became of one message: ``stored``, ``duplicate`` (its messageId was stored
    before: nothing new), or ``rejected`` with a code and a reason."""

    index: int
    message_id: str | None
    message_type: str | None
    event: str | None
    status: str = "rejected"
    code: str | None = None
    reason: str | None = None

    def reject(self, error: HubError) -> None:
        self.status, self.code, self.reason = "rejected", error.code, error.message

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"index": self.index, "messageId": self.message_id}
        answer["status"] = self.status
        if self.status == "rejected":
            answer["code"] = self.code
            answer["message"] = self.reason
        return answer


def _outcome(index: int, message: Any, forced: str | None) -> Outcome:
    try:
        kind: str | None = message_type(message, forced)
    except HubError:
        kind = None
    return Outcome(index, message_id(message), kind, event_name(message))


async def apply_profile(
    connection: AsyncConnection, change: ProfileChange, settings: Settings, actor: str = "cli"
) -> None:
    """Find or create the customer holding ``change``'s identifiers (erased ones are not
    linked again), link them, apply its traits with survivorship and its consents (each only
    when it differs from the current one: a re-run adds no consent history)."""
    vocabulary = await current(AlchemySql(connection))
    keys = normalize_identities(change.identities, settings, vocabulary.normalisers)
    kept = []
    for kind, value in keys:
        held = await connection.scalar(
            sa.text("SELECT 1 FROM identities WHERE kind = :kind AND value = :value"),
            {"kind": kind, "value": value},
        )
        if held or not await is_erased_identifier(connection, kind, value):
            kept.append((kind, value))
    if not kept:
        raise ErasedIdentity(
            "every identifier of this message belonged to a customer whose data was erased on "
            "request; it is not linked again"
        )
    row, _created = await create_customer(connection, kept, settings)
    if change.traits or change.display_name:
        await update_traits(
            connection,
            row["id"],
            change.traits,
            settings,
            observed_at=change.observed_at,
            display_name=change.display_name,
        )
    for consent in change.consents:
        if consent.purpose not in vocabulary.consent_purposes:
            raise unknown_code("consentPurpose", consent.purpose)
        stored = (
            await connection.execute(
                sa.text(
                    "SELECT status, expires_at, source FROM consents WHERE customer_id = :id"
                    " AND purpose = :purpose AND channel = :channel"
                ),
                {
                    "id": row["id"],
                    "purpose": consent.purpose,
                    "channel": stored_channel(consent.channel),
                },
            )
        ).first()
        wanted = (consent.status.value, consent.expires_at, consent.source)
        if stored is not None and tuple(stored) == wanted:
            continue
        await set_consent(
            connection,
            customer_id=row["id"],
            purpose=consent.purpose,
            channel=consent.channel,
            status=consent.status,
            source=consent.source,
            expires_at=consent.expires_at,
            changed_by=actor,
        )
    await on_customers_changed(connection, [row["id"]], reason=ChangeReason.PROFILE)


def _runs(translated: Sequence[tuple[int, Translated]]) -> list[list[tuple[int, Translated]]]:
    """Consecutive interactions together (one batch), each profile change on its own."""
    runs: list[list[tuple[int, Translated]]] = []
    for item in translated:
        if item[1].interaction is not None and runs and runs[-1][0][1].interaction is not None:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def rejection_rows(
    principal: Principal, touchpoint: uuid.UUID, outcomes: Sequence[Outcome]
) -> list[dict[str, Any]]:
    """The ``source_rejections`` rows of a request's rejected messages (never their content)."""
    return [
        storable(
            {
                "key_id": principal.key_id,
                "source": principal.name,
                "touchpoint_id": touchpoint,
                "message_id": o.message_id,
                "message_type": o.message_type,
                "event": (o.event or "")[:200] or None,
                "code": o.code or "BAD_MESSAGE",
                "reason": (o.reason or "")[:1000],
            }
        )
        for o in outcomes
        if o.status == "rejected"
    ]


def audit_row(
    principal: Principal, touchpoint: uuid.UUID, outcomes: Sequence[Outcome], endpoint: str
) -> dict[str, Any]:
    """The request's audit row: the key, the touchpoint, the counts."""
    counts = Counter(o.status for o in outcomes)
    return {
        "key_id": principal.key_id,
        "actor": storable(principal.name),
        "role": principal.role.value,
        "action": f"tracking {endpoint}",
        "target_ids": [str(touchpoint)],
        "success": not counts["rejected"],
        "details": {"messages": len(outcomes), **counts},
    }


def _translate_all(
    messages: Sequence[Any],
    forced: str | None,
    touchpoint: uuid.UUID,
    mappings: Mapping[str, EventMapping],
    settings: Settings,
    outcomes: list[Outcome],
    text_checked: bool,
) -> list[tuple[int, Translated]]:
    paths = identity_paths(settings.source_identity_map)
    translated: list[tuple[int, Translated]] = []
    for index, message in enumerate(messages):
        try:
            item = translate(message, forced, touchpoint, mappings, paths, text_checked)
        except HubError as error:
            outcomes[index].reject(error)
        else:
            translated.append((index, item))
    return translated


def _settle(
    run: Sequence[tuple[int, Translated]],
    results: Sequence[ItemResult],
    outcomes: list[Outcome],
    unmapped: Counter[str],
) -> None:
    """Each message of ``run`` gets its ingest result; stored unmapped events are counted."""
    for (index, item), result in zip(run, results, strict=True):
        if result.error is not None:
            outcomes[index].reject(result.error)
        elif result.duplicate:
            outcomes[index].status = "duplicate"
        else:
            outcomes[index].status = "stored"
            if item.unmapped and item.event:
                unmapped[item.event] += 1


async def _store(
    connection: AsyncConnection,
    principal: Principal,
    touchpoint: uuid.UUID,
    messages: Sequence[Any],
    forced: str | None,
    settings: Settings,
    endpoint: str,
    text_checked: bool,
) -> list[Outcome]:
    outcomes = [_outcome(i, m, forced) for i, m in enumerate(messages)]
    mappings = await load_mappings(connection, _event_names(outcomes))
    translated = _translate_all(
        messages, forced, touchpoint, mappings, settings, outcomes, text_checked
    )
    unmapped: Counter[str] = Counter()
    for run in _runs(translated):
        first = run[0][1]
        if first.profile is not None:
            try:
                async with connection.begin_nested():
                    await apply_profile(connection, first.profile, settings, principal.name)
                outcomes[run[0][0]].status = "stored"
            except HubError as error:
                outcomes[run[0][0]].reject(error)
            continue
        inputs = [t.interaction for _, t in run if t.interaction is not None]
        try:
            async with connection.begin_nested():
                results = await record(
                    AlchemySql(connection), inputs, settings, actor=principal.name
                )
        except HubError as error:
            for index, _ in run:
                outcomes[index].reject(error)
            continue
        _settle(run, results, outcomes, unmapped)
    await count_unmapped(connection, unmapped)
    rejections = rejection_rows(principal, touchpoint, outcomes)
    if rejections:
        await connection.execute(SOURCE_REJECTIONS.insert(), rejections)
    await connection.execute(
        AUDIT_LOG.insert().values(**audit_row(principal, touchpoint, outcomes, endpoint))
    )
    return outcomes


def _event_names(outcomes: Sequence[Outcome]) -> list[str]:
    """The event names to look up: only those a track message may carry (a NUL in a name
    would fail the lookup itself; the message is rejected by its translation)."""
    return [
        o.event
        for o in outcomes
        if o.message_type == "track"
        and o.event
        and len(o.event) <= MAX_EVENT_NAME
        and unstorable(o.event) is None
    ]


_MAPPINGS = Statement.named(MAPPINGS_SQL)
_COUNT = Statement.named(COUNT_UNMAPPED_SQL)
_REJECTION = (
    "INSERT INTO source_rejections (key_id, source, touchpoint_id, message_id, message_type,"
    " event, code, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
_AUDIT = (
    "INSERT INTO audit_log (key_id, actor, role, action, target_ids, success, details)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_REJECTION_COLUMNS = (
    "key_id",
    "source",
    "touchpoint_id",
    "message_id",
    "message_type",
    "event",
    "code",
    "reason",
)


async def _store_on_driver(
    pool: Any,
    principal: Principal,
    touchpoint: uuid.UUID,
    messages: Sequence[Any],
    forced: str | None,
    settings: Settings,
    endpoint: str,
    text_checked: bool,
) -> list[Outcome] | None:
    """A request of interactions only (track, page, screen) on a bare asyncpg connection of the
    compiled ingest's pool (``recordInteractions``' own path): no SQLAlchemy, no savepoint, the
    mappings read before BEGIN, the advisory locks sent with BEGIN. None — rolled back, nothing
    written — when the SQLAlchemy path must take it: a profile change, a planned merge of
    existing customers (``NeedsMerge``), an error of the whole batch, a database failure before
    COMMIT (that path then answers 503 if the database is really gone)."""
    outcomes = [_outcome(i, m, forced) for i, m in enumerate(messages)]
    if any(o.message_type not in INTERACTION_TYPES for o in outcomes):
        return None  # profile changes (or unknown types: the other path reports them)
    connection = await pool.acquire()
    try:
        try:
            names = sorted(set(_event_names(outcomes)))
            mappings: dict[str, EventMapping] = {}
            if names:
                rows = await DriverSql(connection).fetch(_MAPPINGS, {"names": names})
                mappings = mappings_of(rows)
            translated = _translate_all(
                messages, forced, touchpoint, mappings, settings, outcomes, text_checked
            )
            if not translated:
                return None
            sql = DriverSql(connection, begin=True)
            results = await record(
                sql,
                [t.interaction for _, t in translated if t.interaction is not None],
                settings,
                actor=principal.name,
            )
            if not connection.is_in_transaction():
                await connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            unmapped: Counter[str] = Counter()
            _settle(translated, results, outcomes, unmapped)
            if unmapped:
                counted = sorted(unmapped)
                await sql.fetch(
                    _COUNT, {"names": counted, "counts": [unmapped[n] for n in counted]}
                )
            rejections = rejection_rows(principal, touchpoint, outcomes)
            if rejections:
                await connection.executemany(
                    _REJECTION, [[r[c] for c in _REJECTION_COLUMNS] for r in rejections]
                )
            audit = audit_row(principal, touchpoint, outcomes, endpoint)
            await connection.execute(
                _AUDIT,
                audit["key_id"],
                audit["actor"],
                audit["role"],
                audit["action"],
                audit["target_ids"],
                audit["success"],
                orjson.dumps(audit["details"]).decode(),
            )
        except (NeedsMerge, HubError, *DATABASE_FAULTS):
            await _quiet_rollback(connection)
            return None
        except BaseException:
            await _quiet_rollback(connection)
            raise
        # A failure of COMMIT itself is raised (it may have committed): the endpoint answers
        # 503 and the SDK's retry is made safe by the message ids.
        await connection.execute("COMMIT")
        return outcomes
    finally:
        await pool.release(connection)


async def _quiet_rollback(connection: Any) -> None:
    try:
        if connection.is_in_transaction():
            await connection.execute("ROLLBACK")
    except Exception:  # a lost connection: the server rolls back by itself
        logger.debug("rollback failed", exc_info=True)


async def store_messages(
    engine: AsyncEngine,
    principal: Principal,
    messages: Sequence[Any],
    forced_type: str | None,
    settings: Settings,
    endpoint: str,
    *,
    pool: Any = None,
    text_checked: bool = False,
) -> list[Outcome]:
    """Store a request's messages for a SOURCE ``principal`` (its touchpoint) in one transaction
    (run again on a transaction conflict); one outcome per message, in order. ``pool``: the
    compiled ingest's asyncpg pool, tried first for a request of interactions only.
    ``text_checked``: the caller made sure no text in the messages is unstorable (NUL, lone
    surrogates), so each message need not be walked for it."""
    touchpoint = principal.source_touchpoint
    if touchpoint is None:
        raise ValueError("only a SOURCE principal sends tracking messages")
    if pool is not None:
        fast = await _store_on_driver(
            pool, principal, touchpoint, messages, forced_type, settings, endpoint, text_checked
        )
        if fast is not None:
            return fast

    async def attempt() -> list[Outcome]:
        async with engine.begin() as connection:
            return await _store(
                connection,
                principal,
                touchpoint,
                messages,
                forced_type,
                settings,
                endpoint,
                text_checked,
            )

    return await retry_conflicts(attempt)


def answer_body(outcomes: Sequence[Outcome]) -> bytes:
    """Segment's ``{"success": true}``, with every message's outcome; on rejections also the
    ``code``/``message`` pair Segment's SDKs report (analytics-python's APIError)."""
    rejected = [o for o in outcomes if o.status == "rejected"]
    body: dict[str, Any] = {
        "success": not rejected,
        "stored": sum(o.status == "stored" for o in outcomes),
        "duplicates": sum(o.status == "duplicate" for o in outcomes),
        "rejected": len(rejected),
        "messages": [o.as_json() for o in outcomes],
    }
    if rejected:
        first = rejected[0]
        body["code"] = "MESSAGES_REJECTED"
        body["message"] = (
            f"{len(rejected)} of {len(outcomes)} messages rejected (the others were stored); "
            f"first: message {first.index} ({first.message_id}): {first.code}: {first.reason}"
        )
    return orjson.dumps(body)
