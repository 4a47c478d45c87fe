"""Serve a GraphQL request from one compiled SQL statement, or say it cannot (``None``).

Per request: the body is parsed with orjson; parsing and validation of the query text are
cached; variables are coerced by graphql-core (the same rules the resolver path applies); the
plan is looked up by (query, operation, variable shape); its parameters are bound;
one prepared statement runs on a dedicated asyncpg pool; PostgreSQL's JSON bytes are spliced into
the response without being decoded. Whatever the compiler does not cover, and every request that
ends in an error, returns ``None`` so the resolver path answers exactly as it always has.

Every role is served, and ``respond`` derives from the caller's principal everything that
depends on it (one enforcement point: callers cannot pass a wrong combination). For a caller
without the ``pii`` scope the plan masks personal fields (``hub.compiled.masks``: in the
statement where SQL is exact, else in one pass over the decoded answer); a row-scoped (PARTNER)
caller's statement runs on a connection of ``hub.compiled.pools.ScopedPools``, whose session is
the partner role with the key's scope from its start, so PostgreSQL's row security applies the
scope and the read is the request's only round trip. Plans are keyed by whether they mask, so one
plan serves every caller of the same kind.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from graphql import (
    ArgumentNode,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    NamedTypeNode,
    Node,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_variable_values
from starlette.requests import Request
from starlette.responses import Response

from hub.access.keys import Principal
from hub.access.masking import personal_keys
from hub.access.policy import can_see_pii
from hub.access.request_limits import DocumentLimits
from hub.access.row_security import row_scoped
from hub.compiled import masks
from hub.compiled.errors import NotCompilable
from hub.compiled.planner import PLAIN_SCALARS, Plan, Planner
from hub.compiled.pools import ScopedPools, open_pool
from hub.core.faults import database_unavailable
from hub.core.lru import LRU
from hub.core.settings import Settings

logger = logging.getLogger("hub.compiled")


@dataclass(frozen=True)
class Prepared:
    """A parsed and validated query document (``None`` fields: not servable here)."""

    document: DocumentNode | None
    fragments: dict[str, FragmentDefinitionNode]
    # Per operation (by identity): its plain variables, found once per document, not per request.
    plain: dict[int, frozenset[str]] = field(default_factory=dict)
    # The access layer's limits, walked once per document and page sizes, not per request.
    limits: DocumentLimits | None = None


NOT_COMPILABLE = Plan(statement="", params=None)  # type: ignore[arg-type]
REJECTED = Prepared(document=None, fragments={})


def _count_variable_uses(node: Node, direct: Counter[str], every: Counter[str]) -> None:
    if isinstance(node, ArgumentNode) and isinstance(node.value, VariableNode):
        direct[node.value.name.value] += 1
    if isinstance(node, VariableNode):
        every[node.name.value] += 1
    for key in node.keys:
        value = getattr(node, key, None)
        if isinstance(value, Node):
            _count_variable_uses(value, direct, every)
        elif isinstance(value, tuple | list):
            for item in value:
                if isinstance(item, Node):
                    _count_variable_uses(item, direct, every)


def _plain_variables(document: DocumentNode, operation: OperationDefinitionNode) -> frozenset[str]:
    """Variables that become statement parameters: of type ID, String or Int (nullable or not)
    and only ever used as a whole argument value. A variable used inside a list or an input
    object literal shapes the SQL, so its value is part of the plan's cache key instead."""
    direct: Counter[str] = Counter()
    every: Counter[str] = Counter()
    _count_variable_uses(operation.selection_set, direct, every)
    for fragment in document.definitions:
        if isinstance(fragment, FragmentDefinitionNode):
            _count_variable_uses(fragment.selection_set, direct, every)
    names = set()
    for definition in operation.variable_definitions or ():
        node = definition.type
        if isinstance(node, NonNullTypeNode):
            node = node.type
        name = definition.variable.name.value
        if (
            isinstance(node, NamedTypeNode)
            and node.name.value in PLAIN_SCALARS
            and direct[name] == every[name]
        ):
            names.add(name)
    return frozenset(names)


def _select_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


UNREAD: Any = object()
"""``respond``'s default payload: the body has not been parsed yet."""


async def json_body(request: Request) -> Any:
    """The request's body parsed as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


class DatabaseUnavailable(Exception):
    """The compiled statement could not reach the database (the caller answers
    SERVICE_UNAVAILABLE, retryable)."""


class CompiledReads:
    """The compiled read path of one app: an asyncpg pool and the caches."""

    def __init__(
        self,
        pool: Any,
        schema: GraphQLSchema,
        settings: Settings,
        scoped: ScopedPools,
        replica_pool: Any = None,
        personal: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.pool = pool
        # Row-scoped callers' connections, a pool per scope (hub.compiled.pools).
        self.scoped = scoped
        # Queries hub.db.replica routes to the read replica run here (HUB_READ_DATABASE_URL).
        self.replica_pool = replica_pool
        self.schema = schema
        self.settings = settings
        self.documents: LRU[str, Prepared] = LRU(512)
        self.plans: LRU[tuple[Any, ...], Plan] = LRU(2048)
        # (type, field) → mask kind of every personal field (hub.schema.permissions
        # .personal_field_masks): what a caller without ``pii`` reads masked.
        self.personal = personal or {}

    @classmethod
    async def open(
        cls,
        url: str,
        schema: GraphQLSchema,
        settings: Settings,
        replica_url: str | None = None,
        personal: dict[tuple[str, str], str] | None = None,
    ) -> CompiledReads:
        pool = await open_pool(url, settings)
        replica_pool = await open_pool(replica_url, settings) if replica_url else None
        scoped = ScopedPools(settings, url, replica_url)
        return cls(pool, schema, settings, scoped, replica_pool, personal)

    async def close(self) -> None:
        await self.scoped.close()
        await self.pool.close()
        if self.replica_pool is not None:
            await self.replica_pool.close()

    def prepare(self, query: str) -> Prepared:
        prepared = self.documents.get(query)
        if prepared is None:
            try:
                document = parse(query)
            except GraphQLError:
                document = None
            if document is not None and validate(self.schema, document):
                document = None
            if document is None:
                prepared = REJECTED
            else:
                fragments = {
                    d.name.value: d
                    for d in document.definitions
                    if isinstance(d, FragmentDefinitionNode)
                }
                limits = DocumentLimits(self.schema, document, self.settings)
                prepared = Prepared(document=document, fragments=fragments, limits=limits)
            self.documents.put(query, prepared)
        return prepared

    def plan_for(
        self,
        query: str,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variable_values: VariableValues,
        raw_variables: dict[str, Any],
        masked: bool = False,
    ) -> Plan:
        assert prepared.document is not None
        plain = prepared.plain.get(id(operation))
        if plain is None:
            plain = prepared.plain[id(operation)] = _plain_variables(prepared.document, operation)
        shape = tuple(
            (name, variable_values.coerced.get(name) is None)
            if name in plain
            else (name, orjson.dumps(raw_variables.get(name), option=orjson.OPT_SORT_KEYS))
            for name in sorted(variable_values.coerced)
        )
        name = operation.name.value if operation.name else None
        key = (query, name, shape, masked)
        plan = self.plans.get(key)
        if plan is None:
            planner = Planner(
                self.schema,
                prepared.fragments,
                variable_values,
                plain,
                self.settings,
                self.personal if masked else None,
            )
            try:
                plan = planner.plan(operation)
            except NotCompilable as reason:
                logger.debug("not compiled: %s", reason)
                plan = NOT_COMPILABLE
            self.plans.put(key, plan)
        return plan

    async def respond(
        self,
        request: Request,
        principal: Principal,
        payload: Any = UNREAD,
        replica: bool = False,
    ) -> Response | None:
        """The response for a compilable, error-free query; ``None`` for everything else.

        ``payload`` is the request's JSON body when the caller has parsed it already (the app
        does, once, for its metrics label); else it is read here.
        ``replica``: read the replica (the app's read routing chose it for this caller).
        ``principal``: who asks; without the ``pii`` scope the answer is masked, and a
        row-scoped principal's statement runs on its scope's pool (row security).
        """
        if request.method != "POST" and not isinstance(payload, dict):
            return None  # a GET only with the parameters the app read (trusted documents)
        if request.method == "POST" and not request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return None
        accept = request.headers.get("accept", "")
        if "multipart" in accept or "event-stream" in accept:
            return None
        if payload is UNREAD:
            payload = await json_body(request)
        if not isinstance(payload, dict) or payload.get("extensions"):
            return None
        query = payload.get("query")
        raw_variables = payload.get("variables") or {}
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(raw_variables, dict):
            return None
        if len(query) > self.settings.max_tokens:
            # A document has at most as many tokens as characters: longer ones go to the
            # resolver path, which enforces the token limit with its own error.
            return None
        prepared = self.prepare(query)
        if prepared.document is None:
            return None
        operation = _select_operation(prepared.document, operation_name)
        if operation is None or operation.operation != OperationType.QUERY:
            return None
        coerced = get_variable_values(
            self.schema, operation.variable_definitions or (), raw_variables
        )
        if not isinstance(coerced, VariableValues):
            return None
        # The access layer's limits (depth, aliases, cost by page sizes; input lengths, filter
        # width, storable text) hold here as on the resolver path: a document over them goes
        # there, which reports it with its code. The same verdict as validating with
        # limits_rule and input_limits_rule, without walking the document per request.
        assert prepared.limits is not None
        if not prepared.limits.within(raw_variables):
            return None
        masked = not can_see_pii(principal)
        plan = self.plan_for(query, prepared, operation, coerced, raw_variables, masked)
        if plan is NOT_COMPILABLE:
            return None
        try:
            params = plan.params.bind(dict(coerced.coerced))
        except Exception:  # a bad cursor, id or page size: the resolver path reports it
            return None
        try:
            if row_scoped(principal):
                async with self.scoped.connection(principal, replica) as connection:
                    row = await connection.fetchrow(plan.statement, *params)
            else:
                pool = self.replica_pool if replica and self.replica_pool is not None else self.pool
                async with pool.acquire(timeout=self.settings.db_pool_timeout_s) as connection:
                    row = await connection.fetchrow(plan.statement, *params)
        except Exception as error:
            if database_unavailable(error):
                # The resolver path would fail the same way, only later. A closed connection
                # is discarded by the pool, which reconnects on its next use.
                raise DatabaseUnavailable from error
            if not isinstance(
                error,
                asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.InternalClientError,
            ):
                raise
            # E.g. a value PostgreSQL rejects: the resolver path answers (and masks whatever it
            # cannot answer) as it would without this path.
            logger.warning("compiled statement failed; falling back", exc_info=True)
            return None
        if row["missing"]:
            return None
        data = row["data"]
        if plan.masks is not None:
            try:
                # The personal keys once per request (the vocabulary's may change between).
                maskers = masks.maskers(self.settings, personal_keys(self.settings))
                data = orjson.dumps(masks.apply(orjson.loads(data), plan.masks, maskers))
            except (orjson.JSONDecodeError, orjson.JSONEncodeError):
                # JSON orjson cannot hold (an integer over 64 bits, nesting over 1024 levels):
                # the resolvers mask it.
                return None
        return Response(b'{"data":' + data + b"}", status_code=200, media_type="application/json")
