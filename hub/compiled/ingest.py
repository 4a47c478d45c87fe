"""The compiled ingest path: ``recordInteraction``/``recordInteractions`` without Strawberry's
per-field execution and without SQLAlchemy, with the same answers.

A request is served here when its (cached) document is exactly one of the two mutations, its
selection uses only what this module can render (see ``_PAYLOAD``/``_INTERACTION``), and the
caller may write and sees everything unmasked and unscoped. Then, per request: the variable is
coerced by ``input_coercer`` (graphql-core's rules, built once per document), turned into the
domain inputs, and ``hub.ingest.record.record`` runs on a bare asyncpg connection
(``hub.db.statements.DriverSql``) in one transaction that also writes the audit row; after COMMIT
the metrics are counted and the payload is rendered from the results.

Everything else falls back to the resolver path, which answers exactly as it always has:
documents it does not cover, variables that do not coerce, documents over the limits, callers
it does not serve, a batch over the size limit or empty, and — after rolling its transaction
back, so nothing of it is written — any error (a single call's ``BAD_USER_INPUT``/``NOT_FOUND``,
a ``CONFLICT``), a plan that merges existing customers (``hub.identity.merges`` runs on
SQLAlchemy) and
any database failure before COMMIT. Errors therefore always carry the resolver path's message,
``extensions.code``, locations and path, and the merges list this path renders is always empty.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass
from typing import Any

import asyncpg
import orjson
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
    validate,
)
from graphql.pyutils import Undefined, is_iterable
from graphql.type import (
    GraphQLEnumType,
    assert_leaf_type,
    is_input_object_type,
    is_list_type,
    is_non_null_type,
    is_required_input_field,
)
from graphql.utilities import type_from_ast
from graphql.utilities.coerce_input_value import coerce_default_value
from starlette.requests import Request
from starlette.responses import Response

from hub.access.audit import audit_targets
from hub.access.keys import Principal
from hub.access.limits import limits_rule
from hub.access.masking import mask_text
from hub.access.policy import can_see_pii
from hub.compiled.masks import maskers
from hub.core.errors import HubError
from hub.core.faults import UNAVAILABLE_MESSAGE, database_unavailable, unavailable_extensions
from hub.core.ids import to_global_id, uuid_from_global_id
from hub.core.lru import LRU
from hub.core.request_keys import OUTCOME_KEY
from hub.core.settings import Settings
from hub.db.engine import create_driver_pool
from hub.db.statements import DriverSql
from hub.ingest.record import NeedsMerge, record
from hub.ingest.store import AuditRow, ItemResult, stored_any
from hub.ingest.validation import InteractionInput
from hub.ops.metrics import HubMetrics, count_stored

logger = logging.getLogger("hub.compiled")

SINGLE = "recordInteraction"
BATCH = "recordInteractions"

Render = Callable[[ItemResult], Any]
Fields = list[tuple[str, Render]]

# Interaction fields rendered from the stored row, as schema.interaction.Interaction does.
_INTERACTION: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "__typename": lambda row: "Interaction",
    "id": lambda row: to_global_id("Interaction", str(row["id"])),
    "occurredAt": lambda row: row["occurred_at"].isoformat(),
    "type": lambda row: row["type"],
    "direction": lambda row: row["direction"],
    "summary": lambda row: row["summary"],
    "sentiment": lambda row: row["sentiment"],
    "outcome": lambda row: row["outcome"],
    "agent": lambda row: row["agent"],
    "attributes": lambda row: row["attributes"],
}


def _masked_interaction(
    settings: Settings, field_masks: Mapping[tuple[str, str], str] | None
) -> InteractionFields | None:
    """``_INTERACTION`` for a caller without the ``pii`` scope: every field the schema declares
    ``PersonalData`` (``field_masks``, ``hub.schema.permissions.personal_field_masks``) through
    the very mask of ``hub.access.masking`` the resolvers apply. None (masked callers take the
    resolver path) when the masks are unknown, a payload field this path renders is declared
    personal, or a mask is one this module cannot apply."""
    if field_masks is None:
        return None
    masks: dict[str, Callable[[Any], Any]] = {**maskers(settings), "text": mask_text}
    fields = dict(_INTERACTION)
    for (type_name, name), kind in field_masks.items():
        if type_name in _PAYLOAD_TYPES:
            return None
        if type_name != "Interaction" or name not in fields:
            continue
        mask = masks.get(kind)
        if mask is None:
            return None
        fields[name] = _masked(fields[name], mask)
    return fields


def _masked(
    plain: Callable[[Mapping[str, Any]], Any], mask: Callable[[Any], Any]
) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: mask(plain(row))


# Payload fields (RecordInteractionPayload, StoredInteraction); ``merges`` is always empty here
# (a merging plan falls back before anything is written) and ``customer`` is not covered.
_PAYLOAD: dict[str, Render] = {
    "created": lambda r: r.created,
    "duplicate": lambda r: r.duplicate,
    "warnings": lambda r: list(r.warnings),
    "merges": lambda r: [],
}
# The payload types this path renders (besides Interaction): none of their fields may be
# personal for it to serve a masked caller.
_PAYLOAD_TYPES = frozenset({"RecordInteractionPayload", "StoredInteraction", "RejectedInteraction"})
_REJECTED: dict[str, Render] = {
    "__typename": lambda r: "RejectedInteraction",
    "index": lambda r: r.index,
    "code": lambda r: _code(r),
    "message": lambda r: r.error.message if r.error is not None else "",
}


class NotCovered(Exception):
    """This document is not served here: the resolver path answers it."""


class _Fallback(Exception):
    """This call ended in an error: rolled back, the resolver path answers (and reports it)."""


class CommitFailed(Exception):
    """COMMIT itself failed (a lost connection): the call may or may not have been stored."""


# Anything the driver or the server can raise: the resolver path answers instead (and tells an
# outage apart with hub.core.faults).
_DATABASE_FAULTS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


class _Invalid(Exception):
    """A value graphql-core's ``coerce_input_value`` would not accept (or, with ``max_list``,
    a list longer than the input limits allow: the resolver path reports it)."""


Coercer = Callable[[Any], Any]


def input_coercer(type_: Any, max_list: int | None = None) -> Coercer:
    """A coercion function for one GraphQL input type, built once: the steps of graphql-core's
    ``coerce_input_value`` (non-null, lists with the single-value rule, input objects with
    their defaults and out types, leaf types through their own ``coerce_input_value``) without
    its per-value type dispatch. Raises ``_Invalid`` wherever that returns ``Undefined``, and
    (``max_list``) at a list longer than that: the list check of ``hub.access.inputs``, done on
    the same walk."""
    if is_non_null_type(type_):
        inner = input_coercer(type_.of_type, max_list)

        def non_null(value: Any) -> Any:
            if value is None or value is Undefined:
                raise _Invalid
            return inner(value)

        return non_null
    if is_list_type(type_):
        item = input_coercer(type_.of_type, max_list)

        def listed(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            if not is_iterable(value):
                return [item(value)]
            if max_list is not None and isinstance(value, list) and len(value) > max_list:
                raise _Invalid
            return [item(entry) for entry in value]

        return listed
    if is_input_object_type(type_):
        if type_.is_one_of:
            raise NotCovered(f"oneOf input {type_.name}")
        names = frozenset(type_.fields)
        fields = [
            (
                name,
                field.out_name or name,
                input_coercer(field.type, max_list),
                is_required_input_field(field),
                coerce_default_value(field),
            )
            for name, field in type_.fields.items()
        ]
        out_type = type_.out_type

        def input_object(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            if not isinstance(value, dict) or not names.issuperset(value):
                raise _Invalid
            coerced: dict[str, Any] = {}
            for name, out_name, coerce, required, default in fields:
                given = value.get(name, Undefined)
                if given is Undefined:
                    if required:
                        raise _Invalid
                    if default is not Undefined:
                        coerced[out_name] = default
                else:
                    coerced[out_name] = coerce(given)
            return out_type(coerced)

        return input_object
    leaf = assert_leaf_type(type_)
    if isinstance(leaf, GraphQLEnumType):
        # Every name once, through the type's own coercion (Strawberry's wraps its Python enum).
        table = {name: leaf.coerce_input_value(name) for name in leaf.values}

        def enum(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            try:
                return table[value]
            except (KeyError, TypeError):
                raise _Invalid from None

        return enum

    def scalar(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        try:
            coerced = leaf.coerce_input_value(value)
        except Exception:  # as graphql-core: any failure means "not valid"
            raise _Invalid from None
        if coerced is Undefined:
            raise _Invalid
        return coerced

    return scalar


def _code(result: ItemResult) -> str:
    error = result.error
    return str(
        ((error.extensions or {}) if error is not None else {}).get("code", "BAD_USER_INPUT")
    )


def _fields(selection_set: SelectionSetNode | None) -> list[FieldNode]:
    """Plain fields only: no fragments, directives or repeated response keys."""
    if selection_set is None:
        raise NotCovered("no selection")
    fields: list[FieldNode] = []
    keys: set[str] = set()
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives:
            raise NotCovered("fragment or directive")
        key = (selection.alias or selection.name).value
        if key in keys:
            raise NotCovered(f"repeated response key {key}")
        keys.add(key)
        fields.append(selection)
    return fields


def _constant(value: str) -> Render:
    return lambda result: value


InteractionFields = Mapping[str, Callable[[Mapping[str, Any]], Any]]


def _interaction_renderer(node: FieldNode, known: InteractionFields) -> Render:
    parts: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = []
    for field in _fields(node.selection_set):
        render = known.get(field.name.value)
        if render is None or field.arguments:
            raise NotCovered(f"Interaction.{field.name.value}")
        parts.append(((field.alias or field.name).value, render))

    def interaction(result: ItemResult) -> dict[str, Any]:
        row = result.interaction
        return {key: render(row) for key, render in parts}

    return interaction


def _object_renderer(
    node: FieldNode,
    typename: str,
    known: Mapping[str, Render],
    stored: bool,
    interaction_fields: InteractionFields,
) -> Callable[[ItemResult], dict[str, Any]]:
    parts: Fields = []
    for field in _fields(node.selection_set):
        name = field.name.value
        if field.arguments:
            raise NotCovered(f"{typename}.{name} with arguments")
        if name == "__typename":
            parts.append(((field.alias or field.name).value, _constant(typename)))
        elif name == "interaction" and typename != "RejectedInteraction":
            interaction = _interaction_renderer(field, interaction_fields)
            parts.append(((field.alias or field.name).value, interaction))
        elif name == "index" and stored:
            parts.append(((field.alias or field.name).value, lambda r: r.index))
        elif name in known:
            parts.append(((field.alias or field.name).value, known[name]))
        else:
            raise NotCovered(f"{typename}.{name}")

    def render(result: ItemResult) -> dict[str, Any]:
        return {key: part(result) for key, part in parts}

    return render


def _batch_typename(results: list[ItemResult]) -> str:
    return "RecordInteractionsPayload"


def _listed(
    render: Callable[[ItemResult], dict[str, Any]], *, rejected: bool
) -> Callable[[list[ItemResult]], list[dict[str, Any]]]:
    """The rendered stored (or rejected) items, in input order."""

    def listed(results: list[ItemResult]) -> list[dict[str, Any]]:
        return [render(r) for r in results if (r.error is not None) is rejected]

    return listed


@dataclass(frozen=True)
class IngestOperation:
    """A covered document: which mutation, its response key, the variable holding the input(s),
    and how to render the payload from the results."""

    operation: OperationDefinitionNode
    root: FieldNode
    field: str
    key: str
    variable: str
    coerce: Coercer  # the variable's coercion (``input_coercer``)
    render: Callable[[list[ItemResult]], Any]
    # For callers without the pii scope; None: they take the resolver path.
    render_masked: Callable[[list[ItemResult]], Any] | None
    over_limits: bool
    audit_fields: list[str]


def _payload_renderer(
    root: FieldNode, interaction_fields: InteractionFields
) -> Callable[[list[ItemResult]], Any]:
    """How the root field's payload is rendered from the results (``NotCovered`` if it cannot),
    the interaction's fields by ``interaction_fields``."""
    if root.name.value == SINGLE:
        payload = _object_renderer(
            root, "RecordInteractionPayload", _PAYLOAD, False, interaction_fields
        )

        def render(results: list[ItemResult]) -> Any:
            return payload(results[0])

    else:
        parts: list[tuple[str, Callable[[list[ItemResult]], Any]]] = []
        for field in _fields(root.selection_set):
            key = (field.alias or field.name).value
            if field.name.value == "__typename":
                parts.append((key, _batch_typename))
            elif field.name.value == "stored":
                stored = _object_renderer(
                    field, "StoredInteraction", _PAYLOAD, True, interaction_fields
                )
                parts.append((key, _listed(stored, rejected=False)))
            elif field.name.value == "rejected":
                rejected = _object_renderer(
                    field, "RejectedInteraction", _REJECTED, True, interaction_fields
                )
                parts.append((key, _listed(rejected, rejected=True)))
            else:
                raise NotCovered(field.name.value)

        def render(results: list[ItemResult]) -> Any:
            return {key: part(results) for key, part in parts}

    return render


def _compile(
    schema: GraphQLSchema,
    settings: Settings,
    query: str,
    field_masks: Mapping[tuple[str, str], str] | None = None,
) -> IngestOperation | None:
    try:
        document = parse(query, max_tokens=settings.max_tokens)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or len(document.definitions) != 1:
        return None  # several operations or fragments: the resolver path
    [operation] = operations
    if operation.operation != OperationType.MUTATION or operation.directives:
        return None
    if validate(schema, document):
        return None
    try:
        roots = _fields(operation.selection_set)
        if len(roots) != 1:  # several root fields (a two-field mutation answered 500)
            raise NotCovered("several root fields")
        [root] = roots
        name = root.name.value
        arguments = root.arguments or ()
        if name not in (SINGLE, BATCH) or len(arguments) != 1:
            raise NotCovered(name)
        value = arguments[0].value
        if not isinstance(value, VariableNode):
            raise NotCovered("a literal input")
        definitions = operation.variable_definitions or ()
        if len(definitions) != 1 or definitions[0].default_value is not None:
            raise NotCovered("other variables, or a default input")
        coerce = input_coercer(type_from_ast(schema, definitions[0].type), settings.max_list_length)
        render = _payload_renderer(root, _INTERACTION)
        masked = _masked_interaction(settings, field_masks)
        render_masked = _payload_renderer(root, masked) if masked is not None else None
    except NotCovered as reason:
        logger.debug("ingest not compiled: %s", reason)
        return None
    # Depth, aliases and cost do not depend on the variables here (no page sizes): once.
    over_limits = bool(validate(schema, document, [limits_rule(settings, {})]))
    fields, _ = audit_targets(operation, {})
    return IngestOperation(
        operation=operation,
        root=root,
        field=name,
        key=(root.alias or root.name).value,
        variable=value.name.value,
        coerce=coerce,
        render=render,
        render_masked=render_masked,
        over_limits=over_limits,
        audit_fields=fields,
    )


def domain_input(values: Mapping[str, Any]) -> InteractionInput:
    """A coerced ``RecordInteractionInput`` as the domain input (as its ``to_domain``)."""
    return InteractionInput(
        identities=[(i["kind"], i["value"]) for i in values["identities"]],
        touchpoint_id=uuid_from_global_id(values["touchpointId"], "Touchpoint"),
        type=values["type"],
        direction=values["direction"].value,
        occurred_at=values.get("occurredAt"),
        conversation_key=values.get("conversationKey"),
        summary=values.get("summary"),
        sentiment=values.get("sentiment"),
        outcome=values.get("outcome"),
        agent=values.get("agent"),
        attributes=values.get("attributes"),
        idempotency_key=values.get("idempotencyKey"),
    )


# Stands in for an input that failed before reaching the domain (as in resolvers/ingest.py).
_PLACEHOLDER = InteractionInput(
    identities=[], touchpoint_id=uuid.UUID(int=0), type="", direction=""
)
NOT_COVERED: Any = object()

AUDIT = (
    "INSERT INTO audit_log (key_id, actor, role, action, target_ids, success, details)"
    " VALUES ($1, $2, $3, $4, $5, true, $6)"
)


def _unstorable_text(value: Any) -> bool:
    """Whether a JSON value may hold text PostgreSQL cannot store (``hub.core.text``), keys
    included, found by orjson in C rather than by a walk in Python: a lone surrogate cannot be
    encoded, a NUL is written as ``\\u0000``. (A backslash followed by ``u0000`` in the text
    reads as one too: that request takes the resolver path, which checks it exactly.)"""
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        return True
    return b"\\u0000" in encoded


class CompiledIngest:
    """The compiled ingest path of one app: an asyncpg pool and the document cache."""

    def __init__(
        self,
        pool: Any,
        schema: GraphQLSchema,
        settings: Settings,
        metrics: HubMetrics,
        field_masks: Mapping[tuple[str, str], str],
    ) -> None:
        self.pool = pool
        self.field_masks = field_masks
        self.schema = schema
        self.settings = settings
        self.metrics = metrics
        self.documents: LRU[str, Any] = LRU(256)

    @classmethod
    async def open(
        cls,
        url: str,
        schema: GraphQLSchema,
        settings: Settings,
        metrics: HubMetrics,
        field_masks: Mapping[tuple[str, str], str],
    ) -> CompiledIngest:
        statements = metrics.sql_statements.labels(path="compiled")
        pool = await create_driver_pool(
            url, settings, "hub-ingest", settings.pool_size, on_statement=statements.inc
        )
        return cls(pool, schema, settings, metrics, field_masks)

    async def close(self) -> None:
        await self.pool.close()

    def prepare(self, query: str) -> IngestOperation | None:
        prepared = self.documents.get(query)
        if prepared is None:
            compiled = _compile(self.schema, self.settings, query, self.field_masks)
            prepared = compiled or NOT_COVERED
            self.documents.put(query, prepared)
        return None if prepared is NOT_COVERED else prepared

    async def respond(
        self, request: Request, principal: Principal, payload: Any
    ) -> Response | None:
        """The response of a covered, successful ingest call; ``None``: the resolver path."""
        if request.method != "POST" or not isinstance(payload, dict) or payload.get("extensions"):
            return None
        accept = request.headers.get("accept", "")
        if "multipart" in accept or "event-stream" in accept:
            return None
        query = payload.get("query")
        raw_variables = payload.get("variables") or {}
        if not isinstance(query, str) or not isinstance(raw_variables, dict):
            return None
        if len(query) > self.settings.max_tokens or "mutation" not in query:
            return None
        prepared = self.prepare(query)
        if prepared is None or prepared.over_limits:
            return None
        unmasked = can_see_pii(principal)
        if not unmasked and prepared.render_masked is None:
            return None
        operation_name = payload.get("operationName")
        op_name = prepared.operation.name.value if prepared.operation.name else None
        if operation_name is not None and operation_name != op_name:
            return None
        # graphql-core's coercion of the one variable, as get_variable_values does it, with the
        # list limit of hub.access.inputs on the same walk; any failure goes to the resolver
        # path, which reports it. (get_variable_values also checks the input's nesting depth
        # along the type: these types nest five levels at most.)
        raw = raw_variables.get(prepared.variable, Undefined)
        try:
            value = prepared.coerce(raw)
        except _Invalid:
            return None
        if raw is not Undefined and _unstorable_text(raw):
            return None  # text PostgreSQL cannot store: reported there
        items: list[InteractionInput] = []
        prefailed: dict[int, HubError] = {}
        try:
            if prepared.field == SINGLE:
                if not isinstance(value, dict):
                    return None
                items.append(domain_input(value))
            else:
                if not value or len(value) > self.settings.max_batch_size:
                    return None  # the resolver path reports it
                for index, raw in enumerate(value):
                    try:
                        items.append(domain_input(raw))
                    except HubError as error:
                        prefailed[index] = error
                        items.append(_PLACEHOLDER)
        except HubError:
            return None
        _, ids = audit_targets(prepared.operation, raw_variables)
        audit = AuditRow(
            key_id=principal.key_id,
            actor=principal.name,
            role=principal.role.value,
            action=",".join(prepared.audit_fields) or "mutation",
            target_ids=ids,
            details=orjson.dumps(
                {"operationName": operation_name or op_name, "errors": []}
            ).decode(),
        )
        try:
            results = await self._record(items, prefailed, audit, prepared.field == SINGLE)
        except CommitFailed:
            # As the resolver path reports a lost database (hub.graphql.ErrorCodes); a retry
            # with the same idempotency key returns the original if it was stored after all.
            logger.warning("database unreachable at COMMIT of %s", prepared.key, exc_info=True)
            request.scope[OUTCOME_KEY] = "error"
            failure = GraphQLError(
                UNAVAILABLE_MESSAGE,
                nodes=[prepared.root],
                path=[prepared.key],
                extensions=unavailable_extensions(),
            )
            body = {"data": None, "errors": [failure.formatted]}
            return Response(orjson.dumps(body), media_type="application/json")
        if results is None:
            return None
        count_stored({"metrics": self.metrics}, results)
        render = prepared.render if unmasked else prepared.render_masked
        assert render is not None  # checked before anything ran
        data = {prepared.key: render(results)}
        return Response(orjson.dumps({"data": data}), media_type="application/json")

    async def _record(
        self,
        items: list[InteractionInput],
        prefailed: dict[int, HubError],
        audit: AuditRow,
        single: bool,
    ) -> list[ItemResult] | None:
        """Record and audit in one transaction; None (rolled back) when the resolver path must
        answer. A failure of COMMIT itself is raised: it may have committed, so no retry.

        Round trips for a new person: BEGIN with the advisory locks, the claims, the store
        statement (with events and the audit row), COMMIT; plus the customers' row locks when
        the identifiers are known."""
        try:
            connection = await self.pool.acquire()
        except _DATABASE_FAULTS:
            return None
        try:
            try:
                results = await record(
                    DriverSql(connection, begin=True, generic_plans=len(items) == 1),
                    items,
                    self.settings,
                    prefailed=prefailed,
                    audit=audit,
                )
                if single and results[0].error is not None:
                    raise _Fallback
                if not stored_any(results):  # nothing new: the audit row was not written yet
                    await connection.execute(AUDIT, *astuple(audit))
            except (_Fallback, NeedsMerge, HubError, *_DATABASE_FAULTS) as reason:
                await _quiet_rollback(connection)
                if database_unavailable(reason):
                    # The server dropped it (a restart?): its idle siblings are suspect too.
                    await self.pool.expire_connections()
                return None
            except BaseException:
                await _quiet_rollback(connection)
                raise
            if connection.is_in_transaction():
                try:
                    await connection.execute("COMMIT")
                except _DATABASE_FAULTS as fault:
                    raise CommitFailed from fault
            return results
        finally:
            await self.pool.release(connection)


async def _quiet_rollback(connection: asyncpg.Connection) -> None:
    try:
        if connection.is_in_transaction():
            await connection.execute("ROLLBACK")
    except Exception:  # a lost connection: the server rolls back by itself
        logger.debug("rollback failed", exc_info=True)
