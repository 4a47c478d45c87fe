"""Interaction and conversation queries across all customers."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import strawberry

from hub.context import Info
from hub.core.errors import NotFound
from hub.core.ids import uuid_from_global_id
from hub.db.rows import fetch_all, fetch_one
from hub.loaders.interaction_rows import select_interactions
from hub.models import INTERACTIONS
from hub.schema.conversation import Conversation
from hub.schema.interaction import (
    Interaction,
    InteractionFilterArg,
    InteractionOrderArg,
    build_page,
    interaction_connection,
)
from hub.schema.pagination import Connection, PageAfter, PageFirst


@strawberry.type
class InteractionQuery:
    @strawberry.field(description="Interactions of all customers, newest first by default.")
    async def interactions(
        self,
        info: Info,
        first: PageFirst = None,
        after: PageAfter = None,
        filter: InteractionFilterArg = None,
        order_by: InteractionOrderArg = None,
    ) -> Connection[Interaction]:
        page = build_page(info, first, after, filter, order_by)
        engine = info.context.engine
        rows = await fetch_all(
            engine,
            select_interactions()
            .where(*page.clauses())
            .order_by(*page.order_by())
            .limit(page.limit + 1),
        )

        async def count() -> int:
            row = await fetch_one(
                engine,
                sa.select(sa.func.count().label("n"))
                .where(*page.filter.clauses())
                .select_from(INTERACTIONS),
            )
            assert row is not None
            return int(row["n"])

        return interaction_connection(list(rows), page, count)

    @strawberry.field(description="One interaction by id.")
    async def interaction(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The interaction's id.")],
    ) -> Interaction:
        row = await info.context.loaders.interaction_by_id.load(
            uuid_from_global_id(id, "Interaction")
        )
        if row is None:
            raise NotFound(f"no interaction with id {id!r}")
        return Interaction.from_row(row)

    @strawberry.field(description="One conversation by id.")
    async def conversation(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The conversation's id.")],
    ) -> Conversation:
        conversation = await Conversation.load(info, id)
        if conversation is None:
            raise NotFound(f"no conversation with id {id!r}")
        return conversation
