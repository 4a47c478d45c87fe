"""The vocabulary kept as data: registered interaction types and identity kinds, and the
per-process cache every ingest path reads them through.

The tables (migration 0020) are the truth; a process keeps one ``Vocabulary`` snapshot. Every
change (``hub.vocabulary.define``, stage-rule edits) bumps ``vocabulary_version.version`` in its
own transaction, so a reader learns of it with one cheap statement: ``current`` sends the
snapshot's (epoch, version) and gets the content back only when they differ. Every ingest call
runs it first, so a type defined in one process is accepted by every other process at once, with
no restart and no message between them. ``epoch`` is random per database: two databases with
the same version number are never mistaken for each other.

The snapshot also serves synchronous readers (``latest``): the personal attributes masked on
the read paths (``hub.access.masking``). Those see a change made by another process from that
process's next vocabulary check (any ingest call, any vocabulary query, or the app's periodic
check, ``refresh_forever``, every ``HUB_VOCABULARY_REFRESH_S`` seconds, default 1).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.enums import (
    CONSENT_PURPOSE_DESCRIPTIONS,
    IDENTITY_KIND_DESCRIPTIONS,
    INTERACTION_TYPE_DESCRIPTIONS,
    TOUCHPOINT_KIND_DESCRIPTIONS,
    IdentityKind,
    InteractionType,
)
from hub.core.errors import InvalidAttributes, UnknownCode
from hub.core.periodic import every
from hub.db.statements import AlchemySql, IngestSql, Statement

logger = logging.getLogger("hub.vocabulary")

# The normalisers an identity kind may name (hub.identity.identifiers applies them).
NORMALISERS = ("EMAIL", "PHONE", "SOCIAL_HANDLE", "LOWER_CASE", "TRIMMED", "AS_IS")
BUILT_IN_NORMALISERS: dict[str, str] = {
    IdentityKind.EMAIL: "EMAIL",
    IdentityKind.PHONE: "PHONE",
    IdentityKind.SOCIAL_HANDLE: "SOCIAL_HANDLE",
}
CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


_VOCABULARIES = {
    "interactionType": ("interaction type", "interactionTypes", "defineInteractionType"),
    "identityKind": ("identity kind", "identityKinds", "defineIdentityKind"),
    "touchpointKind": ("touchpoint kind", "touchpointKinds", "defineTouchpointKind"),
    "consentPurpose": ("consent purpose", "consentPurposes", "defineConsentPurpose"),
}


def unknown_code(vocabulary: str, code: str) -> UnknownCode:
    """The error for a code ``vocabulary`` (interactionType, identityKind) does not register."""
    what, query, mutation = _VOCABULARIES[vocabulary]
    return UnknownCode(
        f"{code!r} is not a registered {what} (`{query}` lists them; an ADMIN adds one with "
        f"`{mutation}`)",
        vocabulary=vocabulary,
        value=code,
    )


@dataclass(frozen=True)
class InteractionTypeDef:
    code: str
    name: str
    description: str
    attributes_schema: dict[str, Any] | None = None
    personal_attributes: tuple[str, ...] = ()
    built_in: bool = False
    stage: str | None = None  # the general (channel-less) stage rule, if any


@dataclass(frozen=True)
class IdentityKindDef:
    code: str
    name: str
    description: str
    normaliser: str
    built_in: bool = False


@dataclass(frozen=True)
class CodeDef:
    """A code of a vocabulary that carries only a name and a description (touchpoint kinds,
    consent purposes)."""

    code: str
    name: str
    description: str
    built_in: bool = False


def _validator(schema: dict[str, Any]) -> Validator:
    cls: Any = Draft202012Validator
    if isinstance(schema.get("$schema"), str):
        from jsonschema.validators import validator_for

        cls = validator_for(schema, default=Draft202012Validator)
    validator: Validator = cls(schema)
    return validator


@dataclass(frozen=True)
class Vocabulary:
    """One snapshot of the registered codes (immutable: a change makes a new one)."""

    epoch: uuid.UUID | None
    version: int
    interaction_types: Mapping[str, InteractionTypeDef]
    identity_kinds: Mapping[str, IdentityKindDef]
    touchpoint_kinds: Mapping[str, CodeDef]
    consent_purposes: Mapping[str, CodeDef]
    validators: Mapping[str, Validator] = field(default_factory=dict)
    # Identity kind → normaliser, for ``hub.identity.identifiers.normalize_identities``.
    normalisers: Mapping[str, str] = field(default_factory=dict)
    # Every attribute some registered type declares personal (masked without ``pii``).
    personal_attributes: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        epoch: uuid.UUID | None,
        version: int,
        types: list[InteractionTypeDef],
        kinds: list[IdentityKindDef],
        touchpoint_kinds: list[CodeDef],
        consent_purposes: list[CodeDef],
    ) -> Vocabulary:
        return cls(
            epoch=epoch,
            version=version,
            interaction_types={t.code: t for t in types},
            identity_kinds={k.code: k for k in kinds},
            touchpoint_kinds={k.code: k for k in touchpoint_kinds},
            consent_purposes={p.code: p for p in consent_purposes},
            validators={
                t.code: _validator(t.attributes_schema)
                for t in types
                if t.attributes_schema is not None
            },
            normalisers={k.code: k.normaliser for k in kinds},
            personal_attributes=frozenset(a for t in types for a in t.personal_attributes),
        )

    def interaction_type(self, code: str) -> InteractionTypeDef:
        found = self.interaction_types.get(code)
        if found is None:
            raise unknown_code("interactionType", code)
        return found

    def identity_kind(self, code: str) -> IdentityKindDef:
        found = self.identity_kinds.get(code)
        if found is None:
            raise unknown_code("identityKind", code)
        return found

    def touchpoint_kind(self, code: str) -> CodeDef:
        found = self.touchpoint_kinds.get(code)
        if found is None:
            raise unknown_code("touchpointKind", code)
        return found

    def consent_purpose(self, code: str) -> CodeDef:
        found = self.consent_purposes.get(code)
        if found is None:
            raise unknown_code("consentPurpose", code)
        return found

    def check_attributes(self, code: str, attributes: Any) -> None:
        """Raise ``InvalidAttributes`` naming the attribute path when ``attributes`` break the
        type's JSON Schema (the most relevant error, as jsonschema's ``best_match`` picks it)."""
        validator = self.validators.get(code)
        if validator is None:
            return
        error = best_match(validator.iter_errors(attributes))
        if error is None:
            return
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        where = f"attributes{path}"
        raise InvalidAttributes(
            f"`{where}` breaks the schema of {code}: {error.message}",
            attributePath=where,
            interactionType=code,
        )


BUILT_IN = Vocabulary.build(
    None,
    0,
    [
        InteractionTypeDef(t.value, t.value.replace("_", " ").capitalize(), text, built_in=True)
        for t, text in INTERACTION_TYPE_DESCRIPTIONS.items()
        if isinstance(t, InteractionType)
    ],
    [
        IdentityKindDef(
            k.value,
            k.value.replace("_", " ").capitalize(),
            text,
            BUILT_IN_NORMALISERS.get(k, "TRIMMED"),
            built_in=True,
        )
        for k, text in IDENTITY_KIND_DESCRIPTIONS.items()
    ],
    [
        CodeDef(k.value, k.value.replace("_", " ").capitalize(), text, built_in=True)
        for k, text in TOUCHPOINT_KIND_DESCRIPTIONS.items()
    ],
    [
        CodeDef(code, code.replace("_", " ").capitalize(), text, built_in=True)
        for code, text in CONSENT_PURPOSE_DESCRIPTIONS.items()
    ],
)
"""The codes the migration seeds: what a process assumes until it has read the tables."""


def _simple_json(table: str) -> str:
    return (
        "(SELECT coalesce(jsonb_agg(jsonb_build_object('code', s.code, 'name', s.name,"
        f" 'description', s.description, 'builtIn', s.built_in) ORDER BY s.code), '[]')"
        f" FROM {table} s)"
    )


# The snapshot's (epoch, version) in, the content back only when the table's differ.
LOAD = Statement.named(
    "SELECT v.epoch, v.version, CASE WHEN v.epoch = CAST(:epoch AS uuid)"
    " AND v.version = CAST(:version AS bigint) THEN NULL ELSE jsonb_build_object("
    " 'types', (SELECT coalesce(jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name,"
    "  'description', t.description, 'schema', t.attributes_schema,"
    "  'personal', to_jsonb(t.personal_attributes), 'builtIn', t.built_in,"
    "  'stage', (SELECT r.stage FROM stage_rules r WHERE r.interaction_type = t.code"
    "   AND r.channel_code IS NULL)) ORDER BY t.code), '[]') FROM interaction_types t),"
    " 'kinds', (SELECT coalesce(jsonb_agg(jsonb_build_object('code', k.code, 'name', k.name,"
    "  'description', k.description, 'normaliser', k.normaliser, 'builtIn', k.built_in)"
    "  ORDER BY k.code), '[]') FROM identity_kinds k),"
    f" 'touchpointKinds', {_simple_json('touchpoint_kinds')},"
    f" 'consentPurposes', {_simple_json('consent_purposes')}) END AS content"
    " FROM vocabulary_version v"
)

_latest: Vocabulary = BUILT_IN


def latest() -> Vocabulary:
    """The newest snapshot this process has read (``BUILT_IN`` before the first read)."""
    return _latest


def from_content(epoch: uuid.UUID, version: int, content: Any) -> Vocabulary:
    data = orjson.loads(content) if isinstance(content, (str, bytes)) else content
    return Vocabulary.build(
        epoch,
        version,
        [
            InteractionTypeDef(
                code=t["code"],
                name=t["name"],
                description=t["description"],
                attributes_schema=t["schema"],
                personal_attributes=tuple(t["personal"] or ()),
                built_in=t["builtIn"],
                stage=t["stage"],
            )
            for t in data["types"]
        ],
        [
            IdentityKindDef(
                code=k["code"],
                name=k["name"],
                description=k["description"],
                normaliser=k["normaliser"],
                built_in=k["builtIn"],
            )
            for k in data["kinds"]
        ],
        [_code_def(k) for k in data["touchpointKinds"]],
        [_code_def(p) for p in data["consentPurposes"]],
    )


def _code_def(item: Mapping[str, Any]) -> CodeDef:
    return CodeDef(item["code"], item["name"], item["description"], item["builtIn"])


async def current(sql: IngestSql) -> Vocabulary:
    """The vocabulary as the database has it now: one statement, the content read only when it
    changed since this process last looked."""
    global _latest
    known = _latest
    [row] = await sql.fetch(LOAD, {"epoch": known.epoch, "version": known.version})
    if row["content"] is None:
        return known
    fresh = from_content(row["epoch"], row["version"], row["content"])
    _latest = fresh
    return fresh


async def refresh_forever(engine: AsyncEngine, interval_s: float) -> None:
    """The background check: ``current`` every ``interval_s`` (the snapshot stays as it was
    while the database cannot be reached)."""

    async def check() -> None:
        async with engine.connect() as connection:
            await current(AlchemySql(connection))

    await every(interval_s, check, logger, "vocabulary check")
