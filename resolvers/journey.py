"""Journey stage queries."""

from __future__ import annotations

import strawberry

from hub.context import Info
from loaders.channels import WHOLE_TABLE
from schema.journey import JourneyStage


@strawberry.type
class JourneyQuery:
    @strawberry.field(description="The journey stages in order, Awareness first.")
    async def journey_stages(self, info: Info) -> list[JourneyStage]:
        table = await info.context.loaders.stage_table.load(WHOLE_TABLE)
        return [JourneyStage.from_row(row) for row in table.values()]
