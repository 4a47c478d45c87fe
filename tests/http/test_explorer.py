"""The explorer page and its examples: valid against the schema, served without a CDN."""

from __future__ import annotations

import re

import httpx
import pytest
from graphql import parse, validate

from hub.graphql import schema
from hub.http.explorer import EXAMPLES
from hub.http.web import VENDOR_DIR
from tests.conftest import ROOT


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.title for e in EXAMPLES])
def test_every_example_is_valid(example: object) -> None:
    query = example.query  # type: ignore[attr-defined]
    document = parse(query)
    assert validate(schema._schema, document) == []


def test_examples_cover_each_audience() -> None:
    text = "\n".join(e.query for e in EXAMPLES)
    assert "customerByIdentity" in text
    assert "subscription PartnerFeed {\n  interactionRecorded {\n    cursor\n" in text
    for field in (
        "channelMix",
        "channelTransitions",
        "stageFunnel",
        "touchpointPerformance",
        "interactionsOverTime",
    ):
        assert f"{field}(" in text


async def test_the_explorer_page_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    page = response.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith(("/", "data:")) for s in sources), sources
    assert "/static/vendor/graphiql/graphiql.min.js" in sources
    assert "Authorization" in page and "localStorage" not in page  # the key logic is in hubkey.js
    assert "ChannelMix(" in page  # the examples are embedded


async def test_pages_and_their_files_are_served(client: httpx.AsyncClient) -> None:
    journeys = await client.get("/journeys")
    assert journeys.status_code == 200 and 'id="sankey"' in journeys.text
    for source in re.findall(r'(?:src|href)="(/static/[^"]+)"', journeys.text):
        response = await client.get(source)
        assert response.status_code == 200, source
    assert VENDOR_DIR.joinpath("d3-sankey", "dist", "d3-sankey.min.js").exists()


def test_readme_analytics_examples_are_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Analytics and journeys", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```graphql\n(.*?)```", section, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        assert validate(schema._schema, parse(block)) == []
