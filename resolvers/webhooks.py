"""Webhook fields: register, list, change, pause, resume, delete, rotate, replay, redeliver.

ADMIN keys manage every webhook; a PARTNER key registers and manages its own (others' are
NOT_FOUND to it). The registrations are the hub's own table, not customer data: they are read
on the unscoped management engine and filtered by the key here (``hub.webhooks.store.Owner``).
What a webhook delivers is customer data, and goes through the registering key's scope and
masking at delivery (``hub.http.webhooks``).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import httpx
import strawberry
from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from hub.access.inputs import input_limits_rule
from hub.access.keys import Role
from hub.access.limits import limits_rule
from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import uuid_from_global_id
from hub.events.outbox import check_cursor, decode_cursor, start_position
from hub.schema.permissions import require
from hub.schema.webhooks import (
    CreatedWebhook,
    CreateWebhookInput,
    UpdateWebhookInput,
    Webhook,
    WebhookDelivery,
)
from hub.webhooks import sender, signing, store
from hub.webhooks.safety import check_url
from hub.webhooks.store import DeliveryStatus, Owner, WebhookStatus

_ID = strawberry.argument(description="The webhook's id.")


def _owner(info: Info) -> Owner:
    require(info, Role.ADMIN, Role.PARTNER)
    return Owner.of(info.context.principal)


def _id(value: strawberry.ID) -> uuid.UUID:
    return uuid_from_global_id(value, "Webhook")


def check_document(info: Info, query: str, variables: dict[str, Any] | None) -> None:
    """A webhook's document must be one subscription operation of this API, valid with its
    variables, whose field is not given `after` (the webhook keeps its own cursor)."""
    try:
        document = parse(query, max_tokens=info.context.settings.max_tokens)
    except GraphQLError as error:
        raise BadUserInput(f"the webhook's query does not parse: {error.message}") from None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        raise BadUserInput("the webhook's query must be exactly one subscription operation")
    operation = operations[0]
    fields = operation.selection_set.selections
    if len(fields) != 1 or not isinstance(fields[0], FieldNode):
        raise BadUserInput("the webhook's subscription must select exactly one field")
    if any(argument.name.value == "after" for argument in fields[0].arguments or ()):
        raise BadUserInput("a webhook keeps its own cursor: leave `after` out (see replayWebhook)")
    graphql_schema = info.schema._schema
    settings = info.context.settings
    limits = [limits_rule(settings, variables or {}), input_limits_rule(settings, variables or {})]
    # The schema's rules, then the limits every execution checks (depth, cost, input sizes):
    # a document that would be refused at each delivery is refused now.
    errors = validate(graphql_schema, document) or validate(graphql_schema, document, limits)
    if errors:
        raise BadUserInput(f"the webhook's query is not valid: {errors[0].message}")
    coerced = get_variable_values(
        graphql_schema, operation.variable_definitions or [], variables or {}
    )
    if isinstance(coerced, list):
        raise BadUserInput(f"the webhook's variables are not valid: {coerced[0].message}")


async def _checked(info: Info, url: str) -> str:
    await check_url(url, info.context.settings.webhook_allow_private)
    return url


async def _reactivate(info: Info, webhook_id: uuid.UUID, **values: Any) -> Webhook:
    """ACTIVE again, streak forgotten (and ``values``); not for a revoked key's webhook."""
    owner = _owner(info)
    async with info.context.management_engine.begin() as connection:
        current = await store.get(connection, owner, webhook_id)
        if current["status"] == WebhookStatus.DISABLED.value:
            raise BadUserInput("the key that registered this webhook was revoked")
        row = await store.change(
            connection,
            owner,
            webhook_id,
            status=WebhookStatus.ACTIVE.value,
            status_reason=None,
            failure_streak=0,
            **values,
        )
    return Webhook.from_row(row)


@strawberry.type
class WebhookQuery:
    @strawberry.field(
        description="The webhooks this key manages (ADMIN: all; PARTNER: its own), oldest first."
    )
    async def webhooks(self, info: Info) -> list[Webhook]:
        owner = _owner(info)
        async with info.context.management_engine.connect() as connection:
            rows = await store.list_for(connection, owner)
        return [Webhook.from_row(row) for row in rows]

    @strawberry.field(description="One webhook (NOT_FOUND when this key does not manage it).")
    async def webhook(self, info: Info, id: Annotated[strawberry.ID, _ID]) -> Webhook:
        owner = _owner(info)
        async with info.context.management_engine.connect() as connection:
            return Webhook.from_row(await store.get(connection, owner, _id(id)))


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description=(
            "Register a webhook (ADMIN or PARTNER): each event after now that the subscription "
            "yields for this key is POSTed to `url`, signed (Standard Webhooks). The secret is "
            "in the answer only."
        )
    )
    async def create_webhook(
        self,
        info: Info,
        input: Annotated[CreateWebhookInput, strawberry.argument(description="The webhook.")],
    ) -> CreatedWebhook:
        owner = _owner(info)
        variables = input.variables if isinstance(input.variables, dict) else None
        if input.variables is not None and variables is None:
            raise BadUserInput("`variables` must be a JSON object")
        check_document(info, input.query, variables)
        url = await _checked(info, input.url)
        engine = info.context.management_engine
        async with engine.begin() as connection:
            start = await start_position(connection)
            row, secret = await store.create(
                connection,
                owner,
                url=url,
                query=input.query,
                variables=variables or {},
                description=input.description,
                start=start,
            )
        return CreatedWebhook(webhook=Webhook.from_row(row), secret=secret)

    @strawberry.mutation(description="Change a webhook's URL, document, variables or text.")
    async def update_webhook(
        self,
        info: Info,
        id: Annotated[strawberry.ID, _ID],
        input: Annotated[UpdateWebhookInput, strawberry.argument(description="The changes.")],
    ) -> Webhook:
        owner = _owner(info)
        values: dict[str, Any] = {}
        engine = info.context.management_engine
        async with engine.connect() as connection:
            current = await store.get(connection, owner, _id(id))
        if input.variables is not None and not isinstance(input.variables, dict):
            raise BadUserInput("`variables` must be a JSON object")
        if input.query is not None or input.variables is not None:
            query = input.query if input.query is not None else current["query"]
            variables = input.variables if input.variables is not None else current["variables"]
            check_document(info, query, variables)
            values.update(query=query, variables=variables)
        if input.url is not None:
            values["url"] = await _checked(info, input.url)
        if input.description is not None:
            values["description"] = input.description
        async with engine.begin() as connection:
            return Webhook.from_row(await store.change(connection, owner, _id(id), **values))

    @strawberry.mutation(description="Stop delivering (events wait; `resumeWebhook` goes on).")
    async def pause_webhook(self, info: Info, id: Annotated[strawberry.ID, _ID]) -> Webhook:
        owner = _owner(info)
        async with info.context.management_engine.begin() as connection:
            row = await store.change(
                connection,
                owner,
                _id(id),
                status=WebhookStatus.PAUSED.value,
                status_reason=f"paused by {owner.name}",
            )
        return Webhook.from_row(row)

    @strawberry.mutation(
        description="Deliver again from where it stopped (a PAUSED or FAILING webhook)."
    )
    async def resume_webhook(self, info: Info, id: Annotated[strawberry.ID, _ID]) -> Webhook:
        return await _reactivate(info, _id(id))

    @strawberry.mutation(description="Delete a webhook and its delivery log; true when done.")
    async def delete_webhook(self, info: Info, id: Annotated[strawberry.ID, _ID]) -> bool:
        owner = _owner(info)
        async with info.context.management_engine.begin() as connection:
            await store.delete(connection, owner, _id(id))
        return True

    @strawberry.mutation(
        description=(
            "A new signing secret (in the answer only); the old one keeps signing beside it "
            "for the grace period (HUB_WEBHOOK_SECRET_GRACE_S)."
        )
    )
    async def rotate_webhook_secret(
        self, info: Info, id: Annotated[strawberry.ID, _ID]
    ) -> CreatedWebhook:
        owner = _owner(info)
        grace = info.context.settings.webhook_secret_grace_s
        async with info.context.management_engine.begin() as connection:
            row, secret = await store.rotate_secret(connection, owner, _id(id), grace)
        return CreatedWebhook(webhook=Webhook.from_row(row), secret=secret)

    @strawberry.mutation(
        description=(
            "Deliver again every event after this cursor (within the outbox's retention), in "
            "order; the webhook becomes ACTIVE."
        )
    )
    async def replay_webhook(
        self,
        info: Info,
        id: Annotated[strawberry.ID, _ID],
        after: Annotated[
            str, strawberry.argument(description="An event cursor (a delivery's `webhookId`).")
        ],
    ) -> Webhook:
        at = decode_cursor(after)
        engine = info.context.management_engine
        await check_cursor(engine, at, info.context.settings.events_retention_days)
        return await _reactivate(info, _id(id), cursor_xid=at.xid, cursor_id=at.id)

    @strawberry.mutation(
        description=(
            "Send one logged delivery again now, as it was (same body and `webhook-id`, signed "
            "afresh); the attempt is added to the log and returned."
        )
    )
    async def redeliver(
        self,
        info: Info,
        delivery_id: Annotated[
            strawberry.ID, strawberry.argument(description="A delivery's id (from the log).")
        ],
    ) -> WebhookDelivery:
        owner = _owner(info)
        if not str(delivery_id).isdigit():
            raise BadUserInput("`deliveryId` is a delivery id")
        engine = info.context.management_engine
        settings = info.context.settings
        async with engine.connect() as connection:
            delivery, webhook = await store.delivery(connection, owner, int(delivery_id))
        secrets = await store.signing_secrets(engine, webhook["id"])
        body = delivery["body"].encode()
        headers = signing.headers(secrets, delivery["event_cursor"], _now(), body)
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            result = await sender.post(
                client,
                webhook["url"],
                headers,
                body,
                allow_private=settings.webhook_allow_private,
                timeout_s=settings.webhook_timeout_s,
                max_response_bytes=settings.webhook_max_response_bytes,
            )
        row = await store.record(
            engine,
            store.LoggedAttempt(
                webhook["id"],
                delivery["event_cursor"],
                delivery["attempt"] + 1,
                DeliveryStatus.SUCCEEDED if result.ok else DeliveryStatus.FAILED,
                delivery["body"],
                status_code=result.status_code,
                latency_s=result.latency_s,
                error=result.error,
            ),
        )
        return WebhookDelivery.from_row(row)


def _now() -> int:
    return int(time.time())
