"""Types of the tracking sources (docs/sources.md): event mappings, unmapped events, rejections."""

from __future__ import annotations

from datetime import datetime

import strawberry

from hub.core.enums import Direction
from hub.core.ids import to_global_id
from hub.db.rows import Record
from hub.schema.enums import InteractionType
from hub.schema.permissions import PersonalData, free_text_mask, not_personal


@strawberry.type(description="A tracked event name and the interaction type it is stored as.")
class SourceEventMapping:
    event: str = strawberry.field(
        description="The event name as sources send it (Segment `track` `event`).",
        metadata=not_personal("an event name of the tracking plan, chosen by the business"),
    )
    type: InteractionType = strawberry.field(description="The interaction type it becomes.")
    direction: Direction = strawberry.field(description="The interactions' direction.")
    updated_at: datetime = strawberry.field(description="When the mapping was last set.")

    @classmethod
    def from_row(cls, row: Record) -> SourceEventMapping:
        return cls(
            event=row["event"],
            type=InteractionType(row["interaction_type"]),
            direction=Direction(row["direction"]),
            updated_at=row["updated_at"],
        )


@strawberry.type(
    description="A tracked event name with no mapping: stored as TRACKED_EVENT until mapped."
)
class UnmappedEvent:
    event: str = strawberry.field(
        description="The event name as sources send it.",
        metadata=not_personal("an event name of the tracking plan, chosen by the business"),
    )
    count: int = strawberry.field(description="How many interactions were stored under it.")
    first_seen_at: datetime = strawberry.field(description="When it was first stored.")
    last_seen_at: datetime = strawberry.field(description="When it was last stored.")


@strawberry.type(description="A tracking message that could not be stored, and why.")
class SourceRejection:
    at: datetime = strawberry.field(description="When it was refused.")
    source: str = strawberry.field(
        description="The name of the SOURCE key that sent it.",
        metadata=not_personal("names an API key of the business, not a customer"),
    )
    touchpoint_id: strawberry.ID | None = strawberry.field(description="The source's touchpoint.")
    message_id: str | None = strawberry.field(
        description="The message's `messageId`, when it had a usable one.",
        extensions=[PersonalData(free_text_mask)],
    )
    message_type: str | None = strawberry.field(
        description="identify, track, page, screen, alias or group (when readable).",
        metadata=not_personal("one of six Segment message types"),
    )
    event: str | None = strawberry.field(
        description="A track message's event name.",
        extensions=[PersonalData(free_text_mask)],
    )
    code: str = strawberry.field(
        description="Why, as a code (BAD_MESSAGE, BAD_USER_INPUT, ERASED_IDENTITY, ...).",
        metadata=not_personal("an error code"),
    )
    reason: str = strawberry.field(
        description="Why, in words.", extensions=[PersonalData(free_text_mask)]
    )

    @classmethod
    def from_row(cls, row: Record) -> SourceRejection:
        touchpoint = row["touchpoint_id"]
        return cls(
            at=row["at"],
            source=row["source"],
            touchpoint_id=(
                strawberry.ID(to_global_id("Touchpoint", str(touchpoint))) if touchpoint else None
            ),
            message_id=row["message_id"],
            message_type=row["message_type"],
            event=row["event"],
            code=row["code"],
            reason=row["reason"],
        )
