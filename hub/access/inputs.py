"""Input limits checked before any resolver runs, generically for every argument and variable.

Argument values (literals in the document, and the request's variables) are walked against
the schema's input types, so a field added later is covered without its author doing anything:
- **list lengths** (``LIST_TOO_LONG``): no list argument or input field holds more than
  ``max_list_length`` items (a 100,000-item list ran into the driver's parameter limit);
- **filter width** (``FILTER_TOO_WIDE``): a filter whose input type combines itself with
  ``and``/``or``/``not`` (``CustomerFilter``) holds at most ``max_filter_clauses`` filter
  objects in total, nested ones included; counted before anything is compiled;
- **storable text** (``BAD_USER_INPUT``): no string anywhere (plain strings, ids, list items,
  input object fields, keys and values inside JSON scalars) holds what PostgreSQL cannot store
  (``hub.core.text``).
Each error names the argument or variable path (``customers.filter.or[3].displayName.eq``,
``$input.attributes.note``). The walks are iterative: nesting costs no Python stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    FieldNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    ValidationContext,
    ValidationRule,
    VariableDefinitionNode,
    VariableNode,
    get_nullable_type,
    is_input_object_type,
    is_list_type,
    type_from_ast,
    value_from_ast_untyped,
)

from hub.core.settings import Settings
from hub.core.text import unstorable

MAX_ERRORS = 10  # one per argument or variable at most, and no more than this in all
_COMBINATORS = ("and", "or", "not")


def _is_filter(type_: GraphQLInputObjectType) -> bool:
    """A boolean filter tree: an input type combining itself with ``and``/``or``."""
    for name in ("and", "or"):
        field = type_.fields.get(name)
        if field is not None:
            inner = get_nullable_type(field.type)
            if is_list_type(inner):
                inner = get_nullable_type(inner.of_type)
            if inner is type_:
                return True
    return False


def _width(value: dict[str, Any], limit: int) -> int:
    """The filter objects in the tree rooted at ``value`` (counting stops past ``limit``)."""
    count = 0
    stack: list[Any] = [value]
    while stack and count <= limit:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        count += 1
        for combinator in _COMBINATORS:
            child = node.get(combinator)
            if isinstance(child, list):
                stack.extend(child)
            elif child is not None:
                stack.append(child)
    return count


def _text_problem(value: Any, path: str) -> tuple[str, str] | None:
    """(path, what) of the first unstorable string in a JSON-like value, keys included."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            found = unstorable(node)
            if found is not None:
                return where, found
        elif isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and (found := unstorable(key)) is not None:
                    return f"{where} (a key)", found
                stack.append((child, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(node))
    return None


class InputLimits:
    """The checks of one request's settings."""

    def __init__(self, settings: Settings) -> None:
        self.max_list = settings.max_list_length
        self.max_clauses = settings.max_filter_clauses

    def check(self, value: Any, type_: Any, path: str) -> GraphQLError | None:
        """The first problem in ``value`` (a JSON-like value) as an input of ``type_``."""
        stack: list[tuple[Any, Any, str]] = [(value, type_, path)]
        while stack:
            node, node_type, where = stack.pop()
            if node is None:
                continue
            node_type = get_nullable_type(node_type)
            if is_list_type(node_type):
                items = node if isinstance(node, list) else [node]  # one value coerces to a list
                if len(items) > self.max_list:
                    return GraphQLError(
                        f"{where} has {len(items)} items; at most {self.max_list} are allowed",
                        extensions={
                            "code": "LIST_TOO_LONG",
                            "argument": where,
                            "maxLength": self.max_list,
                        },
                    )
                stack.extend(
                    (item, node_type.of_type, f"{where}[{index}]")
                    for index, item in enumerate(items)
                )
            elif is_input_object_type(node_type) and isinstance(node, dict):
                if _is_filter(node_type) and _width(node, self.max_clauses) > self.max_clauses:
                    return GraphQLError(
                        f"the filter {where} has more than {self.max_clauses} clauses "
                        "(nested `and`/`or`/`not` included); split it into narrower queries",
                        extensions={
                            "code": "FILTER_TOO_WIDE",
                            "argument": where,
                            "maxClauses": self.max_clauses,
                        },
                    )
                for key, child in node.items():
                    field = node_type.fields.get(key)
                    if field is None:
                        # An unknown field: coercion reports it; its text is checked anyway.
                        stack.append((child, None, f"{where}.{key}"))
                    else:
                        stack.append((child, field.type, f"{where}.{key}"))
            else:  # a scalar or enum (JSON scalars hold any JSON), or an unknown field's value
                problem = _text_problem(node, where)
                if problem is not None:
                    at, what = problem
                    return GraphQLError(
                        f"{at} contains {what}, which cannot be stored; remove it",
                        extensions={"code": "BAD_USER_INPUT", "argument": at},
                    )
        return None


def operation_variable_errors(
    limits: InputLimits,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
) -> Iterator[tuple[VariableDefinitionNode, GraphQLError]]:
    """Each variable of ``operation`` whose value (the request's, or the declared default)
    breaks an input limit, with its error."""
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        type_ = type_from_ast(schema, definition.type)
        if type_ is None:
            continue  # an unknown type: validation reports it
        if name in variables:
            value = variables[name]
        elif definition.default_value is not None:
            value = value_from_ast_untyped(definition.default_value)
        else:
            continue
        error = limits.check(value, type_, f"${name}")
        if error is not None:
            yield definition, error


def input_limits_rule(
    settings: Settings, variables: dict[str, Any], check_variables: bool = True
) -> type[ValidationRule]:
    """A validation rule checking every variable of each operation (the request's value, or the
    declared default) and every literal argument of every field, fragments included.
    ``check_variables=False``: the literals only (``hub.access.request_limits`` checks the
    variables per request, and the literals once per document)."""
    limits = InputLimits(settings)

    class InputLimitsRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.reported = 0

        def _report(self, error: GraphQLError | None, node: Any) -> None:
            if error is None or self.reported >= MAX_ERRORS:
                return
            self.reported += 1
            self.report_error(GraphQLError(error.message, node, extensions=error.extensions))

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            if not check_variables:
                return
            schema = self.context.schema
            for definition, error in operation_variable_errors(limits, schema, node, variables):
                self._report(error, definition)

        def enter_argument(
            self, node: ArgumentNode, _key: Any, _parent: Any, _path: Any, ancestors: Any
        ) -> None:
            if isinstance(node.value, VariableNode):
                return  # checked with the operation's variables
            argument = self.context.get_argument()
            if argument is None:
                return  # an unknown argument: validation reports it
            owner = ancestors[-1] if ancestors else None
            prefix = f"{owner.name.value}." if isinstance(owner, FieldNode) else ""
            # Variables nested inside a literal are checked with the operation's variables:
            # here they read as missing (no variables given).
            value = value_from_ast_untyped(node.value, None)
            self._report(limits.check(value, argument.type, f"{prefix}{node.name.value}"), node)

    return InputLimitsRule


__all__ = ["InputLimits", "input_limits_rule", "operation_variable_errors"]
