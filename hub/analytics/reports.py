"""Journey analytics: one SQL statement per question, computed inside PostgreSQL.

Every function takes a ``Scope`` (time range, business lines, channels) and returns plain rows;
the GraphQL resolvers, the CLI and anything else turn them into their own shapes. The statements
are text with bound parameters because window functions, grouping sets and ordered-set
aggregates read far better as SQL than as Core expressions; only fixed fragments chosen by code
are spliced in, never user input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.analytics import parts as analytics_parts
from hub.analytics.parts import Range, range_condition, rows_in_parts
from hub.core.enums import STAGE_ORDER, StageCode, StageTransition, TouchpointKind
from hub.db.rows import Record
from hub.journeys.rules import classify_transition

# Touchpoints where a customer writes or talks and waits for an answer: response and resolution
# times are measured for these (plus every touchpoint of the ASSISTED channel).
RESPONSIVE_KINDS = frozenset(
    {
        TouchpointKind.LIVE_CHAT,
        TouchpointKind.CHATBOT,
        TouchpointKind.EMAIL,
        TouchpointKind.SMS,
        TouchpointKind.RICH_MESSAGING,
        TouchpointKind.VOICE,
        TouchpointKind.VIDEO,
    }
)
# A dense time series longer than this is refused: choose a coarser bucket or a shorter range.
MAX_BUCKETS = 5000


class TransitionGrouping(StrEnum):
    CHANNEL = "CHANNEL"
    TOUCHPOINT = "TOUCHPOINT"
    STAGE = "STAGE"


class TimeBucket(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


BUCKET_STEP = {
    TimeBucket.HOUR: timedelta(hours=1),
    TimeBucket.DAY: timedelta(days=1),
    TimeBucket.WEEK: timedelta(weeks=1),
}


class ScopeError(ValueError):
    """The scope or an argument cannot be answered (e.g. an empty time range)."""


@dataclass(frozen=True)
class Scope:
    """Which interactions count: ``since <= occurred_at < until``, on these business lines
    (of the touchpoint) and channels. ``None`` means no restriction."""

    since: datetime | None = None
    until: datetime | None = None
    business_lines: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    # Only customers who are members of at least one of these segments now. Whole customers
    # are kept or left out, so a customer's next interaction in scope stays the next one: the
    # one-pass statements stay exact (unlike a channel or business-line filter).
    segments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ScopeError("`since` must be earlier than `until`")

    def params(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "business_lines": list(self.business_lines or ()),
            "channels": list(self.channels or ()),
            "segments": list(self.segments or ()),
        }

    def members(self, customer: str) -> str:
        """SQL: the customer column ``customer`` names a member of the scope's segments."""
        return (
            f"{customer} IN (SELECT customer_id FROM segment_members"
            " WHERE segment_key = ANY(:segments))"
        )

    def where(
        self,
        alias: str,
        *,
        at: str = "occurred_at",
        touchpoint: str = "touchpoint_id",
        channel: str = "channel_code",
        customer: str | None = "customer_id",
    ) -> str:
        """SQL conditions (joined by AND, ``TRUE`` when none) on a row of ``alias``
        (``customer``: its customer column, None when it has none)."""
        clauses = ["TRUE"]
        if self.segments is not None and customer is not None:
            clauses.append(self.members(f"{alias}.{customer}"))
        if self.since is not None:
            clauses.append(f"{alias}.{at} >= :since")
        if self.until is not None:
            clauses.append(f"{alias}.{at} < :until")
        if self.channels is not None:
            clauses.append(f"{alias}.{channel} = ANY(:channels)")
        if self.business_lines is not None:
            clauses.append(
                f"{alias}.{touchpoint} IN"
                " (SELECT id FROM touchpoints WHERE business_line = ANY(:business_lines))"
            )
        return " AND ".join(clauses)


async def _rows(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> Sequence[Record]:
    async with engine.connect() as connection:
        return await analytics_parts.execute(connection, sql, params)


# --- channel mix -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixRow:
    """Counts for the whole scope (channel and touchpoint None), a channel, or a touchpoint."""

    channel: str | None
    touchpoint_id: Any
    interactions: int
    customers: int
    inbound: int
    outbound: int


@dataclass(frozen=True)
class ChannelMix:
    total: MixRow
    channels: list[MixRow]
    touchpoints: list[MixRow]


async def channel_mix(engine: AsyncEngine, scope: Scope) -> ChannelMix:
    """Counted from ``journey_steps`` in one pass. A customer is counted once per touchpoint at
    their last interaction there in the time range (the next one there is past ``until``, or
    there is none), once per channel and once overall likewise: counting those rows counts
    distinct customers without sorting. With a channel or business-line filter the customer's
    next interaction overall (and, for a business line, on the channel) may be out of scope, so
    those counts deduplicate the flagged rows instead (far fewer than the interactions)."""
    filtered = scope.channels is not None or scope.business_lines is not None
    dedup = ""
    customers = "CASE l.level WHEN 0 THEN l.touchpoint_customers ELSE l.other_customers END"
    join = ""
    if filtered:
        # A customer's last row on a channel in range stays exact under a channel filter (the
        # next one on that channel is in scope too); under a business-line filter only the last
        # row at a touchpoint does. Those rows are deduplicated for what the flags cannot tell.
        lines = scope.business_lines is not None
        last = _last_in_range("s.tp_next_at" if lines else "s.ch_next_at", scope)
        dedup = f""",
        lasts AS (
            SELECT {"DISTINCT" if lines else ""} s.channel_code, s.customer_id
            FROM journey_steps s
            WHERE {scope.where("s", at="at")} AND {last}
        ),
        deduplicated AS (
            {
            "SELECT channel_code, count(*) AS customers FROM lasts GROUP BY channel_code UNION ALL"
            if lines
            else ""
        }
            SELECT CAST(NULL AS text) AS channel_code, count(DISTINCT customer_id) AS customers
            FROM lasts
        )"""
        exact = "0, 1" if not lines else "0"
        customers = (
            f"CASE WHEN l.level IN ({exact}) THEN"
            " (CASE l.level WHEN 0 THEN l.touchpoint_customers ELSE l.other_customers END)"
            " ELSE d.customers END"
        )
        join = (
            "LEFT JOIN deduplicated d ON d.channel_code IS NOT DISTINCT FROM l.channel_code"
            f" AND l.level NOT IN ({exact})"
        )
    rows = await _rows(
        engine,
        f"""
        WITH per_touchpoint AS (
            SELECT s.channel_code, s.touchpoint_id, count(*) AS interactions,
                   count(*) FILTER (WHERE s.inbound) AS inbound,
                   count(*) FILTER (WHERE NOT s.inbound) AS outbound,
                   count(*) FILTER (WHERE {_last_in_range("s.tp_next_at", scope)})
                       AS touchpoint_customers,
                   count(*) FILTER (WHERE {_last_in_range("s.ch_next_at", scope)})
                       AS channel_customers,
                   count(*) FILTER (WHERE {_last_in_range("s.next_at", scope)})
                       AS all_customers
            FROM journey_steps s
            WHERE {scope.where("s", at="at")}
            GROUP BY s.channel_code, s.touchpoint_id
        ),
        levels AS (
            SELECT channel_code, touchpoint_id,
                   GROUPING(channel_code, touchpoint_id) AS level,
                   sum(interactions)::bigint AS interactions,
                   sum(inbound)::bigint AS inbound, sum(outbound)::bigint AS outbound,
                   sum(touchpoint_customers)::bigint AS touchpoint_customers,
                   CASE GROUPING(channel_code, touchpoint_id)
                       WHEN 1 THEN sum(channel_customers) ELSE sum(all_customers)
                   END::bigint AS other_customers
            FROM per_touchpoint
            GROUP BY GROUPING SETS ((), (channel_code), (channel_code, touchpoint_id))
        ){dedup}
        SELECT l.channel_code AS channel, l.touchpoint_id, l.level, l.interactions,
               l.inbound, l.outbound, {customers} AS customers
        FROM levels l
        {join}
        ORDER BY l.level DESC, l.interactions DESC, channel, l.touchpoint_id
        """,
        scope.params(),
    )
    total = MixRow(None, None, 0, 0, 0, 0)
    channels: list[MixRow] = []
    touchpoints: list[MixRow] = []
    for row in rows:
        # Over an empty scope the grand total still comes back, with NULL sums: zeros.
        mix = MixRow(
            channel=row["channel"],
            touchpoint_id=row["touchpoint_id"],
            interactions=row["interactions"] or 0,
            customers=row["customers"] or 0,
            inbound=row["inbound"] or 0,
            outbound=row["outbound"] or 0,
        )
        # GROUPING() is a bit mask of the columns left out: 3 = total, 1 = channel, 0 = both.
        if row["level"] == 3:
            total = mix
        elif row["level"] == 1:
            channels.append(mix)
        else:
            touchpoints.append(mix)
    return ChannelMix(total=total, channels=channels, touchpoints=touchpoints)


def _last_in_range(next_at: str, scope: Scope) -> str:
    """SQL: the row's next interaction of the same kind is not in the time range (so the row is
    the customer's last of that kind in it)."""
    if scope.until is None:
        return f"{next_at} IS NULL"
    return f"({next_at} IS NULL OR {next_at} >= :until)"


# --- channel / touchpoint / stage transitions --------------------------------------------------


@dataclass(frozen=True)
class TransitionLink:
    """Consecutive interactions of customers going from ``source`` to ``target`` (drop-offs are
    counted on the node). ``classification`` is set for the stage grouping only (None there
    means same stage on the same channel)."""

    source: str
    target: str
    moves: int
    customers: int
    classification: StageTransition | None = None


@dataclass(frozen=True)
class TransitionNode:
    key: str
    interactions: int
    drop_offs: int
    drop_off_customers: int


@dataclass(frozen=True)
class Transitions:
    nodes: list[TransitionNode]
    links: list[TransitionLink] = field(default_factory=list)


# Per grouping: the node column of a journey_steps row, its next interaction's, and the prefix
# of the grouping's link columns (``<prefix>_move_prev_at`` and so on; migration 0008).
_NODE_COLUMNS = {
    TransitionGrouping.CHANNEL: ("channel_code", "next_channel_code", "ch"),
    TransitionGrouping.TOUCHPOINT: ("touchpoint_id", "next_touchpoint_id", "tp"),
    TransitionGrouping.STAGE: ("stage", "next_stage", "st"),
}


def _whole_minutes(gap: timedelta) -> int | None:
    minutes, rest = divmod(gap, timedelta(minutes=1))
    return int(minutes) if not rest else None


async def transitions(
    engine: AsyncEngine,
    scope: Scope,
    grouping: TransitionGrouping,
    max_gap: timedelta | None,
    *,
    parts: int = 1,
) -> Transitions:
    """How customers move between consecutive interactions, grouped by channel, touchpoint or
    the stage they were in. A next interaction more than ``max_gap`` later does not count as a
    move: the journey ended there (a drop-off).

    Each ``journey_steps`` row already knows the customer's next interaction. Without a channel
    or business-line filter that is the next one in scope too (if it is before ``until``), so one
    pass counts everything, and distinct customers are the rows flagged as a customer's first
    move of its kind in range (or, with a gap, the last qualifying one). Filters change which
    interaction comes next, so they take the window over the scoped rows instead: over
    ``parts`` ranges of customers at once (hub/analytics/parts.py), their counts summed."""
    if max_gap is not None and max_gap <= timedelta(0):
        raise ScopeError("`maxGapMinutes` must be positive")
    gap_minutes = _whole_minutes(max_gap) if max_gap is not None else None
    unfiltered = scope.channels is None and scope.business_lines is None
    params = {**scope.params(), "max_gap": max_gap, "gap_minutes": gap_minutes}
    if unfiltered and (max_gap is None or (gap_minutes is not None and scope.until is None)):
        rows = await _rows(engine, _linked_transitions_sql(scope, grouping, gap_minutes), params)
    else:
        rows = await rows_in_parts(
            engine,
            lambda bounds: _windowed_transitions_sql(scope, grouping, max_gap, bounds),
            params,
            parts,
        )
    stage = grouping is TransitionGrouping.STAGE
    # (node, target, looping) -> [moves, customers], summed over the parts.
    counts: dict[tuple[str, str | None, bool], list[int]] = {}
    for row in rows:
        total = counts.setdefault((row["node"], row["target"], row["looping"]), [0, 0])
        total[0] += row["moves"]
        total[1] += row["customers"]
    interactions: dict[str, int] = {}
    drop_offs: dict[str, tuple[int, int]] = {}
    links: list[TransitionLink] = []
    for (source, target, looping), (moves, customers) in counts.items():
        interactions[source] = interactions.get(source, 0) + moves
        if target is None:
            drop_offs[source] = (moves, customers)
        else:
            kind = _classify(source, target, looping) if stage else None
            links.append(TransitionLink(source, target, moves, customers, kind))
    nodes = [
        TransitionNode(
            key=key,
            interactions=total,
            drop_offs=drop_offs.get(key, (0, 0))[0],
            drop_off_customers=drop_offs.get(key, (0, 0))[1],
        )
        for key, total in interactions.items()
    ]
    if stage:
        nodes.sort(key=lambda n: STAGE_ORDER[StageCode(n.key)])
    else:
        nodes.sort(key=lambda n: (-n.interactions, n.key))
    return Transitions(
        nodes=nodes,
        # A total order: two STAGE links between the same stages differ in classification.
        links=sorted(
            links,
            key=lambda link: (-link.moves, link.source, link.target, link.classification or ""),
        ),
    )


def _linked_transitions_sql(
    scope: Scope, grouping: TransitionGrouping, gap_minutes: int | None
) -> str:
    node, following, prefix = _NODE_COLUMNS[grouping]
    moved = "s.next_at IS NOT NULL"
    if scope.until is not None:
        moved += " AND s.next_at < :until"
    if gap_minutes is not None:
        moved += " AND s.gap_minutes <= :gap_minutes"
    if gap_minutes is None:
        # The first move of its kind in range: the previous one is before ``since``. A journey
        # ends once per customer (at their last interaction in range).
        first = f"s.{prefix}_move_prev_at IS NULL"
        if scope.since is not None:
            first = f"({first} OR s.{prefix}_move_prev_at < :since)"
        ended = "TRUE"
    else:
        # With no ``until``, every later interaction is in range: the last qualifying move of
        # its kind has no later one within the gap, the last drop-off at a node no later one.
        first = f"coalesce(s.{prefix}_later_min_gap > :gap_minutes, TRUE)"
        ended = f"coalesce(s.{prefix}_later_max_gap <= :gap_minutes, TRUE)"
    stage = grouping is TransitionGrouping.STAGE
    looping = (
        f"coalesce(({moved}) AND s.next_stage = s.stage"
        " AND s.next_channel_code <> s.channel_code, FALSE)"
        if stage
        else "FALSE"
    )
    # Grouped on the columns as stored (uuids for touchpoints, whether the next one counts as a
    # move apart): the planner knows how few groups that makes and aggregates in parallel; the
    # text the caller wants is made for the few groups, not for every row.
    return f"""
    WITH groups AS (
        SELECT s.{node} AS node, s.{following} AS following, {moved} AS moved,
               {looping} AS looping, count(*) AS moves,
               count(*) FILTER (WHERE CASE WHEN {moved} THEN {first} ELSE {ended} END)
                   AS customers
        FROM journey_steps s
        WHERE {scope.where("s", at="at")} {"AND s.stage IS NOT NULL" if stage else ""}
        GROUP BY 1, 2, 3, 4
    )
    SELECT node::text AS node, CASE WHEN moved THEN following::text END AS target, looping,
           sum(moves)::bigint AS moves, sum(customers)::bigint AS customers
    FROM groups
    GROUP BY 1, 2, 3
    """


def _windowed_transitions_sql(
    scope: Scope, grouping: TransitionGrouping, max_gap: timedelta | None, customers: Range
) -> str:
    """lead() over each customer's rows in scope, ordered by (at, id): the next one in scope,
    for the customers in the range."""
    node = f"s.{_NODE_COLUMNS[grouping][0]}"
    stage = grouping is TransitionGrouping.STAGE
    # Channels and touchpoints walk ix_interactions_customer_path (an index-only scan in each
    # customer's time order, no sort); stages need the stage, which journey_steps carries.
    source = (
        "journey_steps s"
        if stage
        else "(SELECT id, customer_id, occurred_at AS at, touchpoint_id, channel_code"
        " FROM interactions) s"
    )
    next_target = (
        "next_node" if max_gap is None else "CASE WHEN next_at - at <= :max_gap THEN next_node END"
    )
    # Only what the grouping needs goes through the window: each lead() costs a pass of work.
    # Channels and touchpoints cannot loop (the same node is the same channel).
    extra_leads = ""
    if stage:
        extra_leads += ", lead(s.channel_code) OVER w AS next_channel"
    if max_gap is not None:
        extra_leads += ", lead(s.at) OVER w AS next_at"
    looping = (
        f"coalesce({next_target} = node AND next_channel <> channel, FALSE)" if stage else "FALSE"
    )
    return f"""
    WITH steps AS (
        SELECT s.customer_id, {node} AS node, s.channel_code AS channel, s.at,
               lead({node}) OVER w AS next_node {extra_leads}
        FROM {source}
        WHERE {scope.where("s", at="at")} AND {range_condition("s", customers)}
              {"AND s.stage IS NOT NULL" if stage else ""}
        WINDOW w AS (PARTITION BY s.customer_id ORDER BY s.at, s.id)
    ),
    moves AS (
        SELECT customer_id, node, {next_target} AS target, {looping} AS looping
        FROM steps
    ),
    -- Per customer first: the rows arrive ordered by customer, so this needs only small sorts,
    -- and the distinct customers of a link become a plain count.
    per_customer AS (
        SELECT node, target, looping, count(*) AS moves
        FROM moves
        GROUP BY customer_id, node, target, looping
    )
    SELECT node::text AS node, target::text AS target, looping,
           sum(moves)::bigint AS moves, count(*) AS customers
    FROM per_customer
    GROUP BY node, target, looping
    """


def _classify(source: str, target: str, looping: bool) -> StageTransition | None:
    # The statement keeps, for a move within one stage, only whether the channel changed; the
    # rule compares channels for equality, so two stand-in names carry exactly that.
    return classify_transition(
        StageCode(source), StageCode(target), "from", "to" if looping else "from"
    )


# --- stage funnel ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    """Customers who entered ``stage`` in scope; of them, how many entered the next stage at or
    after their first entry here; and the median completed stay (entry to the next stage
    change, measured on the whole history)."""

    stage: StageCode
    customers: int
    converted_to_next: int | None
    median_seconds_in_stage: float | None
    completed_stays: int


async def stage_funnel(engine: AsyncEngine, scope: Scope) -> list[FunnelStep]:
    """From ``stage_history``: an entry counts when it is in the time range and, with a channel
    or business-line filter, was caused by an interaction on those channels / business lines.
    LOOPING rows are not entries (the customer was already in the stage).

    Without those filters, one pass over ``stage_entries``: a customer is counted at their last
    entry into the stage in range (their next one is past ``until``, or there is none), and
    converted to the next stage when, at their last entry into it, their latest entry into this
    stage at or before it is in range too. With filters, the entries in scope are reduced per
    customer instead."""
    filtered = scope.channels is not None or scope.business_lines is not None
    sql = _filtered_funnel_sql(scope) if filtered else _linked_funnel_sql(scope)
    rows = await _rows(engine, sql, scope.params())
    return [
        FunnelStep(
            stage=StageCode(row["stage"]),
            customers=row["customers"],
            converted_to_next=row["converted"] if row["has_next"] else None,
            median_seconds_in_stage=row["median_seconds"],
            completed_stays=row["completed"],
        )
        for row in rows
    ]


def _linked_funnel_sql(scope: Scope) -> str:
    last = _last_in_range("e.same_next_at", scope)
    lower = "e.lower_prev_at IS NOT NULL"
    if scope.since is not None:
        lower = "e.lower_prev_at >= :since"
    return f"""
    WITH per_stage AS (
        SELECT e.stage,
               count(*) FILTER (WHERE {last}) AS customers,
               count(*) FILTER (WHERE {last} AND {lower}) AS converted_into,
               count(e.left_at) AS completed,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM e.left_at - e.entered_at))
                   FILTER (WHERE e.left_at IS NOT NULL) AS median_seconds
        FROM stage_entries e
        WHERE {scope.where("e", at="entered_at")}
        GROUP BY e.stage
    )
    SELECT s.code AS stage, s.position, ns.code IS NOT NULL AS has_next,
           coalesce(p.customers, 0) AS customers, coalesce(n.converted_into, 0) AS converted,
           p.median_seconds, coalesce(p.completed, 0) AS completed
    FROM journey_stages s
    LEFT JOIN journey_stages ns ON ns.position = s.position + 1
    LEFT JOIN per_stage p ON p.stage = s.code
    LEFT JOIN per_stage n ON n.stage = ns.code
    ORDER BY s.position
    """


def _filtered_funnel_sql(scope: Scope) -> str:
    """Entries filtered by the channel / business line of the interaction that caused them,
    reduced per customer in one pass: the first and last entry into each stage (one pair of
    columns per stage, in ``StageCode`` order). A customer reached a stage when they have a
    first entry; converted to the next when their last entry into the next stage is at or after
    their first entry here. When each entry was left comes from ``stage_entries``, measured on
    the whole history."""
    stages = list(StageCode)
    per_stage = ",\n               ".join(
        f"min(e.entered_at) FILTER (WHERE e.stage = '{stage.value}') AS first_{k},"
        f" max(e.entered_at) FILTER (WHERE e.stage = '{stage.value}') AS last_{k}"
        for k, stage in enumerate(stages)
    )
    reached = ",\n               ".join(
        f"count(first_{k}) AS customers_{k}"
        + (
            f", count(*) FILTER (WHERE last_{k + 1} >= first_{k}) AS converted_{k}"
            if k + 1 < len(stages)
            else ""
        )
        for k, stage in enumerate(stages)
    )
    values = ",\n            ".join(
        f"('{stage.value}', {k}, {k + 1 < len(stages)}, r.customers_{k},"
        f" {f'r.converted_{k}' if k + 1 < len(stages) else 'CAST(NULL AS bigint)'})"
        for k, stage in enumerate(stages)
    )
    return f"""
    WITH per_customer AS (
        SELECT {per_stage}
        FROM stage_entries e
        WHERE {scope.where("e", at="entered_at")}
        GROUP BY e.customer_id
    ),
    reached AS (
        SELECT {reached}
        FROM per_customer
    ),
    stays AS (
        SELECT e.stage, count(*) AS completed,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM e.left_at - e.entered_at)) AS median_seconds
        FROM stage_entries e
        WHERE {scope.where("e", at="entered_at")} AND e.left_at IS NOT NULL
        GROUP BY e.stage
    )
    SELECT s.stage, s.position, s.has_next, s.customers, coalesce(s.converted, 0) AS converted,
           y.median_seconds, coalesce(y.completed, 0) AS completed
    FROM reached r
    CROSS JOIN LATERAL (VALUES
            {values}
    ) AS s(stage, position, has_next, customers, converted)
    LEFT JOIN stays y ON y.stage = s.stage
    ORDER BY s.position
    """


# --- touchpoint performance --------------------------------------------------------------------


@dataclass(frozen=True)
class TouchpointPerformance:
    """Volume and sentiment of a touchpoint's interactions, and the conversations customers
    opened there (their first INBOUND interaction was at this touchpoint)."""

    touchpoint_id: Any
    channel: str
    kind: str
    interactions: int
    average_sentiment: float | None
    measures_responses: bool
    conversations: int
    resolved_conversations: int
    median_first_response_seconds: float | None
    median_resolution_seconds: float | None


async def touchpoint_performance(engine: AsyncEngine, scope: Scope) -> list[TouchpointPerformance]:
    """First response: the first OUTBOUND interaction of a conversation after its first INBOUND
    one. Resolution: ``resolved_at`` of a RESOLVED conversation, from that first INBOUND. A
    conversation is in scope when its first INBOUND interaction is. The conversations come
    from ``conversation_facts`` (no window over every conversation's interactions)."""
    responsive = list(RESPONSIVE_KINDS)
    rows = await _rows(
        engine,
        f"""
        WITH volume AS (
            SELECT i.touchpoint_id, count(*) AS interactions,
                   avg(i.sentiment) AS average_sentiment
            FROM interactions i
            WHERE {scope.where("i")}
            GROUP BY i.touchpoint_id
        ),
        -- conversation_facts: each conversation's first INBOUND interaction and first OUTBOUND
        -- after it, kept by the interactions triggers (migration 0008).
        conversations_in_scope AS (
            SELECT f.conversation_id, f.asked_at, f.answered_at, f.touchpoint_id,
                   f.channel_code, c.status, c.resolved_at
            FROM conversation_facts f
            JOIN conversations c ON c.id = f.conversation_id
            WHERE {scope.where("f", at="asked_at", customer=None)}
                  {"AND " + scope.members("c.customer_id") if scope.segments is not None else ""}
        ),
        answers AS (
            SELECT touchpoint_id, count(*) AS conversations,
                   count(*) FILTER (WHERE status = 'RESOLVED') AS resolved,
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM answered_at - asked_at)) AS first_response,
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM resolved_at - asked_at))
                       FILTER (WHERE status = 'RESOLVED') AS resolution
            FROM conversations_in_scope
            GROUP BY touchpoint_id
        )
        SELECT t.id AS touchpoint_id, t.channel_code AS channel, t.kind,
               coalesce(v.interactions, 0) AS interactions,
               v.average_sentiment,
               t.channel_code = 'ASSISTED' OR t.kind = ANY(:responsive) AS measures_responses,
               coalesce(a.conversations, 0) AS conversations,
               coalesce(a.resolved, 0) AS resolved,
               a.first_response, a.resolution
        FROM touchpoints t
        LEFT JOIN volume v ON v.touchpoint_id = t.id
        LEFT JOIN answers a ON a.touchpoint_id = t.id
        WHERE v.touchpoint_id IS NOT NULL OR a.touchpoint_id IS NOT NULL
        ORDER BY interactions DESC, t.name, t.id
        """,
        {**scope.params(), "responsive": responsive},
    )
    result = []
    for row in rows:
        measured = row["measures_responses"]
        result.append(
            TouchpointPerformance(
                touchpoint_id=row["touchpoint_id"],
                channel=row["channel"],
                kind=row["kind"],
                interactions=row["interactions"],
                average_sentiment=row["average_sentiment"],
                measures_responses=measured,
                conversations=row["conversations"],
                resolved_conversations=row["resolved"],
                median_first_response_seconds=row["first_response"] if measured else None,
                median_resolution_seconds=row["resolution"] if measured else None,
            )
        )
    return result


# --- interactions over time --------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    start: datetime
    interactions: int
    inbound: int
    outbound: int


@dataclass(frozen=True)
class TimeSeries:
    """One dense series per channel that has interactions in scope: every bucket from the
    scope's start (or the first interaction) to its end (or the last), zeros included."""

    buckets: list[datetime]
    series: dict[str, list[SeriesPoint]]


_BUCKET_ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"


async def interactions_over_time(
    engine: AsyncEngine, scope: Scope, bucket: TimeBucket
) -> TimeSeries:
    # Buckets are UTC calendar units (weeks start on Monday); the series is generated on
    # timestamps without zone so a step never depends on the session's time zone. Rows are
    # binned with date_bin from a Monday midnight UTC: the same buckets as date_trunc(unit, at,
    # 'UTC'), in integer arithmetic instead of a time-zone conversion per row (2-3x faster).
    rows = await _rows(
        engine,
        f"""
        WITH counts AS (
            SELECT date_bin(CAST(:step AS interval), i.occurred_at, {_BUCKET_ORIGIN}) AS bucket,
                   i.channel_code,
                   count(*) AS interactions,
                   count(*) FILTER (WHERE i.direction = 'INBOUND') AS inbound,
                   count(*) FILTER (WHERE i.direction = 'OUTBOUND') AS outbound
            FROM interactions i
            WHERE {scope.where("i")}
            GROUP BY 1, 2
        ),
        bounds AS (
            SELECT coalesce(date_trunc(:unit, CAST(:since AS timestamptz), 'UTC'), min(bucket))
                       AS first_bucket,
                   coalesce(date_trunc(:unit, CAST(:until AS timestamptz)
                                       - interval '1 microsecond', 'UTC'), max(bucket))
                       AS last_bucket
            FROM counts
        ),
        buckets AS (
            SELECT generate_series(first_bucket AT TIME ZONE 'UTC', last_bucket AT TIME ZONE 'UTC',
                                   CAST(:step AS interval)) AT TIME ZONE 'UTC' AS bucket
            FROM bounds
            WHERE EXISTS (SELECT FROM counts)
            LIMIT {MAX_BUCKETS + 1}
        )
        SELECT b.bucket, ch.channel_code AS channel,
               coalesce(c.interactions, 0) AS interactions,
               coalesce(c.inbound, 0) AS inbound, coalesce(c.outbound, 0) AS outbound
        FROM buckets b
        CROSS JOIN (SELECT DISTINCT channel_code FROM counts) ch
        LEFT JOIN counts c ON c.bucket = b.bucket AND c.channel_code = ch.channel_code
        JOIN channels cl ON cl.code = ch.channel_code
        ORDER BY cl.position, b.bucket
        """,
        {**scope.params(), "unit": bucket.value.lower(), "step": BUCKET_STEP[bucket]},
    )
    series: dict[str, list[SeriesPoint]] = {}
    for row in rows:
        series.setdefault(row["channel"], []).append(
            SeriesPoint(row["bucket"], row["interactions"], row["inbound"], row["outbound"])
        )
    buckets = [point.start for point in next(iter(series.values()), [])]
    if len(buckets) > MAX_BUCKETS:
        raise ScopeError(
            f"more than {MAX_BUCKETS} {bucket.value.lower()} buckets: choose a coarser bucket or"
            " a shorter time range"
        )
    return TimeSeries(buckets=buckets, series=series)


async def business_lines(engine: AsyncEngine) -> list[str]:
    rows = await _rows(
        engine,
        "SELECT DISTINCT business_line FROM touchpoints WHERE business_line IS NOT NULL"
        " ORDER BY business_line",
        {},
    )
    return [row["business_line"] for row in rows]
