"""The domain enums of ``hub.core.enums`` registered as GraphQL enums, with their descriptions;
and the two vocabularies kept as data (``hub.vocabulary``), ``InteractionType`` and
``IdentityKind``: custom scalars whose value is a registered code (docs/sources.md#vocabulary).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, NewType, TypeVar

import strawberry
from graphql import EnumValueNode, GraphQLError, StringValueNode, ValueNode

from hub.core.enums import (
    CHANNEL_DESCRIPTIONS,
    CONVERSATION_STATUS_DESCRIPTIONS,
    DIRECTION_DESCRIPTIONS,
    STAGE_DESCRIPTIONS,
    STAGE_TRANSITION_DESCRIPTIONS,
    ChannelCode,
    ConversationStatus,
    Direction,
    StageCode,
    StageTransition,
)
from hub.vocabulary.registry import CODE

E = TypeVar("E", bound=Enum)


def described_enum(
    cls: type[E], description: str, value_descriptions: Mapping[E, str | tuple[str, str]]
) -> type[E]:
    """Register ``cls`` with Strawberry and copy each member's description onto its value."""
    strawberry.enum(cls, description=description)
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    for value in definition.values:
        text = value_descriptions[cls(value.value)]
        value.description = text if isinstance(text, str) else f"{text[0]}: {text[1]}"
    return cls


described_enum(ChannelCode, "The six broad categories of engagement.", CHANNEL_DESCRIPTIONS)
described_enum(StageCode, "The ordered stages of the customer journey.", STAGE_DESCRIPTIONS)
described_enum(Direction, "Who started an interaction.", DIRECTION_DESCRIPTIONS)
described_enum(
    ConversationStatus, "Whether a conversation is still open.", CONVERSATION_STATUS_DESCRIPTIONS
)
described_enum(
    StageTransition,
    "How a stage change relates to the stage before.",
    STAGE_TRANSITION_DESCRIPTIONS,
)


def _code(what: str) -> Any:
    def parse_value(value: Any) -> str:
        if not isinstance(value, str) or not CODE.fullmatch(value):
            # A GraphQLError: graphql-core reports it as the client's mistake (hub.graphql's
            # ErrorCodes would mask any other exception as a bug).
            raise GraphQLError(
                f"{what} is a code: an upper-case letter, then upper-case letters, digits and "
                f"underscores, at most 64 characters (like PAGE_VIEW); got {value!r}"
            )
        return value

    def parse_literal(node: ValueNode, _variables: Any = None) -> str:
        # PAGE_VIEW (an enum-style literal, as documents written for the former enum have it)
        # and "PAGE_VIEW" (a string) are the same code.
        if isinstance(node, EnumValueNode | StringValueNode) and CODE.fullmatch(node.value):
            return node.value
        raise GraphQLError(
            f"{what} is a code (upper-case letters, digits and underscores, at most 64 "
            f'characters), written PAGE_VIEW or "PAGE_VIEW"',
            node,
        )

    return parse_value, parse_literal


def _serialize(value: Any) -> str:
    """A stored code as the answer carries it; a stored value that is no code at all (a corrupt
    row) is a bug, reported as one (ValueError: masked, logged)."""
    if not isinstance(value, str) or not CODE.fullmatch(value):
        raise ValueError(f"{value!r} is stored where a vocabulary code belongs")
    return value


_TYPE_VALUE, _TYPE_LITERAL = _code("an interaction type")
_KIND_VALUE, _KIND_LITERAL = _code("an identity kind")
_TOUCHPOINT_VALUE, _TOUCHPOINT_LITERAL = _code("a touchpoint kind")
_PURPOSE_VALUE, _PURPOSE_LITERAL = _code("a consent purpose")

# The scalars' Python types are the code strings; their GraphQL definitions are handed to the
# Schema (``SCALARS``, ``scalar_overrides`` in hub/graphql.py).
InteractionType = NewType("InteractionType", str)
IdentityKind = NewType("IdentityKind", str)
TouchpointKind = NewType("TouchpointKind", str)
ConsentPurpose = NewType("ConsentPurpose", str)

SCALARS: dict[object, Any] = {
    InteractionType: strawberry.scalar(
        name="InteractionType",
        description=(
            "What happened in an interaction: the code of a registered interaction type "
            "(`interactionTypes` lists them, an ADMIN adds one with `defineInteractionType`). "
            'Written as a string (`"PAGE_VIEW"`) or, as when this was an enum, bare (`PAGE_VIEW`); '
            "in variables and answers it is the code string. An unregistered code is refused with "
            "`UNKNOWN_CODE`."
        ),
        serialize=_serialize,
        parse_value=_TYPE_VALUE,
        parse_literal=_TYPE_LITERAL,
    ),
    IdentityKind: strawberry.scalar(
        name="IdentityKind",
        description=(
            "A kind of identifier a customer is known by: the code of a registered identity kind "
            "(`identityKinds` lists them with their normaliser, an ADMIN adds one with "
            "`defineIdentityKind`). Written as a string or bare (`EMAIL`), as `InteractionType`."
        ),
        serialize=_serialize,
        parse_value=_KIND_VALUE,
        parse_literal=_KIND_LITERAL,
    ),
    TouchpointKind: strawberry.scalar(
        name="TouchpointKind",
        description=(
            "What sort of touchpoint this is: the code of a registered touchpoint kind "
            "(`touchpointKinds` lists them, an ADMIN adds one with `defineTouchpointKind`). "
            "Written as a string or bare (`WEBSITE`), as `InteractionType`."
        ),
        serialize=_serialize,
        parse_value=_TOUCHPOINT_VALUE,
        parse_literal=_TOUCHPOINT_LITERAL,
    ),
    ConsentPurpose: strawberry.scalar(
        name="ConsentPurpose",
        description=(
            "What a customer's data may be used for: the code of a registered consent purpose "
            "(`consentPurposes` lists them, an ADMIN adds one with `defineConsentPurpose`). "
            "Written as a string or bare (`MARKETING`), as `InteractionType`."
        ),
        serialize=_serialize,
        parse_value=_PURPOSE_VALUE,
        parse_literal=_PURPOSE_LITERAL,
    ),
}

__all__ = [
    "ChannelCode",
    "ConsentPurpose",
    "ConversationStatus",
    "Direction",
    "IdentityKind",
    "InteractionType",
    "StageCode",
    "StageTransition",
    "TouchpointKind",
]
