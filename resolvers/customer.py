"""Customer queries: by id, by identifier, and the filtered, ordered, paged list."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.dialects.postgresql import JSONB

from hub.context import Info
from hub.core.enums import IdentityKind as DomainIdentityKind
from hub.core.errors import BadUserInput, NotFound
from hub.core.ids import uuid_from_global_id
from hub.db.rows import Record, contains_pattern
from hub.identity.identifiers import normalize_identifier
from hub.models import CUSTOMERS, IDENTITIES, INTERACTIONS
from hub.privacy.consent import ConsentChannel, ConsentPurpose, consent_granted
from hub.resolvers.keyset import SortKey, paginate
from hub.schema.customer import (
    ChannelsUsedFilter,
    Customer,
    CustomerFilter,
    CustomerOrderBy,
    DateTimeFilter,
    StringFilter,
    TraitFilter,
    load_customer,
)
from hub.schema.enums import IdentityKind
from hub.schema.pagination import Connection
from hub.schema.permissions import require_pii

C = CUSTOMERS.c
MAX_FILTER_DEPTH = 8

# Literal SQL, not bind parameters: the expressions must match the indexes of migration 0007
# exactly, also in the generic plans of prepared statements.
_EPOCH_FLOOR: sa.ColumnElement[Any] = sa.literal_column("'-infinity'::timestamptz")
_EMPTY: sa.ColumnElement[Any] = sa.literal_column("''")
SORT_KEYS: dict[CustomerOrderBy, SortKey] = {
    CustomerOrderBy.CREATED_AT_ASC: SortKey("k_created", C.created_at, False, "timestamp"),
    CustomerOrderBy.CREATED_AT_DESC: SortKey("k_created", C.created_at, True, "timestamp"),
    CustomerOrderBy.LAST_SEEN_AT_ASC: SortKey(
        "k_seen", sa.func.coalesce(C.last_seen_at, _EPOCH_FLOOR), False, "timestamp"
    ),
    CustomerOrderBy.LAST_SEEN_AT_DESC: SortKey(
        "k_seen", sa.func.coalesce(C.last_seen_at, _EPOCH_FLOOR), True, "timestamp"
    ),
    CustomerOrderBy.DISPLAY_NAME_ASC: SortKey(
        "k_name", sa.func.coalesce(C.display_name, _EMPTY), False, "text"
    ),
    CustomerOrderBy.DISPLAY_NAME_DESC: SortKey(
        "k_name", sa.func.coalesce(C.display_name, _EMPTY), True, "text"
    ),
}


def _datetime(column: Any, f: DateTimeFilter) -> list[Any]:
    clauses = []
    if f.gt is not None:
        clauses.append(column > f.gt)
    if f.gte is not None:
        clauses.append(column >= f.gte)
    if f.lt is not None:
        clauses.append(column < f.lt)
    if f.lte is not None:
        clauses.append(column <= f.lte)
    if f.is_null is not None:
        clauses.append(column.is_(None) if f.is_null else column.is_not(None))
    return clauses


def _string(column: Any, f: StringFilter) -> list[Any]:
    clauses = []
    if f.eq is not None:
        clauses.append(column == f.eq)
    if f.contains is not None:
        clauses.append(column.ilike(contains_pattern(f.contains), escape="\\"))
    if f.starts_with is not None:
        clauses.append(column.ilike(contains_pattern(f.starts_with)[1:], escape="\\"))
    if f.is_null is not None:
        clauses.append(column.is_(None) if f.is_null else column.is_not(None))
    return clauses


def _used(channels: list[Any]) -> Any:
    i = INTERACTIONS.c
    return sa.exists().where(i.customer_id == C.id, i.channel_code.in_([c.value for c in channels]))


def _channels_used(f: ChannelsUsedFilter) -> list[Any]:
    clauses = []
    if f.any is not None:
        clauses.append(_used(f.any))
    if f.all is not None:
        clauses.extend(_used([channel]) for channel in f.all)
    if f.none is not None:
        clauses.append(sa.not_(_used(f.none)))
    return clauses


def _trait(f: TraitFilter) -> list[Any]:
    if not f.key:
        raise BadUserInput("a trait filter needs a non-empty `key`")
    clauses = []
    value = C.traits[f.key]
    if f.eq is not None:
        clauses.append(value == sa.cast(sa.literal(f.eq, JSONB), JSONB))
    if f.in_ is not None:
        clauses.append(
            sa.or_(sa.false(), *(value == sa.cast(sa.literal(v, JSONB), JSONB) for v in f.in_))
        )
    if f.exists is not None:
        has = C.traits.has_key(f.key)
        clauses.append(has if f.exists else sa.not_(has))
    return clauses


def compile_filter(f: CustomerFilter, info: Info, depth: int = 0) -> Any:
    """Translate a ``CustomerFilter`` tree into one SQL boolean expression."""
    if depth > MAX_FILTER_DEPTH:
        raise BadUserInput(f"customer filters nest at most {MAX_FILTER_DEPTH} levels deep")
    clauses: list[Any] = []
    if f.and_ is not None:
        clauses.append(sa.and_(sa.true(), *(compile_filter(g, info, depth + 1) for g in f.and_)))
    if f.or_ is not None:
        clauses.append(sa.or_(sa.false(), *(compile_filter(g, info, depth + 1) for g in f.or_)))
    if f.not_ is not None:
        # IS NOT TRUE, not NOT: a comparison with a NULL column (no stage, no name) is NULL in
        # SQL, and NOT NULL would drop the row although the negated filter does not hold for it.
        clauses.append(compile_filter(f.not_, info, depth + 1).is_not(sa.true()))
    if f.display_name is not None:
        require_pii(info, "filtering on displayName")
        clauses.extend(_string(C.display_name, f.display_name))
    if f.stage is not None:
        if f.stage.eq is not None:
            clauses.append(C.current_stage == f.stage.eq.value)
        if f.stage.in_ is not None:
            clauses.append(C.current_stage.in_([s.value for s in f.stage.in_]))
        if f.stage.is_null is not None:
            column = C.current_stage
            clauses.append(column.is_(None) if f.stage.is_null else column.is_not(None))
    if f.channels_used is not None:
        clauses.extend(_channels_used(f.channels_used))
    if f.identity is not None:
        kind = DomainIdentityKind(f.identity.kind.value)
        where = [IDENTITIES.c.customer_id == C.id, IDENTITIES.c.kind == kind.value]
        if f.identity.value is not None:
            value = normalize_identifier(
                kind, f.identity.value, info.context.settings.default_phone_region
            )
            where.append(IDENTITIES.c.value == value)
        clauses.append(sa.exists().where(*where))
    if f.trait is not None:
        if f.trait.key in info.context.settings.personal_traits:
            require_pii(info, f"filtering on the personal trait {f.trait.key!r}")
        clauses.extend(_trait(f.trait))
    if f.last_seen_at is not None:
        clauses.extend(_datetime(C.last_seen_at, f.last_seen_at))
    if f.created_at is not None:
        clauses.extend(_datetime(C.created_at, f.created_at))
    if f.has_consent is not None:
        purpose = ConsentPurpose(f.has_consent.purpose.value)
        clauses.append(consent_granted(purpose, ConsentChannel(f.has_consent.channel.value)))
    return sa.and_(sa.true(), *clauses)


def sort_keys(order_by: list[CustomerOrderBy] | None) -> list[SortKey]:
    keys: list[SortKey] = []
    seen: set[str] = set()
    for order in order_by or [CustomerOrderBy.CREATED_AT_ASC]:
        key = SORT_KEYS[order]
        if key.label in seen:
            raise BadUserInput(f"{order.name} repeats an ordering already given")
        seen.add(key.label)
        keys.append(key)
    # The id breaks ties, so every row has exactly one place in the order.
    last_descending = keys[-1].descending
    keys.append(SortKey("k_id", C.id, last_descending, "uuid"))
    return keys


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
        domain_kind = DomainIdentityKind(kind.value)
        normalized = normalize_identifier(
            domain_kind, value, info.context.settings.default_phone_region
        )
        async with info.context.engine.connect() as connection:
            customer_id = await connection.scalar(
                sa.select(IDENTITIES.c.customer_id).where(
                    IDENTITIES.c.kind == domain_kind.value, IDENTITIES.c.value == normalized
                )
            )
        customer = await load_customer(info, customer_id) if customer_id else None
        if customer is None:
            raise NotFound(f"no customer has the {kind.value} {normalized!r}")
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
        where = [C.merged_into_id.is_(None), info.context.principal.scope.customer_clause()]
        if filter is not None:
            where.append(compile_filter(filter, info))
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
            sort_keys(order_by),
            build,
            first=first,
            after=after,
            last=last,
            before=before,
            list_name="customers",
        )
