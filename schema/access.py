"""Types of access control: API keys, the audit log, erasure results."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from hub.access.documents import DocumentPolicy
from hub.access.keys import Principal, Role, principal_from_row
from hub.core.enums import ChannelCode
from hub.core.ids import to_global_id
from hub.db.rows import Record
from hub.schema.enums import described_enum
from hub.schema.permissions import PersonalData, json_mask, not_personal

described_enum(
    Role,
    "What an API key may do.",
    {
        Role.ADMIN: "Everything, including key management and the audit log.",
        Role.FRONTEND: "Read and write customer data; no analytics over all customers.",
        Role.ANALYST: "Read everything and analytics; personal fields masked without `pii`.",
        Role.PARTNER: "Read and subscribe within its channels and touchpoints; always masked.",
        Role.SOURCE: (
            "Send tracking data for its one touchpoint to the Segment-compatible `/v1/*` API; "
            "no GraphQL."
        ),
    },
)

described_enum(
    DocumentPolicy,
    "Which GraphQL documents an API key may run (docs/trusted-documents.md).",
    {
        DocumentPolicy.REGISTERED_ONLY: (
            "Only trusted documents, by id (`documentId` or an APQ hash); a document's text "
            "is refused with PERSISTED_QUERY_REQUIRED."
        ),
        DocumentPolicy.ANY: "Any document, as text or by id.",
    },
)


@strawberry.type(description="An API key (the key itself is shown only once, when created).")
class ApiKey:
    name: str = strawberry.field(
        description="Unique name, used to revoke it.",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )
    role: Role = strawberry.field(description="What it may do.")
    pii: bool = strawberry.field(description="Whether it sees personal fields unmasked.")
    channels: list[ChannelCode] = strawberry.field(description="Partner scope: channels.")
    touchpoint_ids: list[strawberry.ID] = strawberry.field(
        description="Partner scope: touchpoints (their ids)."
    )
    prefix: str = strawberry.field(
        description="The key's public prefix, to recognise it.",
        metadata=not_personal("the public prefix of an API key"),
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked, if it was.")
    last_used_at: datetime | None = strawberry.field(
        description="Roughly when it was last used (to the minute)."
    )
    documents: DocumentPolicy | None = strawberry.field(
        default=None,
        description=(
            "Which documents it may run; null: its role's default (REGISTERED_ONLY for FRONTEND "
            "and PARTNER keys when HUB_ENV=production, ANY otherwise)."
        ),
    )

    @classmethod
    def from_row(cls, row: Record) -> ApiKey:
        principal: Principal = principal_from_row(row)
        return cls(
            name=row["name"],
            role=principal.role,
            pii=principal.pii,
            channels=sorted(ChannelCode(code) for code in principal.channels),
            touchpoint_ids=[
                strawberry.ID(to_global_id("Touchpoint", str(t)))
                for t in sorted(principal.touchpoints)
            ],
            prefix=row["prefix"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
            documents=DocumentPolicy(principal.documents) if principal.documents else None,
        )


@strawberry.type(description="A new API key and its secret, which is never shown again.")
class CreatedApiKey:
    api_key: ApiKey = strawberry.field(description="The key's record.")
    key: str = strawberry.field(
        description="The secret to send as `Authorization: Bearer <key>`; store it now.",
        metadata=not_personal("the new secret, shown once to the ADMIN who made it"),
    )


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    name: str = strawberry.field(description="Unique name.")
    role: Role = strawberry.field(description="What it may do.")
    pii: bool = strawberry.field(
        default=False, description="See personal fields unmasked (not for PARTNER)."
    )
    channels: list[ChannelCode] | None = strawberry.field(
        default=None, description="PARTNER only: the channels it may see."
    )
    touchpoint_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="PARTNER: the touchpoints it may see; SOURCE: the one it sends for.",
    )
    documents: DocumentPolicy | None = strawberry.field(
        default=None,
        description="Which documents it may run; null: its role's default under HUB_ENV.",
    )


@strawberry.type(description="A registered GraphQL document (a trusted document), run by its id.")
class TrustedDocument:
    id: str = strawberry.field(
        description=(
            "What clients send as `documentId` (or APQ `sha256Hash`): the SHA-256 hex of the "
            "text, or the id its manifest gave it."
        ),
        metadata=not_personal("an opaque document id chosen by the hub or an ADMIN's manifest"),
    )
    document: str = strawberry.field(
        description="The GraphQL document's text.",
        metadata=not_personal("a GraphQL document an ADMIN registered: code, not customer data"),
    )
    operations: list[str] = strawberry.field(
        description="The operations it defines, as `name:type` (`:query` when unnamed).",
        metadata=not_personal("operation names and types of a registered document"),
    )
    created_by: str = strawberry.field(
        description="The key name (or cli) that registered it.",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )
    created_at: datetime = strawberry.field(description="When it was registered.")

    @classmethod
    def from_row(cls, row: Record) -> TrustedDocument:
        return cls(
            id=row["id"],
            document=row["document"],
            operations=list(row["operations"]),
            created_by=row["created_by"],
            created_at=row["created_at"],
        )


@strawberry.input(description="A document to register, with the id to call it by.")
class TrustedDocumentInput:
    document: str = strawberry.field(description="The GraphQL document's text.")
    id: str | None = strawberry.field(
        default=None,
        description=(
            "Its id (a manifest's; 1 to 200 of A-Z a-z 0-9 _ . : ~ -); null: the SHA-256 hex "
            "of the text. A 64-hex id must be that SHA-256."
        ),
    )


@strawberry.type(description="One audited action: a mutation or a key operation.")
class AuditEntry:
    at: datetime = strawberry.field(description="When it happened.")
    actor: str = strawberry.field(
        description="The key name (or cli, development-mode).",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )
    role: Role = strawberry.field(description="The actor's role.")
    action: str = strawberry.field(
        description="The mutation field(s) or operation.",
        metadata=not_personal("a mutation or operation name"),
    )
    target_ids: list[str] = strawberry.field(
        description="The ids it was about.", metadata=not_personal("global ids, opaque")
    )
    success: bool = strawberry.field(description="Whether it succeeded.")
    details: JSON = strawberry.field(
        description="Operation name, error codes and the like.",
        extensions=[PersonalData(json_mask)],
    )

    @classmethod
    def from_row(cls, row: Record) -> AuditEntry:
        return cls(
            at=row["at"],
            actor=row["actor"],
            role=Role(row["role"]),
            action=row["action"],
            target_ids=list(row["target_ids"]),
            success=row["success"],
            details=row["details"],
        )


@strawberry.type(description="What an erasure removed.")
class Erasure:
    customer_id: strawberry.ID = strawberry.field(description="The erased customer's id.")
    erased_at: datetime = strawberry.field(description="When.")
    identities_removed: int = strawberry.field(description="How many identifiers were removed.")

    @classmethod
    def from_result(cls, customer_id: uuid.UUID, result: dict[str, object]) -> Erasure:
        erased_at = result["erased_at"]
        assert isinstance(erased_at, str)
        removed = result["identitiesRemoved"]
        assert isinstance(removed, int)
        return cls(
            customer_id=strawberry.ID(to_global_id("Customer", str(customer_id))),
            erased_at=datetime.fromisoformat(erased_at),
            identities_removed=removed,
        )
