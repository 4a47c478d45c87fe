"""Registering and managing webhooks, and where they may send (issue 17): the API in-process,
the address checks against a real receiver on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from hub.core.ids import uuid_from_global_id
from hub.webhooks import sender, signing, store
from hub.webhooks.safety import UnsafeTarget, resolve_public
from tests.conftest import GraphQLClient
from tests.webhooks.receiver import Receiver, receiving

FEED = "subscription { interactionRecorded { cursor interaction { id } } }"
CREATE = """
mutation Create($input: CreateWebhookInput!) {
  createWebhook(input: $input) { webhook { id url status owner } secret }
}
"""
# A public address literal: no DNS needed, allowed without HUB_WEBHOOK_ALLOW_PRIVATE.
PUBLIC = "https://93.184.216.34/hook"


def create(url: str = PUBLIC, query: str = FEED, variables: Any = None) -> dict[str, Any]:
    return {"input": {"url": url, "query": query, "variables": variables}}


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://93.184.216.34/hook", "must use https"),
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://10.1.2.3/hook", "10.1.2.3"),
        ("https://169.254.169.254/latest", "169.254.169.254"),
        ("https://[::1]/hook", "::1"),
        ("https://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1"),
        ("https://localhost/hook", "127.0.0.1"),  # a name that resolves to loopback
        ("https://user:pw@93.184.216.34/hook", "credentials"),
        ("ftp://93.184.216.34/hook", "must use https"),
        ("https:///hook", "no host"),
    ],
)
async def test_unsafe_urls_are_refused_at_creation(gql: GraphQLClient, url: str, why: str) -> None:
    error = await gql.error(CREATE, create(url))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert why in error["message"]


async def test_a_name_resolving_to_loopback_is_refused_at_delivery() -> None:
    async with receiving(Receiver(secrets=[signing.new_secret()])) as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        body = b'{"data":{}}'
        headers = signing.headers(receiver.secrets, "msg_1", int(time.time()), body)
        async with httpx.AsyncClient() as client:
            refused = await sender.post(
                client, url, headers, body, allow_private=False, timeout_s=5, max_response_bytes=64
            )
            assert refused.permanent and refused.status_code is None
            assert refused.error is not None and "must use https" in refused.error
            with pytest.raises(UnsafeTarget, match=r"127\.0\.0\.1"):
                await resolve_public("localhost", receiver.port, allow_private=False)
            assert receiver.requests == []  # nothing was sent
            # With the setting (tests, development), the same name is delivered to.
            allowed = await sender.post(
                client, url, headers, body, allow_private=True, timeout_s=5, max_response_bytes=64
            )
            assert allowed.ok and allowed.status_code == 200
            # A redirect is an answer, not followed: a failed attempt.
            receiver.status = 302
            redirected = await sender.post(
                client, url, headers, body, allow_private=True, timeout_s=5, max_response_bytes=64
            )
    assert (redirected.ok, redirected.status_code, redirected.error) == (False, 302, "HTTP 302")
    assert [r.verified for r in receiver.requests] == [True, True]


@pytest.mark.parametrize(
    ("query", "variables", "why"),
    [
        ("{ channels { code } }", None, "exactly one subscription operation"),
        ("subscription { nope }", None, "not valid"),
        ('subscription { interactionRecorded(after: "x") { cursor } }', None, "own cursor"),
        (
            "subscription($f: InteractionRecordedFilter!) { interactionRecorded(filter: $f)"
            " { cursor } }",
            {"f": {"channels": ["NOWHERE"]}},
            "variables are not valid",
        ),
        ("subscription {", None, "does not parse"),
        (  # over the alias limit every delivery would hit: refused at creation instead
            "subscription { interactionRecorded { interaction { "
            + " ".join(f"a{n}: id" for n in range(31))
            + " } } }",
            None,
            "aliases",
        ),
    ],
)
async def test_the_query_must_be_a_valid_subscription_document(
    gql: GraphQLClient, query: str, variables: Any, why: str
) -> None:
    error = await gql.error(CREATE, create(query=query, variables=variables))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert why in error["message"]


async def test_partners_manage_their_own_webhooks_only(
    gql: GraphQLClient,
    gql_as: Callable[..., Awaitable[GraphQLClient]],
    engine: Any,
) -> None:
    partner = await gql_as("PARTNER", channels=["WEB"])
    other = await gql_as("PARTNER", channels=["WEB"])
    created = (await partner.data(CREATE, create()))["createWebhook"]
    webhook_id = created["webhook"]["id"]
    assert created["webhook"]["status"] == "ACTIVE"
    assert created["secret"].startswith("whsec_")
    one = "query($id: ID!) { webhook(id: $id) { id status } }"
    assert await partner.data(one, {"id": webhook_id}) == {
        "webhook": {"id": webhook_id, "status": "ACTIVE"}
    }
    # Another partner cannot see, change or delete it; an ADMIN sees every webhook.
    assert (await other.error(one, {"id": webhook_id}))["extensions"]["code"] == "NOT_FOUND"
    assert await other.data("{ webhooks { id } }") == {"webhooks": []}
    delete = "mutation($id: ID!) { deleteWebhook(id: $id) }"
    assert (await other.error(delete, {"id": webhook_id}))["extensions"]["code"] == "NOT_FOUND"
    assert await gql.data("{ webhooks { id } }") == {"webhooks": [{"id": webhook_id}]}
    # Pause, resume; a partner may run these mutations and no other.
    pause = "mutation($id: ID!) { pauseWebhook(id: $id) { status statusReason } }"
    paused = await partner.data(pause, {"id": webhook_id})
    assert paused["pauseWebhook"]["status"] == "PAUSED"
    resume = "mutation($id: ID!) { resumeWebhook(id: $id) { status statusReason } }"
    assert await partner.data(resume, {"id": webhook_id}) == {
        "resumeWebhook": {"status": "ACTIVE", "statusReason": None}
    }
    refused = await partner.error(
        'mutation { pauseWebhook(id: "x") { status } revokeApiKey(name: "x") { name } }'
    )
    assert refused["extensions"]["code"] == "FORBIDDEN"
    # Rotation: a new secret; the old one still signs during the grace period (both verify).
    rotate = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }"
    new = (await partner.data(rotate, {"id": webhook_id}))["rotateWebhookSecret"]["secret"]
    assert new != created["secret"] and new.startswith("whsec_")
    secrets = await store.signing_secrets(engine, uuid_from_global_id(webhook_id, "Webhook"))
    assert secrets == [new, created["secret"]]
    body = b'{"data":{}}'
    headers = signing.headers(secrets, "msg_2", int(time.time()), body)
    for secret in (new, created["secret"]):
        assert Verifier(secret).verify(body, headers) == {"data": {}}
    assert await partner.data(delete, {"id": webhook_id}) == {"deleteWebhook": True}
    assert await gql.data("{ webhooks { id } }") == {"webhooks": []}


@pytest.mark.parametrize("role", ["FRONTEND", "ANALYST"])
async def test_other_roles_may_not_register_webhooks(
    gql_as: Callable[..., Awaitable[GraphQLClient]], role: str
) -> None:
    client = await gql_as(role)
    error = await client.error(CREATE, create())
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert (await client.error("{ webhooks { id } }"))["extensions"]["code"] == "FORBIDDEN"


async def test_the_cli_lists_pauses_and_resumes_webhooks(
    gql: GraphQLClient, database_url: str
) -> None:
    created = (await gql.data(CREATE, create()))["createWebhook"]["webhook"]
    webhook_id = str(uuid_from_global_id(created["id"], "Webhook"))
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_MIGRATE_ON_START": "false"}

    def hub(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hub", "webhooks", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    assert hub("list").startswith(f"{webhook_id}  ACTIVE  owner=")
    assert hub("pause", webhook_id) == f"{webhook_id}: PAUSED\n"
    assert f"{webhook_id}  PAUSED (paused by cli)" in hub("list")
    assert hub("resume", webhook_id) == f"{webhook_id}: ACTIVE\n"
    one = "query($id: ID!) { webhook(id: $id) { status } }"
    assert await gql.data(one, {"id": created["id"]}) == {"webhook": {"status": "ACTIVE"}}
