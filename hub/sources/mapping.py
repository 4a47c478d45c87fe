"""How tracking messages become the hub's vocabulary: data, not code.

- Event names → interaction types: the ``source_event_mappings`` table (migration 0017), seeded
  with ``DEFAULT_EVENT_MAPPINGS`` (Segment's e-commerce and e-mail spec events), edited by an
  ADMIN (``setSourceEventMapping``). A name with no row is stored as ``TRACKED_EVENT`` and
  counted in ``source_unmapped_events`` for ``unmappedEvents``. A mapping's type must be
  registered in the vocabulary (``hub.vocabulary``), custom types included.
- Message fields → identities: ``HUB_SOURCE_IDENTITY_MAP`` (``hub.core.settings``), parsed by
  ``identity_paths``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.enums import Direction, InteractionType
from hub.core.errors import BadUserInput
from hub.db.statements import AlchemySql
from hub.vocabulary.registry import current

T = InteractionType
IN = Direction.INBOUND
OUT = Direction.OUTBOUND

# (event name, interaction type, direction): Segment's spec events mapped out of the box.
DEFAULT_EVENT_MAPPINGS: list[tuple[str, InteractionType, Direction]] = [
    # E-commerce spec: browsing
    ("Products Searched", T.SEARCH, IN),
    ("Product List Viewed", T.PRODUCT_VIEW, IN),
    ("Product List Filtered", T.SEARCH, IN),
    ("Promotion Viewed", T.PAGE_VIEW, IN),
    ("Promotion Clicked", T.AD_CLICK, IN),
    ("Product Clicked", T.PRODUCT_VIEW, IN),
    ("Product Viewed", T.PRODUCT_VIEW, IN),
    ("Product Added", T.PRODUCT_VIEW, IN),
    ("Product Removed", T.PRODUCT_VIEW, IN),
    ("Cart Viewed", T.PRODUCT_VIEW, IN),
    # E-commerce spec: checkout and orders
    ("Checkout Started", T.PRODUCT_VIEW, IN),
    ("Checkout Step Viewed", T.PAGE_VIEW, IN),
    ("Checkout Step Completed", T.PAGE_VIEW, IN),
    ("Payment Info Entered", T.PAGE_VIEW, IN),
    ("Order Completed", T.ORDER, IN),
    ("Order Updated", T.ORDER, IN),
    ("Order Refunded", T.RETURN, IN),
    ("Order Cancelled", T.RETURN, IN),
    # E-commerce spec: coupons, wishlists, sharing, reviews
    ("Coupon Entered", T.PAGE_VIEW, IN),
    ("Coupon Applied", T.PAGE_VIEW, IN),
    ("Product Added to Wishlist", T.PRODUCT_VIEW, IN),
    ("Product Shared", T.SOCIAL_ENGAGEMENT, IN),
    ("Cart Shared", T.SOCIAL_ENGAGEMENT, IN),
    ("Product Reviewed", T.SURVEY_RESPONSE, IN),
    # E-mail spec
    ("Email Delivered", T.CAMPAIGN_SENT, OUT),
    ("Email Opened", T.CAMPAIGN_OPENED, IN),
    ("Email Link Clicked", T.CAMPAIGN_CLICKED, IN),
]

UNMAPPED_TYPE = InteractionType.TRACKED_EVENT
MAX_EVENT_NAME = 200


@dataclass(frozen=True)
class EventMapping:
    type: str
    direction: str


MAPPINGS_SQL = (
    "SELECT event, interaction_type, direction FROM source_event_mappings"
    " WHERE event = ANY(CAST(:names AS text[]))"
)
_MAPPINGS = sa.text(MAPPINGS_SQL)


def mappings_of(rows: Iterable[Any]) -> dict[str, EventMapping]:
    """Rows of ``MAPPINGS_SQL`` (objects or mappings) by event name."""
    return {row["event"]: EventMapping(row["interaction_type"], row["direction"]) for row in rows}


async def load_mappings(
    connection: AsyncConnection, names: Sequence[str]
) -> dict[str, EventMapping]:
    """The mapping of each of ``names`` that has one (one query)."""
    if not names:
        return {}
    rows = await connection.execute(_MAPPINGS, {"names": sorted(set(names))})
    return mappings_of(rows.mappings())


COUNT_UNMAPPED_SQL = (
    "INSERT INTO source_unmapped_events AS u (event, count, first_seen_at, last_seen_at)"
    " SELECT name, n, now(), now() FROM unnest(CAST(:names AS text[]), CAST(:counts AS bigint[]))"
    " AS k(name, n)"
    " ON CONFLICT (event) DO UPDATE SET count = u.count + excluded.count, last_seen_at = now()"
)
_COUNT_UNMAPPED = sa.text(COUNT_UNMAPPED_SQL)


async def count_unmapped(connection: AsyncConnection, counts: Mapping[str, int]) -> None:
    """Add stored unmapped events to their counters (one statement; none when empty)."""
    if counts:
        names = sorted(counts)
        await connection.execute(
            _COUNT_UNMAPPED, {"names": names, "counts": [counts[n] for n in names]}
        )


async def set_mapping(
    connection: AsyncConnection, event: str, type_code: str, direction: str, actor: str
) -> Any:
    """Map ``event`` to a type from now on (earlier interactions keep theirs); its row."""
    event = event.strip()
    if not event or len(event) > MAX_EVENT_NAME:
        raise BadUserInput(f"an event name has 1 to {MAX_EVENT_NAME} characters")
    vocabulary = await current(AlchemySql(connection))
    vocabulary.interaction_type(type_code)  # UNKNOWN_CODE unless registered
    result = await connection.execute(
        sa.text(
            "INSERT INTO source_event_mappings (event, interaction_type, direction, updated_by)"
            " VALUES (:event, :type, :direction, :actor) ON CONFLICT (event) DO UPDATE SET"
            " interaction_type = excluded.interaction_type, direction = excluded.direction,"
            " updated_at = now(), updated_by = excluded.updated_by RETURNING *"
        ),
        {"event": event, "type": type_code, "direction": direction, "actor": actor},
    )
    return result.mappings().one()


# ---- identities ----


@dataclass(frozen=True)
class IdentityPath:
    """A message field (``userId``, ``anonymousId``, ``traits.email``, ``properties.x``) whose
    value is an identifier of ``kind``. ``traits.*`` is looked up in the message's traits
    (identify, group), else in ``context.traits`` (track, page, screen)."""

    path: tuple[str, ...]
    kind: str  # an identity kind's code (registered: checked where the message is stored)


def identity_paths(mapping: Mapping[str, str]) -> list[IdentityPath]:
    """The configured identity map (``Settings`` checked its kinds and paths)."""
    return [IdentityPath(tuple(path.split(".")), kind) for path, kind in mapping.items()]


def _dig(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def identities_of(
    message: Mapping[str, Any], paths: Sequence[IdentityPath]
) -> list[tuple[str, str]]:
    """The identifiers a message carries, in map order (strings and numbers; others ignored)."""
    found: list[tuple[str, str]] = []
    for entry in paths:
        value = _dig(message, entry.path)
        if value is None and entry.path[0] == "traits":
            value = _dig(message.get("context"), entry.path)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            value = str(value)
        if isinstance(value, str) and value.strip():
            found.append((entry.kind, value))
    return list(dict.fromkeys(found))
