"""Journey analytics queries, grouped under ``Query.analytics``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import strawberry

from hub.access.keys import Role
from hub.analytics import reports as analytics
from hub.analytics import segments as segment_analytics
from hub.analytics.reports import TimeBucket, TransitionGrouping
from hub.analytics.rollup import catch_up
from hub.context import Info
from hub.core.errors import BadUserInput
from hub.schema.analytics import (
    AnalyticsFilter,
    ChannelMix,
    FunnelStep,
    InteractionSeries,
    SegmentOverlap,
    SegmentSizeSeries,
    TouchpointPerformance,
    TransitionGraph,
    to_scope,
)
from hub.schema.permissions import not_personal, require

FilterArgument = Annotated[
    AnalyticsFilter | None,
    strawberry.argument(description="Time range, business lines, channels and segments to count."),
]


async def scope_of(info: Info, filter: AnalyticsFilter | None) -> analytics.Scope:
    """The filter as a ``Scope``; its segment keys must exist (a typo would count nothing)."""
    scope = to_scope(filter)
    if scope.segments:
        try:
            await segment_analytics.known_segments(info.context.writer, scope.segments)
        except segment_analytics.SegmentAnalyticsError as error:
            raise BadUserInput(str(error)) from None
    return scope


def require_analytics_access(info: Info) -> None:
    """The one access check of the analytics: ANALYST and ADMIN only (the /journeys page reads
    through this API, so it is covered too)."""
    require(info, Role.ADMIN, Role.ANALYST)


@strawberry.type(
    description=(
        "Journey analytics computed in PostgreSQL: channel mix, transitions, stage funnel, "
        "touchpoint performance and trends. Each field takes an optional filter."
    )
)
class Analytics:
    @strawberry.field(
        description=(
            "Interactions and distinct customers per channel and per touchpoint, inbound vs "
            "outbound."
        )
    )
    async def channel_mix(self, info: Info, filter: FilterArgument = None) -> ChannelMix:
        return ChannelMix.build(
            await analytics.channel_mix(info.context.writer, await scope_of(info, filter))
        )

    @strawberry.field(
        description=(
            "How customers move from one interaction to their next: per node the volume and "
            "drop-off, per link the moves and distinct customers (the data of a Sankey)."
        )
    )
    async def channel_transitions(
        self,
        info: Info,
        group_by: Annotated[
            TransitionGrouping,
            strawberry.argument(description="Nodes are channels, touchpoints or stages."),
        ] = TransitionGrouping.CHANNEL,
        max_gap_minutes: Annotated[
            int | None,
            strawberry.argument(
                description=(
                    "A next interaction more than this many minutes later is not a move: the "
                    "journey ended (a drop-off). Null: no limit."
                )
            ),
        ] = None,
        filter: FilterArgument = None,
    ) -> TransitionGraph:
        if max_gap_minutes is not None and max_gap_minutes <= 0:
            raise BadUserInput("`maxGapMinutes` must be positive")
        grouping = group_by
        result = await analytics.transitions(
            info.context.writer,
            await scope_of(info, filter),
            grouping,
            timedelta(minutes=max_gap_minutes) if max_gap_minutes is not None else None,
            parts=info.context.settings.analytics_parts,
        )
        return TransitionGraph.build(result, grouping, max_gap_minutes)

    @strawberry.field(
        description=(
            "Customers entering each journey stage, conversion to the next stage and median "
            "time in stage, from the stage history."
        )
    )
    async def stage_funnel(self, info: Info, filter: FilterArgument = None) -> list[FunnelStep]:
        steps = await analytics.stage_funnel(info.context.writer, await scope_of(info, filter))
        return [FunnelStep.build(step) for step in steps]

    @strawberry.field(
        description=(
            "Per touchpoint: volume, average sentiment, conversation resolution rate, and for "
            "assisted and messaging touchpoints median first-response and resolution times."
        )
    )
    async def touchpoint_performance(
        self, info: Info, filter: FilterArgument = None
    ) -> list[TouchpointPerformance]:
        rows = await analytics.touchpoint_performance(
            info.context.writer, await scope_of(info, filter)
        )
        return [TouchpointPerformance.build(row) for row in rows]

    @strawberry.field(description="Interactions per time bucket, one series per channel.")
    async def interactions_over_time(
        self,
        info: Info,
        bucket: Annotated[
            TimeBucket, strawberry.argument(description="Bucket width: hour, day or week.")
        ] = TimeBucket.DAY,
        filter: FilterArgument = None,
    ) -> InteractionSeries:
        try:
            result = await analytics.interactions_over_time(
                info.context.writer, await scope_of(info, filter), bucket
            )
        except analytics.ScopeError as error:
            raise BadUserInput(str(error)) from None
        return InteractionSeries.build(result, bucket)

    @strawberry.field(
        description=(
            "Segment sizes over time: per segment and bucket, the customers who entered and "
            "left and the size at the bucket's end (exact, from the size record kept with "
            "every membership change)."
        )
    )
    async def segment_sizes(
        self,
        info: Info,
        keys: Annotated[list[str], strawberry.argument(description="The segments' keys.")],
        since: Annotated[
            datetime, strawberry.argument(description="From the bucket holding this moment.")
        ],
        until: Annotated[
            datetime | None,
            strawberry.argument(description="Up to this moment, exclusive (default: now)."),
        ] = None,
        bucket: Annotated[
            segment_analytics.SegmentSizeBucket,
            strawberry.argument(description="Bucket width: hour or day."),
        ] = segment_analytics.SegmentSizeBucket.DAY,
    ) -> list[SegmentSizeSeries]:
        try:
            series = await segment_analytics.segment_sizes(
                info.context.writer, keys, since, until or datetime.now(UTC), bucket
            )
        except segment_analytics.SegmentAnalyticsError as error:
            raise BadUserInput(str(error)) from None
        return [SegmentSizeSeries.build(s) for s in series]

    @strawberry.field(
        description=(
            "Customers in both of each pair of these segments now (each segment with itself "
            "first: its size)."
        )
    )
    async def segment_overlap(
        self,
        info: Info,
        keys: Annotated[list[str], strawberry.argument(description="The segments' keys.")],
    ) -> list[SegmentOverlap]:
        try:
            overlaps = await segment_analytics.segment_overlap(info.context.writer, keys)
        except segment_analytics.SegmentAnalyticsError as error:
            raise BadUserInput(str(error)) from None
        return [SegmentOverlap(a=o.a, b=o.b, customers=o.customers) for o in overlaps]

    @strawberry.field(
        description="The business lines touchpoints serve, for filter choices.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    async def business_lines(self, info: Info) -> list[str]:
        return await analytics.business_lines(info.context.writer)


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="Journey analytics, for analysts and administrators.")
    async def analytics(self, info: Info) -> Analytics:
        require_analytics_access(info)
        # Once per request, before any field reads: the derived tables take in every write
        # committed so far (hub.analytics.rollup), so every answer is exact as of now. On the
        # primary (``writer``): the catch-up writes, and the fields read there too.
        await catch_up(info.context.writer)
        return Analytics()
