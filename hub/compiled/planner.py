"""Translate a validated query operation into ONE SQL statement that builds the response JSON.

The planner walks the selection set (aliases, fragments, ``@skip``/``@include`` resolved) and
emits nested ``json_build_object`` / ``json_agg`` subqueries, ordered and limited the way the
DataLoader path orders and limits. Anything outside the covered subset raises ``NotCompilable``
and the request goes through the resolvers instead.

Argument values come in two kinds. An argument given as a whole by a *plain* variable (type
``ID``, ``String`` or ``Int``, never used inside a list or object literal) becomes a statement
parameter read at bind time, so one plan serves every value: only whether the variable is null
is part of the plan's cache key. Every other argument value (literals, filters, orders) is fixed
at planning time and is part of the cache key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values

from hub.compiled import sql
from hub.compiled.filters import CustomerFilterSQL, FilterNotCompilable
from hub.compiled.policy import ReadPolicy
from hub.core.errors import HubError
from hub.core.ids import decode_cursor, uuid_from_global_id
from hub.core.settings import Settings
from hub.resolvers.customer import sort_keys
from hub.resolvers.keyset import ordering_signature
from hub.schema.customer import CustomerOrderBy
from hub.schema.interaction import decode_interaction_cursor, interaction_ordering
from hub.schema.pagination import page_size

PLAIN_SCALARS = frozenset({"ID", "String", "Int"})
MAX_OBJECT_FIELDS = 50  # json_build_object takes at most 100 arguments


class NotCompilable(Exception):
    """The query uses something the compiler does not translate: use the resolver path."""


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


Fields = list[tuple[str, FieldNode]]


class Planner:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variable_values: VariableValues,
        plain_variables: frozenset[str],
        settings: Settings,
        policy: ReadPolicy,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variable_values = variable_values
        self.variables: dict[str, Any] = dict(variable_values.coerced)
        self.plain_variables = plain_variables
        self.settings = settings
        self.policy = policy
        self.params = sql.Params()
        self.aliases = sql.Aliases()

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

    def param(self, source: Source, cast: str, convert: Callable[[Any], Any] = lambda v: v) -> str:
        return self.params.add(lambda variables: convert(_read(source, variables)), cast)

    def check(self, type_name: str, field_name: str) -> None:
        if not self.policy.allows(type_name, field_name):
            raise NotCompilable(f"{type_name}.{field_name} is not readable by this caller")

    def column(self, type_name: str, field_name: str, expression: str) -> str:
        return self.policy.mask(type_name, field_name, expression)

    # ---- the operation ----

    def plan(self, operation: OperationDefinitionNode) -> Plan:
        pairs: list[tuple[str, str]] = []
        columns: list[str] = []
        must_exist: list[str] = []
        for index, (key, node) in enumerate(self.collect("Query", operation.selection_set)):
            name = node.name.value
            if name == "__typename":
                expression = "SELECT 'Query'::text"
            elif name == "customer":
                self.check("Query", name)
                expression = self.customer_by_id(node)
                must_exist.append(f"r.f{index} IS NULL")
            elif name == "customers":
                self.check("Query", name)
                expression = self.customers(node)
            else:
                raise NotCompilable(f"root field {name}")
            columns.append(f"({expression}) AS f{index}")
            pairs.append((key, f"r.f{index}"))
        missing = " OR ".join(must_exist) or "false"
        statement = (
            f"SELECT convert_to(({sql.json_object(pairs)})::text, 'UTF8') AS data, "
            f"({missing}) AS missing FROM (SELECT {', '.join(columns)} OFFSET 0) r"
        )
        return Plan(statement=statement, params=self.params)

    # ---- customers ----

    def customer_by_id(self, node: FieldNode) -> str:
        args = self.arguments("Query", node)
        placeholder = self.param(
            args["id"], "uuid", lambda value: uuid_from_global_id(value, "Customer")
        )
        alias = self.aliases.next("c")
        body = self.customer_object(alias, node)
        # A merged-away id yields no row: the resolver path follows the merge.
        return (
            f"SELECT {body} FROM customers {alias} "
            f"WHERE {alias}.id = {placeholder} AND {alias}.merged_into_id IS NULL"
        )

    def customer_object(self, a: str, node: FieldNode) -> str:
        pairs: list[tuple[str, str]] = []
        for key, child in self.collect("Customer", node.selection_set):
            name = child.name.value
            self.check("Customer", name)
            if name == "__typename":
                value = "'Customer'"
            elif name == "id":
                value = sql.uuid_global_id("Customer", f"{a}.id")
            elif name == "displayName":
                value = f"{a}.display_name"
            elif name == "traits":
                value = f"{a}.traits"
            elif name in TIMESTAMP_COLUMNS["Customer"]:
                value = sql.json_timestamp(f"{a}.{TIMESTAMP_COLUMNS['Customer'][name]}")
            elif name == "requestedId":
                value = "NULL::text"  # only survivors are compiled: nothing was merged away
            elif name == "identities":
                value = f"({self.identities(a, child)})"
            elif name == "currentStage":
                value = f"({self.stage(f'{a}.current_stage', child)})"
            elif name == "interactions":
                value = (
                    f"({self.interaction_connection('Customer', 'customer_id', f'{a}.id', child)})"
                )
            elif name == "lastInteraction":
                value = f"({self.last_interaction(a, child)})"
            elif name == "conversations":
                value = f"({self.conversations(a, child)})"
            elif name == "stageHistory":
                value = f"({self.stage_history(a, child)})"
            elif name == "channelsUsed":
                value = f"({self.channels_used(a, child)})"
            else:
                raise NotCompilable(f"Customer.{name}")
            pairs.append((key, self.column("Customer", name, value)))
        return sql.json_object(pairs)

    def identities(self, a: str, node: FieldNode) -> str:
        x = self.aliases.next("i")
        pairs: list[tuple[str, str]] = []
        for key, child in self.collect("Identity", node.selection_set):
            name = child.name.value
            self.check("Identity", name)
            columns = {"kind": "kind", "value": "value"}
            if name == "__typename":
                value = "'Identity'"
            elif name in columns:
                value = f"{x}.{columns[name]}"
            elif name == "firstSeenAt":
                value = sql.json_timestamp(f"{x}.created_at")
            elif name == "lastSeenAt":
                value = sql.json_timestamp(f"{x}.last_seen_at")
            else:
                raise NotCompilable(f"Identity.{name}")
            pairs.append((key, self.column("Identity", name, value)))
        return (
            f"SELECT coalesce(json_agg({sql.json_object(pairs)} "
            f"ORDER BY {x}.kind, {x}.created_at, {x}.id), '[]'::json) "
            f"FROM identities {x} WHERE {x}.customer_id = {a}.id"
        )

    def stage(self, code: str, node: FieldNode) -> str:
        x = self.aliases.next("s")
        pairs: list[tuple[str, str]] = []
        for key, child in self.collect("JourneyStage", node.selection_set):
            name = child.name.value
            self.check("JourneyStage", name)
            if name == "__typename":
                value = "'JourneyStage'"
            elif name in ("code", "name", "description", "position"):
                value = f"{x}.{name}"
            elif name == "customerCount":
                y = self.aliases.next("c")
                value = (
                    f"(SELECT count(*) FROM customers {y} WHERE {y}.current_stage = {x}.code "
                    f"AND {y}.merged_into_id IS NULL)"
                )
            else:
                raise NotCompilable(f"JourneyStage.{name}")
            pairs.append((key, self.column("JourneyStage", name, value)))
        return f"SELECT {sql.json_object(pairs)} FROM journey_stages {x} WHERE {x}.code = {code}"

    def conversations(self, a: str, node: FieldNode) -> str:
        v = self.aliases.next("v")
        pairs: list[tuple[str, str]] = []
        columns = {"key": "key", "status": "status"}
        moments = {
            "startedAt": "started_at",
            "lastActivityAt": "last_activity_at",
            "resolvedAt": "resolved_at",
        }
        for key, child in self.collect("Conversation", node.selection_set):
            name = child.name.value
            self.check("Conversation", name)
            if name == "__typename":
                value = "'Conversation'"
            elif name == "id":
                value = sql.uuid_global_id("Conversation", f"{v}.id")
            elif name in columns:
                value = f"{v}.{columns[name]}"
            elif name in moments:
                value = sql.json_timestamp(f"{v}.{moments[name]}")
            elif name in ("interactions", "lastInteraction"):
                y = self.aliases.next("i")
                joins: list[str] = []
                body = self.interaction_object(y, child, joins)
                source = f"FROM interactions {y}{''.join(joins)} WHERE {y}.conversation_id = {v}.id"
                if name == "interactions":  # oldest first, like interactions_by_conversation
                    value = (
                        f"(SELECT coalesce(json_agg({body} ORDER BY {y}.occurred_at, {y}.id), "
                        f"'[]'::json) {source})"
                    )
                else:
                    value = (
                        f"(SELECT {body} {source} "
                        f"ORDER BY {y}.occurred_at DESC, {y}.id DESC LIMIT 1)"
                    )
            else:
                raise NotCompilable(f"Conversation.{name}")
            pairs.append((key, self.column("Conversation", name, value)))
        return (
            f"SELECT coalesce(json_agg({sql.json_object(pairs)} "
            f"ORDER BY {v}.last_activity_at DESC, {v}.id), '[]'::json) "
            f"FROM conversations {v} WHERE {v}.customer_id = {a}.id"
        )

    def stage_history(self, a: str, node: FieldNode) -> str:
        h = self.aliases.next("h")
        pairs: list[tuple[str, str]] = []
        joins: list[str] = []
        columns = {
            "previousStage": "previous_stage",
            "transition": "transition",
            "reason": "reason",
        }
        for key, child in self.collect("StageChange", node.selection_set):
            name = child.name.value
            self.check("StageChange", name)
            if name == "__typename":
                value = "'StageChange'"
            elif name in columns:
                value = f"{h}.{columns[name]}"
            elif name == "enteredAt":
                value = sql.json_timestamp(f"{h}.entered_at")
            elif name == "stage":
                value = f"({self.stage(f'{h}.stage', child)})"
            elif name == "channel":
                value = self.channel(f"{h}.channel_code", child, joins)
            elif name == "interaction":
                y = self.aliases.next("i")
                inner: list[str] = []
                body = self.interaction_object(y, child, inner)
                value = (
                    f"(SELECT {body} FROM interactions {y}{''.join(inner)} "
                    f"WHERE {y}.id = {h}.interaction_id)"
                )
            else:
                raise NotCompilable(f"StageChange.{name}")
            pairs.append((key, self.column("StageChange", name, value)))
        return (
            f"SELECT coalesce(json_agg({sql.json_object(pairs)} "
            f"ORDER BY {h}.entered_at, {h}.id), '[]'::json) "
            f"FROM stage_history {h}{''.join(joins)} WHERE {h}.customer_id = {a}.id"
        )

    def channels_used(self, a: str, node: FieldNode) -> str:
        x, u = self.aliases.next("i"), self.aliases.next("u")
        pairs: list[tuple[str, str]] = []
        joins: list[str] = []
        for key, child in self.collect("ChannelUsage", node.selection_set):
            name = child.name.value
            self.check("ChannelUsage", name)
            if name == "__typename":
                value = "'ChannelUsage'"
            elif name == "interactionCount":
                value = f"{u}.interaction_count"
            elif name == "firstSeenAt":
                value = sql.json_timestamp(f"{u}.first_seen_at")
            elif name == "lastSeenAt":
                value = sql.json_timestamp(f"{u}.last_seen_at")
            elif name == "channel":
                value = self.channel(f"{u}.channel_code", child, joins)
            else:
                raise NotCompilable(f"ChannelUsage.{name}")
            pairs.append((key, self.column("ChannelUsage", name, value)))
        return (
            f"SELECT coalesce(json_agg({sql.json_object(pairs)} "
            f"ORDER BY {u}.first_seen_at, {u}.channel_code), '[]'::json) FROM ("
            f"SELECT {x}.channel_code, count(*) AS interaction_count, "
            f"min({x}.occurred_at) AS first_seen_at, max({x}.occurred_at) AS last_seen_at "
            f"FROM interactions {x} WHERE {x}.customer_id = {a}.id GROUP BY {x}.channel_code) {u}"
            + "".join(joins)
        )

    def customers(self, node: FieldNode) -> str:
        args = self.arguments("Query", node)
        if not (self.is_null(args["last"]) and self.is_null(args["before"])):
            raise NotCompilable("backward paging of customers")
        customer_filter = _read(args["filter"], self.variables)
        order_by = _read(args["orderBy"], self.variables)
        orders = [CustomerOrderBy[o.name] for o in order_by] if order_by is not None else None
        try:
            keys = sort_keys(orders)
        except HubError as error:
            raise NotCompilable(str(error)) from error
        if any(key.label == "k_seen" for key in keys):
            raise NotCompilable("last-seen ordering (its cursor holds -infinity)")
        c, p = self.aliases.next("c"), self.aliases.next("p")
        key_sql = {
            "k_created": (f"{c}.created_at", "timestamptz"),
            "k_name": (f"coalesce({c}.display_name, '')", "text"),
            "k_id": (f"{c}.id", "uuid"),
        }
        first, after = args["first"], args["after"]
        limit = self.param(
            first,
            "int",
            lambda value: page_size(self.settings, value, None, None, None)[0],
        )
        where = [f"{c}.merged_into_id IS NULL", *self.customer_filter(customer_filter, c)]
        if not self.is_null(after):
            values = [
                self.param(
                    after,
                    key_sql[key.label][1],
                    partial(_customer_cursor_value, keys, index=index),
                )
                for index, key in enumerate(keys)
            ]
            alternatives = []
            for index, key in enumerate(keys):
                equal = [f"{key_sql[k.label][0]} = {values[i]}" for i, k in enumerate(keys[:index])]
                operator = "<" if key.descending else ">"
                step = f"{key_sql[key.label][0]} {operator} {values[index]}"
                alternatives.append("(" + " AND ".join([*equal, step]) + ")")
            where.append("(" + " OR ".join(alternatives) + ")")
        order = ", ".join(
            f"{key_sql[key.label][0]} {'DESC' if key.descending else 'ASC'}" for key in keys
        )
        selected = ", ".join(f"{key_sql[key.label][0]} AS k{i}" for i, key in enumerate(keys))
        # Tagged with the list and ordering, exactly as resolvers.keyset.paginate does.
        signature = ordering_signature("customers", keys)
        cursor_parts = [sql.quote_literal(orjson.dumps(signature).decode())]
        for i, key in enumerate(keys):
            if key.kind == "timestamp":
                cursor_parts.append(sql.json_iso_timestamp(f"{p}.k{i}"))
            else:
                cursor_parts.append(sql.json_text(f"{p}.k{i}"))
        rows = (
            f"SELECT {c}.*, {selected}, row_number() OVER (ORDER BY {order}) AS rn "
            f"FROM customers {c} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {limit} + 1"
        )

        def total() -> str:
            c2 = self.aliases.next("c")
            where = [f"{c2}.merged_into_id IS NULL", *self.customer_filter(customer_filter, c2)]
            return f"SELECT count(*) FROM customers {c2} WHERE {' AND '.join(where)}"

        return self.connection(
            "Customer",
            node,
            rows=rows,
            row_alias=p,
            limit=limit,
            has_previous="true" if not self.is_null(after) else "false",
            cursor=sql.cursor(cursor_parts),
            node_object=lambda child, joins: self.customer_object(p, child),
            total=total,
        )

    def customer_filter(self, value: dict[str, Any] | None, c: str) -> list[str]:
        if value is None:
            return []
        try:
            return [CustomerFilterSQL(self.params, self.aliases, self.settings).condition(value, c)]
        except FilterNotCompilable as error:
            raise NotCompilable(str(error)) from error

    def connection(
        self,
        item: str,
        node: FieldNode,
        *,
        rows: str,
        row_alias: str,
        limit: str,
        has_previous: str,
        cursor: str,
        node_object: Callable[[FieldNode, list[str]], str],
        total: Callable[[], str],
    ) -> str:
        """A Relay connection over ``rows`` (``limit + 1`` rows numbered by ``rn``)."""
        p = row_alias
        visible = f"FILTER (WHERE {p}.rn <= {limit})"
        pairs: list[tuple[str, str]] = []
        joins: list[str] = []  # to-one relations of the items, joined once per page
        for key, child in self.collect(f"{item}Connection", node.selection_set):
            name = child.name.value
            if name == "__typename":
                value = f"'{item}Connection'"
            elif name == "edges":
                edge_pairs: list[tuple[str, str]] = []
                for edge_key, edge_child in self.collect(f"{item}Edge", child.selection_set):
                    edge_name = edge_child.name.value
                    if edge_name == "__typename":
                        edge_pairs.append((edge_key, f"'{item}Edge'"))
                    elif edge_name == "cursor":
                        edge_pairs.append((edge_key, cursor))
                    elif edge_name == "node":
                        edge_pairs.append((edge_key, node_object(edge_child, joins)))
                    else:
                        raise NotCompilable(f"{item}Edge.{edge_name}")
                value = (
                    f"coalesce(json_agg({sql.json_object(edge_pairs)} ORDER BY {p}.rn) "
                    f"{visible}, '[]'::json)"
                )
            elif name == "nodes":
                value = (
                    f"coalesce(json_agg({node_object(child, joins)} ORDER BY {p}.rn) "
                    f"{visible}, '[]'::json)"
                )
            elif name == "pageInfo":
                value = self.page_info(child, p, limit, has_previous, cursor, visible)
            elif name == "totalCount":
                value = f"({total()})"
            else:
                raise NotCompilable(f"{item}Connection.{name}")
            pairs.append((key, value))
        # HAVING makes it one aggregate row even when no aggregate is selected, or no row found.
        return f"SELECT {sql.json_object(pairs)} FROM ({rows}) {p}{''.join(joins)} HAVING true"

    def page_info(
        self, node: FieldNode, p: str, limit: str, has_previous: str, cursor: str, visible: str
    ) -> str:
        pairs: list[tuple[str, str]] = []
        for key, child in self.collect("PageInfo", node.selection_set):
            name = child.name.value
            if name == "__typename":
                value = "'PageInfo'"
            elif name == "hasNextPage":
                value = f"(count(*) > {limit})"
            elif name == "hasPreviousPage":
                value = has_previous
            elif name == "startCursor":
                value = f"(array_agg({cursor} ORDER BY {p}.rn) {visible})[1]"
            elif name == "endCursor":
                value = f"(array_agg({cursor} ORDER BY {p}.rn DESC) {visible})[1]"
            else:
                raise NotCompilable(f"PageInfo.{name}")
            pairs.append((key, value))
        return sql.json_object(pairs)

    # ---- interactions, touchpoints, channels ----

    def interaction_connection(
        self, owner_type: str, owner_column: str, owner: str, node: FieldNode
    ) -> str:
        args = self.arguments(owner_type, node)
        first, after = args["first"], args["after"]
        limit = self.param(
            first,
            "int",
            lambda value: page_size(self.settings, value, None, None, None)[0],
        )
        i, p = self.aliases.next("i"), self.aliases.next("p")
        where = [f"{i}.{owner_column} = {owner}", *self.interaction_filter(i, args["filter"])]
        order_by = _read(args["orderBy"], self.variables)
        newest_first = order_by is None or order_by.name != "OCCURRED_AT_ASC"
        if not self.is_null(after):
            at = self.param(
                after, "timestamptz", lambda c: decode_interaction_cursor(c, newest_first)[0]
            )
            row_id = self.param(
                after, "uuid", lambda c: decode_interaction_cursor(c, newest_first)[1]
            )
            operator = "<" if newest_first else ">"
            where.append(f"({i}.occurred_at, {i}.id) {operator} ({at}, {row_id})")
        direction = "DESC" if newest_first else "ASC"
        order = f"{i}.occurred_at {direction}, {i}.id {direction}"
        rows = (
            f"SELECT {i}.*, row_number() OVER (ORDER BY {order}) AS rn FROM interactions {i} "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {limit} + 1"
        )

        def total() -> str:
            # Built only when selected: every parameter a plan adds must appear in its SQL.
            i2 = self.aliases.next("i")
            where = [f"{i2}.{owner_column} = {owner}", *self.interaction_filter(i2, args["filter"])]
            return f"SELECT count(*) FROM interactions {i2} WHERE {' AND '.join(where)}"

        cursor = sql.cursor(
            [
                # Tagged with the ordering, exactly as schema.interaction.interaction_cursor.
                sql.quote_literal(orjson.dumps(interaction_ordering(newest_first)).decode()),
                sql.json_iso_timestamp(f"{p}.occurred_at"),
                f"'\"' || {p}.id::text || '\"'",
            ],
            ascii_key=True,
        )
        return self.connection(
            "Interaction",
            node,
            rows=rows,
            row_alias=p,
            limit=limit,
            has_previous="true" if not self.is_null(after) else "false",
            cursor=cursor,
            node_object=lambda child, joins: self.interaction_object(p, child, joins),
            total=total,
        )

    def interaction_filter(self, i: str, source: Source) -> list[str]:
        """SQL conditions equal to ``InteractionFilterSpec.clauses`` (values fixed per plan)."""
        value = _read(source, self.variables)
        if value is None:
            return []
        after, before = value.get("occurredAfter"), value.get("occurredBefore")
        for moment in (after, before):
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise NotCompilable("a filter moment without a time zone")
        if after is not None and before is not None and after >= before:
            raise NotCompilable("empty time range: the resolver path reports it")
        clauses: list[str] = []
        lists = {
            "channels": ("channel_code", "text[]"),
            "types": ("type", "text[]"),
            "directions": ("direction", "text[]"),
        }
        for field_name, (column, cast) in lists.items():
            items = value.get(field_name)
            if items is not None:
                names = [item.value for item in items]
                placeholder = self.params.constant(names, cast)
                clauses.append(f"{i}.{column} = ANY({placeholder})")
        touchpoint_ids = value.get("touchpointIds")
        if touchpoint_ids is not None:
            try:
                ids = [uuid_from_global_id(t, "Touchpoint") for t in touchpoint_ids]
            except HubError as error:
                raise NotCompilable(str(error)) from error
            placeholder = self.params.constant(ids, "uuid[]")
            clauses.append(f"{i}.touchpoint_id = ANY({placeholder})")
        if after is not None:
            placeholder = self.params.constant(after, "timestamptz")
            clauses.append(f"{i}.occurred_at >= {placeholder}")
        if before is not None:
            placeholder = self.params.constant(before, "timestamptz")
            clauses.append(f"{i}.occurred_at < {placeholder}")
        return clauses

    def last_interaction(self, a: str, node: FieldNode) -> str:
        x = self.aliases.next("i")
        joins: list[str] = []
        body = self.interaction_object(x, node, joins)
        return (
            f"SELECT {body} FROM interactions {x}{''.join(joins)} "
            f"WHERE {x}.customer_id = {a}.id "
            f"ORDER BY {x}.occurred_at DESC, {x}.id DESC LIMIT 1"
        )

    def interaction_object(self, p: str, node: FieldNode, joins: list[str]) -> str:
        pairs: list[tuple[str, str]] = []
        plain = ("type", "direction", "summary", "sentiment", "outcome", "agent", "attributes")
        for key, child in self.collect("Interaction", node.selection_set):
            name = child.name.value
            self.check("Interaction", name)
            if name == "__typename":
                value = "'Interaction'"
            elif name == "id":
                value = sql.uuid_global_id("Interaction", f"{p}.id")
            elif name == "occurredAt":
                value = sql.json_timestamp(f"{p}.occurred_at")
            elif name in plain:
                value = f"{p}.{name}"
            elif name == "touchpoint":
                value = self.touchpoint(f"{p}.touchpoint_id", child, joins)
            elif name == "channel":
                value = self.channel(f"{p}.channel_code", child, joins)
            else:
                raise NotCompilable(f"Interaction.{name}")
            pairs.append((key, self.column("Interaction", name, value)))
        return sql.json_object(pairs)

    def touchpoint(self, touchpoint_id: str, node: FieldNode, joins: list[str]) -> str:
        """The touchpoint as JSON, its row LEFT JOINed to the enclosing FROM (one join per
        page rather than one lookup per interaction)."""
        t = self.aliases.next("t")
        joins.append(f" LEFT JOIN touchpoints {t} ON {t}.id = {touchpoint_id}")
        pairs: list[tuple[str, str]] = []
        columns = {
            "name": "name",
            "kind": "kind",
            "address": "address",
            "businessLine": "business_line",
            "active": "active",
        }
        for key, child in self.collect("Touchpoint", node.selection_set):
            name = child.name.value
            self.check("Touchpoint", name)
            if name == "__typename":
                value = "'Touchpoint'"
            elif name == "id":
                value = sql.uuid_global_id("Touchpoint", f"{t}.id")
            elif name in columns:
                value = f"{t}.{columns[name]}"
            elif name == "channel":
                value = self.channel(f"{t}.channel_code", child, joins)
            elif name == "interactions":
                page = self.interaction_connection("Touchpoint", "touchpoint_id", f"{t}.id", child)
                value = f"({page})"
            else:
                raise NotCompilable(f"Touchpoint.{name}")
            pairs.append((key, self.column("Touchpoint", name, value)))
        return f"CASE WHEN {t}.id IS NOT NULL THEN {sql.json_object(pairs)} END"

    def channel(self, code: str, node: FieldNode, joins: list[str]) -> str:
        x = self.aliases.next("ch")
        joins.append(f" LEFT JOIN channels {x} ON {x}.code = {code}")
        pairs: list[tuple[str, str]] = []
        for key, child in self.collect("Channel", node.selection_set):
            name = child.name.value
            self.check("Channel", name)
            if name == "__typename":
                value = "'Channel'"
            elif name == "id":
                value = sql.global_id("Channel", f"{x}.code")
            elif name in ("code", "name", "description", "position"):
                value = f"{x}.{name}"
            else:
                raise NotCompilable(f"Channel.{name}")
            pairs.append((key, self.column("Channel", name, value)))
        return f"CASE WHEN {x}.code IS NOT NULL THEN {sql.json_object(pairs)} END"


TIMESTAMP_COLUMNS = {
    "Customer": {
        "stageEnteredAt": "stage_entered_at",
        "firstSeenAt": "first_seen_at",
        "lastSeenAt": "last_seen_at",
        "createdAt": "created_at",
        "updatedAt": "updated_at",
    }
}


def _customer_cursor_value(keys: list[Any], cursor: str, index: int) -> Any:
    """The ``index``-th sort-key value of a customers cursor (``BAD_USER_INPUT`` when bad)."""
    signature = ordering_signature("customers", keys)
    return keys[index].decode(decode_cursor(cursor, signature, len(keys))[index])
