"""Checking and normalising interaction inputs before anything touches the database.

Every rule here yields a ``BadUserInput`` with a message a caller can act on; see
docs/ingest.md for the list.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from hub.core.errors import BadUserInput
from hub.core.settings import Settings
from hub.identity.identifiers import normalize_identities
from hub.identity.resolution import Draft
from hub.vocabulary.registry import BUILT_IN, Vocabulary

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_KEY_LENGTH = 200
MAX_TEXT_LENGTH = 10_000


@dataclass(frozen=True)
class InteractionInput:
    """One interaction as a caller gives it (identifiers not yet normalised)."""

    identities: Sequence[tuple[str, str]]  # (identity kind code, value)
    touchpoint_id: uuid.UUID
    type: str
    direction: str
    occurred_at: datetime | None = None
    conversation_key: str | None = None
    summary: str | None = None
    sentiment: float | None = None
    outcome: str | None = None
    agent: str | None = None
    attributes: Any = None  # must be a JSON object; checked by validate()
    idempotency_key: str | None = None


def _optional_text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise BadUserInput(f"`{name}` must not be empty when given")
    if len(value) > limit:
        raise BadUserInput(f"`{name}` is at most {limit} characters")
    return value


def validate(
    item: InteractionInput,
    index: int,
    channel_code: str,
    settings: Settings,
    now: datetime,
    vocabulary: Vocabulary = BUILT_IN,
) -> Draft:
    """Check one input and normalise it; raises ``BadUserInput`` with a clear message (an
    ``UnknownCode`` for a type or identity kind the vocabulary does not register, an
    ``InvalidAttributes`` naming the path for attributes against the type's schema)."""
    vocabulary.interaction_type(item.type)
    keys = normalize_identities(item.identities, settings, vocabulary.normalisers)
    if item.sentiment is not None and (
        math.isnan(item.sentiment) or not -1.0 <= item.sentiment <= 1.0
    ):
        raise BadUserInput(f"`sentiment` must be between -1 and 1, got {item.sentiment}")
    occurred_at = item.occurred_at or now
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    if occurred_at > now + timedelta(seconds=settings.max_future_seconds):
        raise BadUserInput(
            f"`occurredAt` {occurred_at.isoformat()} is in the future "
            f"(more than {settings.max_future_seconds} s ahead of the server clock)"
        )
    if occurred_at < EARLIEST:
        raise BadUserInput(f"`occurredAt` {occurred_at.isoformat()} is before 1970")
    if item.summary is not None and len(item.summary) > MAX_TEXT_LENGTH:
        raise BadUserInput(f"`summary` is at most {MAX_TEXT_LENGTH} characters")
    attributes = item.attributes if item.attributes is not None else {}
    if not isinstance(attributes, dict):
        raise BadUserInput("`attributes` must be a JSON object")
    size = len(orjson.dumps(attributes))
    if size > settings.max_attributes_bytes:
        raise BadUserInput(
            f"`attributes` is {size} bytes as JSON; at most {settings.max_attributes_bytes}"
        )
    vocabulary.check_attributes(item.type, attributes)
    return Draft(
        index=index,
        identities=keys,
        touchpoint_id=item.touchpoint_id,
        channel_code=channel_code,
        type=item.type,
        direction=item.direction,
        occurred_at=occurred_at.astimezone(UTC),
        conversation_key=_optional_text("conversationKey", item.conversation_key, MAX_KEY_LENGTH),
        summary=item.summary,
        sentiment=item.sentiment,
        outcome=_optional_text("outcome", item.outcome, MAX_KEY_LENGTH),
        agent=_optional_text("agent", item.agent, MAX_KEY_LENGTH),
        attributes=attributes,
        idempotency_key=_optional_text("idempotencyKey", item.idempotency_key, MAX_KEY_LENGTH),
    )
