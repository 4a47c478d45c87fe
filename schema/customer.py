"""The unified customer: identities, traits, journey, interactions on every channel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from hub.context import Info
from hub.core.ids import to_global_id, uuid_from_global_id
from hub.db.rows import Record
from hub.reads.ordering import CustomerOrderBy
from hub.schema.audiences_traits import ComputedFilter, ComputedValue, computed_values
from hub.schema.channel import Channel
from hub.schema.consent import Consent, ConsentChange, ConsentFilter
from hub.schema.conversation import Conversation
from hub.schema.enums import ChannelCode, IdentityKind, StageCode, described_enum
from hub.schema.interaction import (
    Interaction,
    InteractionFilterArg,
    InteractionOrderArg,
    owned_interactions,
)
from hub.schema.journey import JourneyStage, StageChange, load_stage
from hub.schema.merge import Merge
from hub.schema.node import Node
from hub.schema.pagination import Connection, PageAfter, PageFirst
from hub.schema.permissions import PersonalData, identity_mask, json_mask

if TYPE_CHECKING:
    from hub.schema.segments import SegmentMembership

LazySegmentMembership = Annotated["SegmentMembership", strawberry.lazy("hub.schema.segments")]


@strawberry.type(description="One identifier the customer is known by.")
class Identity:
    kind: IdentityKind = strawberry.field(description="What kind of identifier.")
    value: str = strawberry.field(
        description="The normalised value (e-mail lower-cased...); masked without `pii`.",
        extensions=[PersonalData(identity_mask)],
    )
    first_seen_at: datetime = strawberry.field(description="When it was first linked.")
    last_seen_at: datetime = strawberry.field(description="When it was last used.")

    @classmethod
    def from_row(cls, row: Record) -> Identity:
        return cls(
            kind=IdentityKind(row["kind"]),
            value=row["value"],
            first_seen_at=row["created_at"],
            last_seen_at=row["last_seen_at"],
        )


@strawberry.type(description="How a customer has used one channel.")
class ChannelUsage:
    channel_code: strawberry.Private[str]
    interaction_count: int = strawberry.field(description="Interactions on this channel.")
    first_seen_at: datetime = strawberry.field(description="First interaction on it.")
    last_seen_at: datetime = strawberry.field(description="Latest interaction on it.")

    @strawberry.field(description="The channel.")
    async def channel(self, info: Info) -> Channel:
        row = await info.context.loaders.channel_by_code.load(self.channel_code)
        assert row is not None  # foreign key
        return Channel.from_row(row)


@strawberry.federation.type(
    keys=["id"],
    description="One person, unified across every channel and identifier they used.",
)
class Customer(Node):
    row_id: strawberry.Private[uuid.UUID]
    stage_code: strawberry.Private[str | None]
    display_name: str | None = strawberry.field(
        description="Name to show, when known; masked without `pii`.", extensions=[PersonalData()]
    )
    traits: JSON = strawberry.field(
        description="Attributes such as tier or city, as JSON; personal ones masked without `pii`.",
        extensions=[PersonalData(json_mask)],
    )
    stage_entered_at: datetime | None = strawberry.field(
        description="When the customer entered the current stage."
    )
    first_seen_at: datetime | None = strawberry.field(description="First interaction, any channel.")
    last_seen_at: datetime | None = strawberry.field(description="Latest interaction, any channel.")
    created_at: datetime = strawberry.field(description="When the hub first knew this customer.")
    updated_at: datetime = strawberry.field(description="When the profile last changed.")
    requested_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "The id that was asked for when it was merged into this customer, else null: "
            "asking for a merged-away id answers with the survivor."
        ),
    )

    @classmethod
    def from_row(cls, row: Record) -> Customer:
        return cls(
            id=strawberry.ID(to_global_id("Customer", str(row["id"]))),
            row_id=row["id"],
            stage_code=row["current_stage"],
            display_name=row["display_name"],
            traits=row["traits"],
            stage_entered_at=row["stage_entered_at"],
            first_seen_at=row["first_seen_at"],
            last_seen_at=row["last_seen_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Customer | None:
        return await load_customer(info, uuid_from_global_id(id, "Customer"))

    @strawberry.field(description="Every identifier linked to this customer.")
    async def identities(self, info: Info) -> list[Identity]:
        rows = await info.context.loaders.identities_by_customer.load(self.row_id)
        return [Identity.from_row(row) for row in rows]

    @strawberry.field(description="The journey stage the customer is in now.")
    async def current_stage(self, info: Info) -> JourneyStage | None:
        return await load_stage(info, self.stage_code)

    @strawberry.field(description="Every stage change, oldest first.")
    async def stage_history(self, info: Info) -> list[StageChange]:
        rows = await info.context.loaders.stage_history_by_customer.load(self.row_id)
        return [StageChange.from_row(row) for row in rows]

    @strawberry.field(description="Interactions on every channel, newest first by default.")
    async def interactions(
        self,
        info: Info,
        first: PageFirst = None,
        after: PageAfter = None,
        filter: InteractionFilterArg = None,
        order_by: InteractionOrderArg = None,
    ) -> Connection[Interaction]:
        loaders = info.context.loaders
        return await owned_interactions(
            info,
            self.row_id,
            loaders.interaction_page_by_customer,
            loaders.interaction_count_by_customer,
            first=first,
            after=after,
            filter=filter,
            order_by=order_by,
        )

    @strawberry.field(description="The most recent interaction on any channel.")
    async def last_interaction(self, info: Info) -> Interaction | None:
        row = await info.context.loaders.last_interaction_by_customer.load(self.row_id)
        return Interaction.from_row(row) if row else None

    @strawberry.field(description="Conversations, most recently active first.")
    async def conversations(self, info: Info) -> list[Conversation]:
        rows = await info.context.loaders.conversations_by_customer.load(self.row_id)
        return [Conversation.from_row(row) for row in rows]

    @strawberry.field(description="Current consents, by purpose and channel.")
    async def consents(self, info: Info) -> list[Consent]:
        rows = await info.context.loaders.consents_by_customer.load(self.row_id)
        now = datetime.now(UTC)
        return [Consent.from_row(row, now) for row in rows]

    @strawberry.field(description="Every consent change, oldest first.")
    async def consent_history(self, info: Info) -> list[ConsentChange]:
        rows = await info.context.loaders.consent_history_by_customer.load(self.row_id)
        return [ConsentChange.from_row(row) for row in rows]

    @strawberry.field(description="Each channel the customer used, with counts, first use first.")
    async def channels_used(self, info: Info) -> list[ChannelUsage]:
        rows = await info.context.loaders.channel_usage_by_customer.load(self.row_id)
        return [
            ChannelUsage(
                channel_code=row["channel_code"],
                interaction_count=row["interaction_count"],
                first_seen_at=row["first_seen_at"],
                last_seen_at=row["last_seen_at"],
            )
            for row in rows
        ]

    @strawberry.field(
        description=(
            "Computed traits' values (all, or those of `keys`); unknown keys are an error."
        )
    )
    async def computed(
        self,
        info: Info,
        keys: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these computed traits, in this order."),
        ] = None,
    ) -> list[ComputedValue]:
        return await computed_values(info, self.row_id, keys)

    @strawberry.field(description="Merges this customer took part in, newest first.")
    async def merges(self, info: Info) -> list[Merge]:
        rows = await info.context.loaders.merges_by_customer.load(self.row_id)
        return [Merge.from_row(row) for row in rows]

    @strawberry.field(description="The segments this customer is a member of now, by key.")
    async def segments(self, info: Info) -> list[LazySegmentMembership]:
        from hub.schema.segments import SegmentMembership

        rows = await info.context.loaders.segments_by_customer.load(self.row_id)
        return [SegmentMembership.from_row(row) for row in rows]

    @strawberry.field(
        description=(
            "Where did we leave off: open conversations with their last message, the last "
            "interaction on any channel, the current stage and time in it."
        )
    )
    def resume_context(self) -> ResumeContext:
        return ResumeContext(
            customer_id=self.row_id,
            stage_code=self.stage_code,
            stage_entered_at=self.stage_entered_at,
            last_seen_at=self.last_seen_at,
        )


@strawberry.type(
    description=(
        "What an agent on any channel needs on screen when the customer comes back, in one field."
    )
)
class ResumeContext:
    customer_id: strawberry.Private[uuid.UUID]
    stage_code: strawberry.Private[str | None]
    stage_entered_at: datetime | None = strawberry.field(
        description="When the customer entered the current stage."
    )
    last_seen_at: datetime | None = strawberry.field(
        description="The latest interaction's time, any channel."
    )

    @strawberry.field(
        description="Open conversations, most recently active first (each has `lastInteraction`)."
    )
    async def open_conversations(self, info: Info) -> list[Conversation]:
        rows = await info.context.loaders.conversations_by_customer.load(self.customer_id)
        return [Conversation.from_row(row) for row in rows if row["status"] == "OPEN"]

    @strawberry.field(
        description="The most recent interaction on any channel, with its touchpoint."
    )
    async def last_interaction(self, info: Info) -> Interaction | None:
        row = await info.context.loaders.last_interaction_by_customer.load(self.customer_id)
        return Interaction.from_row(row) if row else None

    @strawberry.field(description="The journey stage the customer is in now.")
    async def current_stage(self, info: Info) -> JourneyStage | None:
        return await load_stage(info, self.stage_code)

    @strawberry.field(description="How long the customer has been in the current stage, seconds.")
    def seconds_in_stage(self) -> int | None:
        if self.stage_entered_at is None:
            return None
        return max(0, int((datetime.now(UTC) - self.stage_entered_at).total_seconds()))


MAX_MERGE_HOPS = 16


async def load_customer(info: Info, customer_id: uuid.UUID) -> Customer | None:
    """The customer with this id, following merges to the survivor."""
    loader = info.context.loaders.customer_by_id
    row = await loader.load(customer_id)
    hops = 0
    while row is not None and row["merged_into_id"] is not None and hops < MAX_MERGE_HOPS:
        row = await loader.load(row["merged_into_id"])
        hops += 1
    if row is None:
        return None
    customer = Customer.from_row(row)
    if row["id"] != customer_id:
        customer.requested_id = strawberry.ID(to_global_id("Customer", str(customer_id)))
    return customer


# ---- filtering and ordering of the customers list (compiled to SQL by hub.reads) ----


described_enum(
    CustomerOrderBy,
    "Orders of the customers list; the id breaks ties.",
    {
        CustomerOrderBy.CREATED_AT_ASC: "Oldest first.",
        CustomerOrderBy.CREATED_AT_DESC: "Newest first.",
        CustomerOrderBy.LAST_SEEN_AT_ASC: "Least recently seen first; never seen first of all.",
        CustomerOrderBy.LAST_SEEN_AT_DESC: "Most recently seen first; never seen last.",
        CustomerOrderBy.DISPLAY_NAME_ASC: "A to Z.",
        CustomerOrderBy.DISPLAY_NAME_DESC: "Z to A.",
    },
)


@strawberry.input(description="Compares a moment; every given operator must hold.")
class DateTimeFilter:
    gt: datetime | None = strawberry.field(default=None, description="Later than.")
    gte: datetime | None = strawberry.field(default=None, description="At or later than.")
    lt: datetime | None = strawberry.field(default=None, description="Earlier than.")
    lte: datetime | None = strawberry.field(default=None, description="At or earlier than.")
    is_null: bool | None = strawberry.field(
        default=None, description="True: only when unset; false: only when set."
    )


@strawberry.input(description="Compares a text; every given operator must hold.")
class StringFilter:
    eq: str | None = strawberry.field(default=None, description="Exactly equal.")
    contains: str | None = strawberry.field(default=None, description="Contains, ignoring case.")
    starts_with: str | None = strawberry.field(
        default=None, description="Starts with, ignoring case."
    )
    is_null: bool | None = strawberry.field(
        default=None, description="True: only when unset; false: only when set."
    )


@strawberry.input(description="Matches the journey stage; every given operator must hold.")
class StageFilter:
    eq: StageCode | None = strawberry.field(default=None, description="In exactly this stage.")
    in_: list[StageCode] | None = strawberry.field(
        default=None, name="in", description="In one of these stages."
    )
    is_null: bool | None = strawberry.field(
        default=None, description="True: only customers without a stage yet."
    )


@strawberry.input(description="Matches the channels a customer has used.")
class ChannelsUsedFilter:
    any: list[ChannelCode] | None = strawberry.field(
        default=None, description="Used at least one of these channels."
    )
    all: list[ChannelCode] | None = strawberry.field(
        default=None, description="Used every one of these channels."
    )
    none: list[ChannelCode] | None = strawberry.field(
        default=None, description="Used none of these channels."
    )


@strawberry.input(description="Matches customers holding an identifier.")
class IdentityFilter:
    kind: IdentityKind = strawberry.field(description="The identifier's kind.")
    value: str | None = strawberry.field(
        default=None, description="The identifier's value (normalised before matching)."
    )


@strawberry.input(description="Matches one trait; every given operator must hold.")
class TraitFilter:
    key: str = strawberry.field(description="The trait's name.")
    eq: JSON | None = strawberry.field(default=None, description="Equal to this JSON value.")
    in_: list[JSON] | None = strawberry.field(
        default=None, name="in", description="Equal to one of these JSON values."
    )
    exists: bool | None = strawberry.field(
        default=None, description="True: the trait is set; false: it is not."
    )


@strawberry.input(description="Matches segment membership; every given operator must hold.")
class SegmentFilter:
    in_: list[str] | None = strawberry.field(
        default=None, name="in", description="A member of at least one of these segments (keys)."
    )
    not_in: list[str] | None = strawberry.field(
        default=None, description="A member of none of these segments (keys)."
    )


@strawberry.input(
    description=(
        "Narrows the customers list. Fields of one filter must all hold; combine filters with "
        "`and`, `or` and `not`."
    )
)
class CustomerFilter:
    and_: list[CustomerFilter] | None = strawberry.field(
        default=None, name="and", description="Every one of these filters holds."
    )
    or_: list[CustomerFilter] | None = strawberry.field(
        default=None, name="or", description="At least one of these filters holds."
    )
    not_: CustomerFilter | None = strawberry.field(
        default=None, name="not", description="This filter does not hold."
    )
    display_name: StringFilter | None = strawberry.field(
        default=None, description="On the display name."
    )
    stage: StageFilter | None = strawberry.field(
        default=None, description="On the current journey stage."
    )
    channels_used: ChannelsUsedFilter | None = strawberry.field(
        default=None, description="On the channels the customer has interacted on."
    )
    identity: IdentityFilter | None = strawberry.field(
        default=None, description="Holds an identifier of this kind (and value)."
    )
    trait: TraitFilter | None = strawberry.field(default=None, description="On one trait.")
    last_seen_at: DateTimeFilter | None = strawberry.field(
        default=None, description="On the latest interaction's time."
    )
    created_at: DateTimeFilter | None = strawberry.field(
        default=None, description="On when the customer was created."
    )
    has_consent: ConsentFilter | None = strawberry.field(
        default=None,
        description="Has a valid consent for this purpose and channel (campaign audiences).",
    )
    segment: SegmentFilter | None = strawberry.field(
        default=None, description="On segment membership (now)."
    )
    computed: ComputedFilter | None = strawberry.field(
        default=None, description="On a computed trait's value (docs/audiences.md)."
    )
