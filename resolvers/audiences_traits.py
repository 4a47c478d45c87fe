"""Computed traits: define, update, delete (ADMIN), list (ADMIN, ANALYST); the customers
filter's computed-trait keys are checked here (docs/audiences.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import strawberry

from hub.audiences import traits
from hub.audiences.membership import segments_testing_trait
from hub.audiences.refresh import on_trait_changed
from hub.audiences.statistics import MEMBERSHIPS, TRAIT_VALUES, refresh_statistics
from hub.context import Info
from hub.core.errors import Conflict
from hub.schema.audiences_traits import (
    ComputedTrait,
    DefineComputedTraitInput,
    definition_of,
    empty_value,
    is_personal_attribute,
)
from hub.schema.customer import CustomerFilter
from hub.schema.permissions import CanUseAnalytics, IsAdmin, require_pii


@strawberry.input(description="A computed trait's new definition; its values are recomputed.")
class UpdateComputedTraitInput(DefineComputedTraitInput):
    pass


def _computed_keys(f: CustomerFilter) -> Iterator[str]:
    if f.computed is not None:
        yield f.computed.key
    for child in [*(f.and_ or []), *(f.or_ or [])]:
        yield from _computed_keys(child)
    if f.not_ is not None:
        yield from _computed_keys(f.not_)


async def computed_filter_values(info: Info, f: CustomerFilter) -> dict[str, Any] | None:
    """The computed traits ``f`` names, with their empty values (``BAD_USER_INPUT`` for an
    unknown key; FORBIDDEN without ``pii`` for a trait over a personal attribute)."""
    keys = set(_computed_keys(f))
    if not keys:
        return None
    table = await info.context.loaders.computed_trait_table.load("*")
    out: dict[str, Any] = {}
    for key in sorted(keys):
        definition = table.get(key)
        if definition is None:
            continue  # the compiler reports it
        if is_personal_attribute(definition.attribute, info.context):
            require_pii(info, f"filtering on the computed trait {key!r}")
        out[key] = empty_value(definition)
    return out


@strawberry.type
class ComputedTraitQuery:
    @strawberry.field(
        description="Every computed trait's definition, by key (ADMIN and ANALYST).",
        permission_classes=[CanUseAnalytics],
    )
    async def computed_traits(self, info: Info) -> list[ComputedTrait]:
        async with info.context.engine.connect() as connection:
            found = await traits.definitions(connection)
        return [ComputedTrait.from_definition(d) for d in found]


@strawberry.type
class ComputedTraitMutation:
    @strawberry.mutation(
        description=(
            "Define a computed trait; its values are computed over the existing data before"
            " this returns, and kept exact from then on (ADMIN)."
        ),
        permission_classes=[IsAdmin],
    )
    async def define_computed_trait(
        self,
        info: Info,
        input: Annotated[
            DefineComputedTraitInput, strawberry.argument(description="The definition.")
        ],
    ) -> ComputedTrait:
        async with info.context.engine.begin() as connection:
            stored = await traits.define(connection, definition_of(input))
            await on_trait_changed(connection, stored.key)
        await refresh_statistics(info.context.engine, TRAIT_VALUES + MEMBERSHIPS)
        return ComputedTrait.from_definition(stored)

    @strawberry.mutation(
        description="Change a computed trait's definition; its values are recomputed (ADMIN).",
        permission_classes=[IsAdmin],
    )
    async def update_computed_trait(
        self,
        info: Info,
        input: Annotated[
            UpdateComputedTraitInput, strawberry.argument(description="The new definition.")
        ],
    ) -> ComputedTrait:
        async with info.context.engine.begin() as connection:
            stored = await traits.update(connection, definition_of(input))
            await on_trait_changed(connection, stored.key)
        await refresh_statistics(info.context.engine, TRAIT_VALUES + MEMBERSHIPS)
        return ComputedTrait.from_definition(stored)

    @strawberry.mutation(
        description="Delete a computed trait and its values; the deleted definition (ADMIN).",
        permission_classes=[IsAdmin],
    )
    async def delete_computed_trait(
        self,
        info: Info,
        key: Annotated[str, strawberry.argument(description="The computed trait's key.")],
    ) -> ComputedTrait:
        async with info.context.engine.begin() as connection:
            users = await segments_testing_trait(connection, key)
            if users:
                # Deleting it would silently change what those segments mean.
                raise Conflict(f"computed trait {key!r} is tested by segments {users}")
            deleted = await traits.delete(connection, key)
        return ComputedTrait.from_definition(deleted)
