"""Why customers changed: one vocabulary for computed traits and segments (and the ``reason``
carried by membership events)."""

from __future__ import annotations

from enum import StrEnum


class ChangeReason(StrEnum):
    INGEST = "INGEST"
    MERGE = "MERGE"
    UNMERGE = "UNMERGE"
    ERASURE = "ERASURE"
    STAGE = "STAGE"
    CONSENT = "CONSENT"
    TRAIT = "TRAIT"
    PROFILE = "PROFILE"
    CLOCK = "CLOCK"
    DEFINITION = "DEFINITION"
