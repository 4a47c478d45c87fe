"""graphql-core's coerced input values read the way Strawberry's input objects are read.

``hub.reads`` compiles filters from objects with Python attribute names (``starts_with``,
``in_``); the compiled path holds dicts keyed by the SDL's names (``startsWith``, ``in``). This
adapter bridges the two with the schema's input type, so that JSON values stay plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLList, GraphQLNonNull

from hub.compiled.errors import NotCompilable


def graphql_name(attribute: str) -> str:
    """Strawberry's auto camel case: ``starts_with`` -> ``startsWith``, ``in_`` -> ``in``."""
    head, *rest = attribute.rstrip("_").split("_")
    return head + "".join(part.title() for part in rest)


class GraphQLInput:
    """A coerced input object of ``input_type``, read by attribute."""

    __slots__ = ("_type", "_value")

    def __init__(self, value: Mapping[str, Any], input_type: GraphQLInputObjectType) -> None:
        self._value = value
        self._type = input_type

    def __getattr__(self, attribute: str) -> Any:
        name = graphql_name(attribute)
        field = self._type.fields.get(name)
        if field is None:
            raise AttributeError(f"{self._type.name} has no field {name}")
        return _read(self._value.get(name), field.type)


def _read(value: Any, input_type: GraphQLInputType) -> Any:
    if isinstance(input_type, GraphQLNonNull):
        input_type = input_type.of_type
    if value is None:
        return None
    if isinstance(input_type, GraphQLList):
        return [_read(item, input_type.of_type) for item in value]
    if isinstance(input_type, GraphQLInputObjectType):
        return GraphQLInput(value, input_type)
    if isinstance(value, datetime) and value.tzinfo is None:
        # Left to the resolvers: the filters read a moment without an offset differently.
        raise NotCompilable("a filter moment without a time zone")
    return value
