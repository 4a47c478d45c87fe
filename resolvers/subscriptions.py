"""Subscription fields: live partner feeds, resumable with `after: <cursor>`.

Each field is an async generator over ``event_stream``: replay from the outbox when `after` is
given, then the broker's live stream, with the seam deduplicated by position. Every event gets
fresh DataLoaders (the websocket context lives as long as the connection; a cached loader would
serve stale rows), shared by the subscriptions processing that same event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from typing import Annotated

import sqlalchemy as sa
import strawberry

from hub.access.keys import Role
from hub.access.policy import partner_sharing_allowed
from hub.audiences.queue import evaluated
from hub.context import Context, Info
from hub.core.errors import BadUserInput, ServiceUnavailable
from hub.core.ids import uuid_from_global_id
from hub.events.emit import EventKind
from hub.events.outbox import Position, StoredEvent, check_cursor, decode_cursor, read_after
from hub.events.payload import merged_ids
from hub.loaders.interactions import interactions_by_id
from hub.loaders.registry import build_loaders
from hub.schema.conversation import Conversation
from hub.schema.customer import SegmentFilter, load_customer
from hub.schema.events import (
    ConversationUpdatedEvent,
    CustomerMergedEvent,
    CustomerUpdatedEvent,
    InteractionRecordedEvent,
    InteractionRecordedFilter,
    JourneyStageChangedEvent,
    JourneyStageChangedFilter,
)
from hub.schema.interaction import Interaction

AFTER_DESCRIPTION = (
    "Resume after this cursor: first the events missed since (kept for the retention window, "
    "see docs), then live ones, none twice. Omit to start with the next event."
)


async def _replay(
    info: Info, position: Position, kinds: Collection[str]
) -> AsyncIterator[list[StoredEvent]]:
    """Committed events after ``position``, page by page, up to the current horizon."""
    batch = info.context.settings.events_batch_size
    while True:
        async with info.context.engine.connect() as connection:
            events = await read_after(connection, position, batch, kinds)
        if events:
            yield events
        if len(events) < batch:
            return
        position = events[-1].position


async def visible(context: Context, events: list[StoredEvent]) -> list[StoredEvent]:
    """The events this connection may receive: its partner scope, and for partners only
    customers who granted partner sharing (one consent query per batch)."""
    events = [event for event in events if context.event_scope.allows(event)]
    if not events or context.principal.role is not Role.PARTNER:
        return events
    customer_ids = [e.customer_id for e in events if e.customer_id is not None]
    async with context.engine.connect() as connection:
        sharing = await partner_sharing_allowed(connection, customer_ids)
    return [event for event in events if event.customer_id in sharing]


async def event_batches(
    info: Info, kinds: Collection[str], after: str | None
) -> AsyncIterator[list[StoredEvent]]:
    """Events of ``kinds`` the connection may see, in order and in batches (what is available
    at once): replay after ``after``, then live."""
    context = info.context
    if context.event_feed is not None:
        # A webhook: its worker feeds the events from the webhook's own cursor.
        async for batch in context.event_feed(kinds):
            yield await visible(context, batch)
        return
    broker = context.broker
    if broker is None:
        raise ServiceUnavailable("live events are not available in this process")
    position: Position | None = None
    if after is not None:
        position = decode_cursor(after)
        await check_cursor(context.engine, position, context.settings.events_retention_days)
        # Catch up first without a live queue, so a long backlog cannot overflow it.
        async for page in _replay(info, position, kinds):
            position = page[-1].position
            yield await visible(context, page)
    with broker.subscribe(kinds) as live:
        if position is not None:
            # Whatever committed between the catch-up and the subscription. Every event at or
            # below live.start is visible to this read; everything after it arrives live.
            async for page in _replay(info, position, kinds):
                position = page[-1].position
                yield await visible(context, page)
        async for batch in live.batches():
            fresh = []
            for event in batch:
                if position is not None and event.position <= position:
                    continue  # already replayed: the seam
                position = event.position
                fresh.append(event)
            fresh = await visible(context, fresh)
            if fresh:
                yield fresh


async def event_stream(
    info: Info, kinds: Collection[str], after: str | None
) -> AsyncIterator[StoredEvent]:
    """``event_batches`` one event at a time."""
    async for batch in event_batches(info, kinds, after):
        for event in batch:
            yield event


async def _prefetch_interactions(info: Info, batch: list[StoredEvent]) -> None:
    """One query for the interactions of a whole batch, memoized on the shared event objects
    (so concurrent subscriptions with the same access reuse it: keyed by the access, since a
    partner's read is filtered by row security and an admin's is not)."""
    key = _interaction_key(info)
    missing = [e for e in batch if key not in e.memo]
    ids = list({e.subject_id for e in missing if e.subject_id is not None})
    if ids:
        by_id = dict(zip(ids, await interactions_by_id(info.context.engine, ids), strict=True))
        for event in missing:
            event.memo[key] = by_id.get(event.subject_id)  # type: ignore[arg-type]


def _interaction_key(info: Info) -> tuple[str, object]:
    return ("interaction", info.context.event_scope.share_key)


def _event_loaders(info: Info, event: StoredEvent) -> None:
    """Fresh DataLoaders for this event, shared by every subscription with the same access that
    processes it: 1,000 subscribers with different filters still cost one batched query per
    relation per event, not 1,000 (which would also exhaust the connection pool)."""
    key = ("loaders", info.context.event_scope.share_key)
    loaders = event.memo.get(key)
    if loaders is None:
        loaders = event.memo[key] = build_loaders(info.context.engine)
    info.context.loaders = loaders


def _customer_uuid(value: strawberry.ID | None) -> uuid.UUID | None:
    return uuid_from_global_id(value, "Customer") if value is not None else None


async def _known_touchpoints(info: Info, ids: list[strawberry.ID] | None) -> set[uuid.UUID] | None:
    if ids is None:
        return None
    wanted = [uuid_from_global_id(t, "Touchpoint") for t in ids]
    rows = await info.context.loaders.touchpoint_by_id.load_many(wanted)
    unknown = [str(ids[i]) for i, row in enumerate(rows) if row is None]
    if unknown:
        raise BadUserInput(f"unknown touchpoint(s) in filter: {', '.join(unknown)}")
    return set(wanted)


_MEMBERSHIPS = sa.text(
    "SELECT customer_id, segment_key FROM segment_members"
    " WHERE customer_id = ANY(:ids) AND segment_key = ANY(:keys)"
)


async def _memberships(
    info: Info, segment: SegmentFilter | None, batch: list[StoredEvent]
) -> dict[uuid.UUID, set[str]]:
    """The segments (of those the filter names) each customer of the batch's interactions is a
    member of now: one query per batch, through the connection's engine (its row scope)."""
    if segment is None:
        return {}
    keys = sorted({*(segment.in_ or ()), *(segment.not_in or ())})
    key = _interaction_key(info)
    ids = list({row["customer_id"] for e in batch if (row := e.memo.get(key)) is not None})
    if not keys or not ids:
        return {}
    # Memberships follow ingest by one drain of the audiences queue: judge after it.
    await evaluated(info.context.engine, ids)
    async with info.context.engine.connect() as connection:
        rows = (await connection.execute(_MEMBERSHIPS, {"ids": ids, "keys": keys})).all()
    out: dict[uuid.UUID, set[str]] = {}
    for customer, segment_key in rows:
        out.setdefault(customer, set()).add(segment_key)
    return out


def _segment_matches(segment: SegmentFilter, member_of: set[str]) -> bool:
    """As ``CustomerFilter.segment``: in at least one of ``in``, in none of ``notIn``."""
    if segment.in_ is not None and not member_of & set(segment.in_):
        return False
    return not (segment.not_in and member_of & set(segment.not_in))


@strawberry.type(
    description="Live partner feeds. Each event carries an opaque, ordered `cursor`; see docs."
)
class Subscription:
    @strawberry.subscription(
        description="Each interaction as it is recorded, on any channel, optionally filtered."
    )
    async def interaction_recorded(
        self,
        info: Info,
        filter: Annotated[
            InteractionRecordedFilter | None,
            strawberry.argument(description="Only interactions matching this filter."),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[InteractionRecordedEvent, None]:
        f = filter or InteractionRecordedFilter()
        touchpoints = await _known_touchpoints(info, f.touchpoint_ids)
        customer_id = _customer_uuid(f.customer_id)
        channels = {c.value for c in f.channels} if f.channels is not None else None
        types = {str(t) for t in f.types} if f.types is not None else None
        stages = {s.value for s in f.stages} if f.stages is not None else None
        segment = f.segment
        async for batch in event_batches(info, [EventKind.INTERACTION_RECORDED], after):
            # Cheap checks on the event's own columns before any load.
            wanted = [
                event
                for event in batch
                if event.subject_id is not None
                and (channels is None or event.channel_code in channels)
                and (touchpoints is None or event.touchpoint_id in touchpoints)
                and (types is None or event.payload.get("type") in (None, *types))
            ]
            await _prefetch_interactions(info, wanted)
            memberships = await _memberships(info, segment, wanted)
            for event in wanted:
                row = event.memo.get(_interaction_key(info))
                if row is None:  # erased since, or hidden by row security
                    continue
                if types is not None and row["type"] not in types:
                    continue
                if customer_id is not None and row["customer_id"] != customer_id:
                    continue
                if segment is not None and not _segment_matches(
                    segment, memberships.get(row["customer_id"], set())
                ):
                    continue
                _event_loaders(info, event)
                info.context.loaders.interaction_by_id.prime(row["id"], row)
                if stages is not None:
                    customer = await load_customer(info, row["customer_id"])
                    if customer is None or customer.stage_code not in stages:
                        continue
                yield InteractionRecordedEvent(
                    cursor=event.position.cursor, interaction=Interaction.from_row(row)
                )

    @strawberry.subscription(description="Each change of a customer's journey stage.")
    async def journey_stage_changed(
        self,
        info: Info,
        filter: Annotated[
            JourneyStageChangedFilter | None,
            strawberry.argument(description="Only stage changes matching this filter."),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[JourneyStageChangedEvent, None]:
        f = filter or JourneyStageChangedFilter()
        customer_id = _customer_uuid(f.customer_id)
        stages = {s.value for s in f.stages} if f.stages is not None else None
        channels = {c.value for c in f.channels} if f.channels is not None else None
        async for event in event_stream(info, [EventKind.JOURNEY_STAGE_CHANGED], after):
            if customer_id is not None and event.customer_id != customer_id:
                continue
            if channels is not None and event.channel_code not in channels:
                continue
            change = JourneyStageChangedEvent.from_event(event)
            if stages is not None and change.stage_code not in stages:
                continue
            _event_loaders(info, event)
            yield change

    @strawberry.subscription(description="Each merge of two customers into one.")
    async def customer_merged(
        self,
        info: Info,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[CustomerMergedEvent, None]:
        async for event in event_stream(info, [EventKind.CUSTOMER_MERGED], after):
            _event_loaders(info, event)
            yield CustomerMergedEvent.from_event(event)

    @strawberry.subscription(
        description="The customer each time its profile, stage or identities change (live only)."
    )
    async def customer_updated(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The customer's id.")],
    ) -> AsyncGenerator[CustomerUpdatedEvent, None]:
        customer_id = uuid_from_global_id(id, "Customer")
        kinds = [
            EventKind.CUSTOMER_UPDATED,
            EventKind.JOURNEY_STAGE_CHANGED,
            EventKind.CUSTOMER_MERGED,
            EventKind.CUSTOMER_UNMERGED,
        ]
        async for event in event_stream(info, kinds, None):
            merged_away = customer_id in merged_ids(event.payload)
            if event.customer_id != customer_id and not merged_away:
                continue
            _event_loaders(info, event)
            customer = await load_customer(info, customer_id)
            if customer is not None:
                yield CustomerUpdatedEvent(cursor=event.position.cursor, customer=customer)

    @strawberry.subscription(
        description="The conversation each time it changes (new interaction, status; live only)."
    )
    async def conversation_updated(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The conversation's id.")],
    ) -> AsyncGenerator[ConversationUpdatedEvent, None]:
        conversation_id = uuid_from_global_id(id, "Conversation")
        async for event in event_stream(info, [EventKind.CONVERSATION_UPDATED], None):
            if event.subject_id != conversation_id:
                continue
            _event_loaders(info, event)
            row = await info.context.loaders.conversation_by_id.load(conversation_id)
            if row is not None:
                yield ConversationUpdatedEvent(
                    cursor=event.position.cursor, conversation=Conversation.from_row(row)
                )
