"""Journey stage queries."""

from __future__ import annotations

import sqlalchemy as sa
import strawberry

from hub.context import Info
from hub.models import JOURNEY_STAGES
from loaders.sql import fetch_all
from schema.journey import JourneyStage


@strawberry.type
class JourneyQuery:
    @strawberry.field(description="The journey stages in order, Awareness first.")
    async def journey_stages(self, info: Info) -> list[JourneyStage]:
        rows = await fetch_all(
            info.context.engine, sa.select(JOURNEY_STAGES).order_by(JOURNEY_STAGES.c.position)
        )
        return [JourneyStage.from_row(row) for row in rows]
