"""Translate a validated query operation into ONE SQL statement that builds the response JSON.

Two stages. The planner walks the selection set (aliases, fragments, ``@skip``/``@include``
resolved) through the per-type field tables of ``hub.compiled.fields`` and the Relay shapes
below; ``hub.compiled.sql`` renders each step as nested ``json_build_object`` / ``json_agg``
subqueries, ordered and limited the way the DataLoader path orders and limits. Lists take their
filters, sort keys, keyset predicates and cursors from ``hub.reads``, as the resolvers do.
Anything outside the covered subset raises ``NotCompilable`` and the resolvers answer instead.

Argument values come in two kinds. An argument given as a whole by a *plain* variable (type
``ID``, ``String`` or ``Int``, never used inside a list or object literal) becomes a statement
parameter read at bind time, so one plan serves every value: only whether the variable is null
is part of the plan's cache key. Every other argument value (literals, filters, orders) is fixed
at planning time and is part of the cache key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values
from sqlalchemy.sql.selectable import NamedFromClause

from hub.compiled import sql
from hub.compiled.errors import NotCompilable
from hub.compiled.fields import (
    FIELDS,
    Column,
    Expression,
    Field,
    GlobalId,
    InteractionPage,
    Joined,
    Many,
    One,
    Timestamp,
)
from hub.compiled.inputs import GraphQLInput
from hub.compiled.masks import LEAF, PYTHON_KINDS, SQL_KINDS, MaskTree, identity_sql, text_mask_sql
from hub.core.errors import HubError
from hub.core.ids import uuid_from_global_id
from hub.core.settings import Settings
from hub.models import CUSTOMERS, INTERACTIONS
from hub.reads.filters import CustomerFilterCompiler
from hub.reads.interactions import (
    InteractionFilterSpec,
    after_row,
    decode_interaction_cursor,
    interaction_order,
    interaction_ordering,
)
from hub.reads.ordering import (
    CUSTOMER_LIST,
    SortKey,
    beyond,
    cursor_values,
    customer_sort_keys,
    order_by,
    ordering_signature,
)
from hub.reads.paging import page_size

__all__ = ["PLAIN_SCALARS", "NotCompilable", "Plan", "Planner"]

PLAIN_SCALARS = frozenset({"ID", "String", "Int"})
MAX_OBJECT_FIELDS = 50  # json_build_object takes at most 100 arguments


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Var:
    name: str


Source = Const | Var


def _read(source: Source, variables: dict[str, Any]) -> Any:
    if isinstance(source, Const):
        return source.value
    return variables.get(source.name)


@dataclass(frozen=True)
class Plan:
    """One statement returning ``data`` (the response's data object as UTF-8 JSON bytes) and
    ``missing`` (a root customer was not found or was merged away: the resolvers answer)."""

    statement: str
    params: sql.Params
    # Masks applied to the decoded answer (hub.compiled.masks.apply); None: the bytes are final.
    masks: MaskTree | None = None


Fields = list[tuple[str, FieldNode]]


class Planner:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variable_values: VariableValues,
        plain_variables: frozenset[str],
        settings: Settings,
        masks: dict[tuple[str, str], str] | None = None,
    ) -> None:
        """``masks``: for a caller without the ``pii`` scope, the mask of every personal field
        (``(type, field)`` → kind, hub.compiled.masks); None for a caller who sees them.
        Statements run in sessions whose time zone is UTC (hub.compiled.pools)."""
        self.schema = schema
        self.fragments = fragments
        self.variable_values = variable_values
        self.variables: dict[str, Any] = dict(variable_values.coerced)
        self.plain_variables = plain_variables
        self.settings = settings
        self.params = sql.Params()
        self.aliases = sql.Aliases()
        self.masks = masks
        # The mask tree of the object being walked, innermost last (see ``walk``).
        self.mask_trees: list[MaskTree] = [{}]

    # ---- the selection set ----

    def _included(self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variable_values)
        if skip is not None and skip["if"]:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variable_values)
        return not (include is not None and not include["if"])

    def _applies(self, condition: str | None, type_name: str) -> bool:
        if condition is None or condition == type_name:
            return True
        object_type = self.schema.get_type(type_name)
        assert isinstance(object_type, GraphQLObjectType)
        return any(interface.name == condition for interface in object_type.interfaces)

    def collect(self, type_name: str, selection_set: SelectionSetNode | None) -> Fields:
        """The fields to answer for an object of ``type_name``, by response key, in order."""
        if selection_set is None:
            raise NotCompilable("object field without a selection")
        fields: dict[str, FieldNode] = {}
        self._collect_into(type_name, selection_set, fields, set())
        if len(fields) > MAX_OBJECT_FIELDS:
            raise NotCompilable("too many fields in one object")
        return list(fields.items())

    def _collect_into(
        self,
        type_name: str,
        selection_set: SelectionSetNode,
        fields: dict[str, FieldNode],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):  # type: ignore[arg-type]
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                if key in fields:
                    # Only the trivial merge (the same leaf twice) is handled here.
                    other = fields[key]
                    if not (
                        other.name.value == selection.name.value
                        and not other.arguments
                        and not selection.arguments
                        and other.selection_set is None
                        and selection.selection_set is None
                    ):
                        raise NotCompilable("fields merged under one response key")
                    continue
                fields[key] = selection
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    selection.type_condition.name.value if selection.type_condition else None
                )
                if self._applies(condition, type_name):
                    self._collect_into(type_name, selection.selection_set, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in visited:
                    continue
                if self._applies(fragment.type_condition.name.value, type_name):
                    self._collect_into(type_name, fragment.selection_set, fields, visited | {name})

    def arguments(self, type_name: str, node: FieldNode) -> dict[str, Source]:
        object_type = self.schema.get_type(type_name)
        assert isinstance(object_type, GraphQLObjectType)
        definition: GraphQLField = object_type.fields[node.name.value]
        try:
            coerced = get_argument_values(definition, node, self.variable_values)
        except Exception as error:  # invalid argument: the resolver path reports it
            raise NotCompilable(str(error)) from error
        sources: dict[str, Source] = {}
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in definition.args:
            value = given.get(name)
            if isinstance(value, VariableNode) and value.name.value in self.plain_variables:
                sources[name] = Var(value.name.value)
            else:
                sources[name] = Const(coerced.get(name))
        return sources

    def is_null(self, source: Source) -> bool:
        return _read(source, self.variables) is None

    def binder(self, source: Source, convert: Callable[[Any], Any]) -> sql.Binder:
        """Computes a parameter from an argument's value at bind time."""
        return lambda variables: convert(_read(source, variables))

    def limit(self, first: Source) -> sql.Binder:
        return self.binder(first, lambda value: page_size(self.settings, value)[0])

    def input(self, source: Source, type_name: str) -> GraphQLInput | None:
        """An input-object argument, read by attribute as ``hub.reads`` reads it."""
        value = _read(source, self.variables)
        input_type = self.schema.get_type(type_name)
        assert isinstance(input_type, GraphQLInputObjectType)
        return None if value is None else GraphQLInput(value, input_type)

    # ---- the operation ----

    def plan(self, operation: OperationDefinitionNode) -> Plan:
        # Per root field: how it is planned, and whether a NULL answer means "not found here".
        roots: dict[str, tuple[Callable[[FieldNode], str], bool]] = {
            "__typename": (lambda node: "SELECT 'Query'::text", False),
            "customer": (self.customer_by_id, True),
            "customers": (self.customers, False),
        }
        pairs: list[tuple[str, str]] = []
        columns: list[str] = []
        must_exist: list[str] = []
        for index, (key, node) in enumerate(self.collect("Query", operation.selection_set)):
            root = roots.get(node.name.value)
            if root is None:
                raise NotCompilable(f"root field {node.name.value}")
            build, required = root
            column = self.masked_under(key, partial(build, node))
            columns.append(f"({column}) AS f{index}")
            pairs.append((key, f"r.f{index}"))
            if required:
                must_exist.append(f"r.f{index} IS NULL")
        missing = " OR ".join(must_exist) or "false"
        statement = (
            f"SELECT convert_to(({sql.json_object(pairs)})::text, 'UTF8') AS data, "
            f"({missing}) AS missing FROM (SELECT {', '.join(columns)} OFFSET 0) r"
        )
        return Plan(statement=statement, params=self.params, masks=self.mask_trees[0] or None)

    # ---- objects, through the field tables ----

    def walk(
        self, type_name: str, node: FieldNode, value: Callable[[str, FieldNode], str | None]
    ) -> str:
        """``json_build_object`` of the fields selected on ``type_name``; ``value(name, node)``
        is each field's SQL, ``None`` for a field outside the compiled subset."""
        pairs: list[tuple[str, str]] = []
        for key, child in self.collect(type_name, node.selection_set):
            name = child.name.value
            if name == "__typename":
                result: str | None = sql.quote_literal(type_name)
            else:
                result = self.masked_under(key, lambda: value(name, child))  # noqa: B023
            if result is None:
                raise NotCompilable(f"{type_name}.{name}")
            pairs.append((key, result))
        return sql.json_object(pairs)

    def masked_under(self, key: str, build: Callable[[], str | None]) -> str | None:
        """``build()``, the SQL of the value at response key ``key``; the masks its fields
        leave to Python become the subtree ``key`` of the enclosing object's mask tree."""
        subtree: MaskTree = {}
        self.mask_trees.append(subtree)
        try:
            result = build()
        finally:
            self.mask_trees.pop()
        if subtree:
            self.mask_trees[-1][key] = subtree
        return result

    def personal(self, type_name: str, name: str, field: Field, x: str) -> str | None:
        """The SQL of a personal field for a caller without ``pii``; None when it is not
        personal (or the caller sees it). Not compilable when its mask cannot be exact here."""
        kind = None if self.masks is None else self.masks.get((type_name, name))
        if kind is None:
            return None
        if not isinstance(field, Column) or kind not in SQL_KINDS | PYTHON_KINDS:
            raise NotCompilable(f"{type_name}.{name}: no exact mask ({kind})")
        value = f"{x}.{field.column}"
        if kind == "text":
            return text_mask_sql(value)
        self.mask_trees[-1][LEAF] = kind
        if kind == "identity":
            identity_kind = FIELDS[type_name].get("kind")
            if not isinstance(identity_kind, Column):
                raise NotCompilable(f"{type_name}.{name}: no identifier kind")
            return identity_sql(f"{x}.{identity_kind.column}", value)
        return value

    def object_json(self, type_name: str, x: str, node: FieldNode, joins: list[str]) -> str:
        """The object of the row ``x``; to-one rows it needs are LEFT JOINed through ``joins``."""
        table = FIELDS[type_name]

        def value(name: str, child: FieldNode) -> str | None:
            field = table.get(name)
            return None if field is None else self.field(type_name, field, x, child, joins)

        return self.walk(type_name, node, value)

    def field(self, type_name: str, field: Field, x: str, node: FieldNode, joins: list[str]) -> str:
        """The SQL of one field of the row ``x`` of ``type_name``, by its kind of table entry."""
        masked = self.personal(type_name, node.name.value, field, x)
        if masked is not None:
            return masked
        match field:
            case Column(column):
                return f"{x}.{column}"
            case Timestamp(column):
                return sql.json_timestamp(f"{x}.{column}")
            case GlobalId(name, column, uuid_key):
                render = sql.uuid_global_id if uuid_key else sql.global_id
                return render(name, f"{x}.{column}")
            case Expression(template):
                return template.format(x=x, y=self.aliases.next("e"))
            case Joined(item, table, key, parent_column):
                y = self.aliases.next("j")
                joins.append(f" LEFT JOIN {table} {y} ON {y}.{key} = {x}.{parent_column}")
                return sql.present(f"{y}.{key}", self.object_json(item, y, node, joins))
            case One(item, table, where, order):
                y, inner = self.aliases.next("o"), list[str]()
                body = self.object_json(item, y, node, inner)
                source = f"{table} {y}{''.join(inner)}"
                ordered = order.format(x=y) if order else None
                return f"({sql.first_row(body, source, where.format(x=y, parent=x), ordered)})"
            case Many(item, source, where, order):
                y, inner = self.aliases.next("m"), list[str]()
                body = self.object_json(item, y, node, inner)
                rows = f"{source.format(parent=x, y=self.aliases.next('s'))} {y}{''.join(inner)}"
                condition = where.format(x=y, parent=x) if where else None
                return f"({sql.json_array(body, rows, condition, order.format(x=y))})"
            case InteractionPage(owner_column):
                return f"({self.interaction_connection(type_name, owner_column, x, node)})"
        raise AssertionError(field)

    # ---- Relay connections ----

    def connection(self, page: Page, node: FieldNode) -> str:
        """A Relay connection over ``page.rows`` (``limit + 1`` rows numbered by ``rn``)."""
        p = page.alias
        visible = f"FILTER (WHERE {p}.rn <= {page.limit})"
        joins: list[str] = []  # to-one relations of the items, joined once per page

        def items(item: str) -> str:
            return f"coalesce(json_agg({item} ORDER BY {p}.rn) {visible}, '[]'::json)"

        def item(child: FieldNode) -> str:
            return self.object_json(page.item, p, child, joins)

        edge: dict[str, Callable[[FieldNode], str]] = {
            "cursor": lambda child: page.cursor,
            "node": item,
        }
        page_info: dict[str, Callable[[FieldNode], str]] = {
            "hasNextPage": lambda child: f"(count(*) > {page.limit})",
            "hasPreviousPage": lambda child: page.has_previous,
            "startCursor": lambda child: f"(array_agg({page.cursor} ORDER BY {p}.rn) {visible})[1]",
            "endCursor": lambda child: (
                f"(array_agg({page.cursor} ORDER BY {p}.rn DESC) {visible})[1]"
            ),
        }
        connection: dict[str, Callable[[FieldNode], str]] = {
            "edges": lambda child: items(self.walk(f"{page.item}Edge", child, _lookup(edge))),
            "nodes": lambda child: items(item(child)),
            "pageInfo": lambda child: self.walk("PageInfo", child, _lookup(page_info)),
            "totalCount": lambda child: f"({page.total()})",
        }
        body = self.walk(f"{page.item}Connection", node, _lookup(connection))
        # HAVING makes it one aggregate row even when no aggregate is selected, or no row found.
        return f"SELECT {body} FROM ({page.rows}) {p}{''.join(joins)} HAVING true"

    # ---- customers ----

    def customer_by_id(self, node: FieldNode) -> str:
        args = self.arguments("Query", node)
        customer_id = self.binder(args["id"], lambda value: uuid_from_global_id(value, "Customer"))
        placeholder = self.params.add(customer_id, "uuid")
        c, joins = self.aliases.next("c"), list[str]()
        body = self.object_json("Customer", c, node, joins)
        # A merged-away id yields no row: the resolver path follows the merge.
        return (
            f"SELECT {body} FROM customers {c}{''.join(joins)} "
            f"WHERE {c}.id = {placeholder} AND {c}.merged_into_id IS NULL"
        )

    def customers(self, node: FieldNode) -> str:
        args = self.arguments("Query", node)
        if not (self.is_null(args["last"]) and self.is_null(args["before"])):
            raise NotCompilable("backward paging of customers")
        c = _alias(CUSTOMERS, self.aliases.next("c"))
        keys = _compiled(customer_sort_keys, _read(args["orderBy"], self.variables), c)
        if any(key.label == "k_seen" for key in keys):
            raise NotCompilable("last-seen ordering (its cursor holds -infinity)")
        if self.masks is not None and _orders_by_name(_read(args["orderBy"], self.variables)):
            raise NotCompilable("ordering by displayName needs pii (the resolvers refuse it)")
        limit = self.params.slot(self.limit(args["first"]))
        placeholders = {"limit": limit}
        where = [c.c.merged_into_id.is_(None), *self.customer_filter(args["filter"], c)]
        after = args["after"]
        if not self.is_null(after):
            bounds = []
            for index, key in enumerate(keys):
                name = f"after_{index}"
                bounds.append(sa.bindparam(name, None, type_=key.expression.type))
                value = self.binder(after, partial(_customer_cursor_value, keys, index=index))
                placeholders[name] = self.params.slot(value)
            where.append(beyond(keys, bounds, backwards=False))
        labelled = [key.expression.label(f"k{i}") for i, key in enumerate(keys)]
        rows = _page_rows(_every_column(c).add_columns(*labelled), where, order_by(keys))
        p = self.aliases.next("p")
        # Tagged with the list and ordering, exactly as resolvers.keyset.paginate does.
        signature = ordering_signature(CUSTOMER_LIST, keys)
        cursor_parts = [sql.quote_literal(orjson.dumps(signature).decode())]
        for i, key in enumerate(keys):
            render = sql.json_iso_timestamp if key.kind == "timestamp" else sql.json_text
            cursor_parts.append(render(f"{p}.k{i}"))

        def total() -> str:
            # Built only when selected: every parameter a plan adds must appear in its SQL.
            c2 = _alias(CUSTOMERS, self.aliases.next("c"))
            where = [c2.c.merged_into_id.is_(None), *self.customer_filter(args["filter"], c2)]
            count = sa.select(sa.func.count()).select_from(c2).where(*where)
            return sql.render(count, self.params, {})

        page = Page(
            item="Customer",
            rows=sql.render(rows, self.params, placeholders),
            alias=p,
            limit=limit,
            has_previous="true" if not self.is_null(after) else "false",
            cursor=sql.cursor(cursor_parts),
            total=total,
        )
        return self.connection(page, node)

    def customer_filter(self, source: Source, c: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        value = self.input(source, "CustomerFilter")
        if value is None:
            return []
        # A clause that would reveal personal data is FORBIDDEN to a caller without ``pii``:
        # the resolvers report it.
        personal = _allowed if self.masks is None else _not_compiled
        compiler = CustomerFilterCompiler(self.settings, personal=personal, customers=c)
        return [_compiled(compiler.compile, value)]

    # ---- interactions ----

    def interaction_connection(
        self, owner_type: str, owner_column: str, owner: str, node: FieldNode
    ) -> str:
        args = self.arguments(owner_type, node)
        after = args["after"]
        order = _read(args["orderBy"], self.variables)
        newest_first = order is None or order.name != "OCCURRED_AT_ASC"
        spec = _compiled(InteractionFilterSpec.of, self.input(args["filter"], "InteractionFilter"))
        i = _alias(INTERACTIONS, self.aliases.next("i"))
        limit = self.params.slot(self.limit(args["first"]))
        placeholders = {"limit": limit}
        where = [i.c[owner_column] == sa.literal_column(f"{owner}.id"), *spec.clauses(i)]
        if not self.is_null(after):
            bound = []
            for index, name in enumerate(("after_at", "after_id")):
                column = i.c.occurred_at if index == 0 else i.c.id
                bound.append(sa.bindparam(name, None, type_=column.type))
                value = self.binder(after, partial(_interaction_cursor_value, newest_first, index))
                placeholders[name] = self.params.slot(value)
            where.append(after_row(i, newest_first, *bound))
        rows = _page_rows(_every_column(i), where, interaction_order(i, newest_first))

        def total() -> str:
            # Built only when selected: every parameter a plan adds must appear in its SQL.
            i2 = _alias(INTERACTIONS, self.aliases.next("i"))
            owned = i2.c[owner_column] == sa.literal_column(f"{owner}.id")
            count = sa.select(sa.func.count()).select_from(i2).where(owned, *spec.clauses(i2))
            return sql.render(count, self.params, {})

        p = self.aliases.next("p")
        cursor = sql.cursor(
            [
                # Tagged with the ordering, exactly as hub.reads.interactions.interaction_cursor.
                sql.quote_literal(orjson.dumps(interaction_ordering(newest_first)).decode()),
                sql.json_iso_timestamp(f"{p}.occurred_at"),
                f"'\"' || {p}.id::text || '\"'",
            ],
            ascii_key=True,
        )
        page = Page(
            item="Interaction",
            rows=sql.render(rows, self.params, placeholders),
            alias=p,
            limit=limit,
            has_previous="true" if not self.is_null(after) else "false",
            cursor=cursor,
            total=total,
        )
        return self.connection(page, node)


@dataclass(frozen=True)
class Page:
    """One page of a Relay connection, as SQL: ``rows`` holds ``limit + 1`` rows numbered by
    ``rn``, read as ``alias``; ``cursor`` is a row's cursor; ``total()`` counts the whole list."""

    item: str
    rows: str
    alias: str
    limit: str
    has_previous: str
    cursor: str
    total: Callable[[], str]


def _page_rows(
    select: sa.Select[Any], where: list[sa.ColumnElement[bool]], order: list[sa.ColumnElement[Any]]
) -> sa.Select[Any]:
    """``limit + 1`` rows of a page, numbered in their order (``rn``); ``limit`` is bound later."""
    numbered = select.add_columns(sa.func.row_number().over(order_by=order).label("rn"))
    limit = sa.bindparam("limit", None, type_=sa.Integer) + sa.literal_column("1", sa.Integer)
    return numbered.where(*where).order_by(*order).limit(limit)


@cache
def _alias(table: sa.Table, name: str) -> NamedFromClause:
    """``table AS name``; plans reuse the same few names, and an alias is costly to build."""
    return table.alias(name)


def _every_column(table: NamedFromClause) -> sa.Select[Any]:
    # As ``alias.*``: listing every column would cost more to render and to run.
    return sa.select(sa.literal_column(f"{table.name}.*")).select_from(table)


def _lookup(table: dict[str, Callable[[FieldNode], str]]) -> Callable[[str, FieldNode], str | None]:
    def value(name: str, node: FieldNode) -> str | None:
        build = table.get(name)
        return None if build is None else build(node)

    return value


T = TypeVar("T")


def _compiled(build: Callable[..., T], *args: Any) -> T:
    """``build(*args)``; an error it reports (a bad filter or order) leaves the query to the
    resolvers, which report it."""
    try:
        return build(*args)
    except HubError as error:
        raise NotCompilable(str(error)) from error


def _allowed(what: str) -> None:
    return None


def _not_compiled(what: str) -> None:
    raise NotCompilable(f"{what} needs pii")


def _orders_by_name(order: Any) -> bool:
    return bool(order) and any(item.name.startswith("DISPLAY_NAME") for item in order)


def _customer_cursor_value(keys: list[SortKey], cursor: str, index: int) -> Any:
    """The ``index``-th sort-key value of a customers cursor (``BAD_USER_INPUT`` when bad)."""
    return cursor_values(CUSTOMER_LIST, keys, cursor)[index]


def _interaction_cursor_value(newest_first: bool, index: int, cursor: str) -> Any:
    return decode_interaction_cursor(cursor, newest_first)[index]
