"""Customer queries: by id, by identifier, and the filtered, ordered, paged list."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import strawberry

from hub.context import Info
from hub.core.errors import NotFound
from hub.core.ids import uuid_from_global_id
from hub.db.rows import Record
from hub.identity.identifiers import normalize_identifier
from hub.models import CUSTOMERS, IDENTITIES
from hub.reads.filters import CustomerFilterCompiler
from hub.reads.ordering import CustomerOrderBy, customer_sort_keys
from hub.resolvers.audiences_traits import computed_filter_values
from hub.resolvers.keyset import paginate
from hub.schema.customer import (
    Customer,
    CustomerFilter,
    load_customer,
)
from hub.schema.enums import IdentityKind
from hub.schema.pagination import Connection
from hub.schema.permissions import require_pii

C = CUSTOMERS.c


async def compile_filter(f: CustomerFilter, info: Info) -> sa.ColumnElement[bool]:
    """Translate a ``CustomerFilter`` tree into one SQL boolean expression."""
    return CustomerFilterCompiler(
        info.context.settings,
        personal=lambda what: require_pii(info, what),
        computed_empty=await computed_filter_values(info, f),
    ).compile(f)


@strawberry.type
class CustomerQuery:
    @strawberry.field(
        description=(
            "One customer by id. A merged-away id answers with the customer it was merged into "
            "(see `requestedId`)."
        )
    )
    async def customer(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The customer's id.")],
    ) -> Customer:
        customer = await load_customer(info, uuid_from_global_id(id, "Customer"))
        if customer is None:
            raise NotFound(f"no customer with id {id!r}")
        return customer

    @strawberry.field(description="The customer holding an identifier, such as an e-mail address.")
    async def customer_by_identity(
        self,
        info: Info,
        kind: Annotated[IdentityKind, strawberry.argument(description="The identifier's kind.")],
        value: Annotated[
            str, strawberry.argument(description="The identifier; normalised before matching.")
        ],
    ) -> Customer:
        domain_kind = str(kind)
        normalized = normalize_identifier(
            domain_kind, value, info.context.settings.default_phone_region
        )
        async with info.context.engine.connect() as connection:
            customer_id = await connection.scalar(
                sa.select(IDENTITIES.c.customer_id).where(
                    IDENTITIES.c.kind == domain_kind, IDENTITIES.c.value == normalized
                )
            )
        customer = await load_customer(info, customer_id) if customer_id else None
        if customer is None:
            raise NotFound(f"no customer has the {kind} {normalized!r}")
        return customer

    @strawberry.field(description="All customers, filtered and ordered, one page at a time.")
    async def customers(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="Page size forwards (at most 100).")
        ] = None,
        after: Annotated[
            str | None, strawberry.argument(description="Cursor to continue after.")
        ] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size backwards (at most 100).")
        ] = None,
        before: Annotated[
            str | None, strawberry.argument(description="Cursor to continue before.")
        ] = None,
        filter: Annotated[
            CustomerFilter | None, strawberry.argument(description="Only matching customers.")
        ] = None,
        order_by: Annotated[
            list[CustomerOrderBy] | None,
            strawberry.argument(
                description="Sort order, first key first (default CREATED_AT_ASC)."
            ),
        ] = None,
    ) -> Connection[Customer]:
        if order_by and any(o.name.startswith("DISPLAY_NAME") for o in order_by):
            require_pii(info, "ordering by displayName")
        where: list[sa.ColumnElement[bool]] = [C.merged_into_id.is_(None)]
        if filter is not None:
            where.append(await compile_filter(filter, info))
        base = sa.select(CUSTOMERS).where(*where)
        loader = info.context.loaders.customer_by_id

        def build(row: Record) -> Customer:
            # Interactions further down the query ask for their customer: it is on this page.
            loader.prime(row["id"], row)
            return Customer.from_row(row)

        return await paginate(
            info,
            base,
            sa.select(C.id).where(*where),
            customer_sort_keys(order_by),
            build,
            first=first,
            after=after,
            last=last,
            before=before,
            list_name="customers",
        )
