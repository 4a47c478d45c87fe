"""The schema's extensions: access control (limits, introspection, write guard, audit) and the
replica read fence.

``AccessGuard`` runs for every operation on every transport (HTTP and websockets):
- parse and validation limits from the settings (tokens, depth, aliases, cost), before any
  resolver or database work;
- introspection only for ADMIN, ANALYST and development mode, and no "Did you mean" hints for
  anyone else (they would reveal the schema piece by piece);
- mutations only for roles that may write (``hub.access.policy.can_write``): a new mutation is
  guarded without its author doing anything;
- an audit row for every mutation operation (who, which fields, which ids, when, whether it
  succeeded), so every feature's mutations are audited without their involvement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    ValidationRule,
    validate,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperationType

from hub.access.audit import audit_targets
from hub.access.limits import limits_rule
from hub.access.policy import can_introspect, can_write
from hub.context import Context
from hub.core.errors import Forbidden
from hub.core.faults import database_unavailable
from hub.core.request_keys import ROUTER_KEY
from hub.db.replica import ReadRouter
from hub.models import AUDIT_LOG

logger = logging.getLogger("hub.audit")
_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)
_TOKENS = "tokens. Parsing aborted"


def _strip_suggestion(error: GraphQLError) -> GraphQLError:
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(message, nodes=error.nodes, extensions=error.extensions)


def _token_code(error: GraphQLError, limit: int) -> GraphQLError:
    if _TOKENS not in error.message:
        return error
    return GraphQLError(
        f"the document has more than {limit} tokens; send a smaller query",
        nodes=error.nodes,
        extensions={"code": "TOO_MANY_TOKENS", "maxTokens": limit},
    )


class NoFederationSdl(ValidationRule):
    """``_service { sdl }`` (Federation) is introspection by another name."""

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.context.get_parent_type()
        if node.name.value == "_service" and parent is self.context.schema.query_type:
            self.report_error(
                GraphQLError(
                    "GraphQL introspection has been disabled, but the requested query "
                    "contained the field '_service'.",
                    node,
                )
            )


class AccessGuard(SchemaExtension):
    def _context(self) -> Context | None:
        context = self.execution_context.context
        return context if isinstance(context, Context) else None

    def on_operation(self) -> Iterator[None]:
        context = self._context()
        if context is not None:
            settings = context.settings
            self.execution_context.parse_options["max_tokens"] = settings.max_tokens
            # Only rules that are the same for every request of a role go into the validation
            # rules: the validation cache is keyed by them. The limits depend on the variables
            # (page sizes), so they are checked on their own in on_validate.
            rules: list[type[ValidationRule]] = []
            if not can_introspect(context.principal):
                rules += [NoSchemaIntrospectionCustomRule, NoFederationSdl]
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                *rules,
            )
        yield
        if context is None:
            return
        hide_hints = not can_introspect(context.principal)

        def clean(error: GraphQLError) -> GraphQLError:
            error = _token_code(error, context.settings.max_tokens)
            return _strip_suggestion(error) if hide_hints else error

        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [clean(error) for error in result.errors]  # type: ignore[union-attr]
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                clean(error) for error in self.execution_context.pre_execution_errors
            ]

    def on_validate(self) -> Iterator[None]:
        """The limits (depth, aliases, cost by page sizes), after the cached validation found
        the document valid and before any resolver runs (the extension order in hub.graphql
        puts the ValidationCache first)."""
        context = self._context()
        ec = self.execution_context
        if context is not None and ec.graphql_document is not None and not ec.pre_execution_errors:
            variables = dict(ec.variables or {})
            errors = validate(
                ec.schema._schema, ec.graphql_document, [limits_rule(context.settings, variables)]
            )
            if errors:
                ec.pre_execution_errors = errors
        yield

    def _mutation(self) -> OperationDefinitionNode | None:
        document = self.execution_context.graphql_document
        if document is None:
            return None
        name = self.execution_context.operation_name
        for definition in document.definitions:
            if (
                isinstance(definition, OperationDefinitionNode)
                and definition.operation is OperationType.MUTATION
                and (name is None or (definition.name and definition.name.value == name))
            ):
                return definition
        return None

    async def on_execute(self) -> Any:
        context = self._context()
        mutation = self._mutation() if context is not None else None
        if context is None or mutation is None:
            yield
            return
        if not can_write(context.principal):
            await self._audit(context, mutation, success=False, codes=["FORBIDDEN"])
            raise Forbidden(
                f"{context.principal.role} keys may not run mutations; use an ADMIN or FRONTEND key"
            )
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        codes = [str((error.extensions or {}).get("code", "")) for error in errors]
        await self._audit(context, mutation, success=not errors, codes=codes)

    async def _audit(
        self,
        context: Context,
        mutation: OperationDefinitionNode,
        *,
        success: bool,
        codes: list[str],
    ) -> None:
        variables = dict(self.execution_context.variables or {})
        fields, ids = audit_targets(mutation, variables)
        principal = context.principal
        try:
            async with context.engine.begin() as connection:
                # inline(): no RETURNING id; a partner's connection (row security) may append
                # to the audit log but never read it.
                await connection.execute(
                    AUDIT_LOG.insert()
                    .inline()
                    .values(
                        key_id=principal.key_id,
                        actor=principal.name,
                        role=principal.role.value,
                        action=",".join(fields) or "mutation",
                        target_ids=ids,
                        success=success,
                        details={
                            "operationName": self.execution_context.operation_name,
                            "errors": codes,
                        },
                    )
                )
        except Exception as error:  # the audit must never turn a done mutation into an error
            if database_unavailable(error):  # an outage: one line per row, no traceback
                logger.warning("could not write the audit row for %s: %r", fields, error)
            else:
                logger.exception("could not write the audit row for %s", fields)


class ReadFence(SchemaExtension):
    """After every mutation — over HTTP or a websocket — the caller's read fence is recorded
    (``ReadRouter.record_write``), before the answer goes out."""

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        extras = getattr(context, "extras", None)
        router = extras.get(ROUTER_KEY) if isinstance(extras, dict) else None
        if (
            isinstance(router, ReadRouter)
            and self.execution_context.operation_type is StrawberryOperationType.MUTATION
        ):
            await router.record_write(context.principal)
