"""Interactions: one thing that happened between a customer and the business at a touchpoint."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from hub.context import Info
from hub.core.ids import to_global_id, uuid_from_global_id
from hub.db.rows import Record
from hub.loaders.interaction_rows import touchpoint_of
from hub.loaders.interactions import CountKey, PageKey
from hub.reads.interactions import (
    InteractionFilterSpec,
    InteractionPage,
    decode_interaction_cursor,
    interaction_cursor,
)
from hub.reads.paging import page_size
from hub.schema.channel import Channel, Touchpoint
from hub.schema.enums import ChannelCode, Direction, InteractionType
from hub.schema.node import Node
from hub.schema.pagination import Connection, Edge, PageInfo
from hub.schema.permissions import PersonalData, free_text_mask, json_mask, not_personal

if TYPE_CHECKING:
    from hub.schema.conversation import Conversation
    from hub.schema.customer import Customer


@strawberry.enum(description="Orders of an interaction list.")
class InteractionOrderBy(Enum):
    OCCURRED_AT_DESC = strawberry.enum_value("OCCURRED_AT_DESC", description="Newest first.")
    OCCURRED_AT_ASC = strawberry.enum_value("OCCURRED_AT_ASC", description="Oldest first.")


@strawberry.input(description="Narrows an interaction list; every given field must match.")
class InteractionFilter:
    channels: list[ChannelCode] | None = strawberry.field(
        default=None, description="Only on these channels."
    )
    touchpoint_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only at these touchpoints (their ids)."
    )
    types: list[InteractionType] | None = strawberry.field(
        default=None, description="Only of these types."
    )
    directions: list[Direction] | None = strawberry.field(
        default=None, description="Only in these directions."
    )
    occurred_after: datetime | None = strawberry.field(
        default=None, description="Only at or after this moment."
    )
    occurred_before: datetime | None = strawberry.field(
        default=None, description="Only before this moment."
    )


InteractionFilterArg = Annotated[
    InteractionFilter | None,
    strawberry.argument(description="Only interactions matching this filter."),
]
InteractionOrderArg = Annotated[
    InteractionOrderBy | None,
    strawberry.argument(description="Newest first unless OCCURRED_AT_ASC."),
]


def filter_spec(filter: InteractionFilter | None) -> InteractionFilterSpec:
    return InteractionFilterSpec.of(filter)


@strawberry.federation.type(
    keys=["id"],
    description=(
        "One thing that happened between a customer and the business at a touchpoint: a page "
        "view, a chat message, a call, an order, a campaign e-mail."
    ),
)
class Interaction(Node):
    row_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]
    touchpoint_id: strawberry.Private[uuid.UUID]
    channel_code: strawberry.Private[str]
    conversation_id: strawberry.Private[uuid.UUID | None]
    # The touchpoint's columns when the row was read with them (see loaders.interaction_rows).
    touchpoint_row: strawberry.Private[dict[str, Any] | None]
    occurred_at: datetime = strawberry.field(description="When it happened.")
    type: InteractionType = strawberry.field(description="What happened.")
    direction: Direction = strawberry.field(description="Who started it.")
    summary: str | None = strawberry.field(
        description="Free-text summary or message text; masked without `pii`.",
        extensions=[PersonalData()],
    )
    sentiment: float | None = strawberry.field(
        description="Sentiment from -1 (negative) to 1 (positive), when known."
    )
    outcome: str | None = strawberry.field(
        description="How it ended, when known.", extensions=[PersonalData(free_text_mask)]
    )
    agent: str | None = strawberry.field(
        description="The agent or bot that handled it.",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )
    attributes: JSON = strawberry.field(
        description="Free-form attributes from the channel; personal ones masked without `pii`.",
        extensions=[PersonalData(json_mask)],
    )

    @classmethod
    def from_row(cls, row: Record) -> Interaction:
        return cls(
            id=strawberry.ID(to_global_id("Interaction", str(row["id"]))),
            row_id=row["id"],
            customer_id=row["customer_id"],
            touchpoint_id=row["touchpoint_id"],
            channel_code=row["channel_code"],
            conversation_id=row["conversation_id"],
            touchpoint_row=touchpoint_of(row),
            occurred_at=row["occurred_at"],
            type=InteractionType(row["type"]),
            direction=Direction(row["direction"]),
            summary=row["summary"],
            sentiment=row["sentiment"],
            outcome=row["outcome"],
            agent=row["agent"],
            attributes=row["attributes"],
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Interaction | None:
        row = await info.context.loaders.interaction_by_id.load(
            uuid_from_global_id(id, "Interaction")
        )
        return cls.from_row(row) if row else None

    @strawberry.field(description="The touchpoint it happened at.")
    async def touchpoint(self, info: Info) -> Touchpoint:
        if self.touchpoint_row is not None:
            return Touchpoint.from_row(self.touchpoint_row)
        row = await info.context.loaders.touchpoint_by_id.load(self.touchpoint_id)
        assert row is not None  # foreign key
        return Touchpoint.from_row(row)

    @strawberry.field(description="The channel of its touchpoint.")
    async def channel(self, info: Info) -> Channel:
        row = await info.context.loaders.channel_by_code.load(self.channel_code)
        assert row is not None  # foreign key
        return Channel.from_row(row)

    @strawberry.field(description="The customer it belongs to.")
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("hub.schema.customer")]:
        from hub.schema.customer import load_customer

        customer = await load_customer(info, self.customer_id)
        assert customer is not None  # foreign key
        return customer

    @strawberry.field(description="The conversation it is part of, if any.")
    async def conversation(
        self, info: Info
    ) -> Annotated[Conversation, strawberry.lazy("hub.schema.conversation")] | None:
        if self.conversation_id is None:
            return None
        from hub.schema.conversation import Conversation

        row = await info.context.loaders.conversation_by_id.load(self.conversation_id)
        return Conversation.from_row(row) if row else None


def build_page(
    info: Info,
    first: int | None,
    after: str | None,
    filter: InteractionFilter | None,
    order_by: InteractionOrderBy | None,
) -> InteractionPage:
    size, _ = page_size(info.context.settings, first, None, after, None)
    newest_first = order_by != InteractionOrderBy.OCCURRED_AT_ASC
    return InteractionPage(
        limit=size,
        newest_first=newest_first,
        after=decode_interaction_cursor(after, newest_first) if after is not None else None,
        filter=filter_spec(filter),
    )


def interaction_connection(
    rows: list[Record], page: InteractionPage, count: Any
) -> Connection[Interaction]:
    visible = rows[: page.limit]
    edges = [
        Edge(cursor=interaction_cursor(row, page.newest_first), node=Interaction.from_row(row))
        for row in visible
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > page.limit,
            has_previous_page=page.after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


async def owned_interactions(
    info: Info,
    owner_id: uuid.UUID,
    pages: DataLoader[PageKey, list[Record]],
    counts: DataLoader[CountKey, int],
    *,
    first: int | None,
    after: str | None,
    filter: InteractionFilter | None,
    order_by: InteractionOrderBy | None,
) -> Connection[Interaction]:
    """A page of the interactions of one customer or touchpoint, batched across owners."""
    page = build_page(info, first, after, filter, order_by)
    rows = await pages.load((owner_id, page))

    async def count() -> int:
        return await counts.load((owner_id, page.filter))

    return interaction_connection(rows, page, count)
