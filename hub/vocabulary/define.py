"""Defining (creating or replacing) interaction types and identity kinds, by an ADMIN.

Each change bumps ``vocabulary_version`` in the same transaction (``bump``): every process sees
it at its next check (``hub.vocabulary.registry.current``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import BadUserInput, Conflict
from hub.models import (
    CONSENT_PURPOSES,
    IDENTITY_KINDS,
    INTERACTION_TYPES,
    TOUCHPOINT_KINDS,
    VOCABULARY_VERSION,
)
from hub.vocabulary.registry import CODE, NORMALISERS

MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_PERSONAL = 100
MAX_SCHEMA_BYTES = 32_768


def check_code(code: str, what: str) -> str:
    if not CODE.fullmatch(code):
        raise BadUserInput(
            f"a {what} code is 1 to 64 characters: an upper-case letter, then upper-case letters, "
            f"digits and underscores (like LOAN_APPLICATION); got {code!r}"
        )
    return code


def _text(name: str, value: str, limit: int) -> str:
    if not value.strip():
        raise BadUserInput(f"`{name}` must not be empty")
    if len(value) > limit:
        raise BadUserInput(f"`{name}` is at most {limit} characters")
    return value


def check_schema(schema: Any) -> dict[str, Any] | None:
    """A JSON Schema as jsonschema reads it (its own meta-schema decides), or None."""
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise BadUserInput("`attributesSchema` must be a JSON Schema object")
    if len(orjson.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise BadUserInput(f"`attributesSchema` is at most {MAX_SCHEMA_BYTES} bytes as JSON")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as error:
        message = f"`attributesSchema` is not a valid JSON Schema: {error.message}"
        raise BadUserInput(message) from None
    return schema


def _personal(names: Sequence[str]) -> list[str]:
    if len(names) > MAX_PERSONAL:
        raise BadUserInput(f"`personalAttributes` lists at most {MAX_PERSONAL} names")
    for name in names:
        _text("personalAttributes[]", name, MAX_NAME)
    return list(dict.fromkeys(names))


async def bump(connection: AsyncConnection) -> int:
    """Bump the vocabulary version in the caller's transaction; the new version."""
    result = await connection.execute(
        sa.update(VOCABULARY_VERSION)
        .values(version=VOCABULARY_VERSION.c.version + 1)
        .returning(VOCABULARY_VERSION.c.version)
    )
    version: int = result.scalar_one()
    return version


async def define_interaction_type(
    connection: AsyncConnection,
    *,
    code: str,
    name: str,
    description: str,
    attributes_schema: Any,
    personal_attributes: Sequence[str],
    actor: str,
) -> None:
    """Create or replace an interaction type (its stage rule is the caller's:
    ``hub.journeys.stage_rules.set_rule``, in the same transaction). A built-in type may be
    redescribed, given a schema or personal attributes; it stays built in."""
    check_code(code, "interaction type")
    values = {
        "name": _text("name", name, MAX_NAME),
        "description": _text("description", description, MAX_DESCRIPTION),
        "attributes_schema": check_schema(attributes_schema),
        "personal_attributes": _personal(personal_attributes),
        "updated_at": sa.func.now(),
        "updated_by": actor,
    }
    statement = insert(INTERACTION_TYPES).values(code=code, **values)
    await connection.execute(statement.on_conflict_do_update(index_elements=["code"], set_=values))
    await bump(connection)


async def define_identity_kind(
    connection: AsyncConnection,
    *,
    code: str,
    name: str,
    description: str,
    normaliser: str,
    actor: str,
) -> None:
    """Create or replace an identity kind. A kind's normaliser cannot change once values of it
    are stored (they would no longer meet their new spellings): CONFLICT."""
    check_code(code, "identity kind")
    if normaliser not in NORMALISERS:
        raise BadUserInput(f"`normaliser` is one of {', '.join(NORMALISERS)}")
    values = {
        "name": _text("name", name, MAX_NAME),
        "description": _text("description", description, MAX_DESCRIPTION),
        "normaliser": normaliser,
        "updated_at": sa.func.now(),
        "updated_by": actor,
    }
    existing = (
        await connection.execute(
            sa.select(IDENTITY_KINDS.c.normaliser)
            .where(IDENTITY_KINDS.c.code == code)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if existing is not None and existing != normaliser:
        stored = (
            await connection.execute(
                sa.text("SELECT EXISTS (SELECT 1 FROM identities WHERE kind = :kind)"),
                {"kind": code},
            )
        ).scalar_one()
        if stored:
            raise Conflict(
                f"{code} values are stored normalised by {existing}; its normaliser cannot "
                f"change to {normaliser} (define a new kind instead)"
            )
    statement = insert(IDENTITY_KINDS).values(code=code, **values)
    await connection.execute(statement.on_conflict_do_update(index_elements=["code"], set_=values))
    await bump(connection)


async def define_code(
    connection: AsyncConnection,
    vocabulary: str,
    *,
    code: str,
    name: str,
    description: str,
    actor: str,
) -> None:
    """Create or replace a touchpoint kind (``vocabulary`` "touchpointKind") or a consent
    purpose ("consentPurpose"): a code, a name, a description."""
    table, what = {
        "touchpointKind": (TOUCHPOINT_KINDS, "touchpoint kind"),
        "consentPurpose": (CONSENT_PURPOSES, "consent purpose"),
    }[vocabulary]
    check_code(code, what)
    values = {
        "name": _text("name", name, MAX_NAME),
        "description": _text("description", description, MAX_DESCRIPTION),
        "updated_at": sa.func.now(),
        "updated_by": actor,
    }
    statement = insert(table).values(code=code, **values)
    await connection.execute(statement.on_conflict_do_update(index_elements=["code"], set_=values))
    await bump(connection)
