"""Access control and data-subject rights: keys, audit log, consents, export and erasure."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
import strawberry
from strawberry.scalars import JSON

from hub.access.documents import (
    DocumentPolicy,
    check_documents,
    list_documents,
    register_documents,
    remove_document,
)
from hub.access.keys import Role, create_key, list_keys, revoke_key, set_key_documents
from hub.audiences.refresh import ChangeReason, hold_definitions, on_customers_changed
from hub.context import Info
from hub.core.errors import BadUserInput, NotFound
from hub.core.ids import uuid_from_global_id
from hub.db.rows import fetch_all
from hub.models import AUDIT_LOG, CUSTOMERS
from hub.privacy.consent import ConsentChannel, ConsentStatus, set_consent
from hub.privacy.erasure import erase_customer, export_customer, merge_cluster
from hub.schema.access import (
    ApiKey,
    AuditEntry,
    CreateApiKeyInput,
    CreatedApiKey,
    Erasure,
    TrustedDocument,
    TrustedDocumentInput,
)
from hub.schema.consent import Consent, SetConsentInput
from hub.schema.permissions import CanWrite, IsAdmin, PersonalData, json_mask


async def _existing_customer(info: Info, global_id: str) -> uuid.UUID:
    customer_id = uuid_from_global_id(global_id, "Customer")
    async with info.context.engine.connect() as connection:
        found = await connection.scalar(
            sa.select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == customer_id)
        )
    if found is None:
        raise NotFound(f"no customer with id {global_id!r}")
    return customer_id


async def _audit_read(info: Info, action: str, target: str) -> None:
    """Reads of personal data in bulk (exports) are audited like mutations."""
    principal = info.context.principal
    async with info.context.writer.begin() as connection:
        await connection.execute(
            AUDIT_LOG.insert().values(
                key_id=principal.key_id,
                actor=principal.name,
                role=principal.role.value,
                action=action,
                target_ids=[target],
                success=True,
            )
        )


@strawberry.type
class AccessQuery:
    @strawberry.field(
        description="Every API key, oldest first (ADMIN only).", permission_classes=[IsAdmin]
    )
    async def api_keys(self, info: Info) -> list[ApiKey]:
        async with info.context.engine.connect() as connection:
            rows = await list_keys(connection)
        return [ApiKey.from_row(row) for row in rows]

    @strawberry.field(
        description="The registered (trusted) documents, oldest first (ADMIN only).",
        permission_classes=[IsAdmin],
    )
    async def trusted_documents(self, info: Info) -> list[TrustedDocument]:
        async with info.context.engine.connect() as connection:
            rows = await list_documents(connection)
        return [TrustedDocument.from_row(row) for row in rows]

    @strawberry.field(
        description="The audit log, newest first (ADMIN only).", permission_classes=[IsAdmin]
    )
    async def audit_log(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description="How many entries (at most the page size limit).")
        ] = 50,
        actor: Annotated[
            str | None, strawberry.argument(description="Only by this key name.")
        ] = None,
        target_id: Annotated[
            str | None, strawberry.argument(description="Only about this id.")
        ] = None,
    ) -> list[AuditEntry]:
        if not 0 <= first <= info.context.settings.max_page_size:
            raise BadUserInput(
                f"`first` must be between 0 and {info.context.settings.max_page_size}"
            )
        c = AUDIT_LOG.c
        where = []
        if actor is not None:
            where.append(c.actor == actor)
        if target_id is not None:
            where.append(c.target_ids.any_() == target_id)
        rows = await fetch_all(
            info.context.engine,
            sa.select(AUDIT_LOG).where(*where).order_by(c.at.desc(), c.id.desc()).limit(first),
        )
        return [AuditEntry.from_row(row) for row in rows]

    @strawberry.field(
        description=(
            "Everything the hub holds on a customer (and customers merged into it) as one JSON "
            "document, for a data-subject access request (ADMIN only; audited)."
        ),
        permission_classes=[IsAdmin],
        extensions=[PersonalData(json_mask)],
    )
    async def export_customer(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The customer's id.")],
    ) -> JSON:
        customer_id = await _existing_customer(info, id)
        async with info.context.engine.connect() as connection:
            document = await export_customer(connection, customer_id)
        await _audit_read(info, "exportCustomer", id)
        return document  # type: ignore[return-value]  # JSON is the dict itself


@strawberry.type
class AccessMutation:
    @strawberry.mutation(
        description="Create an API key; the secret is in the answer and never shown again.",
        permission_classes=[IsAdmin],
    )
    async def create_api_key(
        self,
        info: Info,
        input: Annotated[CreateApiKeyInput, strawberry.argument(description="The new key.")],
    ) -> CreatedApiKey:
        touchpoints = [
            str(uuid_from_global_id(t, "Touchpoint")) for t in input.touchpoint_ids or []
        ]
        async with info.context.engine.begin() as connection:
            created = await create_key(
                connection,
                name=input.name,
                role=Role(input.role.value),
                pii=input.pii,
                channels=[c.value for c in input.channels or []],
                touchpoints=touchpoints,
                documents=input.documents.value if input.documents else None,
            )
            rows = await list_keys(connection)
        row = next(r for r in rows if r["name"] == created.principal.name)
        return CreatedApiKey(api_key=ApiKey.from_row(row), key=created.key)

    @strawberry.mutation(
        description=(
            "Revoke an API key by name: every request with it fails from now on, and its open "
            "websocket connections are closed within a second."
        ),
        permission_classes=[IsAdmin],
    )
    async def revoke_api_key(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="The key's name.")],
    ) -> ApiKey:
        async with info.context.engine.begin() as connection:
            row = await revoke_key(connection, name)
        return ApiKey.from_row(row)

    @strawberry.mutation(
        description=(
            "Set which documents an API key may run (null: its role's default); in effect for "
            "its next request in every process within a second (ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def set_api_key_documents(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="The key's name.")],
        documents: Annotated[
            DocumentPolicy | None,
            strawberry.argument(description="REGISTERED_ONLY, ANY, or null (the default)."),
        ],
    ) -> ApiKey:
        async with info.context.engine.begin() as connection:
            row = await set_key_documents(connection, name, documents.value if documents else None)
        return ApiKey.from_row(row)

    @strawberry.mutation(
        description=(
            "Register trusted documents (persisted operations), each validated against the "
            "schema first: if one fails, none is stored. An id already registered with the same "
            "text is kept as it is (ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def register_trusted_documents(
        self,
        info: Info,
        documents: Annotated[
            list[TrustedDocumentInput],
            strawberry.argument(description="The documents, with their ids (or none)."),
        ],
    ) -> list[TrustedDocument]:
        checked = check_documents(
            info.schema._schema,
            [(document.id, document.document) for document in documents],
            info.context.settings.max_tokens,
        )
        async with info.context.engine.begin() as connection:
            rows = await register_documents(connection, checked, info.context.principal.name)
        return [TrustedDocument.from_row(row) for row in rows]

    @strawberry.mutation(
        description=(
            "Remove a trusted document: calls by its id fail from now on in this process, and "
            "in every process within HUB_TRUSTED_DOCUMENTS_TTL_S (ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def remove_trusted_document(
        self,
        info: Info,
        id: Annotated[str, strawberry.argument(description="The document's id.")],
    ) -> TrustedDocument:
        async with info.context.engine.begin() as connection:
            row = await remove_document(connection, id)
        return TrustedDocument.from_row(row)

    @strawberry.mutation(
        description="Record a customer's consent for a purpose and channel; history is kept.",
        permission_classes=[CanWrite],
    )
    async def set_consent(
        self,
        info: Info,
        input: Annotated[SetConsentInput, strawberry.argument(description="The consent.")],
    ) -> Consent:
        customer_id = await _existing_customer(info, input.customer_id)
        async with info.context.engine.begin() as connection:
            row = await set_consent(
                connection,
                customer_id=customer_id,
                purpose=str(input.purpose),  # registered? checked by set_consent
                channel=ConsentChannel(input.channel.value),
                status=ConsentStatus(input.status.value),
                source=input.source,
                expires_at=input.expires_at,
                changed_by=info.context.principal.name,
            )
            await on_customers_changed(connection, [customer_id], reason=ChangeReason.CONSENT)
        return Consent.from_row(row, datetime.now(UTC))

    @strawberry.mutation(
        description=(
            "Erase a customer's personal data (identities, traits, name, summaries, personal "
            "attributes, consents); anonymous interaction facts stay for aggregates, and the "
            "erased identifiers are remembered (hashed) so they are not silently re-linked "
            "(ADMIN only)."
        ),
        permission_classes=[IsAdmin],
    )
    async def erase_customer(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The customer's id.")],
    ) -> Erasure:
        customer_id = await _existing_customer(info, id)
        async with info.context.engine.begin() as connection:
            await hold_definitions(connection)
            result = await erase_customer(
                connection,
                customer_id,
                erased_by=info.context.principal.name,
                personal_attributes=info.context.settings.personal_attributes,
            )
            await on_customers_changed(
                connection,
                await merge_cluster(connection, customer_id),
                reason=ChangeReason.ERASURE,
                locked=True,
            )
        return Erasure.from_result(customer_id, result)
