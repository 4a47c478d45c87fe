"""``Loaders``: every DataLoader of one request, built fresh by ``build_loaders``.

Never share an instance between requests: its cache would leak one caller's data to another and
outlive writes. On websockets, build one per delivered event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from hub.audiences.traits import TraitDefinition
from hub.db.rows import Record
from hub.loaders import (
    audiences_traits,
    channels,
    consents,
    customers,
    interactions,
    merges,
    segments,
)
from hub.loaders.interactions import CountKey, PageKey

K = TypeVar("K")
V = TypeVar("V")


class SharedDataLoader(DataLoader[K, V]):
    """A DataLoader whose futures survive the cancellation of one of their waiters.

    Several resolvers await the same cached future for a key. graphql-core cancels the pending
    sibling fields of a field that raised (``gather_with_cancel``); a cancelled task cancels the
    future it awaits, so every *other* resolver awaiting that key got a ``CancelledError`` —
    which escapes execution as a 500 (a nested customer -> lastInteraction -> customer read
    with one failing field did). Each waiter awaits its own shield instead: cancelling it
    leaves the shared future, and the other waiters, alone."""

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


def _loader(
    engine: AsyncEngine, batch: Callable[[AsyncEngine, list[K]], Awaitable[list[V]]]
) -> DataLoader[K, V]:
    return SharedDataLoader(load_fn=partial(batch, engine))


@dataclass
class Loaders:
    customer_by_id: DataLoader[uuid.UUID, Record | None]
    identities_by_customer: DataLoader[uuid.UUID, list[Record]]
    stage_history_by_customer: DataLoader[uuid.UUID, list[Record]]
    channel_usage_by_customer: DataLoader[uuid.UUID, list[Record]]
    last_interaction_by_customer: DataLoader[uuid.UUID, Record | None]
    conversations_by_customer: DataLoader[uuid.UUID, list[Record]]
    interaction_by_id: DataLoader[uuid.UUID, Record | None]
    interaction_page_by_customer: DataLoader[PageKey, list[Record]]
    interaction_page_by_touchpoint: DataLoader[PageKey, list[Record]]
    interaction_count_by_customer: DataLoader[CountKey, int]
    interaction_count_by_touchpoint: DataLoader[CountKey, int]
    interactions_by_conversation: DataLoader[uuid.UUID, list[Record]]
    conversation_by_id: DataLoader[uuid.UUID, Record | None]
    channel_by_code: DataLoader[str, Record | None]
    touchpoint_by_id: DataLoader[uuid.UUID, Record | None]
    touchpoints_by_channel: DataLoader[str, list[Record]]
    stage_by_code: DataLoader[str, Record | None]
    customer_count_by_stage: DataLoader[str, int]
    consents_by_customer: DataLoader[uuid.UUID, list[Record]]
    consent_history_by_customer: DataLoader[uuid.UUID, list[Record]]
    channel_table: DataLoader[str, channels.Taxonomy]
    stage_table: DataLoader[str, channels.Taxonomy]
    merges_by_customer: DataLoader[uuid.UUID, list[Record]]
    segments_by_customer: DataLoader[uuid.UUID, list[Record]]
    computed_trait_table: DataLoader[str, dict[str, TraitDefinition]]
    computed_by_customer: DataLoader[uuid.UUID, list[Record]]


def build_loaders(engine: AsyncEngine) -> Loaders:
    """``engine`` is the request's (``context.engine``, or ``context.fresh_loaders()``): for a
    partner it runs under row security (hub.access.row_security), so the batches need no scope
    predicate of their own: PostgreSQL returns only the rows the partner may see."""

    channel_table = _loader(engine, channels.channel_tables)
    stage_table = _loader(engine, channels.stage_tables)
    return Loaders(
        customer_by_id=_loader(engine, customers.customers_by_id),
        identities_by_customer=_loader(engine, customers.identities_by_customer),
        stage_history_by_customer=_loader(engine, customers.stage_history_by_customer),
        channel_usage_by_customer=_loader(engine, customers.channel_usage_by_customer),
        last_interaction_by_customer=_loader(engine, customers.last_interaction_by_customer),
        conversations_by_customer=_loader(engine, customers.conversations_by_customer),
        interaction_by_id=_loader(engine, interactions.interactions_by_id),
        interaction_page_by_customer=_loader(engine, interactions.interaction_pages_by_customer),
        interaction_page_by_touchpoint=_loader(
            engine, interactions.interaction_pages_by_touchpoint
        ),
        interaction_count_by_customer=_loader(engine, interactions.interaction_counts_by_customer),
        interaction_count_by_touchpoint=_loader(
            engine, interactions.interaction_counts_by_touchpoint
        ),
        interactions_by_conversation=_loader(engine, interactions.interactions_by_conversation),
        conversation_by_id=_loader(engine, interactions.conversations_by_id),
        channel_by_code=SharedDataLoader(load_fn=channels.by_code(channel_table)),
        touchpoint_by_id=_loader(engine, channels.touchpoints_by_id),
        touchpoints_by_channel=_loader(engine, channels.touchpoints_by_channel),
        stage_by_code=SharedDataLoader(load_fn=channels.by_code(stage_table)),
        customer_count_by_stage=_loader(engine, channels.customer_counts_by_stage),
        consents_by_customer=_loader(engine, consents.consents_by_customer),
        consent_history_by_customer=_loader(engine, consents.consent_history_by_customer),
        channel_table=channel_table,
        stage_table=stage_table,
        merges_by_customer=_loader(engine, merges.merges_by_customer),
        segments_by_customer=_loader(engine, segments.segments_by_customer),
        computed_trait_table=_loader(engine, audiences_traits.computed_trait_tables),
        computed_by_customer=_loader(engine, audiences_traits.computed_by_customer),
    )
