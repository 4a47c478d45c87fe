"""Merge ledger queries and the merge/unmerge mutations."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
import strawberry
from sqlalchemy.engine import RowMapping

from hub.audiences.refresh import ChangeReason, hold_definitions, on_customers_changed
from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import uuid_from_global_id
from hub.db.rows import fetch_all
from hub.db.transactions import retry_conflicts
from hub.identity.merges import (
    RULE_MANUAL,
    merge_customers,
    preview_chosen,
    preview_merge,
    unmerge_customer,
)
from hub.identity.merges import MergePreview as DomainPreview
from hub.models import MERGES
from hub.schema.customer import Customer, load_customer
from hub.schema.merge import Merge, MergePreview, customer_gid

MAX_HISTORY = 100


def preview_type(preview: DomainPreview) -> MergePreview:
    return MergePreview(
        survivor_row_id=preview.survivor_id,
        survivor_id=customer_gid(preview.survivor_id),
        merged_ids=[customer_gid(cid) for cid in preview.merged_ids],
        identities_moved=preview.moved.get("identities", 0),
        interactions_moved=preview.moved.get("interactions", 0),
        conversations_moved=preview.moved.get("conversations", 0),
        stage_changes_moved=preview.moved.get("stage_history", 0),
        traits=preview.result["traits"],
        display_name=preview.result["display_name"],
        problems=preview.problems,
    )


@strawberry.input(description="A merge by hand.")
class MergeCustomersInput:
    survivor_id: strawberry.ID = strawberry.field(description="The customer that survives.")
    merged_ids: list[strawberry.ID] = strawberry.field(description="The customers merged into it.")
    dry_run: bool = strawberry.field(
        default=False, description="Only show what would happen (nothing is written)."
    )


@strawberry.type(description="What mergeCustomers did (or would do, on a dry run).")
class MergeCustomersPayload:
    merge: Merge | None = strawberry.field(description="The ledger entry; null on a dry run.")
    preview: MergePreview = strawberry.field(description="What the merge does.")


@strawberry.type(description="What unmergeCustomer did.")
class UnmergeCustomerPayload:
    merge: Merge = strawberry.field(description="The ledger entry, now marked reversed.")
    customers: list[Customer] = strawberry.field(
        description="The survivor and the restored customers, survivor first."
    )


@strawberry.type
class MergeQuery:
    @strawberry.field(description="The merge ledger, newest first.")
    async def merge_history(
        self,
        info: Info,
        customer_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only merges this customer took part in."),
        ] = None,
        first: Annotated[
            int, strawberry.argument(description="How many entries (at most 100).")
        ] = 20,
    ) -> list[Merge]:
        if not 1 <= first <= MAX_HISTORY:
            raise BadUserInput(f"`first` must be between 1 and {MAX_HISTORY}")
        m = MERGES.c
        statement = sa.select(MERGES).order_by(m.created_at.desc(), m.id.desc()).limit(first)
        if customer_id is not None:
            cid = uuid_from_global_id(customer_id, "Customer")
            statement = statement.where(sa.or_(m.survivor_id == cid, m.merged_ids.any_() == cid))
        rows = await fetch_all(info.context.engine, statement)
        return [Merge.from_row(row) for row in rows]

    @strawberry.field(
        description="What merging these customers would do; the survivor is the oldest."
    )
    async def preview_merge(
        self,
        info: Info,
        customer_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="Two or more customers.")
        ],
    ) -> MergePreview:
        ids = [uuid_from_global_id(cid, "Customer") for cid in customer_ids]
        async with info.context.engine.connect() as connection:
            preview = await preview_merge(connection, ids, info.context.settings)
        return preview_type(preview)


@strawberry.type
class MergeMutation:
    @strawberry.mutation(
        description="Merge customers by hand into a survivor (recorded in the ledger)."
    )
    async def merge_customers(
        self,
        info: Info,
        input: Annotated[MergeCustomersInput, strawberry.argument(description="The merge.")],
    ) -> MergeCustomersPayload:
        survivor = uuid_from_global_id(input.survivor_id, "Customer")
        merged = [uuid_from_global_id(cid, "Customer") for cid in input.merged_ids]
        settings = info.context.settings

        async def attempt() -> tuple[DomainPreview, RowMapping | None]:
            async with info.context.engine.begin() as connection:
                await hold_definitions(connection)
                preview = await preview_chosen(connection, survivor, merged, settings)
                ledger = None
                if not input.dry_run:
                    ledger = await merge_customers(
                        connection, survivor, merged, settings, rule=RULE_MANUAL, actor="api"
                    )
                    await on_customers_changed(
                        connection, [survivor, *merged], reason=ChangeReason.MERGE, locked=True
                    )
            return preview, ledger

        preview, ledger = await retry_conflicts(attempt)
        return MergeCustomersPayload(
            merge=Merge.from_row(ledger) if ledger is not None else None,
            preview=preview_type(preview),
        )

    @strawberry.mutation(
        description=(
            "Undo a merge: the merged customers come back with their identities, interactions, "
            "conversations, stage history and traits; interactions recorded since go with the "
            "identity that brought them."
        )
    )
    async def unmerge_customer(
        self,
        info: Info,
        merge_id: Annotated[strawberry.ID, strawberry.argument(description="The merge to undo.")],
    ) -> UnmergeCustomerPayload:
        mid = uuid_from_global_id(merge_id, "Merge")

        async def attempt() -> tuple[RowMapping, list[uuid.UUID]]:
            async with info.context.engine.begin() as connection:
                await hold_definitions(connection)
                ledger, restored = await unmerge_customer(connection, mid, actor="api")
                await on_customers_changed(
                    connection,
                    [ledger["survivor_id"], *restored],
                    reason=ChangeReason.UNMERGE,
                    locked=True,
                )
                return ledger, restored

        ledger, restored = await retry_conflicts(attempt)
        customers = []
        for cid in [ledger["survivor_id"], *restored]:
            customer = await load_customer(info, cid)
            assert customer is not None
            customers.append(customer)
        return UnmergeCustomerPayload(merge=Merge.from_row(ledger), customers=customers)
