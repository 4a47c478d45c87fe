"""Channel and touchpoint queries; creating and changing touchpoints (ADMIN)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
import strawberry

from hub.context import Info
from hub.core.errors import NotFound
from hub.core.ids import uuid_from_global_id
from hub.db.rows import contains_pattern
from hub.loaders.channels import WHOLE_TABLE
from hub.models import TOUCHPOINTS
from hub.reads.ordering import SortKey
from hub.resolvers.keyset import paginate
from hub.schema.channel import Channel, CreateTouchpointInput, Touchpoint, UpdateTouchpointInput
from hub.schema.enums import ChannelCode, TouchpointKind
from hub.schema.pagination import Connection
from hub.schema.permissions import IsAdmin
from hub.vocabulary.touchpoints import create_touchpoint, update_touchpoint

T = TOUCHPOINTS.c
TOUCHPOINT_ORDER = [
    SortKey("k_name", T.name, False, "text"),
    SortKey("k_id", T.id, False, "uuid"),
]


@strawberry.input(description="Narrows the touchpoints list; every given field must match.")
class TouchpointFilter:
    channels: list[ChannelCode] | None = strawberry.field(
        default=None, description="Only in these channels."
    )
    kinds: list[TouchpointKind] | None = strawberry.field(
        default=None, description="Only of these kinds."
    )
    business_lines: list[str] | None = strawberry.field(
        default=None, description="Only serving these business lines."
    )
    active: bool | None = strawberry.field(default=None, description="Only active (or inactive).")
    name_contains: str | None = strawberry.field(
        default=None, description="Name contains this text, ignoring case."
    )

    def clauses(self) -> list[Any]:
        clauses: list[Any] = []
        if self.channels is not None:
            clauses.append(T.channel_code.in_([c.value for c in self.channels]))
        if self.kinds is not None:
            clauses.append(T.kind.in_([str(k) for k in self.kinds]))
        if self.business_lines is not None:
            clauses.append(T.business_line.in_(self.business_lines))
        if self.active is not None:
            clauses.append(T.active.is_(self.active))
        if self.name_contains is not None:
            clauses.append(T.name.ilike(contains_pattern(self.name_contains), escape="\\"))
        return clauses


@strawberry.type
class ChannelQuery:
    @strawberry.field(description="The six channels, in display order.")
    async def channels(self, info: Info) -> list[Channel]:
        table = await info.context.loaders.channel_table.load(WHOLE_TABLE)
        rows = list(table.values())
        return [Channel.from_row(row) for row in rows]

    @strawberry.field(description="One channel by its code.")
    async def channel(
        self,
        info: Info,
        code: Annotated[ChannelCode, strawberry.argument(description="The channel's code.")],
    ) -> Channel:
        row = await info.context.loaders.channel_by_code.load(code.value)
        if row is None:
            raise NotFound(f"no channel {code.value}")
        return Channel.from_row(row)

    @strawberry.field(description="Touchpoints, by name, one page at a time.")
    async def touchpoints(
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
            TouchpointFilter | None, strawberry.argument(description="Only matching touchpoints.")
        ] = None,
    ) -> Connection[Touchpoint]:
        where = filter.clauses() if filter is not None else []
        return await paginate(
            info,
            sa.select(TOUCHPOINTS).where(*where),
            sa.select(T.id).where(*where),
            TOUCHPOINT_ORDER,
            Touchpoint.from_row,
            first=first,
            after=after,
            last=last,
            before=before,
            list_name="touchpoints",
        )

    @strawberry.field(description="One touchpoint by id.")
    async def touchpoint(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The touchpoint's id.")],
    ) -> Touchpoint:
        row = await info.context.loaders.touchpoint_by_id.load(
            uuid_from_global_id(id, "Touchpoint")
        )
        if row is None:
            raise NotFound(f"no touchpoint with id {id!r}")
        return Touchpoint.from_row(row)


@strawberry.type
class ChannelMutation:
    @strawberry.mutation(
        description=(
            "Create a touchpoint of any registered kind (`defineTouchpointKind` adds kinds) in "
            "a channel (ADMIN only). Partner keys see its interactions when scoped to its "
            "channel or to it."
        ),
        permission_classes=[IsAdmin],
    )
    async def create_touchpoint(
        self,
        info: Info,
        input: Annotated[CreateTouchpointInput, strawberry.argument(description="The touchpoint.")],
    ) -> Touchpoint:
        async with info.context.writer.begin() as connection:
            row = await create_touchpoint(
                connection,
                channel=input.channel.value,
                kind=str(input.kind),
                name=input.name,
                address=input.address,
                business_line=input.business_line,
                active=input.active,
            )
        return Touchpoint.from_row(row)

    @strawberry.mutation(
        description=(
            "Change a touchpoint's kind, name, address, business line or whether it is active "
            "(ADMIN only); its channel stays."
        ),
        permission_classes=[IsAdmin],
    )
    async def update_touchpoint(
        self,
        info: Info,
        input: Annotated[UpdateTouchpointInput, strawberry.argument(description="The changes.")],
    ) -> Touchpoint:
        touchpoint_id = uuid_from_global_id(input.id, "Touchpoint")
        changes = {
            "kind": str(input.kind) if input.kind is not None else None,
            "name": input.name,
            "address": input.address,
            "business_line": input.business_line,
            "active": input.active,
        }
        async with info.context.writer.begin() as connection:
            row = await update_touchpoint(connection, touchpoint_id, changes)
        return Touchpoint.from_row(row)
