"""What each GraphQL field of the compiled subset becomes in SQL: one table per object type.

The planner (``hub.compiled.planner``) walks a selection set through these tables; it has no
knowledge of any type of its own. In the templates ``{x}`` is the alias of the field's own row
(or subquery), ``{parent}`` the alias of the row the field belongs to, ``{y}`` one more fresh
alias. Everything missing here makes the query go to the resolvers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """A column, as JSON."""

    column: str


@dataclass(frozen=True)
class Timestamp:
    """A timestamptz column, as the ``DateTime`` scalar renders it."""

    column: str


@dataclass(frozen=True)
class GlobalId:
    """The Relay id of the row (``Type:key``, base64)."""

    type_name: str
    column: str = "id"
    uuid_key: bool = True


@dataclass(frozen=True)
class Expression:
    """Any SQL expression over the row ``{x}`` (``{y}``: a fresh alias for a subquery)."""

    template: str


@dataclass(frozen=True)
class Joined:
    """A to-one row LEFT JOINed once to the enclosing FROM (one join per page, not per row)."""

    type_name: str
    table: str
    key: str
    parent_column: str


@dataclass(frozen=True)
class One:
    """A to-one row found by a subquery (the first in ``order`` when given)."""

    type_name: str
    table: str
    where: str
    order: str | None = None


@dataclass(frozen=True)
class Many:
    """A list of rows, as a JSON array in ``order``."""

    type_name: str
    source: str
    where: str | None
    order: str


@dataclass(frozen=True)
class InteractionPage:
    """A Relay connection of the interactions whose ``owner_column`` is the row's id."""

    owner_column: str


Field = Column | Timestamp | GlobalId | Expression | Joined | One | Many | InteractionPage


def _timestamps(*names: tuple[str, str]) -> dict[str, Field]:
    return {name: Timestamp(column) for name, column in names}


CHANNEL_USAGE = (
    "(SELECT {y}.channel_code, count(*) AS interaction_count, "
    "min({y}.occurred_at) AS first_seen_at, max({y}.occurred_at) AS last_seen_at "
    "FROM interactions {y} WHERE {y}.customer_id = {parent}.id GROUP BY {y}.channel_code)"
)
CUSTOMERS_IN_STAGE = (
    "(SELECT count(*) FROM customers {y} WHERE {y}.current_stage = {x}.code "
    "AND {y}.merged_into_id IS NULL)"
)
NEWEST_FIRST = "{x}.occurred_at DESC, {x}.id DESC"
OLDEST_FIRST = "{x}.occurred_at, {x}.id"

FIELDS: dict[str, dict[str, Field]] = {
    "Customer": {
        "id": GlobalId("Customer"),
        "displayName": Column("display_name"),
        "traits": Column("traits"),
        **_timestamps(
            ("stageEnteredAt", "stage_entered_at"),
            ("firstSeenAt", "first_seen_at"),
            ("lastSeenAt", "last_seen_at"),
            ("createdAt", "created_at"),
            ("updatedAt", "updated_at"),
        ),
        # Only survivors are compiled: nothing was merged away.
        "requestedId": Expression("NULL::text"),
        "identities": Many(
            "Identity",
            "identities",
            "{x}.customer_id = {parent}.id",
            "{x}.kind, {x}.created_at, {x}.id",
        ),
        "currentStage": One("JourneyStage", "journey_stages", "{x}.code = {parent}.current_stage"),
        "interactions": InteractionPage("customer_id"),
        "lastInteraction": One(
            "Interaction", "interactions", "{x}.customer_id = {parent}.id", NEWEST_FIRST
        ),
        "conversations": Many(
            "Conversation",
            "conversations",
            "{x}.customer_id = {parent}.id",
            "{x}.last_activity_at DESC, {x}.id",
        ),
        "stageHistory": Many(
            "StageChange",
            "stage_history",
            "{x}.customer_id = {parent}.id",
            "{x}.entered_at, {x}.id",
        ),
        "channelsUsed": Many(
            "ChannelUsage", CHANNEL_USAGE, None, "{x}.first_seen_at, {x}.channel_code"
        ),
    },
    "Identity": {
        "kind": Column("kind"),
        "value": Column("value"),
        **_timestamps(("firstSeenAt", "created_at"), ("lastSeenAt", "last_seen_at")),
    },
    "JourneyStage": {
        **{name: Column(name) for name in ("code", "name", "description", "position")},
        "customerCount": Expression(CUSTOMERS_IN_STAGE),
    },
    "Conversation": {
        "id": GlobalId("Conversation"),
        "key": Column("key"),
        "status": Column("status"),
        **_timestamps(
            ("startedAt", "started_at"),
            ("lastActivityAt", "last_activity_at"),
            ("resolvedAt", "resolved_at"),
        ),
        # Oldest first, like loaders.interactions.interactions_by_conversation.
        "interactions": Many(
            "Interaction", "interactions", "{x}.conversation_id = {parent}.id", OLDEST_FIRST
        ),
        "lastInteraction": One(
            "Interaction", "interactions", "{x}.conversation_id = {parent}.id", NEWEST_FIRST
        ),
    },
    "StageChange": {
        "previousStage": Column("previous_stage"),
        "transition": Column("transition"),
        "reason": Column("reason"),
        "enteredAt": Timestamp("entered_at"),
        "stage": One("JourneyStage", "journey_stages", "{x}.code = {parent}.stage"),
        "channel": Joined("Channel", "channels", "code", "channel_code"),
        "interaction": One("Interaction", "interactions", "{x}.id = {parent}.interaction_id"),
    },
    "ChannelUsage": {
        "interactionCount": Column("interaction_count"),
        **_timestamps(("firstSeenAt", "first_seen_at"), ("lastSeenAt", "last_seen_at")),
        "channel": Joined("Channel", "channels", "code", "channel_code"),
    },
    "Interaction": {
        "id": GlobalId("Interaction"),
        "occurredAt": Timestamp("occurred_at"),
        **{
            name: Column(name)
            for name in (
                "type",
                "direction",
                "summary",
                "sentiment",
                "outcome",
                "agent",
                "attributes",
            )
        },
        "touchpoint": Joined("Touchpoint", "touchpoints", "id", "touchpoint_id"),
        "channel": Joined("Channel", "channels", "code", "channel_code"),
    },
    "Touchpoint": {
        "id": GlobalId("Touchpoint"),
        "name": Column("name"),
        "kind": Column("kind"),
        "address": Column("address"),
        "businessLine": Column("business_line"),
        "active": Column("active"),
        "channel": Joined("Channel", "channels", "code", "channel_code"),
        "interactions": InteractionPage("touchpoint_id"),
    },
    "Channel": {
        "id": GlobalId("Channel", "code", uuid_key=False),
        **{name: Column(name) for name in ("code", "name", "description", "position")},
    },
}
