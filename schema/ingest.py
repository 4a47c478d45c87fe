"""Inputs and payloads of the ingest mutations (recordInteraction, recordInteractions)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from hub.context import Info
from hub.core.ids import uuid_from_global_id
from hub.ingest.store import ItemResult
from hub.ingest.validation import InteractionInput
from hub.schema.customer import Customer, load_customer
from hub.schema.enums import Direction, IdentityKind, InteractionType
from hub.schema.interaction import Interaction
from hub.schema.merge import Merge
from hub.schema.permissions import not_personal


@strawberry.input(description="One identifier the interaction carries (normalised on arrival).")
class IdentityInput:
    kind: IdentityKind = strawberry.field(description="What kind of identifier.")
    value: str = strawberry.field(
        description="The identifier as the channel knows it; e-mails and phones are normalised."
    )


@strawberry.input(description="One interaction to record, from any channel.")
class RecordInteractionInput:
    identities: list[IdentityInput] = strawberry.field(
        description="Identifiers of the customer (at least one); the first brought the interaction."
    )
    touchpoint_id: strawberry.ID = strawberry.field(description="Where it happened.")
    type: InteractionType = strawberry.field(description="What happened.")
    direction: Direction = strawberry.field(description="Who started it.")
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (default: now); at most 5 minutes ahead."
    )
    conversation_key: str | None = strawberry.field(
        default=None, description="Groups interactions into a conversation, across channels."
    )
    summary: str | None = strawberry.field(default=None, description="Summary or message text.")
    sentiment: float | None = strawberry.field(
        default=None, description="Sentiment from -1 (negative) to 1 (positive)."
    )
    outcome: str | None = strawberry.field(default=None, description="How it ended.")
    agent: str | None = strawberry.field(default=None, description="The agent or bot.")
    attributes: JSON | None = strawberry.field(
        default=None, description="Free-form attributes (a JSON object, at most 32 KB)."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=(
            "Retries with the same key at the same touchpoint never store a second interaction: "
            "they get the original back."
        ),
    )

    def to_domain(self) -> InteractionInput:
        """The domain input; a malformed touchpoint id raises BAD_USER_INPUT."""
        return InteractionInput(
            identities=[(str(i.kind), i.value) for i in self.identities],
            touchpoint_id=uuid_from_global_id(self.touchpoint_id, "Touchpoint"),
            type=str(self.type),
            direction=self.direction.value,
            occurred_at=self.occurred_at,
            conversation_key=self.conversation_key,
            summary=self.summary,
            sentiment=self.sentiment,
            outcome=self.outcome,
            agent=self.agent,
            attributes=self.attributes,
            idempotency_key=self.idempotency_key,
        )


@strawberry.type(description="What recording one interaction did.")
class RecordInteractionPayload:
    customer_row_id: strawberry.Private[uuid.UUID]
    interaction: Interaction = strawberry.field(
        description="The stored interaction (the original one for a repeated idempotency key)."
    )
    created: bool = strawberry.field(description="True when a new customer was created for it.")
    duplicate: bool = strawberry.field(
        description="True when the idempotency key was seen before and nothing new was stored."
    )
    merges: list[Merge] = strawberry.field(description="Merges of customers it caused.")
    warnings: list[str] = strawberry.field(
        description="Guards that applied (an identifier not linked, a merge refused).",
        metadata=not_personal("echoes the caller's own input or a fixed guard message"),
    )

    @classmethod
    def from_result(cls, result: ItemResult) -> RecordInteractionPayload:
        assert result.customer_id is not None
        return cls(
            customer_row_id=result.customer_id,
            interaction=Interaction.from_row(result.interaction),
            created=result.created,
            duplicate=result.duplicate,
            merges=[Merge.from_row(row) for row in result.merges],
            warnings=result.warnings,
        )

    @strawberry.field(description="The customer it was attributed to (the survivor after merges).")
    async def customer(self, info: Info) -> Customer:
        customer = await load_customer(info, self.customer_row_id)
        assert customer is not None
        return customer


@strawberry.type(description="One input of a batch that was stored (or was a repeat).")
class StoredInteraction(RecordInteractionPayload):
    index: int = strawberry.field(description="Its position in the input list, from 0.")


@strawberry.type(description="One input of a batch that was rejected, and why.")
class RejectedInteraction:
    index: int = strawberry.field(description="Its position in the input list, from 0.")
    code: str = strawberry.field(
        description="Error code, as in `extensions.code`.",
        metadata=not_personal("a fixed vocabulary value or code"),
    )
    message: str = strawberry.field(
        description="What is wrong with it.",
        metadata=not_personal("echoes the caller's own input or a fixed guard message"),
    )


@strawberry.type(
    description=(
        "What a batch did: valid items are stored together in one transaction, invalid ones are "
        "rejected one by one; every input index appears in exactly one of the two lists."
    )
)
class RecordInteractionsPayload:
    stored: list[StoredInteraction] = strawberry.field(
        description="Items stored (or repeats of stored ones), by index."
    )
    rejected: list[RejectedInteraction] = strawberry.field(
        description="Items rejected, by index, with the reason."
    )

    @classmethod
    def from_results(cls, results: list[ItemResult]) -> RecordInteractionsPayload:
        stored: list[StoredInteraction] = []
        rejected: list[RejectedInteraction] = []
        for result in results:
            if result.error is not None:
                code = (result.error.extensions or {}).get("code", "BAD_USER_INPUT")
                rejected.append(
                    RejectedInteraction(
                        index=result.index, code=str(code), message=result.error.message
                    )
                )
            else:
                payload = RecordInteractionPayload.from_result(result)
                stored.append(StoredInteraction(index=result.index, **vars(payload)))
        return cls(stored=stored, rejected=rejected)
