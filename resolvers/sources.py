"""Tracking sources (docs/sources.md): the event mappings, unmapped events and the rejection log,
for ADMIN keys. The tracking API itself is HTTP, not GraphQL (``hub.http.tracking``)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import strawberry

from hub.context import Info
from hub.core.enums import Direction
from hub.db.rows import fetch_all
from hub.models import SOURCE_EVENT_MAPPINGS, SOURCE_REJECTIONS, SOURCE_UNMAPPED_EVENTS
from hub.reads.paging import page_size
from hub.schema.enums import InteractionType
from hub.schema.permissions import IsAdmin
from hub.schema.sources import SourceEventMapping, SourceRejection, UnmappedEvent
from hub.sources.mapping import set_mapping


def _first(info: Info, first: int) -> int:
    return page_size(info.context.settings, first)[0]


First = Annotated[int, strawberry.argument(description="How many (at most the page size limit).")]


@strawberry.type
class SourcesQuery:
    @strawberry.field(
        description="How tracked event names map to interaction types (ADMIN only).",
        permission_classes=[IsAdmin],
    )
    async def source_event_mappings(self, info: Info) -> list[SourceEventMapping]:
        rows = await fetch_all(
            info.context.engine,
            sa.select(SOURCE_EVENT_MAPPINGS).order_by(SOURCE_EVENT_MAPPINGS.c.event),
        )
        return [SourceEventMapping.from_row(row) for row in rows]

    @strawberry.field(
        description=(
            "Tracked event names with no mapping, most frequent first: map them with "
            "setSourceEventMapping (ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def unmapped_events(self, info: Info, first: First = 50) -> list[UnmappedEvent]:
        c = SOURCE_UNMAPPED_EVENTS.c
        rows = await fetch_all(
            info.context.engine,
            sa.select(SOURCE_UNMAPPED_EVENTS)
            .where(~sa.exists().where(SOURCE_EVENT_MAPPINGS.c.event == c.event))
            .order_by(c.count.desc(), c.event)
            .limit(_first(info, first)),
        )
        return [
            UnmappedEvent(
                event=row["event"],
                count=row["count"],
                first_seen_at=row["first_seen_at"],
                last_seen_at=row["last_seen_at"],
            )
            for row in rows
        ]

    @strawberry.field(
        description="Tracking messages that could not be stored, newest first (ADMIN only).",
        permission_classes=[IsAdmin],
    )
    async def source_rejections(
        self,
        info: Info,
        first: First = 50,
        key_name: Annotated[
            str | None, strawberry.argument(description="Only from this SOURCE key (its name).")
        ] = None,
    ) -> list[SourceRejection]:
        c = SOURCE_REJECTIONS.c
        where = [] if key_name is None else [c.source == key_name]
        rows = await fetch_all(
            info.context.engine,
            sa.select(SOURCE_REJECTIONS)
            .where(*where)
            .order_by(c.at.desc(), c.id.desc())
            .limit(_first(info, first)),
        )
        return [SourceRejection.from_row(row) for row in rows]


@strawberry.type
class SourcesMutation:
    @strawberry.mutation(
        description=(
            "Map a tracked event name to an interaction type, from now on (interactions stored "
            "before keep their type; ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def set_source_event_mapping(
        self,
        info: Info,
        event: Annotated[str, strawberry.argument(description="The event name, as sent.")],
        type: Annotated[
            InteractionType, strawberry.argument(description="The interaction type it becomes.")
        ],
        direction: Annotated[
            Direction, strawberry.argument(description="The interactions' direction.")
        ] = Direction.INBOUND,
    ) -> SourceEventMapping:
        async with info.context.writer.begin() as connection:
            row = await set_mapping(
                connection, event, str(type), direction.value, info.context.principal.name
            )
        return SourceEventMapping.from_row(row)
