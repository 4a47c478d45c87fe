"""The merge ledger: which customers were merged, why, and whether it was undone."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from hub.context import Info
from hub.core.errors import NotFound
from hub.core.ids import to_global_id
from hub.db.rows import Record
from hub.schema.enums import IdentityKind
from hub.schema.permissions import (
    PersonalData,
    free_text_mask,
    identity_mask_by,
    json_mask,
    not_personal,
)

if TYPE_CHECKING:
    from hub.schema.customer import Customer

LazyCustomer = Annotated["Customer", strawberry.lazy("hub.schema.customer")]


@strawberry.enum(description="Why customers were merged.")
class MergeRule(Enum):
    IDENTITY_MATCH = strawberry.enum_value(
        "IDENTITY_MATCH",
        description="An interaction carried identifiers of several customers (a strong match).",
    )
    MANUAL = strawberry.enum_value("MANUAL", description="A person merged them by hand.")


def customer_gid(customer_id: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(to_global_id("Customer", str(customer_id)))


async def _survivor(info: Info, customer_id: uuid.UUID) -> LazyCustomer:
    """The survivor, or NOT_FOUND exactly as for an id that does not exist: a customer outside
    the caller's rows (row security) must not be told apart from a missing one."""
    from hub.schema.customer import load_customer

    customer = await load_customer(info, customer_id)
    if customer is None:
        raise NotFound(f"no customer with id {customer_gid(customer_id)!r}")
    return customer


@strawberry.type(description="One merge of customers into a survivor, as the ledger records it.")
class Merge:
    row_id: strawberry.Private[uuid.UUID]
    survivor_row_id: strawberry.Private[uuid.UUID]
    id: strawberry.ID = strawberry.field(description="The merge's id (pass to unmergeCustomer).")
    survivor_id: strawberry.ID = strawberry.field(description="The customer that survived.")
    merged_ids: list[strawberry.ID] = strawberry.field(
        description="The customers merged into the survivor."
    )
    rule: MergeRule = strawberry.field(description="Why they were merged.")
    identity_kind: IdentityKind | None = strawberry.field(
        description="Kind of the identifier that proved it, for identity matches."
    )
    identity_value: str | None = strawberry.field(
        description="The identifier that proved it, for identity matches; masked without `pii`.",
        extensions=[PersonalData(identity_mask_by("identity_kind"))],
    )
    actor: str = strawberry.field(
        description="Who or what merged them (ingest, a user).",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )
    created_at: datetime = strawberry.field(description="When they were merged.")
    reversed_at: datetime | None = strawberry.field(
        description="When the merge was undone, or null while it stands."
    )
    reversed_by: str | None = strawberry.field(
        description="Who undid it, if undone.",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )

    @classmethod
    def from_row(cls, row: Record) -> Merge:
        return cls(
            row_id=row["id"],
            survivor_row_id=row["survivor_id"],
            id=strawberry.ID(to_global_id("Merge", str(row["id"]))),
            survivor_id=customer_gid(row["survivor_id"]),
            merged_ids=[customer_gid(cid) for cid in row["merged_ids"]],
            rule=MergeRule(row["rule"]),
            identity_kind=IdentityKind(row["identity_kind"]) if row["identity_kind"] else None,
            identity_value=row["identity_value"],
            actor=row["actor"],
            created_at=row["created_at"],
            reversed_at=row["reversed_at"],
            reversed_by=row["reversed_by"],
        )

    @strawberry.field(description="Whether the merge still stands (not undone).")
    def active(self) -> bool:
        return self.reversed_at is None

    @strawberry.field(description="The survivor now (following later merges).")
    async def survivor(self, info: Info) -> LazyCustomer:
        return await _survivor(info, self.survivor_row_id)


@strawberry.type(description="What a merge would do, computed without changing anything.")
class MergePreview:
    survivor_row_id: strawberry.Private[uuid.UUID]
    survivor_id: strawberry.ID = strawberry.field(
        description="The customer that would survive (oldest first; see the docs)."
    )
    merged_ids: list[strawberry.ID] = strawberry.field(
        description="The customers that would be merged into it."
    )
    identities_moved: int = strawberry.field(description="Identities that would move.")
    interactions_moved: int = strawberry.field(description="Interactions that would move.")
    conversations_moved: int = strawberry.field(description="Conversations that would move.")
    stage_changes_moved: int = strawberry.field(description="Stage history rows that would move.")
    traits: JSON = strawberry.field(
        description="The survivor's traits after the merge; personal ones masked without `pii`.",
        extensions=[PersonalData(json_mask)],
    )
    display_name: str | None = strawberry.field(
        description="The survivor's name after the merge; masked without `pii`.",
        extensions=[PersonalData()],
    )
    problems: list[str] = strawberry.field(
        description="Guards the merge would violate; a merge with problems is refused.",
        extensions=[PersonalData(free_text_mask)],
    )

    @strawberry.field(description="The customer that would survive, as it is now.")
    async def survivor(self, info: Info) -> LazyCustomer:
        return await _survivor(info, self.survivor_row_id)
