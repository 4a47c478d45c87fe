"""The GraphQL schema: per-domain Query parts merged at the root, as a Federation 2 subgraph."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types

from resolvers.channel import ChannelQuery
from resolvers.customer import CustomerQuery
from resolvers.interaction import InteractionQuery
from resolvers.journey import JourneyQuery
from resolvers.node import NodeQuery
from resolvers.subscriptions import Subscription

logger = logging.getLogger("hub.errors")

Query = merge_types(
    "Query", (CustomerQuery, InteractionQuery, ChannelQuery, JourneyQuery, NodeQuery)
)
Query.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Read the customer-360 graph: customers, their interactions on every channel, the channel "
    "and touchpoint catalogue, and the journey stages."
)


def code_for(error: GraphQLError) -> str:
    message = error.message
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable '$") or "got invalid value" in message:
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


class ErrorCodes(SchemaExtension):
    """Every error leaves with an ``extensions.code``; unexpected ones leave masked.

    Errors the hub raised on purpose (``HubError``) keep message and code. Parse and validation
    errors keep their message and gain a code. Anything else (a bug, a database fault) becomes
    "Unexpected error." with code INTERNAL_SERVER_ERROR, and the original is logged.
    """

    def _process(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, GraphQLError) or (
            original is None and error.extensions and "code" in error.extensions
        ):
            return error
        if original is None:
            error.extensions = {**(error.extensions or {}), "code": code_for(error)}
            return error
        logger.error("unexpected error at %s", error.path, exc_info=original)
        return GraphQLError(
            "Unexpected error.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) if result is not None else None
        if errors:
            result.errors = [self._process(error) for error in errors]  # type: ignore[union-attr]
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                self._process(error) for error in self.execution_context.pre_execution_errors
            ]


def build_schema() -> strawberry.federation.Schema:
    return strawberry.federation.Schema(
        query=Query,
        subscription=Subscription,
        extensions=[ErrorCodes],
        federation_version="2.5",
    )


schema = build_schema()


def schema_sdl() -> str:
    return schema.as_str() + "\n"
