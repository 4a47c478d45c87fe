"""Profile mutations: upsert a customer, update traits, add and remove identities, and
resolve conversations."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.scalars import JSON

from hub.audiences.refresh import ChangeReason, on_customers_changed
from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import uuid_from_global_id
from hub.core.settings import Settings
from hub.identity.profiles import add_identity, create_customer, remove_identity, update_traits
from hub.ingest.conversations import resolve_conversation
from hub.schema.conversation import Conversation
from hub.schema.customer import Customer
from hub.schema.enums import IdentityKind
from hub.schema.ingest import IdentityInput


@strawberry.input(description="A customer to create or update.")
class UpsertCustomerInput:
    id: strawberry.ID | None = strawberry.field(
        default=None, description="Update this customer; omit to find or create by identities."
    )
    identities: list[IdentityInput] | None = strawberry.field(
        default=None, description="Identifiers to find the customer by, or to create it with."
    )
    display_name: str | None = strawberry.field(default=None, description="Name to show.")
    traits: JSON | None = strawberry.field(
        default=None, description="Traits to apply (per-trait survivorship)."
    )


@strawberry.type(description="What upsertCustomer did.")
class UpsertCustomerPayload:
    customer: Customer = strawberry.field(description="The customer after the change.")
    created: bool = strawberry.field(description="True when a new customer was created.")


@strawberry.type
class ProfileMutation:
    @strawberry.mutation(
        description=(
            "Create a customer from identities, or update one (by id or by identities): name and "
            "traits. Identities of several customers are a CONFLICT (merge them first)."
        )
    )
    async def upsert_customer(
        self,
        info: Info,
        input: Annotated[UpsertCustomerInput, strawberry.argument(description="The customer.")],
    ) -> UpsertCustomerPayload:
        settings = info.context.settings
        async with info.context.engine.begin() as connection:
            if input.id is not None:
                row = await update_traits(
                    connection,
                    uuid_from_global_id(input.id, "Customer"),
                    input.traits or {},
                    settings,
                    display_name=input.display_name,
                )
                created = False
            elif input.identities:
                row, created = await create_customer(
                    connection,
                    [(str(i.kind), i.value) for i in input.identities],
                    settings,
                    input.traits,
                    input.display_name,
                )
            else:
                raise BadUserInput("give the customer's `id` or at least one identity")
            await on_customers_changed(connection, [row["id"]], reason=ChangeReason.PROFILE)
        return UpsertCustomerPayload(customer=Customer.from_row(row), created=created)

    @strawberry.mutation(
        description=(
            "Set traits: per trait, the most recently observed non-empty value wins, unless the "
            "trait is declared FIRST-wins in the settings. Empty values never erase."
        )
    )
    async def update_traits(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="The customer.")],
        traits: Annotated[JSON, strawberry.argument(description="Traits as a JSON object.")],
        observed_at: Annotated[
            datetime | None,
            strawberry.argument(description="When the values were observed (default: now)."),
        ] = None,
    ) -> Customer:
        async with info.context.engine.begin() as connection:
            row = await update_traits(
                connection,
                uuid_from_global_id(customer_id, "Customer"),
                traits,
                info.context.settings,
                observed_at,
            )
            await on_customers_changed(connection, [row["id"]], reason=ChangeReason.PROFILE)
        return Customer.from_row(row)

    @strawberry.mutation(description="Link an identifier to a customer (normalised, guarded).")
    async def add_identity(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="The customer.")],
        kind: Annotated[IdentityKind, strawberry.argument(description="The identifier's kind.")],
        value: Annotated[str, strawberry.argument(description="The identifier.")],
    ) -> Customer:
        return await _change_identity(info, add_identity, customer_id, kind, value)

    @strawberry.mutation(description="Unlink an identifier from a customer.")
    async def remove_identity(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="The customer.")],
        kind: Annotated[IdentityKind, strawberry.argument(description="The identifier's kind.")],
        value: Annotated[str, strawberry.argument(description="The identifier.")],
    ) -> Customer:
        return await _change_identity(info, remove_identity, customer_id, kind, value)

    @strawberry.mutation(
        description="Mark a conversation resolved; a later interaction with its key reopens it."
    )
    async def resolve_conversation(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The conversation.")],
    ) -> Conversation:
        async with info.context.engine.begin() as connection:
            row = await resolve_conversation(connection, uuid_from_global_id(id, "Conversation"))
        return Conversation.from_row(row)


IdentityChange = Callable[[AsyncConnection, uuid.UUID, str, str, Settings], Awaitable[RowMapping]]


async def _change_identity(
    info: Info, change: IdentityChange, customer_id: str, kind: IdentityKind, value: str
) -> Customer:
    """Run ``hub.identity.profiles.add_identity`` or ``remove_identity`` in its own transaction."""
    async with info.context.engine.begin() as connection:
        row = await change(
            connection,
            uuid_from_global_id(customer_id, "Customer"),
            str(kind),
            value,
            info.context.settings,
        )
        await on_customers_changed(connection, [row["id"]], reason=ChangeReason.PROFILE)
    return Customer.from_row(row)
