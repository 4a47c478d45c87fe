"""Trusted documents (persisted operations): GraphQL documents an ADMIN registered, called by id.

- ``document_id(text)``: the SHA-256 hex of a document's text, its default id (what Apollo's
  automatic persisted queries send as ``sha256Hash``); a manifest may give its own ids.
- ``check_document(schema, text, max_tokens)``: the errors of a document against the schema.
- ``register_documents`` / ``list_documents`` / ``remove_document``: the table, in the caller's
  transaction; registration validates every document first and stores nothing if one fails.
- ``DocumentPolicy`` and ``registered_only(principal, env)``: which keys may send only ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, validate
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.keys import Principal, Role
from hub.core.errors import BadUserInput, Conflict, NotFound
from hub.models import TRUSTED_DOCUMENTS

MAX_DOCUMENTS_PER_CALL = 500
_ID = re.compile(r"[A-Za-z0-9_.:~-]{1,200}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DocumentPolicy(StrEnum):
    REGISTERED_ONLY = "REGISTERED_ONLY"  # only trusted documents, by id
    ANY = "ANY"  # any document text, and ids


# Keys of these roles default to REGISTERED_ONLY when HUB_ENV=production.
REGISTERED_BY_DEFAULT = frozenset({Role.FRONTEND, Role.PARTNER})


def default_policy(role: Role, env: str) -> DocumentPolicy:
    if env == "production" and role in REGISTERED_BY_DEFAULT:
        return DocumentPolicy.REGISTERED_ONLY
    return DocumentPolicy.ANY


def effective_policy(principal: Principal, env: str) -> DocumentPolicy:
    """The key's own setting, else its role's default under ``env`` (HUB_ENV)."""
    if principal.documents is not None:
        return DocumentPolicy(principal.documents)
    return default_policy(principal.role, env)


def registered_only(principal: Principal, env: str) -> bool:
    return not principal.dev and effective_policy(principal, env) is DocumentPolicy.REGISTERED_ONLY


def document_id(text: str) -> str:
    """A document's default id: the SHA-256 hex of its UTF-8 text, as Apollo's APQ hashes it."""
    return hashlib.sha256(text.encode()).hexdigest()


def is_sha256(value: str) -> bool:
    return bool(_SHA256.fullmatch(value))


def valid_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


@dataclass(frozen=True)
class Checked:
    """A document that parsed and validated: its id and its operations ("name:type")."""

    id: str
    text: str
    operations: tuple[str, ...]


def check_document(schema: GraphQLSchema, text: str, max_tokens: int) -> list[str]:
    """What is wrong with ``text`` as a document of ``schema`` (empty: nothing)."""
    try:
        document = parse(text, no_location=True, max_tokens=max_tokens)
    except GraphQLError as error:
        return [f"does not parse: {error.message}"]
    if not any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
        return ["defines no operation"]
    return [error.message for error in validate(schema, document)]


def _operations(text: str, max_tokens: int) -> tuple[str, ...]:
    document = parse(text, no_location=True, max_tokens=max_tokens)
    return tuple(
        f"{d.name.value if d.name else ''}:{d.operation.value}"
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


def check_documents(
    schema: GraphQLSchema, documents: Sequence[tuple[str | None, str]], max_tokens: int
) -> list[Checked]:
    """Every (id or None, text) checked; ``BadUserInput`` naming every failing one."""
    if not documents:
        raise BadUserInput("no documents to register")
    if len(documents) > MAX_DOCUMENTS_PER_CALL:
        raise BadUserInput(f"at most {MAX_DOCUMENTS_PER_CALL} documents per registration")
    problems: list[str] = []
    checked: dict[str, Checked] = {}
    for index, (given, text) in enumerate(documents):
        computed = document_id(text)
        wanted = computed if given is None else given
        label = f"document {index + 1} ({wanted[:16]})"
        if not valid_id(wanted):
            problems.append(f"{label}: an id is 1 to 200 of A-Z a-z 0-9 _ . : ~ -")
            continue
        if is_sha256(wanted) and wanted != computed:
            problems.append(f"{label}: a 64-hex id must be the SHA-256 of the document's text")
            continue
        errors = check_document(schema, text, max_tokens)
        if errors:
            problems.append(f"{label}: {'; '.join(errors)}")
            continue
        earlier = checked.get(wanted)
        if earlier is not None and earlier.text != text:
            problems.append(f"{label}: the id is given twice, to different documents")
            continue
        checked[wanted] = Checked(wanted, text, _operations(text, max_tokens))
    if problems:
        raise BadUserInput("nothing was registered: " + " | ".join(problems))
    return list(checked.values())


async def register_documents(
    connection: AsyncConnection, checked: Sequence[Checked], created_by: str
) -> list[Any]:
    """Store checked documents (an id already registered with the same text stays as it was;
    with another text it is a ``Conflict`` and nothing is stored); their rows, in order."""
    c = TRUSTED_DOCUMENTS.c
    ids = [document.id for document in checked]
    existing = {
        row["id"]: row
        for row in (
            await connection.execute(sa.select(TRUSTED_DOCUMENTS).where(c.id.in_(ids)))
        ).mappings()
    }
    clashes = [d.id for d in checked if d.id in existing and existing[d.id]["document"] != d.text]
    if clashes:
        raise Conflict(
            "nothing was registered: these ids name another document already (remove it "
            f"first): {', '.join(clashes)}"
        )
    new = [d for d in checked if d.id not in existing]
    if new:
        await connection.execute(
            insert(TRUSTED_DOCUMENTS)
            .values(
                [
                    {
                        "id": d.id,
                        "document": d.text,
                        "operations": list(d.operations),
                        "created_by": created_by,
                    }
                    for d in new
                ]
            )
            .on_conflict_do_nothing()
        )
    rows = (await connection.execute(sa.select(TRUSTED_DOCUMENTS).where(c.id.in_(ids)))).mappings()
    by_id = {row["id"]: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


async def list_documents(connection: AsyncConnection) -> Sequence[Any]:
    c = TRUSTED_DOCUMENTS.c
    result = await connection.execute(sa.select(TRUSTED_DOCUMENTS).order_by(c.created_at, c.id))
    return result.mappings().all()


async def remove_document(connection: AsyncConnection, id: str) -> Any:
    """Delete a registered document; its row. Processes stop running it within
    ``HUB_TRUSTED_DOCUMENTS_TTL_S`` (their cached copies expire)."""
    row = (
        (
            await connection.execute(
                TRUSTED_DOCUMENTS.delete()
                .where(TRUSTED_DOCUMENTS.c.id == id)
                .returning(TRUSTED_DOCUMENTS)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no trusted document with id {id!r}")
    return row


FIND_DOCUMENT = "SELECT document FROM trusted_documents WHERE id = $1"
"""The lookup by id, for a bare asyncpg pool (the HTTP path's)."""
