"""A Node receiver verifying deliveries with the npm `standardwebhooks` package (issue 17)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import asyncpg

from tests.factories import Factory, gid
from tests.live_server import Writer, free_port
from tests.webhooks.test_delivery import CREATE, FEED, graphql, serve

SCRIPT = Path(__file__).with_name("node_receiver.cjs")


async def test_a_node_receiver_verifies_every_delivery(
    database_url: str, tmp_path: Path, engine: Any, db: asyncpg.Connection
) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (it is for the explorer's libraries too)"
    server = serve(database_url, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    receiver: asyncio.subprocess.Process | None = None
    try:
        created = await graphql(server, CREATE, {"input": {"url": url, "query": FEED}})
        secret = created["createWebhook"]["secret"]
        receiver = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), str(port), secret, stdout=asyncio.subprocess.PIPE
        )
        assert receiver.stdout is not None
        first = await asyncio.wait_for(receiver.stdout.readline(), 30)
        assert first == b"listening\n"
        factory = Factory(db)
        touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
        customer = await factory.customer("Ada Node")
        writer = Writer(engine, customer, "Shop", touchpoint, "WEB")
        written = [await writer.record(type="ORDER") for _ in range(3)]
        lines = [
            json.loads(await asyncio.wait_for(receiver.stdout.readline(), 30)) for _ in written
        ]
    finally:
        if receiver is not None and receiver.returncode is None:
            receiver.kill()
            await receiver.wait()
        server.stop()
    assert [line["verified"] for line in lines] == [True, True, True]
    assert [line["data"]["interactionRecorded"]["interaction"]["id"] for line in lines] == [
        gid("Interaction", w) for w in written
    ]
    assert [line["id"] for line in lines] == [
        line["data"]["interactionRecorded"]["cursor"] for line in lines
    ]
