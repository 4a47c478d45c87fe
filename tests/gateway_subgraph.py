"""A second, tiny Federation 2 subgraph for the gateway test: a loyalty service that knows
points per customer id and contributes ``Customer.loyaltyPoints``.

Composed with the hub behind a real gateway it makes the gateway resolve entities both ways:
``loyaltyLeaders { displayName }`` needs the hub's ``_entities`` for Customer by id, and
``customer(id) { loyaltyPoints }`` needs this subgraph's. The points live in a JSON file
(``{"<Customer global id>": points}``) read per request, so a test can write them after
creating its customers. Run: ``python -m tests.gateway_subgraph PORT POINTS_FILE``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import strawberry
import uvicorn
from strawberry.asgi import GraphQL

POINTS_FILE = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("loyalty.json")


def points() -> dict[str, int]:
    loaded: dict[str, int] = json.loads(POINTS_FILE.read_text())
    return loaded


@strawberry.federation.type(
    keys=["id"], description="A hub customer, as the loyalty service knows it."
)
class Customer:
    id: strawberry.ID = strawberry.field(description="The hub's global id of the customer.")
    loyalty_points: int = strawberry.field(description="Points collected (0 when unknown).")

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Customer:
        return Customer(id=id, loyalty_points=points().get(str(id), 0))


@strawberry.type(description="The loyalty service's entry points.")
class Query:
    @strawberry.field(description="Customers with points, most points first.")
    def loyalty_leaders(self) -> list[Customer]:
        ranked = sorted(points().items(), key=lambda item: -item[1])
        return [Customer(id=strawberry.ID(key), loyalty_points=value) for key, value in ranked]


schema = strawberry.federation.Schema(query=Query, federation_version="2.5")

if __name__ == "__main__":
    uvicorn.run(GraphQL(schema), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
