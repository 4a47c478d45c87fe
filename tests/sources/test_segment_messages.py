"""Segment messages translated to the hub's inputs (hub.sources.segment): pure, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from hub.core.enums import IdentityKind
from hub.core.settings import Settings
from hub.sources.mapping import EventMapping, identity_paths
from hub.sources.segment import BadMessage, translate

TP = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
PATHS = identity_paths(Settings().source_identity_map)


def test_a_configured_identity_map_reads_any_field() -> None:
    paths = identity_paths({"properties.loyalty_no": "LOYALTY_ID", "traits.email": "EMAIL"})
    message = {
        "type": "track",
        "event": "Points Redeemed",
        "properties": {"loyalty_no": 4711},
        "context": {"traits": {"email": "bo@example.com"}},
    }
    translated = translate(message, None, TP, {}, paths)
    assert translated.interaction is not None
    assert list(translated.interaction.identities) == [
        (IdentityKind.LOYALTY_ID, "4711"),
        (IdentityKind.EMAIL, "bo@example.com"),
    ]
    assert translated.unmapped and translated.interaction.type == "TRACKED_EVENT"


def test_a_mapped_event_takes_its_type_direction_and_time() -> None:
    message = {
        "type": "track",
        "userId": "u",
        "event": "Email Delivered",
        "timestamp": "2026-03-01T10:00:00.123Z",
        "messageId": "m-1",
    }
    mappings = {"Email Delivered": EventMapping("CAMPAIGN_SENT", "OUTBOUND")}
    interaction = translate(message, None, TP, mappings, PATHS).interaction
    assert interaction is not None
    assert (interaction.type, interaction.direction, interaction.idempotency_key) == (
        "CAMPAIGN_SENT",
        "OUTBOUND",
        "m-1",
    )
    assert interaction.occurred_at == datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "track", "userId": "u", "event": "a\x00b"}, "a NUL character"),
        ({"type": "page", "userId": "u", "properties": []}, "`properties` must be a JSON object"),
        ({"type": "group", "userId": "u"}, "a group message needs a `groupId`"),
        ({"type": "alias", "userId": "u"}, "an alias message needs a `previousId`"),
        ({"type": "track", "userId": "u", "event": "x", "messageId": ""}, "`messageId` must"),
        ({"type": "identify", "userId": "u", "traits": "ana"}, "`traits` must be a JSON object"),
    ],
)
def test_malformed_messages_say_what_is_wrong(message: object, reason: str) -> None:
    with pytest.raises(BadMessage) as refused:
        translate(message, None, TP, {}, PATHS)
    assert reason in refused.value.message
    assert refused.value.extensions == {"code": "BAD_MESSAGE"}


def test_an_invalid_identity_map_is_refused_at_start() -> None:
    # Whether a well-formed kind is registered is data (hub.vocabulary), checked per message.
    with pytest.raises(ValueError, match="'nope' \\(for 'userId'\\) is not an identity kind"):
        Settings(source_identity_map={"userId": "nope"})
