"""Types of segments: definitions, memberships, membership events, and their inputs."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
import strawberry
from strawberry.scalars import JSON

from hub.audiences.membership import Change
from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import decode_cursor, encode_cursor, uuid_from_global_id
from hub.db.rows import Record, fetch_all, fetch_one
from hub.models import CUSTOMERS, SEGMENT_MEMBERS, SEGMENTS
from hub.reads.paging import page_size
from hub.schema.enums import described_enum
from hub.schema.pagination import Connection, Edge, PageAfter, PageFirst, PageInfo
from hub.schema.permissions import PersonalData, json_mask, not_personal

if TYPE_CHECKING:
    from hub.schema.customer import Customer, CustomerFilter
    from hub.schema.interaction import InteractionFilter

LazyCustomer = Annotated["Customer", strawberry.lazy("hub.schema.customer")]
LazyCustomerFilter = Annotated["CustomerFilter", strawberry.lazy("hub.schema.customer")]
LazyInteractionFilter = Annotated["InteractionFilter", strawberry.lazy("hub.schema.interaction")]

described_enum(
    Change,
    "How a customer's membership of a segment changed.",
    {
        Change.ENTERED: "The customer now meets every condition of the segment.",
        Change.EXITED: "The customer no longer meets them (or was merged away or erased).",
    },
)

_KEY = not_personal("a segment key chosen by an ADMIN")
_NAME = not_personal("a segment name chosen by an ADMIN")


@strawberry.type(description="A segment: customers meeting a set of conditions, kept up to date.")
class Segment:
    key: str = strawberry.field(description="The segment's key (unique).", metadata=_KEY)
    name: str = strawberry.field(description="Its name.", metadata=_NAME)
    description: str = strawberry.field(
        description="What it is for.", metadata=not_personal("a description written by an ADMIN")
    )
    definition: JSON = strawberry.field(
        description=(
            "The conditions as stored (filter, activity, computed), with Python field names; "
            "identifier values in it masked without `pii`."
        ),
        extensions=[PersonalData(json_mask)],
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When its definition last changed.")

    @strawberry.field(description="How many customers are members now (those in your scope).")
    async def member_count(self, info: Info) -> int:
        return await member_count(info, self.key)

    @strawberry.field(description="The members (those in your scope), in a stable order.")
    async def members(
        self, info: Info, first: PageFirst = None, after: PageAfter = None
    ) -> Connection[LazyCustomer]:
        return await member_page(info, self.key, first, after)

    @classmethod
    def from_row(cls, row: Record) -> Segment:
        return cls(
            key=row["key"],
            name=row["name"],
            description=row["description"],
            definition=row["definition"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@strawberry.type(description="A segment named in a membership or an event (its key and name).")
class SegmentRef:
    key: str = strawberry.field(description="The segment's key.", metadata=_KEY)
    name: str = strawberry.field(description="Its name.", metadata=_NAME)
    description: str = strawberry.field(
        description="What it is for.", metadata=not_personal("a description written by an ADMIN")
    )


@strawberry.type(description="A customer's membership of one segment.")
class SegmentMembership:
    entered_at: datetime = strawberry.field(description="Since when the customer is a member.")
    segment: SegmentRef = strawberry.field(description="The segment.")

    @classmethod
    def from_row(cls, row: Record) -> SegmentMembership:
        return cls(
            entered_at=row["entered_at"],
            segment=SegmentRef(key=row["key"], name=row["name"], description=row["description"]),
        )


@strawberry.type(description="A customer entered or left a segment.")
class SegmentMembershipChangedEvent:
    cursor: str = strawberry.field(
        description="Opaque, ordered position: pass as `after` to resume.",
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    change: Change = strawberry.field(description="ENTERED or EXITED.")
    reason: str = strawberry.field(
        description=(
            "What caused it: INGEST, MERGE, UNMERGE, ERASURE, STAGE, CONSENT, TRAIT, PROFILE, "
            "CLOCK (a window slid) or DEFINITION (the segment was changed)."
        ),
        metadata=not_personal("a fixed cause name"),
    )
    segment: SegmentRef = strawberry.field(description="The segment.")
    customer_id: strawberry.ID = strawberry.field(
        description="The id of the customer whose membership changed (a merged-away one too)."
    )
    customer: LazyCustomer | None = strawberry.field(
        description="The customer as it is now (null when no longer visible, e.g. erased)."
    )


# ---- inputs ----


@strawberry.input(description="Counts a customer's interactions matching a filter in a window.")
class ActivityConditionInput:
    interactions: LazyInteractionFilter | None = strawberry.field(
        default=None, description="Which interactions count (default: all)."
    )
    within_days: int | None = strawberry.field(
        default=None,
        description="Only those of the last N days (a sliding window, N ≥ 1); default: all time.",
    )
    min: int | None = strawberry.field(
        default=None, description="At least this many (default 1, or 0 when `max` is given)."
    )
    max: int | None = strawberry.field(default=None, description="At most this many.")


@strawberry.input(description="Compares a computed trait's numeric value; all given must hold.")
class ComputedConditionInput:
    key: str = strawberry.field(description="The computed trait's key.")
    gt: float | None = strawberry.field(default=None, description="Greater than.")
    lt: float | None = strawberry.field(default=None, description="Less than.")
    eq: float | None = strawberry.field(default=None, description="Equal to.")


@strawberry.input(description="A segment's conditions; every given condition must hold.")
class SegmentConditionsInput:
    filter: LazyCustomerFilter | None = strawberry.field(
        default=None,
        description="The customers list's filter (a segment's filter cannot use `segment`).",
    )
    activity: list[ActivityConditionInput] | None = strawberry.field(
        default=None, description="Interaction counts in windows."
    )
    computed: list[ComputedConditionInput] | None = strawberry.field(
        default=None, description="Conditions on computed traits."
    )


@strawberry.input(description="A new segment: its key, name and conditions.")
class CreateSegmentInput(SegmentConditionsInput):
    key: str = strawberry.field(description="Unique key: letters, digits, '-', '_', '.'.")
    name: str = strawberry.field(description="Its name.")
    description: str = strawberry.field(default="", description="What it is for.")


@strawberry.input(description="Changes to a segment; omitted fields stay as they are.")
class UpdateSegmentInput:
    key: str = strawberry.field(description="The segment to change.")
    name: str | None = strawberry.field(default=None, description="A new name.")
    description: str | None = strawberry.field(default=None, description="A new description.")
    conditions: SegmentConditionsInput | None = strawberry.field(
        default=None,
        description="New conditions (replacing all of them); members are re-evaluated at once.",
    )


@strawberry.type(description="What a segment would hold now (nothing is written).")
class SegmentPreview:
    count: int = strawberry.field(description="How many customers (in your scope) match.")
    sample: list[LazyCustomer] = strawberry.field(description="Some of them (newest first).")


# ---- the stored form of inputs (hub.audiences.segments reads it back) ----


def stored(value: Any) -> Any:
    """An input object as plain JSON: attribute names, enum names, ISO moments; unset (None)
    fields left out; touchpoint global ids as UUID text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None:
                continue
            if f.name == "touchpoint_ids":
                out[f.name] = [str(uuid_from_global_id(t, "Touchpoint")) for t in item]
            else:
                out[f.name] = stored(item)
        return out
    if isinstance(value, list):
        return [stored(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def definition_json(
    filter: Any, activity: list[ActivityConditionInput] | None, computed: Any
) -> dict[str, Any]:
    return {
        "filter": stored(filter) if filter is not None else None,
        "activity": [
            {
                "interactions": stored(a.interactions) if a.interactions is not None else {},
                "within_days": a.within_days,
                "min": a.min,
                "max": a.max,
            }
            for a in activity or []
        ],
        "computed": [{"key": c.key, "gt": c.gt, "lt": c.lt, "eq": c.eq} for c in computed or []],
    }


async def load_segment_row(info: Info, key: str) -> Record | None:
    return await fetch_one(info.context.engine, sa.select(SEGMENTS).where(SEGMENTS.c.key == key))


MEMBERS_ORDERING = "segment-members:customer"


async def member_count(info: Info, key: str) -> int:
    """Members in the caller's scope (row security counts for a partner)."""
    m = SEGMENT_MEMBERS.c
    row = await fetch_one(
        info.context.engine, sa.select(sa.func.count().label("n")).where(m.segment_key == key)
    )
    assert row is not None
    return int(row["n"])


async def member_page(
    info: Info, key: str, first: int | None, after: str | None
) -> Connection[Customer]:
    """Members in customer-id order, keyset-paged; rows through the caller's engine (scope)."""
    from hub.schema.customer import Customer

    size, _ = page_size(info.context.settings, first, None, after, None)
    m, c = SEGMENT_MEMBERS.c, CUSTOMERS.c
    statement = (
        sa.select(CUSTOMERS)
        .join(SEGMENT_MEMBERS, m.customer_id == c.id)
        .where(m.segment_key == key)
        .order_by(c.id)
        .limit(size + 1)
    )
    if after is not None:
        (last_id,) = decode_cursor(after, MEMBERS_ORDERING, 1)
        try:
            statement = statement.where(c.id > uuid.UUID(str(last_id)))
        except ValueError:
            raise BadUserInput(f"{after!r} is not a valid cursor") from None
    rows = list(await fetch_all(info.context.engine, statement))
    has_more = len(rows) > size
    rows = rows[:size]
    loader = info.context.loaders.customer_by_id
    edges = []
    for row in rows:
        loader.prime(row["id"], row)
        edges.append(
            Edge(
                cursor=encode_cursor(MEMBERS_ORDERING, [str(row["id"])]),
                node=Customer.from_row(row),
            )
        )

    async def count() -> int:
        return await member_count(info, key)

    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_more,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )
