"""The Relay ``Node`` interface: every object with a global id."""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID = strawberry.field(description="Globally unique, opaque id; use with `node`.")
