"""Live events: what the subscription fields yield, each with its opaque, ordered cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from hub.context import Info
from hub.core.ids import to_global_id
from hub.events.outbox import StoredEvent
from hub.events.payload import merged_ids, previous_stage
from hub.schema.conversation import Conversation
from hub.schema.customer import Customer, SegmentFilter, load_customer
from hub.schema.enums import ChannelCode, InteractionType, StageCode, StageTransition
from hub.schema.interaction import Interaction
from hub.schema.journey import JourneyStage, load_stage
from hub.schema.permissions import PersonalData, json_mask, not_personal

CURSOR_DESCRIPTION = (
    "Opaque position of this event in the feed; pass it as `after` to resume right after it."
)


def _enum(enum: Any, value: Any) -> Any:
    try:
        return enum(value) if value is not None else None
    except ValueError:
        return None


@strawberry.input(
    description="Which recorded interactions to receive; every given field must match."
)
class InteractionRecordedFilter:
    channels: list[ChannelCode] | None = strawberry.field(
        default=None, description="Only on these channels."
    )
    touchpoint_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only at these touchpoints (their ids; unknown ids are refused)."
    )
    types: list[InteractionType] | None = strawberry.field(
        default=None, description="Only of these interaction types."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only of this customer."
    )
    stages: list[StageCode] | None = strawberry.field(
        default=None, description="Only of customers who are in one of these stages afterwards."
    )
    segment: SegmentFilter | None = strawberry.field(
        default=None,
        description=(
            "Only of customers whose segment membership matches when the event is delivered "
            "(an unknown key matches no customer)."
        ),
    )


@strawberry.input(description="Which stage changes to receive; every given field must match.")
class JourneyStageChangedFilter:
    stages: list[StageCode] | None = strawberry.field(
        default=None, description="Only changes into one of these stages."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only of this customer."
    )
    channels: list[ChannelCode] | None = strawberry.field(
        default=None, description="Only changes caused on these channels."
    )


@strawberry.type(description="An interaction was recorded.")
class InteractionRecordedEvent:
    cursor: str = strawberry.field(
        description=CURSOR_DESCRIPTION,
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    interaction: Interaction = strawberry.field(description="The interaction, as now stored.")


@strawberry.type(description="A customer moved to another journey stage.")
class JourneyStageChangedEvent:
    event: strawberry.Private[StoredEvent]
    cursor: str = strawberry.field(
        description=CURSOR_DESCRIPTION,
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    occurred_at: datetime = strawberry.field(description="When the event was recorded.")
    previous_stage_code: strawberry.Private[str | None]
    stage_code: strawberry.Private[str | None]
    transition: StageTransition | None = strawberry.field(
        description="Forward, backward, looping or initial, when known."
    )

    @classmethod
    def from_event(cls, event: StoredEvent) -> JourneyStageChangedEvent:
        payload = event.payload
        return cls(
            event=event,
            cursor=event.position.cursor,
            occurred_at=event.created_at,
            previous_stage_code=previous_stage(payload),
            stage_code=payload.get("stage"),
            transition=_enum(StageTransition, payload.get("transition")),
        )

    @strawberry.field(description="The customer (the survivor, if merged since).")
    async def customer(self, info: Info) -> Customer | None:
        if self.event.customer_id is None:
            return None
        return await load_customer(info, self.event.customer_id)

    @strawberry.field(description="The stage entered.")
    async def stage(self, info: Info) -> JourneyStage | None:
        return await load_stage(info, self.stage_code)

    @strawberry.field(description="The stage left, or null for a first stage.")
    async def previous_stage(self, info: Info) -> JourneyStage | None:
        return await load_stage(info, self.previous_stage_code)

    @strawberry.field(description="The interaction that caused the change, if any.")
    async def interaction(self, info: Info) -> Interaction | None:
        # Ingest writes the causing interaction as the event's subject (setJourneyStage: none).
        interaction_id = self.event.subject_id
        if interaction_id is None:
            return None
        row = await info.context.loaders.interaction_by_id.load(interaction_id)
        return Interaction.from_row(row) if row else None


@strawberry.type(description="Two customers were found to be one person and merged.")
class CustomerMergedEvent:
    event: strawberry.Private[StoredEvent]
    cursor: str = strawberry.field(
        description=CURSOR_DESCRIPTION,
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    occurred_at: datetime = strawberry.field(description="When the merge was recorded.")
    merged_customer_id: strawberry.ID | None = strawberry.field(
        description="The id of the customer merged away (it now resolves to the survivor); the"
        " first of `mergedCustomerIds` when one merge took several."
    )
    merged_customer_ids: list[strawberry.ID] = strawberry.field(
        description="The ids of every customer this merge merged away into the survivor."
    )
    rule: str | None = strawberry.field(
        description="The identity rule that decided the merge.",
        metadata=not_personal("a fixed vocabulary value or code"),
    )
    payload: JSON = strawberry.field(
        description=(
            "The merge's explanation as recorded (identifier, rule, evidence); personal values "
            "masked without `pii`."
        ),
        extensions=[PersonalData(json_mask)],
    )

    @classmethod
    def from_event(cls, event: StoredEvent) -> CustomerMergedEvent:
        ids = merged_ids(event.payload)
        merged = [strawberry.ID(to_global_id("Customer", str(i))) for i in ids]
        return cls(
            event=event,
            cursor=event.position.cursor,
            occurred_at=event.created_at,
            merged_customer_id=merged[0] if merged else None,
            merged_customer_ids=merged,
            rule=event.payload.get("rule"),
            payload=cast(JSON, event.payload),
        )

    @strawberry.field(description="The surviving customer.")
    async def survivor(self, info: Info) -> Customer | None:
        if self.event.customer_id is None:
            return None
        return await load_customer(info, self.event.customer_id)


@strawberry.type(description="A customer's profile, stage or identity changed.")
class CustomerUpdatedEvent:
    cursor: str = strawberry.field(
        description=CURSOR_DESCRIPTION,
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    customer: Customer = strawberry.field(description="The customer as now stored.")


@strawberry.type(description="A conversation changed (new interaction, status).")
class ConversationUpdatedEvent:
    cursor: str = strawberry.field(
        description=CURSOR_DESCRIPTION,
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    conversation: Conversation = strawberry.field(description="The conversation as now stored.")
