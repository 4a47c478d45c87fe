"""The committed SDL is the contract: it must equal what the code generates, fully described."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
)

from hub.graphql import schema, schema_sdl

SDL_FILE = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"
# Types that Strawberry or the Federation spec define; their descriptions are not ours to write.
FOREIGN = {"_Service", "_Entity", "_Any", "_FieldSet", "FieldSet", "link__Import", "link__Purpose"}


def test_committed_sdl_matches_code() -> None:
    committed = SDL_FILE.read_text()
    assert committed == schema_sdl(), (
        "schema/schema.graphql is stale: run `hub schema -o schema/schema.graphql`, review the "
        "diff, and note breaking changes in the README's changelog"
    )


def test_hub_schema_command_prints_the_sdl() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "hub", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert output == schema_sdl()


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    missing: list[str] = []
    for name, gql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in FOREIGN:
            continue
        if not gql_type.description:
            missing.append(name)
        if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in gql_type.fields.items():
                if field_name.startswith("_"):
                    continue
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing.extend(
                    f"{name}.{field_name}({arg})"
                    for arg, definition in field.args.items()
                    if not definition.description
                )
        if isinstance(gql_type, GraphQLInputObjectType):
            missing.extend(
                f"{name}.{field_name}"
                for field_name, field in gql_type.fields.items()
                if not field.description
            )
        if isinstance(gql_type, GraphQLEnumType):
            missing.extend(
                f"{name}.{value}"
                for value, definition in gql_type.values.items()
                if not definition.description
            )
    assert not missing, f"undescribed: {missing}"
