"""Segments: definitions (ADMIN), preview, members, and the membership-change subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.keys import Role
from hub.audiences.membership import Change, materialise
from hub.audiences.segments import (
    Definition,
    check_codes,
    check_key,
    compile_definition,
    unknown_trait_keys,
    validate,
)
from hub.audiences.statistics import MEMBERSHIPS, refresh_statistics
from hub.context import Info
from hub.core.errors import BadUserInput, Conflict, NotFound
from hub.core.ids import to_global_id
from hub.db.rows import fetch_all
from hub.db.statements import AlchemySql
from hub.events.emit import EventKind
from hub.models import CUSTOMERS, SEGMENTS
from hub.resolvers.subscriptions import AFTER_DESCRIPTION, _event_loaders, event_stream
from hub.schema.customer import Customer, load_customer
from hub.schema.permissions import IsAdmin, require, require_pii
from hub.schema.segments import (
    CreateSegmentInput,
    Segment,
    SegmentConditionsInput,
    SegmentMembershipChangedEvent,
    SegmentPreview,
    SegmentRef,
    UpdateSegmentInput,
    definition_json,
    load_segment_row,
)
from hub.vocabulary.registry import current

PREVIEW_SAMPLE = 10


def _personal(info: Info) -> Any:
    return lambda what: require_pii(info, what)


async def _checked(info: Info, connection: AsyncConnection, stored: dict[str, Any]) -> Definition:
    definition = Definition.of(stored)
    validate(definition, info.context.settings, _personal(info))
    check_codes(definition, await current(AlchemySql(connection)))
    unknown = await unknown_trait_keys(connection, [c.key for c in definition.computed])
    if unknown:
        raise BadUserInput(f"unknown computed trait key(s): {', '.join(unknown)}")
    return definition


def _stored(conditions: CreateSegmentInput | SegmentConditionsInput) -> dict[str, Any]:
    return definition_json(conditions.filter, conditions.activity, conditions.computed)


async def _segment(info: Info, key: str) -> Segment:
    row = await load_segment_row(info, key)
    if row is None:
        raise NotFound(f"no segment with key {key!r}")
    return Segment.from_row(row)


@strawberry.type
class SegmentQuery:
    @strawberry.field(description="Every segment, by key.")
    async def segments(self, info: Info) -> list[Segment]:
        require(info, Role.ADMIN, Role.ANALYST, Role.PARTNER, Role.FRONTEND)
        rows = await fetch_all(info.context.engine, sa.select(SEGMENTS).order_by(SEGMENTS.c.key))
        return [Segment.from_row(row) for row in rows]

    @strawberry.field(description="One segment by key (`NOT_FOUND` if there is none).")
    async def segment(
        self,
        info: Info,
        key: Annotated[str, strawberry.argument(description="The segment's key.")],
    ) -> Segment:
        return await _segment(info, key)

    @strawberry.field(
        description=(
            "What a segment with these conditions would hold now, in your scope: the count and "
            "a sample. Writes nothing."
        )
    )
    async def preview_segment(
        self,
        info: Info,
        input: Annotated[
            SegmentConditionsInput, strawberry.argument(description="The conditions to try.")
        ],
    ) -> SegmentPreview:
        require(info, Role.ADMIN, Role.ANALYST, Role.FRONTEND, Role.PARTNER)
        async with info.context.engine.connect() as connection:
            definition = await _checked(info, connection, _stored(input))
            compiled = compile_definition(
                definition, info.context.settings, CUSTOMERS, _personal(info)
            )
            now = {"now": datetime.now(UTC)}
            count = await connection.scalar(
                sa.select(sa.func.count()).select_from(CUSTOMERS).where(compiled.member), now
            )
            rows = (
                (
                    await connection.execute(
                        sa.select(CUSTOMERS)
                        .where(compiled.member)
                        .order_by(CUSTOMERS.c.created_at.desc(), CUSTOMERS.c.id)
                        .limit(PREVIEW_SAMPLE),
                        now,
                    )
                )
                .mappings()
                .all()
            )
        return SegmentPreview(count=int(count or 0), sample=[Customer.from_row(r) for r in rows])


@strawberry.type
class SegmentMutation:
    @strawberry.mutation(
        description=(
            "Create a segment; its members are computed at once (no events for them: they are "
            "the baseline; later changes are events)."
        ),
        permission_classes=[IsAdmin],
    )
    async def create_segment(
        self,
        info: Info,
        input: Annotated[CreateSegmentInput, strawberry.argument(description="The segment.")],
    ) -> Segment:
        check_key(input.key)
        if not input.name.strip():
            raise BadUserInput("a segment needs a `name`")
        stored = _stored(input)
        async with info.context.engine.begin() as connection:
            await _checked(info, connection, stored)
            inserted = await connection.execute(
                sa.dialects.postgresql.insert(SEGMENTS)
                .values(
                    key=input.key,
                    name=input.name,
                    description=input.description,
                    definition=stored,
                    created_by=info.context.principal.name,
                )
                .on_conflict_do_nothing()
                .returning(SEGMENTS.c.key)
            )
            if inserted.first() is None:
                raise Conflict(f"a segment with key {input.key!r} exists already")
            await materialise(connection, input.key, emit=False)
        await refresh_statistics(info.context.engine, MEMBERSHIPS)
        return await _segment(info, input.key)

    @strawberry.mutation(
        description=(
            "Change a segment's name, description or conditions; with new conditions the "
            "members are re-evaluated at once and each difference is an ENTERED/EXITED event."
        ),
        permission_classes=[IsAdmin],
    )
    async def update_segment(
        self,
        info: Info,
        input: Annotated[UpdateSegmentInput, strawberry.argument(description="The changes.")],
    ) -> Segment:
        s = SEGMENTS.c
        values: dict[str, Any] = {"updated_at": sa.func.now()}
        if input.name is not None:
            if not input.name.strip():
                raise BadUserInput("a segment needs a `name`")
            values["name"] = input.name
        if input.description is not None:
            values["description"] = input.description
        async with info.context.engine.begin() as connection:
            if input.conditions is not None:
                stored = _stored(input.conditions)
                await _checked(info, connection, stored)
                values["definition"] = stored
                values["revision"] = sa.func.nextval("segment_revisions")
            updated = await connection.execute(
                sa.update(SEGMENTS).where(s.key == input.key).values(**values).returning(s.key)
            )
            if updated.first() is None:
                raise NotFound(f"no segment with key {input.key!r}")
            if input.conditions is not None:
                await materialise(connection, input.key, emit=True)
        if input.conditions is not None:
            await refresh_statistics(info.context.engine, MEMBERSHIPS)
        return await _segment(info, input.key)

    @strawberry.mutation(
        description="Delete a segment and its memberships (no events); returns it as it was.",
        permission_classes=[IsAdmin],
    )
    async def delete_segment(
        self,
        info: Info,
        key: Annotated[str, strawberry.argument(description="The segment's key.")],
    ) -> Segment:
        segment = await _segment(info, key)
        async with info.context.engine.begin() as connection:
            await connection.execute(sa.delete(SEGMENTS).where(SEGMENTS.c.key == key))
        return segment


@strawberry.type
class SegmentSubscription:
    @strawberry.subscription(
        description=(
            "Each time a customer enters or leaves a segment (gap-free, resumable with `after`). "
            "A partner receives only customers in its scope, masked."
        )
    )
    async def segment_membership_changed(
        self,
        info: Info,
        keys: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these segments (default: every segment)."),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[SegmentMembershipChangedEvent, None]:
        wanted = set(keys) if keys is not None else None
        names: dict[str, Any] = {}
        async for event in event_stream(info, [EventKind.SEGMENT_MEMBERSHIP_CHANGED], after):
            key = str(event.payload.get("segment", ""))
            if wanted is not None and key not in wanted:
                continue
            if event.customer_id is None or not event.payload:
                continue  # erased since: nothing to say
            _event_loaders(info, event)
            customer = await load_customer(info, event.customer_id)
            if info.context.principal.role is Role.PARTNER and customer is None:
                continue
            if key not in names:
                row = await load_segment_row(info, key)
                names[key] = row
            row = names[key]
            yield SegmentMembershipChangedEvent(
                cursor=event.position.cursor,
                change=Change(event.payload["change"]),
                reason=str(event.payload.get("reason", "")),
                segment=SegmentRef(
                    key=key,
                    name=row["name"] if row is not None else key,
                    description=row["description"] if row is not None else "",
                ),
                customer_id=strawberry.ID(to_global_id("Customer", str(event.customer_id))),
                customer=customer,
            )
