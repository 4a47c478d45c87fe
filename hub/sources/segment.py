"""Segment's tracking spec, translated into the hub's inputs (pure: no I/O).

A message (``identify``, ``track``, ``page``, ``screen``, ``alias``, ``group``) becomes either an
interaction (``InteractionInput``: track, page, screen) or a profile change (``ProfileChange``:
identify, alias, group). Every problem is a ``BadMessage`` naming the field, reported for that
message alone. docs/sources.md has the whole mapping.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.core.enums import Direction, IdentityKind, InteractionType
from hub.core.errors import HubError
from hub.core.text import unstorable
from hub.ingest.validation import InteractionInput
from hub.privacy.consent import ConsentChannel, ConsentStatus
from hub.sources.mapping import (
    MAX_EVENT_NAME,
    UNMAPPED_TYPE,
    EventMapping,
    IdentityPath,
    identities_of,
)

MESSAGE_TYPES = ("identify", "track", "page", "screen", "alias", "group")
INTERACTION_TYPES = frozenset({"track", "page", "screen"})  # the others change profiles
MAX_MESSAGE_ID = 200


class BadMessage(HubError):
    """A message that does not follow Segment's spec (or cannot be read at all)."""

    code = "BAD_MESSAGE"


@dataclass(frozen=True)
class ConsentGiven:
    """A consent a profile line states (``hub import``): stored when it differs from the
    customer's current one for that purpose and channel."""

    purpose: str  # a consent purpose code (registered: checked when stored)
    channel: ConsentChannel
    status: ConsentStatus
    expires_at: datetime | None = None
    source: str | None = None


@dataclass(frozen=True)
class ProfileChange:
    """identify / alias / group: find (or create) the customer holding ``identities``, link them
    all to it, then apply ``traits`` observed at ``observed_at`` with the traits' survivorship."""

    identities: Sequence[tuple[str, str]]
    traits: dict[str, Any] = field(default_factory=dict)
    observed_at: datetime | None = None
    display_name: str | None = None
    consents: Sequence[ConsentGiven] = ()


@dataclass(frozen=True)
class Translated:
    message_type: str
    message_id: str | None
    event: str | None  # track's event name
    interaction: InteractionInput | None = None
    profile: ProfileChange | None = None
    unmapped: bool = False  # a track event stored as TRACKED_EVENT


def message_type(message: Any, forced: str | None) -> str:
    if not isinstance(message, dict):
        raise BadMessage("a message must be a JSON object")
    kind = forced or message.get("type")
    if kind not in MESSAGE_TYPES:
        raise BadMessage(f"`type` must be one of {', '.join(MESSAGE_TYPES)}; got {kind!r}")
    return str(kind)


def message_id(message: Any) -> str | None:
    """The message's ``messageId`` when it is a usable one (also for reporting a rejection)."""
    if not isinstance(message, dict):
        return None
    value = message.get("messageId")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_MESSAGE_ID:
        return value
    return None


def event_name(message: Any) -> str | None:
    value = message.get("event") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None


def _unstorable_in(value: Any) -> str | None:
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, dict):
        for key, child in value.items():
            found = unstorable(key) or _unstorable_in(child)
            if found:
                return found
    if isinstance(value, list):
        for child in value:
            found = _unstorable_in(child)
            if found:
                return found
    return None


# In a JSON text, the only way to a NUL or a lone surrogate once decoded is an escape: raw NUL
# and raw control characters are not JSON, raw surrogates are not UTF-8 (orjson refuses both).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def body_text_storable(body: bytes) -> bool:
    """True when the JSON text ``body`` (valid UTF-8 JSON) can hold no unstorable text: no
    ``\\u0000`` and no surrogate escape (a valid pair also answers False: then each message
    is checked)."""
    return _SUSPECT_ESCAPE.search(body) is None


def _timestamp(message: Mapping[str, Any]) -> datetime | None:
    value = message.get("timestamp")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadMessage("`timestamp` must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadMessage(f"`timestamp` {value[:60]!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _object(message: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = message.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadMessage(f"`{name}` must be a JSON object")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, {}, "")}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def context_attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    """What of ``context`` lands in the attributes: the page (url, path, referrer, title,
    search), the user agent, the campaign (UTM) and the sending library. Not the IP address."""
    context = _object(message, "context")
    page = _dict(context.get("page"))
    campaign = _dict(context.get("campaign")) or None
    library = _dict(context.get("library"))
    library_text = " ".join(str(library[k]) for k in ("name", "version") if library.get(k))
    return _compact(
        {
            "page": _compact(
                {k: page.get(k) for k in ("url", "path", "referrer", "title", "search")}
            ),
            "userAgent": _text(context.get("userAgent")),
            "campaign": campaign,
            "library": library_text or None,
        }
    )


def _identities(message: Mapping[str, Any], paths: Sequence[IdentityPath]) -> list[tuple[str, str]]:
    found = identities_of(message, paths)
    if not found:
        fields = ", ".join(".".join(p.path) for p in paths)
        raise BadMessage(f"a message needs an identifier: one of {fields}")
    return found


def _display_name(traits: Mapping[str, Any]) -> str | None:
    name = _text(traits.get("name"))
    if name:
        return name[:200]
    parts = [_text(traits.get("firstName")), _text(traits.get("lastName"))]
    joined = " ".join(p for p in parts if p)
    return joined[:200] or None


def translate(
    message: Any,
    forced_type: str | None,
    touchpoint_id: uuid.UUID,
    mappings: Mapping[str, EventMapping],
    paths: Sequence[IdentityPath],
    text_checked: bool = False,
) -> Translated:
    """One Segment message as the hub's input; ``BadMessage`` says what is wrong with it.
    ``text_checked``: the caller knows no text in it is unstorable (``body_text_storable``)."""
    kind = message_type(message, forced_type)
    problem = None if text_checked else _unstorable_in(message)
    if problem:
        raise BadMessage(f"the message holds {problem}, which cannot be stored")
    moment = _timestamp(message)
    mid = message_id(message)
    raw_id = message.get("messageId")
    if raw_id is not None and mid is None:
        raise BadMessage(f"`messageId` must be a non-empty string of at most {MAX_MESSAGE_ID}")
    if kind in ("identify", "group"):
        traits = _object(message, "traits")
        if kind == "identify" and "traits" not in message:
            # RudderStack's SDKs send identify traits in context.traits only.
            traits = _dict(_object(message, "context").get("traits"))
        changes = dict(traits)
        if kind == "group":
            group_id = message.get("groupId")
            if not isinstance(group_id, str | int) or not str(group_id).strip():
                raise BadMessage("a group message needs a `groupId`")
            changes = {"groupId": str(group_id), "groupTraits": traits}
        return Translated(
            kind,
            mid,
            None,
            profile=ProfileChange(
                _identities(message, paths),
                changes,
                moment,
                _display_name(traits) if kind == "identify" else None,
            ),
        )
    if kind == "alias":
        previous = message.get("previousId")
        if not isinstance(previous, str | int) or not str(previous).strip():
            raise BadMessage("an alias message needs a `previousId`")
        user_kind: str = next(
            (p.kind for p in paths if p.path == ("userId",)), IdentityKind.CRM_ID.value
        )
        previous_kind: str = next(
            (p.kind for p in paths if p.path == ("anonymousId",)), IdentityKind.COOKIE.value
        )
        user_id = message.get("userId")
        if not isinstance(user_id, str | int) or not str(user_id).strip():
            raise BadMessage("an alias message needs a `userId`")
        return Translated(
            kind,
            mid,
            None,
            profile=ProfileChange(
                [(user_kind, str(user_id)), (previous_kind, str(previous))], {}, moment
            ),
        )
    properties = _object(message, "properties")
    attributes: dict[str, Any] = {"source": "segment"}
    direction = Direction.INBOUND.value
    unmapped = False
    event = None
    if kind == "track":
        event = _text(message.get("event"))
        if event is None or len(event) > MAX_EVENT_NAME:
            raise BadMessage(f"a track message needs an `event` name of 1 to {MAX_EVENT_NAME}")
        mapping = mappings.get(event)
        unmapped = mapping is None
        type_code = mapping.type if mapping else UNMAPPED_TYPE.value
        direction = mapping.direction if mapping else direction
        attributes["event"] = event
        summary = event
    else:
        type_code = (
            InteractionType.PAGE_VIEW.value if kind == "page" else InteractionType.SCREEN_VIEW.value
        )
        name = _text(message.get("name"))
        category = _text(message.get("category"))
        attributes.update(_compact({"name": name, "category": category}))
        page = _object(message, "context").get("page")
        title = page.get("title") if isinstance(page, dict) else None
        summary = name or _text(title) or _text(properties.get("url")) or kind
    attributes.update(_compact({"properties": properties}))
    attributes.update(context_attributes(message))
    interaction = InteractionInput(
        identities=_identities(message, paths),
        touchpoint_id=touchpoint_id,
        type=type_code,
        direction=direction,
        occurred_at=moment,
        summary=summary[:10_000],
        attributes=attributes,
        idempotency_key=mid,
    )
    return Translated(kind, mid, event, interaction=interaction, unmapped=unmapped)
