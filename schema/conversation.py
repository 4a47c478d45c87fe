"""Conversations: interactions sharing a key, possibly across channels."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from hub.context import Info
from hub.core.ids import to_global_id, uuid_from_global_id
from hub.db.rows import Record
from hub.schema.channel import Channel
from hub.schema.enums import ConversationStatus
from hub.schema.node import Node
from hub.schema.permissions import PersonalData, free_text_mask

if TYPE_CHECKING:
    from hub.schema.customer import Customer
    from hub.schema.interaction import Interaction


@strawberry.type(
    description="Interactions that belong together (a ticket, a thread), on one channel or many."
)
class Conversation(Node):
    row_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]
    key: str = strawberry.field(
        description="The key the channels use for it (ticket number...).",
        extensions=[PersonalData(free_text_mask)],
    )
    status: ConversationStatus = strawberry.field(description="Open or resolved.")
    started_at: datetime = strawberry.field(description="When its first interaction happened.")
    last_activity_at: datetime = strawberry.field(description="When its last interaction happened.")
    resolved_at: datetime | None = strawberry.field(description="When it was resolved, if it was.")

    @classmethod
    def from_row(cls, row: Record) -> Conversation:
        return cls(
            id=strawberry.ID(to_global_id("Conversation", str(row["id"]))),
            row_id=row["id"],
            customer_id=row["customer_id"],
            key=row["key"],
            status=ConversationStatus(row["status"]),
            started_at=row["started_at"],
            last_activity_at=row["last_activity_at"],
            resolved_at=row["resolved_at"],
        )

    @classmethod
    async def load(cls, info: Info, global_id: str) -> Conversation | None:
        row = await info.context.loaders.conversation_by_id.load(
            uuid_from_global_id(global_id, "Conversation")
        )
        return cls.from_row(row) if row else None

    @strawberry.field(description="Its interactions, oldest first.")
    async def interactions(
        self, info: Info
    ) -> list[Annotated[Interaction, strawberry.lazy("hub.schema.interaction")]]:
        from hub.schema.interaction import Interaction

        rows = await info.context.loaders.interactions_by_conversation.load(self.row_id)
        return [Interaction.from_row(row) for row in rows]

    @strawberry.field(description="The channels it crossed, in order, each once per visit.")
    async def channels(self, info: Info) -> list[Channel]:
        rows = await info.context.loaders.interactions_by_conversation.load(self.row_id)
        codes: list[str] = []
        for row in rows:
            if not codes or codes[-1] != row["channel_code"]:
                codes.append(row["channel_code"])
        channel_rows = await info.context.loaders.channel_by_code.load_many(codes)
        return [Channel.from_row(row) for row in channel_rows if row is not None]

    @strawberry.field(description="The last interaction, what the next agent reads first.")
    async def last_interaction(
        self, info: Info
    ) -> Annotated[Interaction, strawberry.lazy("hub.schema.interaction")] | None:
        from hub.schema.interaction import Interaction

        rows = await info.context.loaders.interactions_by_conversation.load(self.row_id)
        return Interaction.from_row(rows[-1]) if rows else None

    @strawberry.field(description="The customer it is with.")
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("hub.schema.customer")]:
        from hub.schema.customer import load_customer

        customer = await load_customer(info, self.customer_id)
        assert customer is not None  # foreign key
        return customer
