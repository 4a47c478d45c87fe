"""The examples of docs/audiences.md are valid against the schema."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import parse, validate

from hub.graphql import schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "audiences.md"


def test_the_examples_are_valid() -> None:
    blocks = re.findall(r"```graphql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    # two for computed traits, three for segments and their events, two for segment analytics
    assert len(blocks) == 7
    for block in blocks:
        for operation in re.split(r"\n(?=query |mutation |subscription )", block.strip()):
            assert validate(schema._schema, parse(operation)) == [], operation
