"""``node(id)``: any object by its global id."""

from __future__ import annotations

from typing import Annotated

import strawberry

from hub.context import Info
from hub.core.errors import BadUserInput, NotFound
from hub.core.ids import from_global_id, parse_uuid
from hub.schema.channel import Channel, Touchpoint
from hub.schema.conversation import Conversation
from hub.schema.customer import load_customer
from hub.schema.enums import ChannelCode
from hub.schema.interaction import Interaction
from hub.schema.node import Node


async def resolve_node(info: Info, global_id: str) -> Node | None:
    type_name, key = from_global_id(global_id)
    loaders = info.context.loaders
    if type_name == "Customer":
        return await load_customer(info, parse_uuid(key))
    if type_name == "Interaction":
        row = await loaders.interaction_by_id.load(parse_uuid(key))
        return Interaction.from_row(row) if row else None
    if type_name == "Touchpoint":
        row = await loaders.touchpoint_by_id.load(parse_uuid(key))
        return Touchpoint.from_row(row) if row else None
    if type_name == "Conversation":
        row = await loaders.conversation_by_id.load(parse_uuid(key))
        return Conversation.from_row(row) if row else None
    if type_name == "Channel" and key in ChannelCode.__members__:
        row = await loaders.channel_by_code.load(key)
        return Channel.from_row(row) if row else None
    # Well-formed base64 but not an id this hub hands out: the client sent a wrong value.
    raise BadUserInput(f"{global_id!r} is not the id of any object in this graph")


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id.")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node:
        node = await resolve_node(info, id)
        if node is None:
            raise NotFound(f"no object with id {id!r}")
        return node
