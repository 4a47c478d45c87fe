"""Documents that reach every field of the schema, built from the schema itself.

Two sources, both fed real ids of the planted world (tests/authz_world.py):
- ``walk``: deterministic. One document per root field (and per id it is asked with): from the
  root, a breadth-first spanning tree of every type reachable within ``MAX_DEPTH`` levels; each
  type on the tree selects all its fields (composite ones it does not expand select their
  leaves). So every (type, field) pair reachable from the roots is selected at least once, and a
  field added later is walked without editing anything.
- ``random_documents``: hypothesis-graphql's random documents, with ids, ``_Any`` entity
  representations, JSON and dates drawn from the world instead of random text.

``selected_fields`` measures coverage from the documents themselves (graphql-core's TypeInfo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import graphql
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes, queries

from hub.core.enums import IdentityKind, InteractionType, TouchpointKind
from hub.privacy.consent import ConsentPurpose

MAX_DEPTH = 8  # levels below a root field; deeper than the longest shortest path of the schema
PAGE = 2  # `first` on every field that pages: small answers, every path still reached
PROBE_TEXT = "authz-probe"
PROBE_TIME = "2026-01-01T00:00:00Z"


def hub_schema() -> graphql.GraphQLSchema:
    """graphql-core's schema of the hub, as the server executes it."""
    from hub.graphql import schema

    return schema._schema


@dataclass(frozen=True)
class Inputs:
    """Real values for arguments: ids per type name, ``_entities`` representations."""

    ids_by_type: dict[str, list[str]]
    representations: list[dict[str, str]]
    texts: dict[str, list[str]]  # by argument name, e.g. identifier values for ``value``

    @property
    def all_ids(self) -> list[str]:
        return sorted({i for ids in self.ids_by_type.values() for i in ids})

    def pool(self, argument: str, field: str) -> list[str]:
        """The ids an argument is asked with: those of the type its name says (``customerIds``),
        else of the type its field names (``interaction(id)``, ``exportCustomer(id)``,
        ``mergeCustomers(input)``); any planted id otherwise (``node``)."""
        for where in (argument, field):
            for type_name, ids in self.ids_by_type.items():
                if type_name.lower() in where.lower():
                    return ids
        return self.all_ids


@dataclass(frozen=True)
class Document:
    operation: str  # "query" or "mutation"
    root: str
    text: str
    variables: dict[str, Any]


def _named(type_: graphql.GraphQLType) -> graphql.GraphQLNamedType:
    return graphql.get_named_type(type_)  # type: ignore[arg-type]


def _is_leaf(type_: graphql.GraphQLType) -> bool:
    return graphql.is_leaf_type(_named(type_))


def _has_dry_run(type_: graphql.GraphQLInputType, seen: frozenset[str] = frozenset()) -> bool:
    named = _named(type_)
    if not isinstance(named, graphql.GraphQLInputObjectType) or named.name in seen:
        return False
    return any(
        name == "dryRun" or _has_dry_run(f.type, seen | {named.name})
        for name, f in named.fields.items()
    )


def reads_back_only(field: graphql.GraphQLField) -> bool:
    """A mutation that can be asked to change nothing (a ``dryRun`` argument, forced true)."""
    return any(_has_dry_run(arg.type) for arg in field.args.values())


class _Values:
    """Argument values for one variant of a document: variant k takes the k-th id of a pool."""

    def __init__(self, inputs: Inputs, variant: int) -> None:
        self.inputs = inputs
        self.variant = variant

    def value(self, type_: graphql.GraphQLInputType, name: str, where: str) -> Any:
        if isinstance(type_, graphql.GraphQLNonNull):
            return self.value(type_.of_type, name, where)
        if isinstance(type_, graphql.GraphQLList):
            item = type_.of_type
            if _named(item).name in {"ID", "_Any"}:  # two ids: e.g. a merge preview of a pair
                return [self._pick(name, where, 1), self._pick(name, where, 2)]
            return [self.value(item, name, where)]
        if isinstance(type_, graphql.GraphQLInputObjectType):
            return {
                field_name: self.value(field.type, field_name, where)
                for field_name, field in type_.fields.items()
                if graphql.is_required_input_field(field) or field_name == "dryRun"
            }
        if isinstance(type_, graphql.GraphQLEnumType):
            return next(iter(type_.values))
        return self._scalar(type_.name, name, where)  # type: ignore[union-attr]

    def _pick(self, name: str, where: str, offset: int = 0) -> Any:
        if name == "representations":
            reps = self.inputs.representations
            return reps[(self.variant + offset) % len(reps)]
        ids = self.inputs.pool(name, where)
        return ids[(self.variant + offset) % len(ids)]

    def _scalar(self, scalar: str, name: str, where: str) -> Any:
        if scalar in {"ID", "_Any"}:
            return self._pick(name, where)
        if name == "dryRun":
            return True
        if scalar == "String" and name in self.inputs.texts:
            texts = self.inputs.texts[name]
            return texts[self.variant % len(texts)]
        return {
            "String": PROBE_TEXT,
            "Int": PAGE,
            "Float": 0.5,
            "Boolean": False,
            "DateTime": PROBE_TIME,
            "JSON": {},
            # The vocabulary's scalars (codes; their first values when they were enums).
            "InteractionType": "AD_CLICK",
            "IdentityKind": "EMAIL",
            "TouchpointKind": "WEBSITE",
            "ConsentPurpose": "MARKETING",
        }.get(scalar, PROBE_TEXT)


class _Renderer:
    """Renders one document: selections as text, every argument as a variable."""

    def __init__(self, schema: graphql.GraphQLSchema, values: _Values) -> None:
        self.schema = schema
        self.values = values
        self.definitions: list[str] = []
        self.variables: dict[str, Any] = {}

    def arguments(self, field: graphql.GraphQLField, where: str, root: bool) -> str:
        parts = []
        for name, arg in sorted(field.args.items()):
            if graphql.is_required_argument(arg) or (name == "first" and not root):
                value = PAGE if name == "first" else self.values.value(arg.type, name, where)
            elif _has_dry_run(arg.type):
                value = self.values.value(arg.type, name, where)
            else:
                continue
            variable = f"v{len(self.definitions)}"
            self.definitions.append(f"${variable}: {arg.type}")
            self.variables[variable] = value
            parts.append(f"{name}: ${variable}")
        return f"({', '.join(parts)})" if parts else ""

    def conflicts(self, abstract: graphql.GraphQLNamedType) -> set[str]:
        """Field names that two possible types of ``abstract`` declare with different types:
        selected side by side they would not merge, so they get a per-type alias."""
        declared: dict[str, set[str]] = {}
        for t in self.schema.get_possible_types(abstract):  # type: ignore[arg-type]
            for name, f in t.fields.items():
                declared.setdefault(name, set()).add(str(f.type))
        return {name for name, types in declared.items() if len(types) > 1}

    def leaves(self, type_: graphql.GraphQLNamedType, rename: frozenset[str] = frozenset()) -> str:
        """Every leaf field of a type (its scalar data), or of each possible type."""
        if graphql.is_abstract_type(type_):
            clash = frozenset(self.conflicts(type_))
            possible = self.schema.get_possible_types(type_)  # type: ignore[arg-type]
            return "__typename " + " ".join(
                f"... on {t.name} {{ {self.leaves(t, clash)} }}" for t in possible
            )
        fields = [
            f"{_alias(type_, name, rename)}{name}"
            f"{self.arguments(f, name + ' ' + _named(f.type).name, root=False)}"
            for name, f in sorted(type_.fields.items())  # type: ignore[attr-defined]
            if _is_leaf(f.type)
        ]
        return " ".join(["__typename", *fields])

    def tree(
        self,
        type_: graphql.GraphQLNamedType,
        edges: dict[str, set[str]],
        rename: frozenset[str] = frozenset(),
    ) -> str:
        """The spanning tree below ``type_``: all fields; ``edges`` says which composite fields
        descend (the rest select their leaves)."""
        if graphql.is_abstract_type(type_):
            clash = frozenset(self.conflicts(type_))
            parts = ["__typename"]
            for t in self.schema.get_possible_types(type_):  # type: ignore[arg-type]
                inner = (
                    self.tree(t, edges, clash)
                    if t.name in edges.get(type_.name, set())
                    else self.leaves(t, clash)
                )
                parts.append(f"... on {t.name} {{ {inner} }}")
            return " ".join(parts)
        parts = ["__typename"]
        for name, f in sorted(type_.fields.items()):  # type: ignore[attr-defined]
            target = _named(f.type)
            where = f"{name} {target.name}"
            call = f"{_alias(type_, name, rename)}{name}{self.arguments(f, where, root=False)}"
            if graphql.is_leaf_type(target):
                parts.append(call)
            elif name in edges.get(type_.name, set()):
                parts.append(f"{call} {{ {self.tree(target, edges)} }}")
            else:
                parts.append(f"{call} {{ {self.leaves(target)} }}")
        return " ".join(parts)


def _alias(type_: graphql.GraphQLNamedType, name: str, rename: frozenset[str]) -> str:
    return f"{type_.name}_{name}: " if name in rename else ""


def spanning_edges(
    schema: graphql.GraphQLSchema, root: graphql.GraphQLNamedType
) -> dict[str, set[str]]:
    """Breadth-first from ``root``: for each type, the fields (or, for abstract types, the
    possible types) through which a type is reached for the first time."""
    edges: dict[str, set[str]] = {}
    seen = {root.name}
    queue: list[tuple[graphql.GraphQLNamedType, int]] = [(root, 0)]
    while queue:
        type_, depth = queue.pop(0)
        if depth >= MAX_DEPTH:
            continue
        if graphql.is_abstract_type(type_):
            children = [(t.name, t) for t in schema.get_possible_types(type_)]  # type: ignore[arg-type]
        elif isinstance(type_, graphql.GraphQLObjectType):
            children = [(name, _named(f.type)) for name, f in sorted(type_.fields.items())]
        else:
            continue
        for edge, target in children:
            if graphql.is_leaf_type(target) or target.name in seen:
                continue
            seen.add(target.name)
            edges.setdefault(type_.name, set()).add(edge)
            queue.append((target, depth + 1))
    return edges


def _variants(field: graphql.GraphQLField, name: str, inputs: Inputs) -> int:
    """How many documents a root field gets: one per id its id arguments can take."""
    where = f"{name} {_named(field.type).name}"
    sizes = [1]
    for arg_name, arg in field.args.items():
        scalar = _named(arg.type).name
        if scalar == "_Any":
            sizes.append(len(inputs.representations))
        elif (scalar == "ID" and graphql.is_required_argument(arg)) or _has_dry_run(arg.type):
            sizes.append(len(inputs.pool(arg_name, where)))
        elif scalar == "String" and arg_name in inputs.texts:
            sizes.append(len(inputs.texts[arg_name]))
    return max(sizes)


def walk(
    schema: graphql.GraphQLSchema, inputs: Inputs, mutation_fields: Callable[[str], bool]
) -> Iterator[Document]:
    """The deterministic documents: every Query root field, and the Mutation root fields that
    ``mutation_fields(name)`` admits, each once per id its arguments can take."""
    roots: list[tuple[str, graphql.GraphQLObjectType]] = [("query", schema.query_type)]  # type: ignore[list-item]
    if schema.mutation_type is not None:
        roots.append(("mutation", schema.mutation_type))
    for operation, root_type in roots:
        for name, field in sorted(root_type.fields.items()):
            if operation == "mutation" and not mutation_fields(name):
                continue
            target = _named(field.type)
            edges = spanning_edges(schema, target)
            # A mutation that writes is sent once (to roles that must be refused it); reads and
            # dry runs once per id they can take.
            writes = operation == "mutation" and not reads_back_only(field)
            for variant in range(1 if writes else _variants(field, name, inputs)):
                renderer = _Renderer(schema, _Values(inputs, variant))
                call = f"{name}{renderer.arguments(field, name + ' ' + target.name, root=True)}"
                body = (
                    call
                    if graphql.is_leaf_type(target)
                    else f"{call} {{ {renderer.tree(target, edges)} }}"
                )
                header = f"({', '.join(renderer.definitions)})" if renderer.definitions else ""
                yield Document(
                    operation, name, f"{operation}{header} {{ {body} }}", renderer.variables
                )


def reachable_fields(
    schema: graphql.GraphQLSchema, roots: Sequence[tuple[graphql.GraphQLObjectType, str]]
) -> set[tuple[str, str]]:
    """Every (object type, field) pair reachable from the given root fields, at any depth."""
    pairs = {(root.name, name) for root, name in roots}
    queue = [_named(root.fields[name].type) for root, name in roots]
    seen: set[str] = set()
    while queue:
        type_ = queue.pop()
        if type_.name in seen or type_.name.startswith("__"):
            continue
        seen.add(type_.name)
        if graphql.is_abstract_type(type_):
            queue.extend(schema.get_possible_types(type_))  # type: ignore[arg-type]
        elif isinstance(type_, graphql.GraphQLObjectType):
            for name, f in type_.fields.items():
                pairs.add((type_.name, name))
                queue.append(_named(f.type))
    return pairs


def selected_fields(schema: graphql.GraphQLSchema, text: str) -> set[tuple[str, str]]:
    """The (parent type, field) pairs a document selects (``__typename`` aside)."""
    type_info = graphql.TypeInfo(schema)
    found: set[tuple[str, str]] = set()

    class Collect(graphql.Visitor):
        def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
            parent = type_info.get_parent_type()
            if parent is not None and not node.name.value.startswith("__"):
                found.add((parent.name, node.name.value))

    graphql.visit(graphql.parse(text), graphql.TypeInfoVisitor(type_info, Collect()))
    return found


def value_node(value: Any) -> graphql.ValueNode:
    """A JSON value as a GraphQL literal (for ``_Any`` representations and ``JSON``)."""
    if isinstance(value, dict):
        return nodes.Object(
            [
                graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=value_node(v))
                for k, v in value.items()
            ]
        )
    if isinstance(value, list):
        return graphql.ListValueNode(values=tuple(value_node(v) for v in value))
    if isinstance(value, bool):
        return graphql.BooleanValueNode(value=value)
    if isinstance(value, int):
        return nodes.Int(value)
    return nodes.String(value)


def _codes(registered: list[str]) -> st.SearchStrategy[graphql.ValueNode]:
    codes = st.sampled_from([*registered, "NOT_REGISTERED"])
    return st.one_of(
        codes.map(lambda code: graphql.EnumValueNode(value=code)), codes.map(nodes.String)
    )


def random_documents(
    schema: graphql.GraphQLSchema, inputs: Inputs, *, with_mutations: bool
) -> st.SearchStrategy[str]:
    """hypothesis-graphql documents (queries; mutations too when ``with_mutations``), with ids,
    representations, JSON and dates taken from the world."""
    scalars = {
        "ID": st.sampled_from(inputs.all_ids).map(nodes.String),
        "_Any": st.sampled_from(inputs.representations).map(value_node),
        "JSON": st.sampled_from([{}, {"tier": "gold"}, {"email": PROBE_TEXT}]).map(value_node),
        "DateTime": st.just(PROBE_TIME).map(nodes.String),
        # Codes of the vocabulary kept as data: registered or not, bare (as enum values) or
        # quoted.
        "InteractionType": _codes([t.value for t in InteractionType]),
        "IdentityKind": _codes([k.value for k in IdentityKind]),
        "TouchpointKind": _codes([k.value for k in TouchpointKind]),
        "ConsentPurpose": _codes([p.value for p in ConsentPurpose]),
    }
    if with_mutations:
        return from_schema(schema, custom_scalars=scalars)
    return queries(schema, custom_scalars=scalars)
