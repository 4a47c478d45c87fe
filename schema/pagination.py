"""Relay connections: ``edges { cursor node }``, ``nodes``, ``pageInfo``, lazy ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, TypeVar

import strawberry

from hub.schema.permissions import not_personal

NodeT = TypeVar("NodeT")

# Arguments of every forward-only interaction list (a customer's, a touchpoint's, all of them).
PageFirst = Annotated[
    int | None, strawberry.argument(description="Page size (default 20, at most 100).")
]
PageAfter = Annotated[str | None, strawberry.argument(description="Cursor to continue after.")]


@strawberry.type(description="Where a page sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow the last edge.")
    has_previous_page: bool = strawberry.field(description="More items precede the first edge.")
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first edge, if any.",
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last edge, if any.",
        metadata=not_personal("an opaque position in a list or event stream"),
    )


@strawberry.type(description="One item of a page with the cursor that points at it.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(
        description="Pass to `after` or `before` to page from here.",
        metadata=not_personal("an opaque position in a list or event stream"),
    )
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, Relay style.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items with their cursors.")
    page_info: PageInfo = strawberry.field(description="Whether more pages exist either way.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The items of this page, without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many items the whole list holds (all pages, same filter).")
    async def total_count(self) -> int:
        return await self.count()
