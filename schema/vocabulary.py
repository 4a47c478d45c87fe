"""The vocabulary kept as data (docs/sources.md#vocabulary): registered interaction types and
identity kinds, and the inputs that define them."""

from __future__ import annotations

from enum import Enum
from typing import cast

import strawberry
from strawberry.scalars import JSON

from hub.schema.enums import (
    ConsentPurpose,
    IdentityKind,
    InteractionType,
    StageCode,
    TouchpointKind,
    described_enum,
)
from hub.schema.permissions import not_personal
from hub.vocabulary.registry import CodeDef, IdentityKindDef, InteractionTypeDef

_CATALOGUE = "vocabulary the business configures, not about a customer"


class Normaliser(Enum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    SOCIAL_HANDLE = "SOCIAL_HANDLE"
    LOWER_CASE = "LOWER_CASE"
    TRIMMED = "TRIMMED"
    AS_IS = "AS_IS"


described_enum(
    Normaliser,
    "How an identity kind's values are normalised before they are stored or matched.",
    {
        Normaliser.EMAIL: "An e-mail address, validated, trimmed and lower-cased.",
        Normaliser.PHONE: "A phone number, validated, in E.164 form.",
        Normaliser.SOCIAL_HANDLE: "platform:handle, lower-cased (instagram:ana).",
        Normaliser.LOWER_CASE: "Trimmed and lower-cased.",
        Normaliser.TRIMMED: "Leading and trailing spaces removed.",
        Normaliser.AS_IS: "Kept exactly as given.",
    },
)


@strawberry.type(description="A registered interaction type.")
class InteractionTypeDefinition:
    code: InteractionType = strawberry.field(description="Its code, as interactions carry it.")
    name: str = strawberry.field(
        description="Human-readable name.", metadata=not_personal(_CATALOGUE)
    )
    description: str = strawberry.field(
        description="What it means.", metadata=not_personal(_CATALOGUE)
    )
    attributes_schema: JSON | None = strawberry.field(
        description="The JSON Schema each interaction's `attributes` must satisfy, if any.",
        metadata=not_personal("a JSON Schema the business configures, not about a customer"),
    )
    personal_attributes: list[str] = strawberry.field(
        description="Attributes that are personal data: masked for keys without `pii`.",
        metadata=not_personal("attribute names, not their values"),
    )
    stage: StageCode | None = strawberry.field(
        description="The stage its interactions signal on every channel (its general rule)."
    )
    built_in: bool = strawberry.field(description="True for the types the hub ships with.")

    @classmethod
    def from_definition(cls, d: InteractionTypeDef) -> InteractionTypeDefinition:
        return cls(
            code=InteractionType(d.code),
            name=d.name,
            description=d.description,
            attributes_schema=cast(JSON, d.attributes_schema),
            personal_attributes=list(d.personal_attributes),
            stage=StageCode(d.stage) if d.stage else None,
            built_in=d.built_in,
        )


@strawberry.type(description="A registered identity kind.")
class IdentityKindDefinition:
    code: IdentityKind = strawberry.field(description="Its code, as identities carry it.")
    name: str = strawberry.field(
        description="Human-readable name.", metadata=not_personal(_CATALOGUE)
    )
    description: str = strawberry.field(
        description="What it is.", metadata=not_personal(_CATALOGUE)
    )
    normaliser: Normaliser = strawberry.field(description="How its values are normalised.")
    built_in: bool = strawberry.field(description="True for the kinds the hub ships with.")

    @classmethod
    def from_definition(cls, d: IdentityKindDef) -> IdentityKindDefinition:
        return cls(
            code=IdentityKind(d.code),
            name=d.name,
            description=d.description,
            normaliser=Normaliser(d.normaliser),
            built_in=d.built_in,
        )


@strawberry.input(description="An interaction type to create or replace.")
class DefineInteractionTypeInput:
    code: str = strawberry.field(
        description="Upper-case letters, digits and underscores (LOAN_APPLICATION)."
    )
    name: str = strawberry.field(description="Human-readable name.")
    description: str = strawberry.field(description="What it means.")
    attributes_schema: JSON | None = strawberry.field(
        default=None,
        description=(
            "A JSON Schema (draft 2020-12 unless `$schema` says otherwise) each interaction's "
            "`attributes` must satisfy; an item that breaks it is rejected alone "
            "(`INVALID_ATTRIBUTES`, with the attribute path). Null: any attributes."
        ),
    )
    personal_attributes: list[str] = strawberry.field(
        default_factory=list,
        description="Attribute keys that are personal data (masked without `pii`, at any depth).",
    )
    stage: StageCode | None = strawberry.field(
        default=None,
        description="The stage it signals on every channel (its general stage rule); null: "
        "the stage rules are left as they are.",
    )


@strawberry.input(description="An identity kind to create or replace.")
class DefineIdentityKindInput:
    code: str = strawberry.field(
        description="Upper-case letters, digits and underscores (MEMBER_NO)."
    )
    name: str = strawberry.field(description="Human-readable name.")
    description: str = strawberry.field(description="What it is.")
    normaliser: Normaliser = strawberry.field(
        description="How its values are normalised (fixed once values of it are stored)."
    )


@strawberry.type(description="A registered touchpoint kind.")
class TouchpointKindDefinition:
    code: TouchpointKind = strawberry.field(description="Its code, as touchpoints carry it.")
    name: str = strawberry.field(
        description="Human-readable name.", metadata=not_personal(_CATALOGUE)
    )
    description: str = strawberry.field(
        description="What it is.", metadata=not_personal(_CATALOGUE)
    )
    built_in: bool = strawberry.field(description="True for the kinds the hub ships with.")

    @classmethod
    def from_definition(cls, d: CodeDef) -> TouchpointKindDefinition:
        return cls(
            code=TouchpointKind(d.code), name=d.name, description=d.description, built_in=d.built_in
        )


@strawberry.type(description="A registered consent purpose.")
class ConsentPurposeDefinition:
    code: ConsentPurpose = strawberry.field(description="Its code, as consents carry it.")
    name: str = strawberry.field(
        description="Human-readable name.", metadata=not_personal(_CATALOGUE)
    )
    description: str = strawberry.field(
        description="What the data may be used for.", metadata=not_personal(_CATALOGUE)
    )
    built_in: bool = strawberry.field(description="True for the purposes the hub ships with.")

    @classmethod
    def from_definition(cls, d: CodeDef) -> ConsentPurposeDefinition:
        return cls(
            code=ConsentPurpose(d.code), name=d.name, description=d.description, built_in=d.built_in
        )


@strawberry.input(description="A touchpoint kind to create or replace.")
class DefineTouchpointKindInput:
    code: str = strawberry.field(description="Upper-case letters, digits and underscores (KIOSK).")
    name: str = strawberry.field(description="Human-readable name.")
    description: str = strawberry.field(description="What it is.")


@strawberry.input(description="A consent purpose to create or replace.")
class DefineConsentPurposeInput:
    code: str = strawberry.field(
        description="Upper-case letters, digits and underscores (PROFILING)."
    )
    name: str = strawberry.field(description="Human-readable name.")
    description: str = strawberry.field(description="What the data may be used for.")
