"""Journey analytics: the shapes of the answers (the queries are in ``resolvers.analytics``)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from hub.analytics import reports as analytics
from hub.analytics import segments as segment_analytics
from hub.context import Info
from hub.core.enums import CHANNEL_DESCRIPTIONS, STAGE_DESCRIPTIONS, ChannelCode, StageCode
from hub.core.errors import BadUserInput
from hub.core.ids import to_global_id
from hub.schema.channel import Channel, Touchpoint
from hub.schema.enums import StageTransition, described_enum
from hub.schema.journey import JourneyStage, load_stage
from hub.schema.permissions import not_personal


@strawberry.input(
    description=(
        "Which interactions an analytics query counts. Every given field must match; an omitted "
        "field does not restrict (all time, every business line, every channel)."
    )
)
class AnalyticsFilter:
    since: datetime | None = strawberry.field(
        default=None, description="Only at or after this moment (inclusive)."
    )
    until: datetime | None = strawberry.field(
        default=None, description="Only before this moment (exclusive)."
    )
    business_lines: list[str] | None = strawberry.field(
        default=None, description="Only at touchpoints serving these business lines."
    )
    channels: list[ChannelCode] | None = strawberry.field(
        default=None, description="Only on these channels."
    )
    segments: list[str] | None = strawberry.field(
        default=None,
        description=(
            "Only customers who are members of at least one of these segments now (keys; an "
            "unknown key is refused)."
        ),
    )


def to_scope(filter: AnalyticsFilter | None) -> analytics.Scope:
    if filter is None:
        return analytics.Scope()
    try:
        return analytics.Scope(
            since=filter.since,
            until=filter.until,
            business_lines=tuple(filter.business_lines)
            if filter.business_lines is not None
            else None,
            channels=tuple(c.value for c in filter.channels)
            if filter.channels is not None
            else None,
            segments=tuple(filter.segments) if filter.segments is not None else None,
        )
    except analytics.ScopeError as error:
        raise BadUserInput(str(error)) from None


TransitionGrouping = described_enum(
    analytics.TransitionGrouping,
    "What the nodes of a transition graph are.",
    {
        analytics.TransitionGrouping.CHANNEL: "The six channels.",
        analytics.TransitionGrouping.TOUCHPOINT: "Individual touchpoints.",
        analytics.TransitionGrouping.STAGE: (
            "The journey stage the customer was in at each interaction (their latest stage "
            "change at or before it)."
        ),
    },
)
TimeBucket = described_enum(
    analytics.TimeBucket,
    "The width of a time-series bucket (UTC calendar units).",
    {
        analytics.TimeBucket.HOUR: "One hour.",
        analytics.TimeBucket.DAY: "One UTC day.",
        analytics.TimeBucket.WEEK: "One ISO week, Monday to Sunday (UTC).",
    },
)


# --- channel mix -------------------------------------------------------------------------------


@strawberry.interface(description="Interaction counts of a slice of the channel mix.")
class MixCounts:
    interactions: int = strawberry.field(description="Interactions in scope.")
    customers: int = strawberry.field(description="Distinct customers of those interactions.")
    inbound: int = strawberry.field(description="Interactions from the customer.")
    outbound: int = strawberry.field(description="Interactions from the business.")
    share: float = strawberry.field(
        description="This slice's part of all interactions in scope, 0 to 1."
    )


def _counts(row: analytics.MixRow, total: int) -> dict[str, int | float]:
    return {
        "interactions": row.interactions,
        "customers": row.customers,
        "inbound": row.inbound,
        "outbound": row.outbound,
        "share": row.interactions / total if total else 0.0,
    }


@strawberry.type(description="One channel's part of the interactions.")
class ChannelMixEntry(MixCounts):
    code: strawberry.Private[str]

    @strawberry.field(description="The channel.")
    async def channel(self, info: Info) -> Channel:
        row = await info.context.loaders.channel_by_code.load(self.code)
        assert row is not None  # foreign key
        return Channel.from_row(row)


@strawberry.type(description="One touchpoint's part of the interactions.")
class TouchpointMixEntry(MixCounts):
    touchpoint_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The touchpoint.")
    async def touchpoint(self, info: Info) -> Touchpoint:
        row = await info.context.loaders.touchpoint_by_id.load(self.touchpoint_id)
        assert row is not None  # foreign key
        return Touchpoint.from_row(row)


@strawberry.type(
    description="Interactions and distinct customers per channel and per touchpoint, in and out."
)
class ChannelMix(MixCounts):
    channels: list[ChannelMixEntry] = strawberry.field(
        description="Channels with interactions in scope, most interactions first."
    )
    touchpoints: list[TouchpointMixEntry] = strawberry.field(
        description="Touchpoints with interactions in scope, most interactions first."
    )

    @classmethod
    def build(cls, mix: analytics.ChannelMix) -> ChannelMix:
        total = mix.total.interactions
        return cls(
            **_counts(mix.total, total),  # type: ignore[arg-type]
            channels=[
                ChannelMixEntry(code=row.channel, **_counts(row, total))  # type: ignore[arg-type]
                for row in mix.channels
            ],
            touchpoints=[
                TouchpointMixEntry(touchpoint_id=row.touchpoint_id, **_counts(row, total))  # type: ignore[arg-type]
                for row in mix.touchpoints
            ],
        )


# --- transitions -------------------------------------------------------------------------------


@strawberry.type(description="A node of a transition graph: a channel, touchpoint or stage.")
class TransitionNode:
    grouping: strawberry.Private[analytics.TransitionGrouping]
    raw_key: strawberry.Private[str]
    interactions: int = strawberry.field(
        description="Interactions in scope at this node (= moves out of it plus drop-offs)."
    )
    drop_offs: int = strawberry.field(
        description=(
            "Interactions here with no next interaction in scope (within the gap): where "
            "journeys end. Without a gap this is the customers whose last interaction is here."
        )
    )
    drop_off_customers: int = strawberry.field(
        description="Distinct customers with at least one drop-off here."
    )
    drop_off_rate: float = strawberry.field(description="Drop-offs per interaction here, 0 to 1.")

    @strawberry.field(
        description=(
            "The node's key, used by links: the channel code, the stage code, or the "
            "touchpoint's global id."
        ),
        metadata=not_personal("a channel, stage or touchpoint key"),
    )
    def key(self) -> str:
        if self.grouping is analytics.TransitionGrouping.TOUCHPOINT:
            return to_global_id("Touchpoint", self.raw_key)
        return self.raw_key

    @strawberry.field(
        description="A human-readable name: the channel, touchpoint or stage name.",
        metadata=not_personal("catalogue data the business configures, not about a customer"),
    )
    async def label(self, info: Info) -> str:
        if self.grouping is analytics.TransitionGrouping.CHANNEL:
            return CHANNEL_DESCRIPTIONS[ChannelCode(self.raw_key)][0]
        if self.grouping is analytics.TransitionGrouping.STAGE:
            return STAGE_DESCRIPTIONS[StageCode(self.raw_key)][0]
        row = await info.context.loaders.touchpoint_by_id.load(uuid.UUID(self.raw_key))
        assert row is not None  # foreign key
        return str(row["name"])

    @strawberry.field(description="The channel, for CHANNEL and TOUCHPOINT groupings.")
    async def channel(self, info: Info) -> Channel | None:
        if self.grouping is analytics.TransitionGrouping.STAGE:
            return None
        code = self.raw_key
        if self.grouping is analytics.TransitionGrouping.TOUCHPOINT:
            touchpoint = await info.context.loaders.touchpoint_by_id.load(uuid.UUID(self.raw_key))
            assert touchpoint is not None  # foreign key
            code = touchpoint["channel_code"]
        row = await info.context.loaders.channel_by_code.load(code)
        return Channel.from_row(row) if row else None

    @strawberry.field(description="The touchpoint, for the TOUCHPOINT grouping.")
    async def touchpoint(self, info: Info) -> Touchpoint | None:
        if self.grouping is not analytics.TransitionGrouping.TOUCHPOINT:
            return None
        row = await info.context.loaders.touchpoint_by_id.load(uuid.UUID(self.raw_key))
        return Touchpoint.from_row(row) if row else None

    @strawberry.field(description="The stage, for the STAGE grouping.")
    async def stage(self, info: Info) -> JourneyStage | None:
        if self.grouping is not analytics.TransitionGrouping.STAGE:
            return None
        return await load_stage(info, self.raw_key)


@strawberry.type(description="Customers moving from one node to the next: a link of a Sankey.")
class TransitionLink:
    source: str = strawberry.field(
        description="The key of the node moved from.",
        metadata=not_personal("a channel, stage or touchpoint key"),
    )
    target: str = strawberry.field(
        description="The key of the node moved to.",
        metadata=not_personal("a channel, stage or touchpoint key"),
    )
    moves: int = strawberry.field(
        description="Pairs of consecutive interactions (of one customer) from source to target."
    )
    customers: int = strawberry.field(description="Distinct customers who made this move.")
    share: float = strawberry.field(
        description="This link's part of the source node's interactions, 0 to 1."
    )
    classification: StageTransition | None = strawberry.field(
        description=(
            "For the STAGE grouping: FORWARD, BACKWARD, or LOOPING (same stage, other channel); "
            "null for the same stage on the same channel, and for other groupings."
        )
    )


@strawberry.type(
    description=(
        "How customers move between consecutive interactions: the nodes and links of a Sankey "
        "diagram, with drop-off per node."
    )
)
class TransitionGraph:
    group_by: analytics.TransitionGrouping = strawberry.field(description="What the nodes are.")
    max_gap_minutes: int | None = strawberry.field(
        description="Longest pause that still links two interactions; null for no limit."
    )
    nodes: list[TransitionNode] = strawberry.field(
        description="Nodes with interactions in scope (stages in journey order, others by volume)."
    )
    links: list[TransitionLink] = strawberry.field(description="Links, most moves first.")
    moves: int = strawberry.field(description="All moves (the sum over links).")
    drop_offs: int = strawberry.field(description="All drop-offs (the sum over nodes).")

    @classmethod
    def build(
        cls,
        result: analytics.Transitions,
        grouping: analytics.TransitionGrouping,
        max_gap_minutes: int | None,
    ) -> TransitionGraph:
        def key(raw: str) -> str:
            if grouping is analytics.TransitionGrouping.TOUCHPOINT:
                return to_global_id("Touchpoint", raw)
            return raw

        volume = {node.key: node.interactions for node in result.nodes}
        return cls(
            group_by=grouping,
            max_gap_minutes=max_gap_minutes,
            nodes=[
                TransitionNode(
                    grouping=grouping,
                    raw_key=node.key,
                    interactions=node.interactions,
                    drop_offs=node.drop_offs,
                    drop_off_customers=node.drop_off_customers,
                    drop_off_rate=node.drop_offs / node.interactions if node.interactions else 0.0,
                )
                for node in result.nodes
            ],
            links=[
                TransitionLink(
                    source=key(link.source),
                    target=key(link.target),
                    moves=link.moves,
                    customers=link.customers,
                    share=link.moves / volume[link.source],
                    classification=StageTransition(link.classification.value)
                    if link.classification
                    else None,
                )
                for link in result.links
            ],
            moves=sum(link.moves for link in result.links),
            drop_offs=sum(node.drop_offs for node in result.nodes),
        )


# --- stage funnel ------------------------------------------------------------------------------


@strawberry.type(description="One stage of the journey funnel.")
class FunnelStep:
    stage_code: strawberry.Private[str]
    customers: int = strawberry.field(description="Distinct customers who entered this stage.")
    converted_to_next: int | None = strawberry.field(
        description=(
            "Of them, customers who entered the next stage at or after first entering this one; "
            "null for the last stage."
        )
    )
    conversion_to_next: float | None = strawberry.field(
        description="convertedToNext / customers, 0 to 1; null for the last stage or no customers."
    )
    median_seconds_in_stage: float | None = strawberry.field(
        description=(
            "Median time from entering this stage to the next stage change, over completed "
            "stays that began in scope; null when none completed."
        )
    )
    completed_stays: int = strawberry.field(
        description="Stays behind the median (entries in scope that a later change ended)."
    )

    @strawberry.field(description="The stage.")
    async def stage(self, info: Info) -> JourneyStage:
        stage = await load_stage(info, self.stage_code)
        assert stage is not None  # foreign key
        return stage

    @classmethod
    def build(cls, step: analytics.FunnelStep) -> FunnelStep:
        conversion = None
        if step.converted_to_next is not None and step.customers:
            conversion = step.converted_to_next / step.customers
        return cls(
            stage_code=step.stage.value,
            customers=step.customers,
            converted_to_next=step.converted_to_next,
            conversion_to_next=conversion,
            median_seconds_in_stage=step.median_seconds_in_stage,
            completed_stays=step.completed_stays,
        )


# --- touchpoint performance --------------------------------------------------------------------


@strawberry.type(description="How a touchpoint performs: volume, sentiment, answers, resolutions.")
class TouchpointPerformance:
    touchpoint_id: strawberry.Private[uuid.UUID]
    interactions: int = strawberry.field(description="Interactions in scope at this touchpoint.")
    average_sentiment: float | None = strawberry.field(
        description="Mean sentiment (-1 to 1) of those that carry one; null when none does."
    )
    measures_responses: bool = strawberry.field(
        description=(
            "Whether response times are measured here: ASSISTED touchpoints and messaging kinds "
            "(live chat, chatbot, e-mail, SMS, rich messaging, voice, video)."
        )
    )
    conversations: int = strawberry.field(
        description="Conversations whose first INBOUND interaction is here and in scope."
    )
    resolved_conversations: int = strawberry.field(description="Of them, those RESOLVED.")
    resolution_rate: float | None = strawberry.field(
        description="resolvedConversations / conversations; null without conversations."
    )
    median_first_response_seconds: float | None = strawberry.field(
        description=(
            "Median time from a conversation's first INBOUND interaction to the first OUTBOUND "
            "one after it; null when not measured or never answered."
        )
    )
    median_resolution_seconds: float | None = strawberry.field(
        description=(
            "Median time from a conversation's first INBOUND interaction to its resolution; null "
            "when not measured or none resolved."
        )
    )

    @strawberry.field(description="The touchpoint.")
    async def touchpoint(self, info: Info) -> Touchpoint:
        row = await info.context.loaders.touchpoint_by_id.load(self.touchpoint_id)
        assert row is not None  # foreign key
        return Touchpoint.from_row(row)

    @classmethod
    def build(cls, row: analytics.TouchpointPerformance) -> TouchpointPerformance:
        return cls(
            touchpoint_id=row.touchpoint_id,
            interactions=row.interactions,
            average_sentiment=row.average_sentiment,
            measures_responses=row.measures_responses,
            conversations=row.conversations,
            resolved_conversations=row.resolved_conversations,
            resolution_rate=row.resolved_conversations / row.conversations
            if row.conversations
            else None,
            median_first_response_seconds=row.median_first_response_seconds,
            median_resolution_seconds=row.median_resolution_seconds,
        )


# --- interactions over time --------------------------------------------------------------------


@strawberry.type(description="Interactions in one time bucket.")
class SeriesPoint:
    start: datetime = strawberry.field(description="Start of the bucket (UTC).")
    interactions: int = strawberry.field(description="Interactions in the bucket.")
    inbound: int = strawberry.field(description="Of them, from the customer.")
    outbound: int = strawberry.field(description="Of them, from the business.")


@strawberry.type(description="One channel's interactions over time.")
class ChannelSeries:
    code: strawberry.Private[str]
    total: int = strawberry.field(description="Interactions over all buckets.")
    points: list[SeriesPoint] = strawberry.field(
        description="One point per bucket, zeros included, oldest first."
    )

    @strawberry.field(description="The channel.")
    async def channel(self, info: Info) -> Channel:
        row = await info.context.loaders.channel_by_code.load(self.code)
        assert row is not None  # foreign key
        return Channel.from_row(row)


@strawberry.type(description="Interactions per time bucket, one dense series per channel.")
class InteractionSeries:
    bucket: analytics.TimeBucket = strawberry.field(description="The bucket width.")
    buckets: list[datetime] = strawberry.field(
        description=(
            "Bucket starts from the filter's `since` (or the first interaction) to its `until` "
            "(or the last interaction)."
        )
    )
    series: list[ChannelSeries] = strawberry.field(
        description="Channels with interactions in scope, in channel display order."
    )

    @classmethod
    def build(cls, result: analytics.TimeSeries, bucket: analytics.TimeBucket) -> InteractionSeries:
        return cls(
            bucket=bucket,
            buckets=result.buckets,
            series=[
                ChannelSeries(
                    code=code,
                    total=sum(point.interactions for point in points),
                    points=[
                        SeriesPoint(
                            start=point.start,
                            interactions=point.interactions,
                            inbound=point.inbound,
                            outbound=point.outbound,
                        )
                        for point in points
                    ],
                )
                for code, points in result.series.items()
            ],
        )


described_enum(
    segment_analytics.SegmentSizeBucket,
    "The width of a segment-size bucket (UTC calendar units; sizes are recorded per hour).",
    {
        segment_analytics.SegmentSizeBucket.HOUR: "One hour.",
        segment_analytics.SegmentSizeBucket.DAY: "One UTC day.",
    },
)


@strawberry.type(description="A segment's entries, exits and size in one time bucket.")
class SegmentSizePoint:
    start: datetime = strawberry.field(description="The bucket's first instant (UTC).")
    entered: int = strawberry.field(description="Customers who entered the segment in it.")
    exited: int = strawberry.field(description="Customers who left it (or were merged, erased).")
    size: int = strawberry.field(
        description="Members at the bucket's end (now, for the bucket holding now)."
    )


@strawberry.type(description="One segment's size over time, one point per bucket (dense).")
class SegmentSizeSeries:
    segment: str = strawberry.field(
        description="The segment's key.",
        metadata=not_personal("a segment key chosen by an ADMIN"),
    )
    points: list[SegmentSizePoint] = strawberry.field(description="Every bucket, in time order.")

    @classmethod
    def build(cls, series: segment_analytics.SizeSeries) -> SegmentSizeSeries:
        return cls(
            segment=series.segment,
            points=[
                SegmentSizePoint(start=p.start, entered=p.entered, exited=p.exited, size=p.size)
                for p in series.points
            ],
        )


@strawberry.type(description="How many customers are members of both segments now.")
class SegmentOverlap:
    a: str = strawberry.field(
        description="One segment's key.", metadata=not_personal("a segment key chosen by an ADMIN")
    )
    b: str = strawberry.field(
        description="The other's (the same key: that segment's size).",
        metadata=not_personal("a segment key chosen by an ADMIN"),
    )
    customers: int = strawberry.field(description="Members of both.")
