"""Consents of a customer: per purpose and contact channel, with their history."""

from __future__ import annotations

from datetime import datetime

import strawberry

from hub.db.rows import Record
from hub.privacy.consent import ConsentChannel, ConsentStatus
from hub.schema.enums import ConsentPurpose, described_enum
from hub.schema.permissions import PersonalData, free_text_mask, not_personal

described_enum(
    ConsentChannel,
    "The contact channel a consent covers.",
    {
        ConsentChannel.ANY: "Every contact channel (a specific channel's consent wins over it).",
        ConsentChannel.EMAIL: "E-mail.",
        ConsentChannel.SMS: "SMS text messages.",
        ConsentChannel.WHATSAPP: "WhatsApp messages.",
        ConsentChannel.PHONE: "Phone calls.",
        ConsentChannel.POST: "Postal mail.",
        ConsentChannel.PUSH: "Mobile push notifications.",
    },
)
described_enum(
    ConsentStatus,
    "The state of a consent.",
    {
        ConsentStatus.GRANTED: "The customer agreed.",
        ConsentStatus.DENIED: "The customer said no when asked.",
        ConsentStatus.REVOKED: "The customer withdrew an earlier agreement.",
    },
)


def _channel(stored: str) -> ConsentChannel:
    return ConsentChannel(stored) if stored else ConsentChannel.ANY


@strawberry.type(description="A customer's current consent for one purpose on one channel.")
class Consent:
    purpose: ConsentPurpose = strawberry.field(description="What the data may be used for.")
    channel: ConsentChannel = strawberry.field(description="The contact channel it covers.")
    status: ConsentStatus = strawberry.field(description="Granted, denied or revoked.")
    source: str | None = strawberry.field(
        description="Where it was collected (form, call...).",
        extensions=[PersonalData(free_text_mask)],
    )
    granted_at: datetime | None = strawberry.field(description="When it was last granted.")
    expires_at: datetime | None = strawberry.field(description="When it lapses, if it does.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    active: bool = strawberry.field(description="Granted and not expired: it may be acted on.")

    @classmethod
    def from_row(cls, row: Record, now: datetime) -> Consent:
        expires_at = row["expires_at"]
        return cls(
            purpose=ConsentPurpose(row["purpose"]),
            channel=_channel(row["channel"]),
            status=ConsentStatus(row["status"]),
            source=row["source"],
            granted_at=row["granted_at"],
            expires_at=expires_at,
            updated_at=row["updated_at"],
            active=row["status"] == ConsentStatus.GRANTED.value
            and (expires_at is None or expires_at > now),
        )


@strawberry.type(description="One change of a consent, as recorded.")
class ConsentChange:
    purpose: ConsentPurpose = strawberry.field(description="The purpose.")
    channel: ConsentChannel = strawberry.field(description="The contact channel.")
    status: ConsentStatus = strawberry.field(description="The status set.")
    source: str | None = strawberry.field(
        description="Where it was collected.", extensions=[PersonalData(free_text_mask)]
    )
    expires_at: datetime | None = strawberry.field(description="The expiry set, if any.")
    changed_at: datetime = strawberry.field(description="When the change was recorded.")
    changed_by: str | None = strawberry.field(
        description="The key that recorded it.",
        metadata=not_personal(
            "names an API key, operator or agent of the business, not a customer"
        ),
    )

    @classmethod
    def from_row(cls, row: Record) -> ConsentChange:
        return cls(
            purpose=ConsentPurpose(row["purpose"]),
            channel=_channel(row["channel"]),
            status=ConsentStatus(row["status"]),
            source=row["source"],
            expires_at=row["expires_at"],
            changed_at=row["changed_at"],
            changed_by=row["changed_by"],
        )


@strawberry.input(description="Customers with a valid (granted, unexpired) consent.")
class ConsentFilter:
    purpose: ConsentPurpose = strawberry.field(description="The purpose consented to.")
    channel: ConsentChannel = strawberry.field(
        default=ConsentChannel.ANY,
        description="The contact channel; its own consent wins over the ANY one.",
    )


@strawberry.input(description="Records a customer's consent; the previous one goes to history.")
class SetConsentInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer's id.")
    purpose: ConsentPurpose = strawberry.field(description="What the data may be used for.")
    channel: ConsentChannel = strawberry.field(
        default=ConsentChannel.ANY, description="The contact channel it covers."
    )
    status: ConsentStatus = strawberry.field(description="Granted, denied or revoked.")
    source: str | None = strawberry.field(
        default=None, description="Where it was collected (web form, call, store...)."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When it lapses, if it does."
    )
