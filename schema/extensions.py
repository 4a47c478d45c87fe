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
  succeeded), so every feature's mutations are audited without their involvement. The row is
  committed before any mutation resolver runs ("attempted"), and its outcome recorded after:
  a mutation whose row cannot be written does not run (AUDIT_UNAVAILABLE, or
  SERVICE_UNAVAILABLE in an outage), so no change commits without its audit row.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    ValidationRule,
    validate,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperationType

from hub.access.audit import audit_targets
from hub.access.inputs import input_limits_rule
from hub.access.keys import Role
from hub.access.limits import limits_rule
from hub.access.policy import can_introspect, can_use_graphql, can_write
from hub.access.request_limits import limits_by_text
from hub.context import Context
from hub.core.errors import Forbidden, HubError, ServiceUnavailable
from hub.core.faults import database_unavailable
from hub.core.request_keys import AUDIT_ENGINE_KEY, ROUTER_KEY, TRUSTED_DOCUMENT_KEY
from hub.core.text import storable
from hub.db.replica import ReadRouter
from hub.models import AUDIT_LOG
from hub.schema.webhooks import WEBHOOK_MUTATIONS

logger = logging.getLogger("hub.audit")
_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)
_TOKENS = "tokens. Parsing aborted"


def _strip_suggestion(error: GraphQLError) -> GraphQLError:
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(message, nodes=error.nodes, extensions=error.extensions)


def token_code(error: GraphQLError, limit: int) -> GraphQLError:
    """The parser's token-limit error as TOO_MANY_TOKENS; other errors as they are."""
    if _TOKENS not in error.message:
        return error
    return GraphQLError(
        f"the document has more than {limit} tokens; send a smaller query",
        nodes=error.nodes,
        extensions={"code": "TOO_MANY_TOKENS", "maxTokens": limit},
    )


class AuditUnavailable(HubError):
    """The mutation's audit row could not be written, so the mutation did not run."""

    code = "AUDIT_UNAVAILABLE"


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


def _audit_engine(context: Context) -> AsyncEngine:
    """The app's audit pool (``hub.http.resources``), else the primary."""
    engine = context.extras.get(AUDIT_ENGINE_KEY)
    return engine if isinstance(engine, AsyncEngine) else context.writer


class TrustedDocumentParse(SchemaExtension):
    """A trusted document (run by id) is parsed once per process (hub.http.documents), not per
    request: its ``DocumentNode`` comes in the context, and Strawberry skips its own parse.
    It was validated at registration, so no parse error (nor token limit) is skipped."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context) and self.execution_context.graphql_document is None:
            parsed = context.extras.get(TRUSTED_DOCUMENT_KEY)
            if isinstance(parsed, DocumentNode):
                self.execution_context.graphql_document = parsed
        yield


def _manages_own_webhooks(context: Context, mutation: OperationDefinitionNode) -> bool:
    """A PARTNER may run mutations on its own webhooks only (every root field one of them)."""
    if context.principal.role is not Role.PARTNER:
        return False
    selections = mutation.selection_set.selections
    return bool(selections) and all(
        isinstance(s, FieldNode) and s.name.value in WEBHOOK_MUTATIONS for s in selections
    )


@contextlib.asynccontextmanager
async def _autocommit(context: Context) -> AsyncIterator[AsyncConnection]:
    """An audit-pool connection whose statements commit on their own: one audit write is one
    round trip (no BEGIN, no COMMIT). Every resolver-path mutation writes two, through a pool of
    five connections: at three round trips each, 96 concurrent mutations on a loaded machine
    queued past the pool timeout (AUDIT_UNAVAILABLE, then the operation's TIMEOUT)."""
    async with _audit_engine(context).connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


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
            error = token_code(error, context.settings.max_tokens)
            return _strip_suggestion(error) if hide_hints else error

        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [clean(error) for error in result.errors]  # type: ignore[union-attr]
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                clean(error) for error in self.execution_context.pre_execution_errors
            ]

    def on_validate(self) -> Iterator[None]:
        """The limits (depth, aliases, cost by page sizes; list lengths, filter width and
        storable text of every argument and variable, ``hub.access.inputs``), after the cached
        validation found the document valid and before any resolver runs (the extension order
        in hub.graphql puts the ValidationCache first)."""
        context = self._context()
        ec = self.execution_context
        if context is not None and ec.graphql_document is not None and not ec.pre_execution_errors:
            variables = dict(ec.variables or {})
            # Within the limits (hub.access.request_limits: the verdict of the validation below,
            # without walking a known text again): nothing to report. Else the walk, for the
            # errors.
            known = limits_by_text(
                ec.schema._schema, ec.graphql_document, ec.query, context.settings
            )
            if known is not None and known.within(variables):
                yield
                return
            errors = validate(
                ec.schema._schema,
                ec.graphql_document,
                [
                    limits_rule(context.settings, variables),
                    input_limits_rule(context.settings, variables),
                ],
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
        if context is not None and not can_use_graphql(context.principal):
            # The gates refuse SOURCE keys before this; whatever path reaches here, too.
            raise Forbidden("a SOURCE key only sends tracking data to /v1/*; no GraphQL")
        mutation = self._mutation() if context is not None else None
        if context is None or mutation is None:
            yield
            return
        if not can_write(context.principal) and not _manages_own_webhooks(context, mutation):
            with contextlib.suppress(Exception):  # logged inside; the refusal stands anyway
                await self._audit_attempt(context, mutation, success=False, codes=["FORBIDDEN"])
            raise Forbidden(
                f"{context.principal.role} keys may not run mutations; use an ADMIN or FRONTEND key"
            )
        # The audit row is written (and committed) before any mutation resolver runs: if it
        # cannot be written, nothing runs, so no change can commit without its row. The row
        # reads "attempted" until the outcome replaces it below.
        row_id = await self._audit_attempt(context, mutation, success=False, codes=None)
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        codes = [str((error.extensions or {}).get("code", "")) for error in errors]
        await self._audit_outcome(context, row_id, success=not errors, codes=codes)

    def _details(self, codes: list[str] | None) -> dict[str, Any]:
        details: dict[str, Any] = {"operationName": self.execution_context.operation_name}
        if codes is None:
            details["outcome"] = "attempted"
            details["errors"] = []
        else:
            details["errors"] = codes
        return storable(details)  # type: ignore[no-any-return]

    async def _audit_attempt(
        self,
        context: Context,
        mutation: OperationDefinitionNode,
        *,
        success: bool,
        codes: list[str] | None,
    ) -> int:
        """Insert the operation's audit row; its id. Raises if it cannot be written (an outage
        as SERVICE_UNAVAILABLE): the caller must then not run the mutation."""
        variables = dict(self.execution_context.variables or {})
        fields, ids = audit_targets(mutation, variables)
        principal = context.principal
        # Whatever the input, the row must be storable (NUL and lone surrogates replaced).
        try:
            async with _autocommit(context) as connection:
                row_id = await connection.scalar(
                    AUDIT_LOG.insert()
                    .values(
                        key_id=principal.key_id,
                        actor=storable(principal.name),
                        role=principal.role.value,
                        action=storable(",".join(fields) or "mutation"),
                        target_ids=storable(ids),
                        success=success,
                        details=self._details(codes),
                    )
                    .returning(AUDIT_LOG.c.id)
                )
        except Exception as error:
            if database_unavailable(error):  # an outage: one line, no traceback
                logger.warning("could not write the audit row for %s: %r", fields, error)
                raise ServiceUnavailable(
                    "the audit log cannot be written right now; nothing was changed"
                ) from error
            logger.exception("could not write the audit row for %s", fields)
            raise AuditUnavailable(
                "the audit row of this mutation could not be written; nothing was changed"
            ) from error
        return int(row_id)

    async def _audit_outcome(
        self, context: Context, row_id: int, *, success: bool, codes: list[str]
    ) -> None:
        """Record how the operation ended on its row. A failure here leaves the row saying
        "attempted" (the change, if any, has its row), so it is logged, never raised."""
        try:
            async with _autocommit(context) as connection:
                await connection.execute(
                    AUDIT_LOG.update()
                    .where(AUDIT_LOG.c.id == row_id)
                    .values(success=success, details=self._details(codes))
                )
        except Exception as error:
            if database_unavailable(error):
                logger.warning("could not record the outcome of audit row %d: %r", row_id, error)
            else:
                logger.exception("could not record the outcome of audit row %d", row_id)


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
