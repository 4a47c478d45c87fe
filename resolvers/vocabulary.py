"""The vocabulary kept as data (docs/sources.md#vocabulary): read by every role, defined by
ADMIN. A definition takes effect at once in every process (``hub.vocabulary.registry``)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from hub.context import Info
from hub.db.statements import AlchemySql
from hub.journeys.stage_rules import set_rule
from hub.schema.permissions import IsAdmin
from hub.schema.vocabulary import (
    ConsentPurposeDefinition,
    DefineConsentPurposeInput,
    DefineIdentityKindInput,
    DefineInteractionTypeInput,
    DefineTouchpointKindInput,
    IdentityKindDefinition,
    InteractionTypeDefinition,
    TouchpointKindDefinition,
)
from hub.vocabulary.define import define_code, define_identity_kind, define_interaction_type
from hub.vocabulary.registry import Vocabulary, current


async def _vocabulary(info: Info) -> Vocabulary:
    async with info.context.engine.connect() as connection:
        return await current(AlchemySql(connection))


@strawberry.type
class VocabularyQuery:
    @strawberry.field(description="The registered interaction types, by code.")
    async def interaction_types(self, info: Info) -> list[InteractionTypeDefinition]:
        vocabulary = await _vocabulary(info)
        return [
            InteractionTypeDefinition.from_definition(d)
            for _, d in sorted(vocabulary.interaction_types.items())
        ]

    @strawberry.field(description="The registered identity kinds, by code.")
    async def identity_kinds(self, info: Info) -> list[IdentityKindDefinition]:
        vocabulary = await _vocabulary(info)
        return [
            IdentityKindDefinition.from_definition(d)
            for _, d in sorted(vocabulary.identity_kinds.items())
        ]

    @strawberry.field(description="The registered touchpoint kinds, by code.")
    async def touchpoint_kinds(self, info: Info) -> list[TouchpointKindDefinition]:
        vocabulary = await _vocabulary(info)
        return [
            TouchpointKindDefinition.from_definition(d)
            for _, d in sorted(vocabulary.touchpoint_kinds.items())
        ]

    @strawberry.field(description="The registered consent purposes, by code.")
    async def consent_purposes(self, info: Info) -> list[ConsentPurposeDefinition]:
        vocabulary = await _vocabulary(info)
        return [
            ConsentPurposeDefinition.from_definition(d)
            for _, d in sorted(vocabulary.consent_purposes.items())
        ]


@strawberry.type
class VocabularyMutation:
    @strawberry.mutation(
        description=(
            "Create or replace an interaction type: recordable at once in every process "
            "(ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def define_interaction_type(
        self,
        info: Info,
        input: Annotated[
            DefineInteractionTypeInput, strawberry.argument(description="The definition.")
        ],
    ) -> InteractionTypeDefinition:
        async with info.context.writer.begin() as connection:
            await define_interaction_type(
                connection,
                code=input.code,
                name=input.name,
                description=input.description,
                attributes_schema=input.attributes_schema,
                personal_attributes=input.personal_attributes,
                actor=info.context.principal.name,
            )
            if input.stage is not None:
                await set_rule(connection, input.code, None, input.stage.value)
        async with info.context.writer.connect() as connection:
            vocabulary = await current(AlchemySql(connection))
        return InteractionTypeDefinition.from_definition(vocabulary.interaction_type(input.code))

    @strawberry.mutation(
        description=(
            "Create or replace an identity kind and its normaliser: usable at once in every "
            "process (ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def define_identity_kind(
        self,
        info: Info,
        input: Annotated[
            DefineIdentityKindInput, strawberry.argument(description="The definition.")
        ],
    ) -> IdentityKindDefinition:
        async with info.context.writer.begin() as connection:
            await define_identity_kind(
                connection,
                code=input.code,
                name=input.name,
                description=input.description,
                normaliser=input.normaliser.value,
                actor=info.context.principal.name,
            )
        async with info.context.writer.connect() as connection:
            vocabulary = await current(AlchemySql(connection))
        return IdentityKindDefinition.from_definition(vocabulary.identity_kind(input.code))

    @strawberry.mutation(
        description="Create or replace a touchpoint kind (ADMIN only).",
        permission_classes=[IsAdmin],
    )
    async def define_touchpoint_kind(
        self,
        info: Info,
        input: Annotated[
            DefineTouchpointKindInput, strawberry.argument(description="The definition.")
        ],
    ) -> TouchpointKindDefinition:
        vocabulary = await _define(
            info, "touchpointKind", input.code, input.name, input.description
        )
        return TouchpointKindDefinition.from_definition(vocabulary.touchpoint_kind(input.code))

    @strawberry.mutation(
        description=(
            "Create or replace a consent purpose: `setConsent` accepts it at once (ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def define_consent_purpose(
        self,
        info: Info,
        input: Annotated[
            DefineConsentPurposeInput, strawberry.argument(description="The definition.")
        ],
    ) -> ConsentPurposeDefinition:
        vocabulary = await _define(
            info, "consentPurpose", input.code, input.name, input.description
        )
        return ConsentPurposeDefinition.from_definition(vocabulary.consent_purpose(input.code))


async def _define(
    info: Info, vocabulary: str, code: str, name: str, description: str
) -> Vocabulary:
    """Define a code of a name-and-description vocabulary; the vocabulary afterwards."""
    async with info.context.writer.begin() as connection:
        await define_code(
            connection,
            vocabulary,
            code=code,
            name=name,
            description=description,
            actor=info.context.principal.name,
        )
    async with info.context.writer.connect() as connection:
        return await current(AlchemySql(connection))
