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

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.access.keys import Principal
from hub.core.errors import HubError
from hub.core.settings import Settings
from hub.core.text import storable
from hub.db.statements import AlchemySql
from hub.db.transactions import retry_conflicts
from hub.identity.identifiers import normalize_identities
from hub.identity.profiles import create_customer, update_traits
from hub.ingest.record import ErasedIdentity, record
from hub.models import AUDIT_LOG, SOURCE_REJECTIONS
from hub.privacy.erasure import is_erased_identifier
from hub.sources.mapping import count_unmapped, identity_paths, load_mappings
from hub.sources.segment import (
    ProfileChange,
    Translated,
    event_name,
    message_id,
    message_type,
    translate,
)
from hub.vocabulary.registry import current


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
    connection: AsyncConnection, change: ProfileChange, settings: Settings
) -> None:
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


def _runs(translated: Sequence[tuple[int, Translated]]) -> list[list[tuple[int, Translated]]]:
    """Consecutive interactions together (one batch), each profile change on its own."""
    runs: list[list[tuple[int, Translated]]] = []
    for item in translated:
        if item[1].interaction is not None and runs and runs[-1][0][1].interaction is not None:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


async def _store(
    connection: AsyncConnection,
    principal: Principal,
    touchpoint: uuid.UUID,
    messages: Sequence[Any],
    forced: str | None,
    settings: Settings,
    endpoint: str,
) -> list[Outcome]:
    outcomes = [_outcome(i, m, forced) for i, m in enumerate(messages)]
    names = [o.event for o in outcomes if o.message_type == "track" and o.event]
    mappings = await load_mappings(connection, names)
    paths = identity_paths(settings.source_identity_map)
    translated: list[tuple[int, Translated]] = []
    for index, message in enumerate(messages):
        try:
            translated.append((index, translate(message, forced, touchpoint, mappings, paths)))
        except HubError as error:
            outcomes[index].reject(error)
    unmapped: Counter[str] = Counter()
    for run in _runs(translated):
        first = run[0][1]
        if first.profile is not None:
            try:
                async with connection.begin_nested():
                    await apply_profile(connection, first.profile, settings)
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
        for (index, item), result in zip(run, results, strict=True):
            if result.error is not None:
                outcomes[index].reject(result.error)
            elif result.duplicate:
                outcomes[index].status = "duplicate"
            else:
                outcomes[index].status = "stored"
                if item.unmapped and item.event:
                    unmapped[item.event] += 1
    await count_unmapped(connection, unmapped)
    rejected = [o for o in outcomes if o.status == "rejected"]
    if rejected:
        await connection.execute(
            SOURCE_REJECTIONS.insert(),
            [
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
                for o in rejected
            ],
        )
    counts = Counter(o.status for o in outcomes)
    await connection.execute(
        AUDIT_LOG.insert().values(
            key_id=principal.key_id,
            actor=storable(principal.name),
            role=principal.role.value,
            action=f"tracking {endpoint}",
            target_ids=[str(touchpoint)],
            success=not rejected,
            details={"messages": len(outcomes), **counts},
        )
    )
    return outcomes


async def store_messages(
    engine: AsyncEngine,
    principal: Principal,
    messages: Sequence[Any],
    forced_type: str | None,
    settings: Settings,
    endpoint: str,
) -> list[Outcome]:
    """Store a request's messages for a SOURCE ``principal`` (its touchpoint) in one transaction
    (run again on a transaction conflict); one outcome per message, in order."""
    touchpoint = principal.source_touchpoint
    if touchpoint is None:
        raise ValueError("only a SOURCE principal sends tracking messages")

    async def attempt() -> list[Outcome]:
        async with engine.begin() as connection:
            return await _store(
                connection, principal, touchpoint, messages, forced_type, settings, endpoint
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
