"""The explorer and /journeys in a real headless Chromium, against a real server, offline.

Every request the browser makes to anything but 127.0.0.1 is aborted, so a page that still
needed a CDN would fail here. Screenshots go to ``test-artifacts/``; with
``HUB_UPDATE_DOCS_SCREENSHOT=1`` the journeys screenshot is also written to ``docs/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright

from tests.conftest import make_key
from tests.journey_data import seed_journeys

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """``hub`` served by uvicorn in its own process on a free port."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_MIGRATE_ON_START": "false"}
    log = (ARTIFACTS / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hub.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "the server exited; see test-artifacts/server.log"
            assert time.monotonic() < deadline, "the server did not start within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _chromium_installed() -> bool:
    return Path(CHROMIUM).exists()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert _chromium_installed(), "install Debian's chromium: scripts/setup --dev does it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def offline_page(browser: Browser, blocked: list[str]) -> Page:
    """A 1280x800 page that can reach 127.0.0.1 and nothing else."""
    page = await browser.new_page(viewport={"width": 1280, "height": 800})

    async def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:")):
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort()

    await page.route("**/*", only_local)
    return page


async def test_explorer_runs_a_query_offline_with_the_key_in_a_header(
    db: asyncpg.Connection, engine: Any, server: str, browser: Browser
) -> None:
    await seed_journeys(db, customers=40)
    key = await make_key(engine, "ANALYST")
    interactions = await db.fetchval("SELECT count(*) FROM interactions")
    blocked: list[str] = []
    page = await offline_page(browser, blocked)
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/graphql") else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(f"{server}/graphql")
    await page.wait_for_selector(".graphiql-container", timeout=30_000)
    # The explorer plugin is open, and the example tabs are there.
    await page.wait_for_selector(".graphiql-explorer-root, .docExplorerWrap", timeout=10_000)
    # A new key restarts the explorer so that it reads the schema with it.
    async with page.expect_navigation():
        await page.fill("#api-key", key)
        await page.locator("#api-key").dispatch_event("change")
    await page.wait_for_selector(".graphiql-explorer-root, .docExplorerWrap", timeout=10_000)
    await page.get_by_role("tab", name="ChannelMix").click()
    # Execute only once the tab's query is in the editor (GraphiQL re-renders after the key
    # restart; clicking too early runs whichever tab was active).
    await page.wait_for_function(
        "(document.querySelector('.graphiql-query-editor') || {innerText: ''})"
        ".innerText.includes('channelMix')",
        timeout=30_000,
    )
    await page.click(".graphiql-execute-button")
    result = page.locator(".result-window")
    try:
        await result.get_by_text('"channelMix"').wait_for(timeout=45_000)
    except Exception:
        await page.screenshot(path=str(ARTIFACTS / "explorer-failed.png"))
        (ARTIFACTS / "explorer-failed.txt").write_text(
            "\n".join(f"{r.method} {r.url} {r.post_data}" for r in sent)
        )
        raise
    text = await result.inner_text()
    assert f'"interactions": {interactions},' in text
    await page.screenshot(path=str(ARTIFACTS / "explorer.png"))

    queries = [r for r in sent if r.method == "POST" and "ChannelMix" in (r.post_data or "")]
    assert queries, "the explorer sent no query"
    assert all(r.headers.get("authorization") == f"Bearer {key}" for r in queries)
    assert not any(key in r.url for r in sent)
    assert not blocked, f"the explorer tried to reach the internet: {blocked}"
    assert not errors, errors


async def test_journeys_page_draws_the_sankey_and_the_funnel_offline(
    db: asyncpg.Connection, engine: Any, server: str, browser: Browser
) -> None:
    await seed_journeys(db)
    key = await make_key(engine, "ANALYST")
    customers = await db.fetchval("SELECT count(DISTINCT customer_id) FROM interactions")
    awareness = await db.fetchval(
        "SELECT count(DISTINCT customer_id) FROM stage_history WHERE stage = 'AWARENESS'"
    )
    blocked: list[str] = []
    page = await offline_page(browser, blocked)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(f"{server}/journeys")
    # The page asks for an ANALYST or ADMIN key before it can load any numbers.
    await page.fill("#api-key", key)
    await page.press("#api-key", "Enter")
    await page.locator("#api-key").dispatch_event("change")
    await page.wait_for_selector("#sankey svg path.link", state="attached", timeout=30_000)
    await page.wait_for_selector("#funnel svg rect.funnel-bar")
    assert await page.locator("#sankey svg path.link").count() > 10
    # Six channels on the left; on the right the same six plus "Journey ends".
    assert await page.locator("#sankey svg g.nodes rect").count() == 13
    labels = await page.locator("#sankey svg text.node-label").all_text_contents()
    assert any(label.startswith("Journey ends") for label in labels)
    assert await page.locator("#funnel svg rect.funnel-bar").count() == 5
    assert await page.inner_text("#kpi-customers") == f"{customers:,}"
    funnel_rows = await page.locator("#funnel-table tbody tr").all_inner_texts()
    assert funnel_rows[0].split("\t")[:2] == ["Awareness", f"{awareness:,}"]
    link_rows = await page.locator("#links-table tbody tr").all_inner_texts()
    assert len(link_rows) == 10 and all(row.split("\t")[2].isdigit() for row in link_rows)
    assert await page.locator("#legend span.swatch").count() == 7
    await page.screenshot(path=str(ARTIFACTS / "journeys.png"))
    if os.environ.get("HUB_UPDATE_DOCS_SCREENSHOT") == "1":
        await page.screenshot(path=str(ROOT / "docs" / "journeys.png"))

    # The controls re-query: stages as nodes, one business line.
    await page.select_option("#group", "STAGE")
    await page.select_option("#line", "travel")
    await page.wait_for_function(
        "document.querySelector('#sankey-title').textContent === 'Stage transitions'"
    )
    await page.wait_for_selector("#sankey svg path.link", state="attached")
    stage_labels = await page.locator("#sankey svg text.node-label").all_text_contents()
    assert any(label.startswith("Awareness") for label in stage_labels)
    await page.screenshot(path=str(ARTIFACTS / "journeys-stages-travel.png"))

    assert not blocked, f"the journeys page tried to reach the internet: {blocked}"
    assert not errors, errors
