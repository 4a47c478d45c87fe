"""Journey stage queries, stage rules, and manual stage changes."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import strawberry

from hub.audiences.refresh import ChangeReason, on_customers_changed
from hub.context import Info
from hub.core.enums import StageCode as DomainStageCode
from hub.core.ids import uuid_from_global_id
from hub.db.rows import fetch_all
from hub.identity.profiles import set_stage
from hub.journeys.stage_rules import delete_rule, set_rule
from hub.loaders.channels import WHOLE_TABLE
from hub.models import STAGE_RULES
from hub.schema.customer import Customer
from hub.schema.enums import ChannelCode, InteractionType, StageCode
from hub.schema.journey import JourneyStage, StageRule


@strawberry.type
class JourneyQuery:
    @strawberry.field(description="The journey stages in order, Awareness first.")
    async def journey_stages(self, info: Info) -> list[JourneyStage]:
        table = await info.context.loaders.stage_table.load(WHOLE_TABLE)
        return [JourneyStage.from_row(row) for row in table.values()]

    @strawberry.field(description="The journey engine's stage rules, by type then channel.")
    async def stage_rules(self, info: Info) -> list[StageRule]:
        r = STAGE_RULES.c
        rows = await fetch_all(
            info.context.engine,
            sa.select(STAGE_RULES).order_by(r.interaction_type, r.channel_code.nulls_first()),
        )
        return [StageRule.from_row(row) for row in rows]


@strawberry.type
class JourneyMutation:
    @strawberry.mutation(
        description="Move a customer to a stage by hand; recorded in the stage history."
    )
    async def set_journey_stage(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="The customer.")],
        stage: Annotated[StageCode, strawberry.argument(description="The stage to move to.")],
        reason: Annotated[str, strawberry.argument(description="Why (kept in the history).")],
    ) -> Customer:
        cid = uuid_from_global_id(customer_id, "Customer")
        async with info.context.engine.begin() as connection:
            row = await set_stage(connection, cid, DomainStageCode(stage.value), reason)
            await on_customers_changed(connection, [cid], reason=ChangeReason.STAGE)
        return Customer.from_row(row)

    @strawberry.mutation(
        description="Create or replace the rule for an interaction type (and channel)."
    )
    async def set_stage_rule(
        self,
        info: Info,
        interaction_type: Annotated[
            InteractionType, strawberry.argument(description="The interaction type.")
        ],
        stage: Annotated[StageCode, strawberry.argument(description="The stage it signals.")],
        channel: Annotated[
            ChannelCode | None,
            strawberry.argument(description="Only on this channel (default: every channel)."),
        ] = None,
    ) -> StageRule:
        async with info.context.engine.begin() as connection:
            row = await set_rule(
                connection, str(interaction_type), channel.value if channel else None, stage.value
            )
        return StageRule.from_row(row)

    @strawberry.mutation(description="Delete a stage rule; the deleted rule is returned.")
    async def delete_stage_rule(
        self,
        info: Info,
        interaction_type: Annotated[
            InteractionType, strawberry.argument(description="The interaction type.")
        ],
        channel: Annotated[
            ChannelCode | None,
            strawberry.argument(description="The channel of the rule (default: the general one)."),
        ] = None,
    ) -> StageRule:
        async with info.context.engine.begin() as connection:
            row = await delete_rule(
                connection, str(interaction_type), channel.value if channel else None
            )
        return StageRule.from_row(row)
