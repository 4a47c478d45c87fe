"""The domain enums of ``hub.core.enums`` registered as GraphQL enums, with their descriptions."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

import strawberry

from hub.core.enums import (
    CHANNEL_DESCRIPTIONS,
    CONVERSATION_STATUS_DESCRIPTIONS,
    DIRECTION_DESCRIPTIONS,
    IDENTITY_KIND_DESCRIPTIONS,
    INTERACTION_TYPE_DESCRIPTIONS,
    STAGE_DESCRIPTIONS,
    STAGE_TRANSITION_DESCRIPTIONS,
    TOUCHPOINT_KIND_DESCRIPTIONS,
    ChannelCode,
    ConversationStatus,
    Direction,
    IdentityKind,
    InteractionType,
    StageCode,
    StageTransition,
    TouchpointKind,
)

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
described_enum(
    IdentityKind, "Kinds of identifier a customer is known by.", IDENTITY_KIND_DESCRIPTIONS
)
described_enum(Direction, "Who started an interaction.", DIRECTION_DESCRIPTIONS)
described_enum(TouchpointKind, "What sort of touchpoint this is.", TOUCHPOINT_KIND_DESCRIPTIONS)
described_enum(InteractionType, "What happened in an interaction.", INTERACTION_TYPE_DESCRIPTIONS)
described_enum(
    ConversationStatus, "Whether a conversation is still open.", CONVERSATION_STATUS_DESCRIPTIONS
)
described_enum(
    StageTransition,
    "How a stage change relates to the stage before.",
    STAGE_TRANSITION_DESCRIPTIONS,
)

__all__ = [
    "ChannelCode",
    "ConversationStatus",
    "Direction",
    "IdentityKind",
    "InteractionType",
    "StageCode",
    "StageTransition",
    "TouchpointKind",
]
