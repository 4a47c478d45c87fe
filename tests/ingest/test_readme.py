"""The README's `## Recording interactions` examples run as written (touchpoint id filled in)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

from tests.ingest_support import touchpoints

README = Path(__file__).resolve().parents[2] / "README.md"


def examples() -> list[str]:
    text = README.read_text()
    section = text.split("## Recording interactions", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```graphql\n(.*?)```", section, flags=re.S)


async def test_readme_examples_run(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    single, batch = examples()
    first = await gql.data(single.replace("TOUCHPOINT_ID", tp["chat"]))
    result = first["recordInteraction"]
    assert result["created"] is True
    assert result["customer"]["currentStage"] == {"code": "CONSIDERATION"}
    assert result["customer"]["resumeContext"]["openConversations"] == [{"key": "TICKET-42"}]
    retry = await gql.data(single.replace("TOUCHPOINT_ID", tp["chat"]))
    assert retry["recordInteraction"]["duplicate"] is True
    many = (await gql.data(batch.replace("TOUCHPOINT_ID", tp["web"])))["recordInteractions"]
    assert [s["index"] for s in many["stored"]] == [0]
    assert [(r["index"], r["code"]) for r in many["rejected"]] == [(1, "BAD_USER_INPUT")]
