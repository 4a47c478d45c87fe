"""Reading event payloads by the keys their writers put there (one place, so the feeds and the
writers cannot drift apart again: the feeds once read ``previous_stage``/``merged_id`` while the
writers wrote ``previousStage``/``mergedIds``, and only synthetic test events had the former)."""

from __future__ import annotations

import uuid
from typing import Any


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def previous_stage(payload: dict[str, Any]) -> str | None:
    """The stage left (``JOURNEY_STAGE_CHANGED``, written by ingest and ``setJourneyStage``)."""
    value = payload.get("previousStage")
    return str(value) if value is not None else None


def merged_ids(payload: dict[str, Any]) -> list[uuid.UUID]:
    """The customers merged away (``CUSTOMER_MERGED``, written by ``merge_customers``)."""
    ids = payload.get("mergedIds")
    if not isinstance(ids, list):
        return []
    return [parsed for parsed in (_uuid(value) for value in ids) if parsed is not None]
