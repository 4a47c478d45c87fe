"""Journey stages and a customer's moves between them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from hub.context import Info
from hub.db.rows import Record
from hub.schema.channel import Channel
from hub.schema.enums import ChannelCode, InteractionType, StageCode, StageTransition
from hub.schema.permissions import PersonalData, not_personal

if TYPE_CHECKING:
    from hub.schema.interaction import Interaction


@strawberry.type(description="A stage of the customer journey, Awareness to Retention.")
class JourneyStage:
    code: StageCode = strawberry.field(description="The stage's fixed code.")
    name: str = strawberry.field(
        description="Human-readable name.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    description: str = strawberry.field(
        description="What a customer does in this stage.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    position: int = strawberry.field(description="Order in the journey, 1 = Awareness.")

    @classmethod
    def from_row(cls, row: Record) -> JourneyStage:
        return cls(
            code=StageCode(row["code"]),
            name=row["name"],
            description=row["description"],
            position=row["position"],
        )

    @strawberry.field(description="How many customers are in this stage now.")
    async def customer_count(self, info: Info) -> int:
        return await info.context.loaders.customer_count_by_stage.load(self.code.value)


async def load_stage(info: Info, code: str | None) -> JourneyStage | None:
    if code is None:
        return None
    row = await info.context.loaders.stage_by_code.load(code)
    return JourneyStage.from_row(row) if row else None


@strawberry.type(description="One change of a customer's journey stage and what caused it.")
class StageChange:
    stage_code: strawberry.Private[str]
    interaction_id: strawberry.Private[uuid.UUID | None]
    channel_code: strawberry.Private[str | None]
    previous_stage: StageCode | None = strawberry.field(
        description="The stage before, or null for the first stage."
    )
    transition: StageTransition = strawberry.field(
        description="Forward, backward, looping (same stage, other channel) or initial."
    )
    entered_at: datetime = strawberry.field(description="When the customer entered the stage.")
    reason: str | None = strawberry.field(
        description="Why: the rule or the person that moved the customer.",
        extensions=[PersonalData()],
    )

    @classmethod
    def from_row(cls, row: Record) -> StageChange:
        return cls(
            stage_code=row["stage"],
            interaction_id=row["interaction_id"],
            channel_code=row["channel_code"],
            previous_stage=StageCode(row["previous_stage"]) if row["previous_stage"] else None,
            transition=StageTransition(row["transition"]),
            entered_at=row["entered_at"],
            reason=row["reason"],
        )

    @strawberry.field(description="The stage entered.")
    async def stage(self, info: Info) -> JourneyStage:
        stage = await load_stage(info, self.stage_code)
        assert stage is not None  # foreign key
        return stage

    @strawberry.field(description="The channel of the interaction that caused it, if any.")
    async def channel(self, info: Info) -> Channel | None:
        if self.channel_code is None:
            return None
        row = await info.context.loaders.channel_by_code.load(self.channel_code)
        return Channel.from_row(row) if row else None

    @strawberry.field(description="The interaction that caused it, if any.")
    async def interaction(
        self, info: Info
    ) -> Annotated[Interaction, strawberry.lazy("hub.schema.interaction")] | None:
        if self.interaction_id is None:
            return None
        from hub.schema.interaction import Interaction

        row = await info.context.loaders.interaction_by_id.load(self.interaction_id)
        return Interaction.from_row(row) if row else None


@strawberry.type(description="Maps an interaction type (optionally on one channel) to a stage.")
class StageRule:
    interaction_type: InteractionType = strawberry.field(description="The interaction type.")
    channel: ChannelCode | None = strawberry.field(
        description="Only on this channel; null: on every channel without its own rule."
    )
    stage: StageCode = strawberry.field(description="The stage such an interaction signals.")
    updated_at: datetime = strawberry.field(description="When the rule last changed.")

    @classmethod
    def from_row(cls, row: Record) -> StageRule:
        return cls(
            interaction_type=InteractionType(row["interaction_type"]),
            channel=ChannelCode(row["channel_code"]) if row["channel_code"] else None,
            stage=StageCode(row["stage"]),
            updated_at=row["updated_at"],
        )
