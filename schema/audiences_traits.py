"""Computed traits (docs/audiences.md): definitions, per-customer values, the list filter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from hub.access.masking import mask_json, personal_keys
from hub.audiences.aggregates import ATTRIBUTES_PREFIX, COUNTS
from hub.audiences.aggregates import Aggregate as DomainAggregate
from hub.audiences.traits import TraitDefinition, spec_to_json
from hub.context import Context, Info
from hub.core.errors import BadUserInput
from hub.core.ids import to_global_id
from hub.db.rows import Record
from hub.schema.enums import described_enum
from hub.schema.interaction import InteractionFilter
from hub.schema.permissions import PersonalData, not_personal

described_enum(
    DomainAggregate,
    "How a computed trait folds a customer's matching interactions into one value.",
    {
        DomainAggregate.COUNT: "How many (with an attribute: how many hold it).",
        DomainAggregate.SUM: "The sum of the attribute's numbers.",
        DomainAggregate.MIN: "The smallest of the attribute's numbers.",
        DomainAggregate.MAX: "The largest of the attribute's numbers.",
        DomainAggregate.AVG: "The mean of the attribute's numbers.",
        DomainAggregate.FIRST: "The attribute of the earliest matching interaction.",
        DomainAggregate.LAST: "The attribute of the latest matching interaction.",
        DomainAggregate.MOST_FREQUENT: "The attribute's most frequent value (ties: most recent).",
        DomainAggregate.DISTINCT_COUNT: "How many different values the attribute took.",
    },
)
DomainAggregate.__strawberry_definition__.name = "ComputedAggregate"  # type: ignore[attr-defined]


def is_personal_attribute(attribute: str | None, context: Context) -> bool:
    """Does a trait over ``attribute`` aggregate personal data (a personal interaction
    attribute, or a personal key anywhere on its path)?"""
    if attribute is None or not attribute.startswith(ATTRIBUTES_PREFIX):
        return False
    segments = attribute[len(ATTRIBUTES_PREFIX) :].split(".")
    keys = personal_keys(context.settings)
    personal = set(context.settings.personal_attributes)
    return segments[0] in personal or any(keys.is_personal(s) for s in segments)


def computed_value_mask(value: Any, source: Any, context: Context) -> Any:
    """A value over a personal attribute is hidden whole; others as any JSON."""
    if isinstance(source, ComputedValue) and is_personal_attribute(source.attribute, context):
        return None
    return mask_json(value, personal_keys(context.settings))


@strawberry.type(description="A computed trait's definition.")
class ComputedTrait:
    key: str = strawberry.field(
        description="The trait's key.", metadata=not_personal("a name chosen by an admin")
    )
    name: str | None = strawberry.field(
        description="A name to show.", metadata=not_personal("a name chosen by an admin")
    )
    description: str | None = strawberry.field(
        description="What it means.", metadata=not_personal("text written by an admin")
    )
    aggregate: DomainAggregate = strawberry.field(description="How the value is computed.")
    interactions: JSON = strawberry.field(
        description="The interaction filter it aggregates over (as given, in JSON).",
        metadata=not_personal("channels, types, touchpoint ids and moments"),
    )
    attribute: str | None = strawberry.field(
        description="The attribute it reads (`attributes.amount`, `channel`...), if any.",
        metadata=not_personal("an attribute path"),
    )
    within_days: int | None = strawberry.field(
        description="Only interactions of the last this many days (a sliding window)."
    )
    created_at: datetime = strawberry.field(description="When it was defined.")
    updated_at: datetime = strawberry.field(description="When its definition last changed.")

    @classmethod
    def from_definition(cls, d: TraitDefinition) -> ComputedTrait:
        assert d.created_at is not None and d.updated_at is not None
        interactions: Any = spec_to_json(d.filter)
        if "touchpointIds" in interactions:  # as the input takes them: global ids
            interactions["touchpointIds"] = [
                to_global_id("Touchpoint", t) for t in interactions["touchpointIds"]
            ]
        return cls(
            key=d.key,
            name=d.name,
            description=d.description,
            aggregate=d.aggregate,
            interactions=interactions,
            attribute=d.attribute,
            within_days=d.within_days,
            created_at=d.created_at,
            updated_at=d.updated_at,
        )


@strawberry.type(description="One computed trait's value for a customer.")
class ComputedValue:
    attribute: strawberry.Private[str | None]
    key: str = strawberry.field(
        description="The computed trait's key.", metadata=not_personal("a name chosen by an admin")
    )
    value: JSON | None = strawberry.field(
        description=(
            "The value (JSON): 0 for the counts and null otherwise when no interaction matches;"
            " null without `pii` when the trait reads a personal attribute."
        ),
        extensions=[PersonalData(computed_value_mask)],
    )
    updated_at: datetime | None = strawberry.field(
        description="When the value last changed (null: no interaction matched yet)."
    )


@strawberry.input(description="A computed trait to define (ADMIN).")
class DefineComputedTraitInput:
    key: str = strawberry.field(description="Its key: a letter, then letters, digits or _.")
    aggregate: DomainAggregate = strawberry.field(description="How the value is computed.")
    interactions: InteractionFilter = strawberry.field(
        description="Which of a customer's interactions count (must narrow them)."
    )
    attribute: str | None = strawberry.field(
        default=None,
        description=(
            "What the aggregate reads: `attributes.<path>` (seen on a matching interaction), or"
            " one of channel, type, direction, touchpointId, sentiment, occurredAt."
        ),
    )
    within_days: int | None = strawberry.field(
        default=None, description="Only the last this many days (a sliding window, ≥ 1)."
    )
    name: str | None = strawberry.field(default=None, description="A name to show.")
    description: str | None = strawberry.field(default=None, description="What it means.")


@strawberry.input(description="Matches customers by a computed trait; every operator must hold.")
class ComputedFilter:
    key: str = strawberry.field(description="The computed trait's key.")
    gt: float | None = strawberry.field(default=None, description="Its number is greater.")
    lt: float | None = strawberry.field(default=None, description="Its number is smaller.")
    eq: JSON | None = strawberry.field(
        default=None, description="Equal to this JSON value (numbers compare as numbers)."
    )


def definition_of(input: DefineComputedTraitInput) -> TraitDefinition:
    from hub.schema.interaction import filter_spec

    return TraitDefinition(
        key=input.key,
        aggregate=input.aggregate,
        filter=filter_spec(input.interactions),
        attribute=input.attribute,
        within_days=input.within_days,
        name=input.name,
        description=input.description,
    )


def empty_value(definition: TraitDefinition) -> Any:
    """The value of a customer no interaction matches."""
    return 0 if definition.aggregate in COUNTS else None


async def computed_values(
    info: Info, customer_id: uuid.UUID, keys: list[str] | None
) -> list[ComputedValue]:
    loaders = info.context.loaders
    definitions = await loaders.computed_trait_table.load("*")
    if keys is not None:
        unknown = sorted(set(keys) - definitions.keys())
        if unknown:
            raise BadUserInput(f"unknown computed trait key(s): {', '.join(unknown)}")
    rows: dict[str, Record] = {
        row["trait_key"]: row for row in await loaders.computed_by_customer.load(customer_id)
    }
    chosen = keys if keys is not None else sorted(definitions)
    values = []
    for key in dict.fromkeys(chosen):
        definition = definitions[key]
        row = rows.get(key)
        values.append(
            ComputedValue(
                attribute=definition.attribute,
                key=key,
                value=row["value"] if row is not None else empty_value(definition),
                updated_at=row["updated_at"] if row is not None else None,
            )
        )
    return values
