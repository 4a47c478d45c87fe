"""Channels (the six categories) and touchpoints (the concrete places inside them)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import to_global_id, uuid_from_global_id
from hub.db.rows import Record
from hub.schema.enums import ChannelCode, TouchpointKind
from hub.schema.node import Node
from hub.schema.pagination import Connection, PageAfter, PageFirst
from hub.schema.permissions import not_personal

if TYPE_CHECKING:
    from hub.schema.interaction import Interaction, InteractionFilter, InteractionOrderBy

LazyInteraction = Annotated["Interaction", strawberry.lazy("hub.schema.interaction")]
LazyInteractionFilter = Annotated["InteractionFilter", strawberry.lazy("hub.schema.interaction")]
LazyInteractionOrderBy = Annotated["InteractionOrderBy", strawberry.lazy("hub.schema.interaction")]


@strawberry.federation.type(
    keys=["code"], description="A broad category of engagement such as Web or Physical."
)
class Channel(Node):
    code: ChannelCode = strawberry.field(description="The channel's fixed code.")
    name: str = strawberry.field(
        description="Human-readable name.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    description: str = strawberry.field(
        description="What belongs in this channel.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    position: int = strawberry.field(description="Display order, 1 first.")

    @classmethod
    def from_row(cls, row: Record) -> Channel:
        return cls(
            id=strawberry.ID(to_global_id("Channel", row["code"])),
            code=ChannelCode(row["code"]),
            name=row["name"],
            description=row["description"],
            position=row["position"],
        )

    @classmethod
    async def resolve_reference(cls, info: Info, code: str) -> Channel | None:
        # Representations arrive as plain JSON: the code is a string that may be anything.
        if code not in ChannelCode.__members__:
            raise BadUserInput(f"{code!r} is not a channel code")
        row = await info.context.loaders.channel_by_code.load(code)
        return cls.from_row(row) if row else None

    @strawberry.field(description="The touchpoints of this channel, by business line and name.")
    async def touchpoints(self, info: Info) -> list[Touchpoint]:
        rows = await info.context.loaders.touchpoints_by_channel.load(self.code.value)
        return [Touchpoint.from_row(row) for row in rows]


@strawberry.federation.type(
    keys=["id"],
    description="One specific place inside a channel: a website, an app, a phone line, a store.",
)
class Touchpoint(Node):
    row_id: strawberry.Private[uuid.UUID]
    channel_code: strawberry.Private[str]
    name: str = strawberry.field(
        description="Name as the business calls it.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    kind: TouchpointKind = strawberry.field(description="What sort of touchpoint this is.")
    address: str | None = strawberry.field(
        description="Where it is reached: URL, app id, phone number, mailbox, handle or street.",
        metadata=not_personal(
            "where the business is reached (its site, line, store): not a customer's address"
        ),
    )
    business_line: str | None = strawberry.field(
        description="The business line or brand it serves, if it serves one.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    active: bool = strawberry.field(description="Whether it is in use.")

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Touchpoint:
        return cls(
            id=strawberry.ID(to_global_id("Touchpoint", str(row["id"]))),
            row_id=row["id"],
            channel_code=row["channel_code"],
            name=row["name"],
            kind=TouchpointKind(row["kind"]),
            address=row["address"],
            business_line=row["business_line"],
            active=row["active"],
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Touchpoint | None:
        row = await info.context.loaders.touchpoint_by_id.load(
            uuid_from_global_id(id, "Touchpoint")
        )
        return cls.from_row(row) if row else None

    @strawberry.field(description="The channel this touchpoint belongs to.")
    async def channel(self, info: Info) -> Channel:
        row = await info.context.loaders.channel_by_code.load(self.channel_code)
        assert row is not None  # foreign key
        return Channel.from_row(row)

    @strawberry.field(description="Interactions that happened at this touchpoint, newest first.")
    async def interactions(
        self,
        info: Info,
        first: PageFirst = None,
        after: PageAfter = None,
        filter: Annotated[
            LazyInteractionFilter | None,
            strawberry.argument(description="Only interactions matching this filter."),
        ] = None,
        order_by: Annotated[
            LazyInteractionOrderBy | None,
            strawberry.argument(description="Newest first unless OCCURRED_AT_ASC."),
        ] = None,
    ) -> Connection[LazyInteraction]:
        from hub.schema.interaction import owned_interactions

        loaders = info.context.loaders
        return await owned_interactions(
            info,
            self.row_id,
            loaders.interaction_page_by_touchpoint,
            loaders.interaction_count_by_touchpoint,
            first=first,
            after=after,
            filter=filter,
            order_by=order_by,
        )


@strawberry.input(description="A touchpoint to create (ADMIN).")
class CreateTouchpointInput:
    channel: ChannelCode = strawberry.field(
        description="The channel it belongs to (fixed once created)."
    )
    kind: TouchpointKind = strawberry.field(
        description="What sort of touchpoint it is: a registered touchpoint kind."
    )
    name: str = strawberry.field(description="Name as the business calls it (1-200 characters).")
    address: str | None = strawberry.field(
        default=None,
        description="Where it is reached: URL, app id, phone number, mailbox, handle or street.",
    )
    business_line: str | None = strawberry.field(
        default=None, description="The business line or brand it serves, if it serves one."
    )
    active: bool = strawberry.field(default=True, description="Whether it is in use.")


@strawberry.input(
    description=(
        "Changes to a touchpoint (ADMIN); omitted fields stay as they are. Its channel cannot "
        "change: its interactions, and partner keys' scopes, are on that channel."
    )
)
class UpdateTouchpointInput:
    id: strawberry.ID = strawberry.field(description="The touchpoint's id.")
    kind: TouchpointKind | None = strawberry.field(
        default=None, description="A registered touchpoint kind."
    )
    name: str | None = strawberry.field(default=None, description="Its new name.")
    address: str | None = strawberry.field(
        default=None, description="Its new address (an empty string clears it)."
    )
    business_line: str | None = strawberry.field(
        default=None, description="Its new business line (an empty string clears it)."
    )
    active: bool | None = strawberry.field(
        default=None, description="In use, or not (an inactive touchpoint still records)."
    )
