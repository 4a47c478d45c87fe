"""Types of webhooks: registrations, their delivery log, the inputs and payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import to_global_id
from hub.db.rows import Record
from hub.schema.enums import described_enum
from hub.schema.permissions import PersonalData, json_mask, not_personal
from hub.webhooks import store
from hub.webhooks.store import DeliveryStatus, WebhookStatus, position

described_enum(
    WebhookStatus,
    "Where a webhook's delivery stands.",
    {
        WebhookStatus.ACTIVE: "Delivering.",
        WebhookStatus.FAILING: "An event was dead-lettered; still delivering the next ones.",
        WebhookStatus.PAUSED: (
            "Not delivering: paused by its owner, or after dead letters in a row."
        ),
        WebhookStatus.DISABLED: "Not delivering: the API key that registered it was revoked.",
    },
)
described_enum(
    DeliveryStatus,
    "The outcome of one delivery attempt.",
    {
        DeliveryStatus.SUCCEEDED: "The receiver answered 2xx.",
        DeliveryStatus.FAILED: "No 2xx answer (or none in time); the event is retried.",
        DeliveryStatus.DEAD_LETTER: "The last attempt of an event given up on (dead-letter list).",
    },
)

# The mutations a PARTNER key may run (``hub.schema.extensions.AccessGuard``): its own webhooks.
WEBHOOK_MUTATIONS = frozenset(
    {
        "createWebhook",
        "updateWebhook",
        "pauseWebhook",
        "resumeWebhook",
        "deleteWebhook",
        "rotateWebhookSecret",
        "replayWebhook",
        "redeliver",
    }
)

_URL = not_personal("a receiver URL of a partner or the business, chosen by its owner")


@strawberry.type(description="One delivery attempt of a webhook (the delivery log).")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="The attempt's id (for `redeliver`).")
    webhook_id: strawberry.ID = strawberry.field(
        description="The event's cursor, sent as the `webhook-id` header (same for every attempt)."
    )
    attempt: int = strawberry.field(description="Attempt number for this event (1, 2, …).")
    status: DeliveryStatus = strawberry.field(description="The outcome.")
    status_code: int | None = strawberry.field(description="The receiver's HTTP status, if any.")
    latency_ms: float | None = strawberry.field(description="How long the attempt took (ms).")
    error: str | None = strawberry.field(
        description="Why it failed (HTTP status, timeout, refused address).",
        metadata=not_personal("a transport error or HTTP status, about the receiver"),
    )
    created_at: datetime = strawberry.field(description="When it was made.")

    @classmethod
    def from_row(cls, row: Record) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(row["id"])),
            webhook_id=strawberry.ID(row["event_cursor"]),
            attempt=row["attempt"],
            status=DeliveryStatus(row["status"]),
            status_code=row["status_code"],
            latency_ms=row["latency_ms"],
            error=row["error"],
            created_at=row["created_at"],
        )


@strawberry.type(
    description="A stored subscription whose results are POSTed, signed, to a URL (docs)."
)
class Webhook:
    id: strawberry.ID = strawberry.field(description="The webhook's id.")
    url: str = strawberry.field(description="Where deliveries are POSTed.", metadata=_URL)
    query: str = strawberry.field(
        description="The subscription document executed for each event.",
        metadata=not_personal("a GraphQL document written by the webhook's owner"),
    )
    variables: JSON | None = strawberry.field(
        description="The document's variables.", extensions=[PersonalData(json_mask)]
    )
    description: str = strawberry.field(
        description="What it is for.",
        metadata=not_personal("a label the webhook's owner gave it, not customer data"),
    )
    owner: str = strawberry.field(
        description="The API key that registered it (deliveries see what this key may see).",
        metadata=not_personal("names an API key, operator or partner, not a customer"),
    )
    status: WebhookStatus = strawberry.field(description="Where delivery stands.")
    status_reason: str | None = strawberry.field(
        description="Why it is FAILING, PAUSED or DISABLED.",
        metadata=not_personal("a delivery error or an operator's action"),
    )
    cursor: str | None = strawberry.field(
        description="The last event handled (delivered, skipped or dead-lettered).",
        metadata=not_personal("an opaque event position"),
    )
    created_at: datetime = strawberry.field(description="When it was registered.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row_id: strawberry.Private[Any]

    @classmethod
    def from_row(cls, row: Record) -> Webhook:
        at = position(row)
        return cls(
            id=strawberry.ID(to_global_id("Webhook", str(row["id"]))),
            url=row["url"],
            query=row["query"],
            variables=row["variables"],
            description=row["description"],
            owner=row["owner"],
            status=WebhookStatus(row["status"]),
            status_reason=row["status_reason"],
            cursor=at.cursor if at.id > 0 else None,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            row_id=row["id"],
        )

    @strawberry.field(description="The delivery log, newest first; filter by outcome.")
    async def deliveries(
        self,
        info: Info,
        status: Annotated[
            DeliveryStatus | None,
            strawberry.argument(
                description="Only attempts with this outcome (DEAD_LETTER: the dead-letter list)."
            ),
        ] = None,
        first: Annotated[int, strawberry.argument(description="How many attempts.")] = 50,
        after: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only attempts older than this delivery id."),
        ] = None,
    ) -> list[WebhookDelivery]:
        limit = info.context.settings.max_page_size
        if not 0 <= first <= limit:
            raise BadUserInput(f"`first` must be between 0 and {limit}")
        before: int | None = None
        if after is not None:
            if not str(after).isdigit():
                raise BadUserInput("`after` is a delivery id")
            before = int(after)
        async with info.context.management_engine.connect() as connection:
            rows = await store.deliveries(connection, self.row_id, status, first, before)
        return [WebhookDelivery.from_row(row) for row in rows]


@strawberry.type(description="A new webhook and its signing secret, which is never shown again.")
class CreatedWebhook:
    webhook: Webhook = strawberry.field(description="The webhook.")
    secret: str = strawberry.field(
        description="The Standard Webhooks signing secret (`whsec_…`); store it now.",
        metadata=not_personal("the webhook's new secret, shown once to its owner"),
    )


@strawberry.input(description="A new webhook.")
class CreateWebhookInput:
    url: str = strawberry.field(description="https URL the deliveries are POSTed to.")
    query: str = strawberry.field(
        description="One subscription operation of this API (e.g. `interactionRecorded`), "
        "without `after`: the body of each delivery is its result."
    )
    variables: JSON | None = strawberry.field(
        default=None, description="Variables of the document."
    )
    description: str = strawberry.field(default="", description="What it is for.")


@strawberry.input(description="Changes to a webhook; omitted fields stay.")
class UpdateWebhookInput:
    url: str | None = strawberry.field(default=None, description="New URL.")
    query: str | None = strawberry.field(default=None, description="New subscription document.")
    variables: JSON | None = strawberry.field(default=None, description="New variables.")
    description: str | None = strawberry.field(default=None, description="New description.")
