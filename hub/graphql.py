"""The GraphQL schema: per-domain Query parts merged at the root, as a Federation 2 subgraph."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension, ValidationCache
from strawberry.federation.schema import FederationAny
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from hub.core.errors import BadUserInput
from hub.core.faults import client_fault
from hub.core.request_keys import OPERATION_TYPE_KEY
from hub.ops import tracing
from hub.resolvers.access import AccessMutation, AccessQuery
from hub.resolvers.analytics import AnalyticsQuery
from hub.resolvers.audiences_traits import ComputedTraitMutation, ComputedTraitQuery
from hub.resolvers.channel import ChannelMutation, ChannelQuery
from hub.resolvers.customer import CustomerQuery
from hub.resolvers.ingest import IngestMutation
from hub.resolvers.interaction import InteractionQuery
from hub.resolvers.journey import JourneyMutation, JourneyQuery
from hub.resolvers.merge import MergeMutation, MergeQuery
from hub.resolvers.node import NodeQuery
from hub.resolvers.profile import ProfileMutation
from hub.resolvers.segments import SegmentMutation, SegmentQuery, SegmentSubscription
from hub.resolvers.sources import SourcesMutation, SourcesQuery
from hub.resolvers.subscriptions import Subscription as FeedSubscription
from hub.resolvers.vocabulary import VocabularyMutation, VocabularyQuery
from hub.resolvers.webhooks import WebhookMutation, WebhookQuery
from hub.schema.enums import SCALARS
from hub.schema.extensions import AccessGuard, ReadFence, TrustedDocumentParse
from hub.schema.permissions import check_personal_fields

logger = logging.getLogger("hub.errors")

Query = merge_types(
    "Query",
    (
        CustomerQuery,
        InteractionQuery,
        ChannelQuery,
        JourneyQuery,
        NodeQuery,
        AccessQuery,
        AnalyticsQuery,
        MergeQuery,
        SourcesQuery,
        VocabularyQuery,
        WebhookQuery,
        SegmentQuery,
        ComputedTraitQuery,
    ),
)
Query.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Read the customer-360 graph: customers, their interactions on every channel, the channel "
    "and touchpoint catalogue, and the journey stages."
)

Mutation = merge_types(
    "Mutation",
    (
        IngestMutation,
        ProfileMutation,
        MergeMutation,
        JourneyMutation,
        AccessMutation,
        ChannelMutation,
        SourcesMutation,
        VocabularyMutation,
        WebhookMutation,
        SegmentMutation,
        ComputedTraitMutation,
    ),
)
Subscription = merge_types("Subscription", (FeedSubscription, SegmentSubscription))
Subscription.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    FeedSubscription.__strawberry_definition__.description  # type: ignore[attr-defined]
)
Mutation.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Write to the graph: record interactions from any channel, manage profiles, identities and "
    "consents, merge and unmerge customers, steer journeys and conversations, manage API keys, "
    "erase and export, register webhooks. Every mutation is audited."
)


def code_for(error: GraphQLError) -> str:
    message = error.message
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable '$") or "invalid value" in message:
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def _masked(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    """The client's version of ``error``: same place in the document, none of its details."""
    return GraphQLError(message, nodes=error.nodes, path=error.path, extensions=extensions)


class ErrorCodes(SchemaExtension):
    """Every error leaves with an ``extensions.code``; unexpected ones leave masked.

    Errors the hub raised on purpose (``HubError``) keep message and code. Parse and validation
    errors keep their message and gain a code. A lost or refused database connection becomes
    SERVICE_UNAVAILABLE with ``retryable: true`` (``hub.core.faults``); a transaction PostgreSQL
    aborted over a concurrent one (deadlock, serialization failure) becomes CONFLICT, and a
    statement it cancelled for running too long (``statement_timeout``) TIMEOUT, both with
    ``retryable: true``. Anything else (a bug)
    becomes "Unexpected error." with code INTERNAL_SERVER_ERROR, and the original is logged.
    """

    def _process(self, error: GraphQLError) -> GraphQLError:
        if error.extensions and "code" in error.extensions:
            return error  # a HubError, or one already processed
        original = error.original_error
        # graphql-core wraps its own input-coercion errors (a variable of the wrong type, an
        # invalid enum value) in a GraphQLError whose original is a GraphQLError too: those are
        # the client's fault, so they keep their message and gain a code.
        if original is None or isinstance(original, GraphQLError):
            error.extensions = {**(error.extensions or {}), "code": code_for(error)}
            return error
        fault = client_fault(original)
        if fault is not None:
            logger.warning("%s at %s: %r", fault.name, error.path, original)
            return _masked(error, fault.message, fault.extensions)
        logger.error("unexpected error at %s", error.path, exc_info=original)
        return _masked(error, "Unexpected error.", {"code": "INTERNAL_SERVER_ERROR"})

    def on_operation(self) -> Iterator[None]:
        yield
        if tracing.ENABLED:
            self._record_operation_type()
        # Strawberry keeps the same errors in the result and in ``pre_execution_errors``:
        # process each error once (one log line per unexpected error) and use it in both.
        processed: dict[int, GraphQLError] = {}

        def process(errors: list[GraphQLError]) -> list[GraphQLError]:
            for error in errors:
                if id(error) not in processed:
                    processed[id(error)] = self._process(error)
            return [processed[id(error)] for error in errors]

        result = self.execution_context.result
        errors = getattr(result, "errors", None) if result is not None else None
        if errors:
            result.errors = process(errors)  # type: ignore[union-attr]
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = process(
                self.execution_context.pre_execution_errors
            )

    def _record_operation_type(self) -> None:
        """For the operation span (hub.ops.otel): the type of the operation that ran, if any."""
        request = getattr(self.execution_context.context, "request", None)
        scope = getattr(request, "scope", None)
        if scope is None:
            return
        try:
            operation_type = self.execution_context.operation_type
        except Exception:  # no document (a parse error) or no such operation: no type to tell
            return
        scope[OPERATION_TYPE_KEY] = operation_type.value


class HubSchema(strawberry.federation.Schema):
    """Strawberry logs every error with a stack trace; a client's bad cursor is not an
    operator's problem. ``ErrorCodes`` logs the unexpected ones, once, with their path."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None

    def entities_resolver(
        self, info: strawberry.Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """``_entities``: a representation whose ``__typename`` is no entity (``Conversation``,
        or no type at all) is the caller's mistake, answered BAD_USER_INPUT for that item;
        Strawberry's own resolver raises TypeError/KeyError there (INTERNAL_SERVER_ERROR)."""
        results: list[FederationAny] = []
        for representation in representations:
            name = representation.get("__typename") if isinstance(representation, dict) else None
            type_ = self.schema_converter.type_map.get(name) if isinstance(name, str) else None
            origin = getattr(getattr(type_, "definition", None), "origin", None)
            if not hasattr(origin, "resolve_reference"):
                error = BadUserInput(f"{name!r} is not an entity type")
                results.append(error)  # type: ignore[arg-type]  # raised per item by graphql-core
            else:
                results.extend(super().entities_resolver(info, [representation]))
        return results


def build_schema() -> strawberry.federation.Schema:
    built = HubSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Validating a document costs milliseconds and clients repeat a few documents; the cache
        # is keyed by the rules too, so the guard's per-role rules (no introspection for some
        # roles) are never mixed up. (No ParserCache: a parse error raised from it would bypass
        # the guard's token-limit error code.)
        # The ValidationCache comes before the AccessGuard: the guard checks the limits after
        # the (cached) validation has found the document valid.
        # ReadFence before the AccessGuard: hooks end in reverse order, so the caller's read
        # fence is taken after the mutation and its audit row (hub/schema/extensions.py).
        # TrustedDocumentParse: a document run by id comes parsed (once per process).
        extensions=[
            ErrorCodes,
            TrustedDocumentParse,
            lambda: ValidationCache(maxsize=256),
            ReadFence,
            AccessGuard,
        ],
        federation_version="2.5",
        # InteractionType and IdentityKind: codes of the vocabulary kept as data (hub.vocabulary).
        scalar_overrides=SCALARS,
    )
    # Masking by construction: a String/JSON field that neither masks nor declares itself not
    # personal stops the hub from starting (hub.schema.permissions).
    check_personal_fields(built._schema)
    return built


schema = build_schema()


def schema_sdl() -> str:
    return schema.as_str() + "\n"
