"""The explorer and /journeys in a real headless Chromium, against a real server, offline.

Every request the browser makes to anything but 127.0.0.1 is aborted, so a page that still
needed a CDN would fail here. Screenshots go to ``test-artifacts/``; with
``HUB_UPDATE_DOCS_SCREENSHOT=1`` the journeys screenshot is also written to ``docs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright

from hub.http.explorer import ANALYTICS_FILTER, EXAMPLES
from hub.seeds.demo import DEMO_CUSTOMERS, DEMO_SEED, seed_demo
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


@contextlib.contextmanager
def _serve(database_url: str, **settings: str) -> Iterator[str]:
    """``hub`` served by uvicorn in its own process on a free port; yields its base URL."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_MIGRATE_ON_START": "false",
        **{f"HUB_{name.upper()}": value for name, value in settings.items()},
    }
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


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """The hub with API keys required."""
    with _serve(database_url) as base:
        yield base


@pytest.fixture
def demo_server(database_url: str) -> Iterator[str]:
    """The hub as ``hub demo`` serves it: development mode, no key needed."""
    with _serve(database_url, dev_mode="true") as base:
        yield base


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
    # The ChannelMix tab's variables name a fixed window (the demo data's): seed inside it.
    window = json.loads(ANALYTICS_FILTER)["filter"]
    since = datetime.fromisoformat(window["since"]) + timedelta(hours=9)
    await seed_journeys(db, customers=40, start=since)
    key = await make_key(engine, "ANALYST")
    interactions = await db.fetchval(
        "SELECT count(*) FROM interactions WHERE occurred_at >= $1 AND occurred_at < $2",
        datetime.fromisoformat(window["since"]),
        datetime.fromisoformat(window["until"]),
    )
    assert interactions == await db.fetchval("SELECT count(*) FROM interactions") > 0
    blocked: list[str] = []
    page = await offline_page(browser, blocked)
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/graphql") else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(f"{server}/graphql")
    await page.wait_for_selector(".graphiql-container", timeout=30_000)
    # The example tabs are there.
    await page.get_by_role("tab", name="ChannelMix").wait_for(timeout=10_000)
    # A new key restarts the explorer so that it reads the schema with it.
    async with page.expect_navigation():
        await page.fill("#api-key", key)
        await page.locator("#api-key").dispatch_event("change")
    await page.get_by_role("tab", name="ChannelMix").wait_for(timeout=10_000)
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
    # A segment to filter the page by: customers who used the mobile channel. Created through
    # the server (an in-process app would run its own background analytics catch-up, whose
    # locked marks the page's query-time catch-up skips).
    admin = await make_key(engine, "ADMIN")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {admin}"}) as http:
        created = await http.post(
            f"{server}/graphql",
            json={
                "query": """mutation { createSegment(input: {key: "app-users",
                    name: "App users", activity: [{interactions: {channels: [MOBILE]}}]})
                    { key } }"""
            },
        )
    assert created.json() == {"data": {"createSegment": {"key": "app-users"}}}
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

    # The segment control: only the segment's members count (recounted from plain rows).
    in_segment = await db.fetchval(
        "SELECT count(DISTINCT i.customer_id) FROM interactions i"
        " JOIN touchpoints t ON t.id = i.touchpoint_id WHERE t.business_line = 'travel'"
        " AND i.customer_id IN (SELECT customer_id FROM interactions WHERE channel_code = 'MOBILE')"
    )
    in_line = await db.fetchval(
        "SELECT count(DISTINCT i.customer_id) FROM interactions i"
        " JOIN touchpoints t ON t.id = i.touchpoint_id WHERE t.business_line = 'travel'"
    )
    assert 0 < in_segment < in_line  # negative control: the segment leaves customers out
    assert await page.inner_text("#kpi-customers") == f"{in_line:,}"
    await page.select_option("#segment", "app-users")
    await page.wait_for_function(
        "(want) => document.querySelector('#kpi-customers').textContent === want",
        arg=f"{in_segment:,}",
    )

    assert not blocked, f"the journeys page tried to reach the internet: {blocked}"
    assert not errors, errors


# What each example tab's answer must hold on the demo data (seeds/story.py is Ana's).
TAB_MARKERS = {
    "Customer360": '"displayName": "Ana Silva"',
    "ChannelMix": '"channelMix"',
    "Transitions": '"channelTransitions"',
    "Funnel": '"stageFunnel"',
    "Performance": '"touchpointPerformance"',
    "Trend": '"interactionsOverTime"',
}
ORDER = """
mutation Order($touchpointId: ID!) {
  recordInteraction(input: {
    identities: [{kind: EMAIL, value: "ana@example.com"}]
    touchpointId: $touchpointId
    type: ORDER
    direction: INBOUND
    summary: "Ordered the blue linen jacket"
    idempotencyKey: "browser-test-order-1"
  }) { interaction { id } customer { currentStage { code } } }
}
"""


async def _editor_text(page: Page, selector: str) -> str:
    text: str = await page.evaluate(
        "(selector) => { const el = document.querySelector(selector + ' .CodeMirror');"
        " return el && el.CodeMirror ? el.CodeMirror.getValue() : ''; }",
        selector,
    )
    return text


async def test_every_explorer_tab_runs_on_the_demo_data_in_a_fresh_browser(
    db: asyncpg.Connection, database_url: str, demo_server: str, browser: Browser
) -> None:
    await seed_demo(database_url, customers=DEMO_CUSTOMERS, seed=DEMO_SEED, progress=False)
    blocked: list[str] = []
    page = await offline_page(browser, blocked)  # a new context: empty storage, as a newcomer
    answers: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(f"{demo_server}/graphql")
    await page.wait_for_selector(".graphiql-container", timeout=30_000)
    await page.get_by_role("tab", name="Customer360").wait_for(timeout=30_000)
    await page.wait_for_function(
        "(document.querySelector('.graphiql-query-editor') || {innerText: ''})"
        ".innerText.includes('customerByIdentity')",
        timeout=30_000,
    )
    await page.screenshot(path=str(ARTIFACTS / "explorer-opening.png"))
    print(f"screenshots in {ARTIFACTS}")
    # The explorer plugin starts collapsed, and the query editor shows whole lines at 1280x800.
    assert await page.locator(".graphiql-explorer-root").count() == 0
    overflow = await page.evaluate(
        "() => { const s = document.querySelector('.graphiql-query-editor .CodeMirror-scroll');"
        " return s.scrollWidth - s.clientWidth; }"
    )
    assert overflow <= 0, f"the query editor cuts lines off by {overflow}px"

    for example in EXAMPLES:
        name = re.search(r"(?:query|subscription) (\w+)", example.query).group(1)  # type: ignore[union-attr]
        # The example's variables are in the tab of a fresh browser, exactly.
        await page.get_by_role("tab", name=name).click()
        marker = example.query.splitlines()[-3].strip()
        await page.wait_for_function(
            "(m) => (document.querySelector('.graphiql-query-editor') || {innerText: ''})"
            ".innerText.includes(m)",
            arg=marker,
            timeout=30_000,
        )
        variables = await _editor_text(page, ".graphiql-editor-tool [aria-label='Variables']")
        if not variables:
            variables = await _editor_text(page, ".graphiql-editor-tool")
        assert json.loads(variables or "{}") == json.loads(example.variables or "{}"), name
        if name == "PartnerFeed":
            await _run_subscription(page, demo_server)
            continue
        async with page.expect_response(
            lambda r, name=name: (
                r.request.method == "POST"
                and f'"operationName":"{name}"' in (r.request.post_data or "").replace(" ", "")
            ),
            timeout=45_000,
        ) as response:
            await page.click(".graphiql-execute-button")
        answers[name] = await (await response.value).json()
        result = page.locator(".result-window")
        await result.get_by_text(TAB_MARKERS[name]).wait_for(timeout=45_000)
        text = await result.inner_text()
        assert '"errors"' not in text, (name, text[:500])
        answer = answers[name]
        assert "errors" not in answer and answer["data"], (name, answer)
        if name == "Customer360":
            await page.screenshot(path=str(ARTIFACTS / "explorer-run.png"))

    mix = answers["ChannelMix"]["data"]["analytics"]["channelMix"]
    window = await db.fetchval(
        "SELECT count(*) FROM interactions"
        " WHERE occurred_at >= '2026-01-01T00:00:00Z' AND occurred_at < '2026-04-01T00:00:00Z'"
    )
    assert mix["interactions"] == window == sum(c["interactions"] for c in mix["channels"])
    funnel = answers["Funnel"]["data"]["analytics"]["stageFunnel"]
    assert [row["stage"]["code"] for row in funnel] == [
        "AWARENESS",
        "CONSIDERATION",
        "PURCHASE",
        "POST_PURCHASE",
        "RETENTION",
    ]
    assert not blocked, f"the explorer tried to reach the internet: {blocked}"
    assert not errors, errors


async def _run_subscription(page: Page, base: str) -> None:
    """Start the PartnerFeed tab, record Ana's order over HTTP, see its event in the pane."""
    await page.click(".graphiql-execute-button")
    # The subscription is live once GraphiQL shows its stop button.
    await page.wait_for_selector(".graphiql-execute-button[aria-label*='Stop']", timeout=30_000)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        catalogue = await http.post(
            "/graphql", json={"query": "{ channels { touchpoints { id name } } }"}
        )
        [touchpoint] = [
            t["id"]
            for c in catalogue.json()["data"]["channels"]
            for t in c["touchpoints"]
            if t["name"] == "Larkspur iOS app"
        ]
        recorded = await http.post(
            "/graphql", json={"query": ORDER, "variables": {"touchpointId": touchpoint}}
        )
    payload = recorded.json()["data"]["recordInteraction"]
    assert payload["customer"]["currentStage"] == {"code": "PURCHASE"}
    result = page.locator(".result-window")
    await result.get_by_text(payload["interaction"]["id"]).wait_for(timeout=30_000)
    text = await result.inner_text()
    assert '"interactionRecorded"' in text and '"errors"' not in text
    await page.screenshot(path=str(ARTIFACTS / "explorer-subscription.png"))
    await page.click(".graphiql-execute-button")  # stop it
