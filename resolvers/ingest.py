"""Ingest mutations: record one interaction, or a batch of them."""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry

from hub.context import Info
from hub.core.errors import BadUserInput, HubError
from hub.db.statements import AlchemySql
from hub.db.transactions import retry_conflicts
from hub.ingest.record import record
from hub.ingest.store import ItemResult
from hub.ingest.validation import InteractionInput
from hub.ops.metrics import count_stored
from hub.schema.ingest import (
    RecordInteractionInput,
    RecordInteractionPayload,
    RecordInteractionsPayload,
)

# Stands in for an input that failed before reaching the domain (it is never stored).
_PLACEHOLDER = InteractionInput(
    identities=[], touchpoint_id=uuid.UUID(int=0), type="", direction=""
)


@strawberry.type
class IngestMutation:
    @strawberry.mutation(
        description=(
            "Record one interaction from any channel: resolves the customer from its identities "
            "(creating or merging customers), moves the journey, joins the conversation. Safe to "
            "retry with the same `idempotencyKey`."
        )
    )
    async def record_interaction(
        self,
        info: Info,
        input: Annotated[
            RecordInteractionInput, strawberry.argument(description="The interaction.")
        ],
    ) -> RecordInteractionPayload:
        item = input.to_domain()

        async def attempt() -> ItemResult:
            async with info.context.engine.begin() as connection:
                [result] = await record(AlchemySql(connection), [item], info.context.settings)
                if result.error is not None:
                    raise result.error  # rolls the transaction back: nothing is written
            return result

        result = await retry_conflicts(attempt)
        count_stored(info.context.extras, [result])
        return RecordInteractionPayload.from_result(result)

    @strawberry.mutation(
        description=(
            "Record up to 1,000 interactions on the bulk path. Each item is validated on its own: "
            "invalid ones are rejected with index, code and message; all valid ones are stored "
            "together in one transaction."
        )
    )
    async def record_interactions(
        self,
        info: Info,
        inputs: Annotated[
            list[RecordInteractionInput],
            strawberry.argument(description="The interactions (at most 1,000)."),
        ],
    ) -> RecordInteractionsPayload:
        settings = info.context.settings
        if len(inputs) > settings.max_batch_size:
            raise BadUserInput(
                f"a batch holds at most {settings.max_batch_size} interactions, got {len(inputs)}"
            )
        if not inputs:
            raise BadUserInput("`inputs` is empty")
        items: list[InteractionInput] = []
        prefailed: dict[int, HubError] = {}
        for index, raw in enumerate(inputs):
            try:
                items.append(raw.to_domain())
            except HubError as error:
                prefailed[index] = error
                items.append(_PLACEHOLDER)

        async def attempt() -> list[ItemResult]:
            async with info.context.engine.begin() as connection:
                return await record(AlchemySql(connection), items, settings, prefailed=prefailed)

        results = await retry_conflicts(attempt)
        count_stored(info.context.extras, results)
        return RecordInteractionsPayload.from_results(results)
