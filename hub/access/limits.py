"""Query limits checked before any resolver runs: depth, aliases and estimated cost.

The cost of an operation is the number of fields it could resolve: each field costs 1 times the
sizes of the lists around it. A list's size is its ``first``/``last`` argument (literal or
variable) or, when absent, the default page size; the ``edges``/``nodes`` of a connection are
already counted by the connection's own size. Introspection fields are free (GraphiQL's
introspection query is deep but cheap). Token counts are limited by the parser itself
(``max_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)

from hub.core.settings import Settings


@dataclass
class Measure:
    """What an operation (or one fragment, measured from its own top) could resolve."""

    depth: int = 0
    cost: int = 0
    aliases: int = 0
    # Fragment bodies walked: each fragment at most once, however often it is spread (tests
    # count it; a walk that re-entered fragments grew exponentially with nested spreads).
    fragments_walked: int = 0
    # Fragment spreads met (each adds its fragment's stored measure instead of a walk).
    spreads: int = 0


def _size(node: FieldNode, field_type: Any, variables: dict[str, Any], default: int) -> int:
    for argument in node.arguments or ():
        if argument.name.value in ("first", "last"):
            value: Any = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = variables.get(argument.value.name.value)
            return value if isinstance(value, int) and value >= 0 else default
    return default if is_list_type(get_nullable_type(field_type)) else 1


def _spreads(selections: SelectionSetNode) -> list[str]:
    """The names of the fragments spread anywhere inside ``selections`` (without entering them)."""
    found: list[str] = []
    stack = [selections]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                found.append(selection.name.value)
            else:
                inner = getattr(selection, "selection_set", None)
                if inner is not None:
                    stack.append(inner)
    return found


def _dependency_order(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads (an iterative depth-first search:
    a chain of a thousand fragments must not exhaust Python's stack). Fragments in a cycle, or
    spreading an unknown one, are left out: validation reports them, and the walk skips them."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    broken: set[str] = set()
    for root in fragments:
        if root in state:
            continue
        stack: list[tuple[str, list[str]]] = [(root, _spreads(fragments[root].selection_set))]
        state[root] = 1
        while stack:
            name, pending = stack[-1]
            if pending:
                child = pending.pop()
                if child not in fragments or state.get(child) == 1:
                    broken.add(name)  # unknown or a cycle
                elif child not in state:
                    state[child] = 1
                    stack.append((child, _spreads(fragments[child].selection_set)))
                elif child in broken:
                    broken.add(name)
                continue
            stack.pop()
            state[name] = 2
            if name not in broken:
                order.append(name)
            elif stack:
                broken.add(stack[-1][0])
    return order


def measure(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
    default_size: int,
) -> Measure:
    """The operation's depth, cost and aliases, in time linear in the document's size: each
    fragment is measured once, from its own top at multiplier 1, and a spread adds that
    measure scaled by the spread's multiplier (cost is linear in it) and offset by its depth.
    The result is the same as walking every spread again, without the exponential time."""
    measured: dict[str, Measure] = {}

    def walk(
        selections: SelectionSetNode, parent: Any, depth: int, multiplier: int, into: Measure
    ) -> None:
        in_connection = getattr(parent, "name", "").endswith("Connection")
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    into.aliases += 1
                name = selection.name.value
                if name.startswith("__"):
                    continue
                fields = (
                    parent.fields
                    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                    else {}
                )
                definition = fields.get(name)
                if definition is None:
                    continue  # an unknown field: validation reports it
                into.cost += multiplier
                into.depth = max(into.depth, depth + 1)
                if selection.selection_set is not None:
                    size = (
                        1
                        if in_connection
                        else _size(selection, definition.type, variables, default_size)
                    )
                    walk(
                        selection.selection_set,
                        get_named_type(definition.type),
                        depth + 1,
                        multiplier * max(size, 1),
                        into,
                    )
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                walk(selection.selection_set, target, depth, multiplier, into)
            elif isinstance(selection, FragmentSpreadNode):
                inner = measured.get(selection.name.value)
                if inner is None:
                    continue  # unknown or cyclic: validation reports it
                walked.spreads += 1
                into.cost += multiplier * inner.cost
                if inner.depth:
                    into.depth = max(into.depth, depth + inner.depth)
                into.aliases += inner.aliases

    walked = Measure()  # the counters of the walk itself
    for name in _dependency_order(fragments):
        fragment = fragments[name]
        found = Measure()
        target = schema.get_type(fragment.type_condition.name.value)
        walk(fragment.selection_set, target, 0, 1, found)
        walked.fragments_walked += 1
        measured[name] = found
    result = Measure()
    walk(operation.selection_set, schema.get_root_type(operation.operation), 0, 1, result)
    result.fragments_walked, result.spreads = walked.fragments_walked, walked.spreads
    return result


def limits_rule(settings: Settings, variables: dict[str, Any]) -> type[ValidationRule]:
    """A validation rule enforcing ``settings``' depth, alias and cost limits."""

    class QueryLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments = {
                definition.name.value: definition
                for definition in context.document.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            found = measure(
                self.context.schema,
                self.fragments,
                node,
                variables,
                settings.default_page_size,
            )
            if found.depth > settings.max_query_depth:
                self.report_error(
                    GraphQLError(
                        f"the query is {found.depth} levels deep; at most "
                        f"{settings.max_query_depth} are allowed",
                        node,
                        extensions={"code": "QUERY_TOO_DEEP", "maxDepth": settings.max_query_depth},
                    )
                )
            if found.aliases > settings.max_aliases:
                self.report_error(
                    GraphQLError(
                        f"the query uses {found.aliases} aliases; at most "
                        f"{settings.max_aliases} are allowed",
                        node,
                        extensions={"code": "TOO_MANY_ALIASES", "maxAliases": settings.max_aliases},
                    )
                )
            if found.cost > settings.max_query_cost:
                self.report_error(
                    GraphQLError(
                        f"the query's estimated cost is {found.cost} (fields times page sizes); "
                        f"at most {settings.max_query_cost} is allowed: ask for smaller pages",
                        node,
                        extensions={
                            "code": "QUERY_TOO_COMPLEX",
                            "cost": found.cost,
                            "maxCost": settings.max_query_cost,
                        },
                    )
                )

    return QueryLimits
