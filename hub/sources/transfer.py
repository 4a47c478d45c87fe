"""Running an import (batches through the ingest path, rejects, checkpoint) and an export
(a server-side cursor, lines ``hub import`` reads back, masked unless ``pii``)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.access.keys import CLI_PRINCIPAL
from hub.access.masking import (
    mask_free_text_value,
    mask_identity_value,
    mask_json,
    mask_text,
    personal_keys,
)
from hub.audiences.queue import drain_all
from hub.core.errors import BadUserInput, HubError
from hub.core.ids import to_global_id
from hub.core.settings import Settings
from hub.core.text import storable
from hub.db.statements import AlchemySql
from hub.db.transactions import retry_conflicts
from hub.ingest.record import record
from hub.ingest.validation import InteractionInput
from hub.models import AUDIT_LOG, CUSTOMERS
from hub.sources.files import Checkpoint, Line, derived_key, interaction_input, profile_change
from hub.sources.segment import ProfileChange
from hub.sources.track import apply_profile


@dataclass
class ImportTotals:
    """What an import run did, line by line: ``stored``, ``duplicates`` (stored before, e.g. by
    an earlier run), ``rejected`` (written to the reject file)."""

    counts: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, int]:
        return {k: self.counts[k] for k in ("stored", "duplicates", "rejected")}


def _reject(rejects: IO[bytes], number: int, code: str, reason: str) -> None:
    rejects.write(orjson.dumps({"line": number, "code": code, "reason": reason}) + b"\n")


async def _store_batch(
    connection: AsyncConnection,
    source: str,
    batch: list[tuple[Line, InteractionInput | ProfileChange]],
    unreadable: int,
    settings: Settings,
) -> dict[int, tuple[str, str | None, str | None]]:
    """Store one batch in the caller's transaction: each profile in a savepoint, then the
    interactions through ``record`` (one savepoint); one (status, code, reason) per line."""
    outcome: dict[int, tuple[str, str | None, str | None]] = {}
    interactions: list[tuple[int, InteractionInput]] = []
    for line, parsed in batch:
        if isinstance(parsed, ProfileChange):
            try:
                async with connection.begin_nested():
                    await apply_profile(connection, parsed, settings, CLI_PRINCIPAL.name)
                outcome[line.number] = ("stored", None, None)
            except HubError as error:
                outcome[line.number] = ("rejected", error.code, error.message)
        else:
            interactions.append((line.number, parsed))
    if interactions:
        try:
            async with connection.begin_nested():
                results = await record(
                    AlchemySql(connection),
                    [item for _, item in interactions],
                    settings,
                    actor=CLI_PRINCIPAL.name,
                )
        except HubError as error:
            for number, _ in interactions:
                outcome[number] = ("rejected", error.code, error.message)
        else:
            for (number, _), result in zip(interactions, results, strict=True):
                if result.error is not None:
                    outcome[number] = ("rejected", result.error.code, result.error.message)
                else:
                    outcome[number] = ("duplicates" if result.duplicate else "stored", None, None)
    counts = Counter(status for status, _, _ in outcome.values())
    counts["rejected"] += unreadable
    await connection.execute(
        AUDIT_LOG.insert().values(
            actor=CLI_PRINCIPAL.name,
            role=CLI_PRINCIPAL.role.value,
            action="import",
            target_ids=[storable(source)[:200]],
            success=not counts["rejected"],
            details={"lines": len(batch) + unreadable, **counts},
        )
    )
    return outcome


def _parse(line: Line, source: str) -> InteractionInput | ProfileChange:
    if line.error is not None:
        raise line.error
    assert line.value is not None
    if "profile" in line.value:
        if len(line.value) != 1:
            extra = ", ".join(sorted(set(line.value) - {"profile"}))
            raise BadUserInput(f"a profile line has only `profile`, not {extra}")
        return profile_change(line.value["profile"])
    return interaction_input(line.value, derived_key(source, line.number, line.raw))


async def run_import(
    engine: AsyncEngine,
    lines: Iterable[Line],
    source: str,
    rejects: IO[bytes],
    checkpoint: Checkpoint,
    batch_size: int,
    settings: Settings,
    advance: Callable[[], None] = lambda: None,
) -> ImportTotals:
    """Import ``lines`` after ``checkpoint.line`` in batches of ``batch_size``; after each
    batch's commit its rejects are flushed, then the checkpoint is saved (so a killed run,
    resumed, neither loses nor repeats a line: the ingest's idempotency keys cover a batch
    committed whose checkpoint was not saved)."""
    totals = ImportTotals()
    pending = (line for line in lines if line.number > checkpoint.line)
    while chunk := list(itertools.islice(pending, batch_size)):
        outcome: dict[int, tuple[str, str | None, str | None]] = {}
        batch: list[tuple[Line, InteractionInput | ProfileChange]] = []
        for line in chunk:
            try:
                batch.append((line, _parse(line, source)))
            except HubError as error:
                outcome[line.number] = ("rejected", error.code, error.message)

        async def attempt(
            batch: list[tuple[Line, InteractionInput | ProfileChange]] = batch,
            unreadable: int = len(outcome),
        ) -> dict[int, tuple[str, str | None, str | None]]:
            async with engine.begin() as connection:
                return await _store_batch(connection, source, batch, unreadable, settings)

        outcome.update(await retry_conflicts(attempt))
        for line in chunk:
            status, code, reason = outcome[line.number]
            totals.counts[status] += 1
            if status == "rejected":
                _reject(rejects, line.number, code or "BAD_USER_INPUT", reason or "")
        rejects.flush()
        checkpoint.line = chunk[-1].number
        checkpoint.rejects_bytes = rejects.tell()
        checkpoint.save()
        # The batch's customers' computed traits and segments (hub.audiences.queue): evaluated
        # here, so an import with no hub running does not leave them waiting (a customer another
        # change holds meanwhile is left for the next batch's drain, or a hub's drainer).
        await drain_all(engine)
        advance()
    return totals


# ---------------------------------------------------------------------------------------------
# Export

# The identity that brought each interaction; when it was removed since (an unmerge, an
# erasure), the customer's first identity: a subquery run only for those rows.
_FALLBACK = (
    "(SELECT ARRAY[kind, value] FROM identities WHERE customer_id = x.customer_id"
    " ORDER BY id LIMIT 1)"
)
_INTERACTION_COLUMNS = sa.text(
    "x.id, x.touchpoint_id, x.type, x.direction, x.occurred_at, x.summary, x.sentiment,"
    " x.outcome, x.agent, x.attributes, x.idempotency_key, c.key AS conversation_key,"
    f" CASE WHEN mi.id IS NULL THEN {_FALLBACK} ELSE ARRAY[mi.kind, mi.value] END AS identity"
)
_INTERACTION_FROM = sa.text(
    "interactions x"
    " LEFT JOIN conversations c ON c.id = x.conversation_id"
    " LEFT JOIN identities mi ON mi.id = x.matched_identity_id"
)
_IDENTITIES: sa.ColumnClause[Any] = sa.literal_column(
    "(SELECT coalesce(jsonb_agg(jsonb_build_array(i.kind, i.value) ORDER BY i.id), '[]')"
    " FROM identities i WHERE i.customer_id = customers.id)"
)
_CONSENTS: sa.ColumnClause[Any] = sa.literal_column(
    "(SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object('purpose', k.purpose,"
    " 'channel', CASE WHEN k.channel = '' THEN 'ANY' ELSE k.channel END, 'status', k.status,"
    " 'expiresAt', k.expires_at, 'source', k.source)) ORDER BY k.purpose, k.channel), '[]')"
    " FROM consents k WHERE k.customer_id = customers.id)"
)
EXPORTS = ("customers", "interactions")


def export_statement(what: str, where: Sequence[sa.ColumnElement[bool]] = ()) -> sa.Select[Any]:
    """The statement of an export: ``customers`` (not merged away: identities, traits, display
    name, consents) or ``interactions`` (of those customers), each restricted to the customers
    ``where`` (clauses over ``customers``, e.g. a compiled ``CustomerFilter``) holds for."""
    c = CUSTOMERS.c
    if what == "customers":
        return (
            sa.select(
                c.id,
                c.display_name,
                c.traits,
                _IDENTITIES.label("identities"),
                _CONSENTS.label("consents"),
            )
            .where(c.merged_into_id.is_(None), *where)
            .order_by(c.created_at, c.id)
        )
    if what != "interactions":
        raise BadUserInput(f"an export is one of {', '.join(EXPORTS)}; got {what!r}")
    statement = (
        sa.select(_INTERACTION_COLUMNS)
        .select_from(_INTERACTION_FROM)
        .order_by(sa.text("x.occurred_at, x.id"))
    )
    if where:
        chosen = sa.select(c.id).where(*where)
        statement = statement.where(sa.literal_column("x.customer_id").in_(chosen))
    return statement


def _keep(value: Any) -> Any:
    return value


def _masked_consent(consent: dict[str, Any]) -> dict[str, Any]:
    """A consent's ``source`` may hold an identifier (as ``Consent.source`` masks it)."""
    if "source" not in consent:
        return consent
    return {**consent, "source": mask_free_text_value(consent["source"])}


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def interaction_line(row: Any, pii: bool, settings: Settings) -> dict[str, Any]:
    """A stored interaction as a ``RecordInteractionInput``-shaped object. Its idempotency key
    is the stored one, or ``interaction:<id>`` (importing twice stores it once)."""
    keys = personal_keys(settings)
    clear = _keep if pii else mask_free_text_value
    identities = []
    if row.identity is not None:
        kind, value = row.identity
        identities.append(
            {"kind": kind, "value": value if pii else mask_identity_value(kind, value)}
        )
    return _drop_none(
        {
            "identities": identities,
            "touchpointId": to_global_id("Touchpoint", str(row.touchpoint_id)),
            "type": row.type,
            "direction": row.direction,
            "occurredAt": row.occurred_at.isoformat(),
            # Masked as the GraphQL fields are (docs/security.md): the summary is free text.
            "conversationKey": clear(row.conversation_key),
            "summary": row.summary if pii else mask_text(row.summary),
            "sentiment": row.sentiment,
            "outcome": clear(row.outcome),
            "agent": row.agent,
            "attributes": row.attributes if pii else mask_json(row.attributes, keys),
            "idempotencyKey": row.idempotency_key or f"interaction:{row.id}",
        }
    )


def customer_line(row: Any, pii: bool, settings: Settings) -> dict[str, Any]:
    """A customer as a profile line: its identities, traits, display name and consents (not
    personal data: purpose, channel, status, expiry, source)."""
    keys = personal_keys(settings)
    profile = {
        "identities": [
            {"kind": kind, "value": value if pii else mask_identity_value(kind, value)}
            for kind, value in row.identities
        ],
        "traits": row.traits if pii else mask_json(row.traits, keys),
        "displayName": row.display_name if pii else mask_text(row.display_name),
        "consents": (row.consents if pii else [_masked_consent(c) for c in row.consents]) or None,
    }
    return {"profile": _drop_none(profile)}


async def export_lines(
    connection: AsyncConnection,
    what: str,
    pii: bool,
    settings: Settings,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> AsyncIterator[dict[str, Any]]:
    """The lines of an export, streamed through a server-side cursor (``yield_per`` 1000: the
    memory used does not grow with the table) on ``connection`` (in a transaction); personal
    data masked unless ``pii``. Rows are what ``connection`` may see: a partner's connection
    (``hub.access.row_security.engine_for``) sees its scope only."""
    shape = customer_line if what == "customers" else interaction_line
    statement = export_statement(what, where).execution_options(yield_per=1000)
    result = await connection.stream(statement)
    async for row in result:
        yield shape(row, pii, settings)


async def run_export(
    engine: AsyncEngine,
    what: str,
    pii: bool,
    settings: Settings,
    write: Callable[[Any], None],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> int:
    """Stream ``what`` (``customers`` or ``interactions``) one line object per row to
    ``write``; the number of rows. Audited as an ADMIN CLI action."""
    count = 0
    async with engine.connect() as connection, connection.begin():
        async for line in export_lines(connection, what, pii, settings, where):
            write(line)
            count += 1
    async with engine.begin() as connection:
        await connection.execute(
            AUDIT_LOG.insert().values(
                actor=CLI_PRINCIPAL.name,
                role=CLI_PRINCIPAL.role.value,
                action=f"export {what}",
                target_ids=[what],
                success=True,
                details={"rows": count, "pii": pii, "filter": bool(where)},
            )
        )
    return count
