"""``hub import`` / ``hub export``: the real CLI as a subprocess against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.factories import Factory, gid
from tests.waiting import until_sync

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def shop(db: asyncpg.Connection) -> uuid.UUID:
    return await Factory(db).touchpoint("shop", "WEB", "WEBSITE")


def _env(database_url: str) -> dict[str, str]:
    return {**os.environ, "HUB_DATABASE_URL": database_url}


def hub(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        env=_env(database_url),
        capture_output=True,
        text=True,
        check=False,
    )


def _checkpoint_line(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text())["line"])
    except (FileNotFoundError, ValueError):
        return 0


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child, before exec: SIGINT's default disposition. A suite started in the
    background by a non-interactive shell (``scripts/stress-suite … &``) runs with SIGINT
    ignored, which every child inherits: the import then never saw the Ctrl-C and ran to the
    end (exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(database_url: str, args: list[str], checkpoint: Path, past: int, sig: int) -> int:
    """Run ``hub`` with ``args`` and send it ``sig`` (a real SIGINT or SIGKILL) once its
    checkpoint is past line ``past`` (a batch committed in this run); wait for the process to
    end; the line the checkpoint had reached and the exit code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        env=_env(database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    try:
        until_sync(lambda: _checkpoint_line(checkpoint) > past, f"a checkpoint past {past}")
    finally:
        process.send_signal(sig)
        code = process.wait()
    assert code != 0  # interrupted, not finished
    return _checkpoint_line(checkpoint)


def _line(touchpoint: uuid.UUID, email: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "identities": [{"kind": "EMAIL", "value": email}],
        "touchpointId": gid("Touchpoint", touchpoint),
        "type": "PAGE_VIEW",
        "direction": "INBOUND",
        "occurredAt": f"2026-01-01T09:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "attributes": {"n": n},
        **extra,
    }


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def _rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_ndjson_import_rejects_bad_lines_and_a_rerun_stores_nothing_new(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, shop: uuid.UUID
) -> None:
    source = _write(
        tmp_path / "events.ndjson",
        [
            _line(shop, "Ann@Example.com", 1),
            "{not json",
            _line(shop, "ann@example.com", 2, type="NOT_A_TYPE"),
            "",
            _line(shop, "bob@example.com", 3, idempotencyKey="order-3"),
            _line(shop, "not-an-email", 4),
            {
                "profile": {
                    "identities": [{"kind": "EMAIL", "value": "bob@example.com"}],
                    "traits": {"tier": "gold"},
                    "displayName": "Bob",
                }
            },
        ],
    )
    rejects = tmp_path / "rejects.ndjson"
    first = hub(database_url, "import", str(source), "--rejects", str(rejects), "--batch", "2")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"stored": 3, "duplicates": 0, "rejected": 3}
    [bad_email] = [r for r in _rejects(rejects) if r["line"] == 6]
    assert _rejects(rejects) == [
        {"line": 2, "code": "BAD_USER_INPUT", "reason": "the line is not JSON"},
        {
            "line": 3,
            "code": "UNKNOWN_CODE",  # checked against the vocabulary (hub.vocabulary)
            "reason": (
                "'NOT_A_TYPE' is not a registered interaction type (`interactionTypes` lists "
                "them; an ADMIN adds one with `defineInteractionType`)"
            ),
        },
        {"line": 6, "code": "BAD_USER_INPUT", "reason": bad_email["reason"]},
    ]
    assert "not-an-email" in bad_email["reason"]
    rows = await db.fetch(
        "SELECT i.value, x.attributes->>'n' AS n, x.idempotency_key FROM interactions x"
        " JOIN identities i ON i.id = x.matched_identity_id ORDER BY n"
    )
    assert [(r["value"], r["n"]) for r in rows] == [
        ("ann@example.com", "1"),
        ("bob@example.com", "3"),
    ]
    assert rows[0]["idempotency_key"].startswith("import:")
    assert rows[1]["idempotency_key"] == "order-3"
    bob = await db.fetchrow(
        "SELECT c.display_name, c.traits FROM customers c JOIN identities i"
        " ON i.customer_id = c.id WHERE i.value = 'bob@example.com'"
    )
    assert bob["display_name"] == "Bob" and json.loads(bob["traits"]) == {"tier": "gold"}
    audit = await db.fetch(
        "SELECT actor, role, target_ids, details FROM audit_log WHERE action = 'import' ORDER BY id"
    )
    assert {(a["actor"], a["role"], tuple(a["target_ids"])) for a in audit} == {
        ("cli", "ADMIN", ("events.ndjson",))
    }
    # 6 records (a blank line is none) in batches of 2
    assert [json.loads(a["details"]) for a in audit] == [
        {"lines": 2, "stored": 1, "rejected": 1},
        {"lines": 2, "stored": 1, "rejected": 1},
        {"lines": 2, "stored": 1, "rejected": 1},
    ]

    again = hub(database_url, "import", str(source), "--rejects", str(rejects), "--batch", "2")
    assert again.returncode == 0, again.stderr
    # The profile line is applied again (traits are state, not events): counted as stored.
    assert json.loads(again.stdout) == {"stored": 1, "duplicates": 2, "rejected": 3}
    assert await db.fetchval("SELECT count(*) FROM interactions") == 2
    assert await db.fetchval("SELECT count(*) FROM customers") == 2
    assert len(_rejects(rejects)) == 3


async def test_csv_import_with_a_yaml_mapping(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    store = await Factory(db).touchpoint("store", "PHYSICAL", "STORE")
    source = tmp_path / "orders.csv"
    source.write_text(
        "email,phone,when,amount,note\n"
        "carl@example.com,+33612345678,2026-02-01T10:00:00+00:00,12.50,first\n"
        ",,2026-02-01T11:00:00+00:00,3,no identity\n"
        'dora@example.com,,2026-02-02T10:00:00Z,7,"with, comma"\n'
        "eli@example.com,,2026-02-03T10:00:00Z,8\n"
        "fox@example.com,,2026-02-03T10:00:00Z,8,note,extra\n"
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "columns:\n"
        "  email: identities[EMAIL]\n"
        "  phone: identities[PHONE]\n"
        "  when: occurredAt\n"
        "  amount: attributes.amount\n"
        "  note: summary\n"
        "constants:\n"
        f"  touchpointId: {gid('Touchpoint', store)}\n"
        "  type: ORDER\n"
        "  direction: INBOUND\n"
    )
    rejects = tmp_path / "orders.csv.rejects.ndjson"
    done = hub(database_url, "import", str(source), "--mapping", str(mapping))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stored": 2, "duplicates": 0, "rejected": 3}
    assert _rejects(rejects) == [
        {
            "line": 3,
            "code": "BAD_USER_INPUT",
            "reason": "`identities` must be a non-empty list of {kind, value}",
        },
        {
            "line": 5,
            "code": "BAD_USER_INPUT",
            "reason": "the record has 4 cell(s), the header 5 columns"
            " (a missing column: nothing of it is guessed)",
        },
        {
            "line": 6,
            "code": "BAD_USER_INPUT",
            "reason": "the record has more cells than the 5 columns",
        },
    ]
    rows = await db.fetch(
        "SELECT type, summary, attributes->>'amount' AS amount, occurred_at FROM interactions"
        " ORDER BY occurred_at"
    )
    assert [(r["type"], r["summary"], r["amount"]) for r in rows] == [
        ("ORDER", "first", "12.50"),
        ("ORDER", "with, comma", "7"),
    ]
    carl = await db.fetchval(
        "SELECT count(DISTINCT customer_id) FROM identities"
        " WHERE value IN ('carl@example.com', '+33612345678')"
    )
    assert carl == 1

    people = tmp_path / "people.csv"
    people.write_text("mail,tier,name\ncarl@example.com,gold,Carl\nfay@example.com,,\n")
    profiles = tmp_path / "people.json"
    profiles.write_text(
        json.dumps(
            {
                "mail": "identities[EMAIL]",
                "tier": "profile.traits.tier",
                "name": "profile.displayName",
            }
        )
    )
    done = hub(database_url, "import", str(people), "--mapping", str(profiles))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stored": 2, "duplicates": 0, "rejected": 0}
    rows = await db.fetch(
        "SELECT i.value, c.display_name, c.traits FROM customers c JOIN identities i"
        " ON i.customer_id = c.id WHERE i.kind = 'EMAIL' ORDER BY i.value"
    )
    assert [(r["value"], r["display_name"], json.loads(r["traits"])) for r in rows] == [
        ("carl@example.com", "Carl", {"tier": "gold"}),
        ("dora@example.com", None, {}),
        ("fay@example.com", None, {}),
    ]

    broken = tmp_path / "broken.csv"
    broken.write_text("mail,when\nx@example.com,2026-02-01T10:00:00Z\n")
    missing = hub(database_url, "import", str(broken), "--mapping", str(mapping))
    assert missing.returncode == 1
    assert "no column(s) amount, email, note, phone" in missing.stderr


@pytest.mark.slow
async def test_a_100k_line_import_interrupted_twice_resumes_without_duplicates(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, shop: uuid.UUID
) -> None:
    total = 100_000
    lines: list[Any] = []
    bad: list[int] = []
    for n in range(1, total + 1):
        if n % 997 == 0:
            lines.append("not json at all")
            bad.append(n)
        elif n % 991 == 0:
            lines.append(_line(shop, f"user{n % 2000}@example.com", n, type="NOT_A_TYPE"))
            bad.append(n)
        else:
            lines.append(_line(shop, f"user{n % 2000}@example.com", n))
    source = tmp_path / "big.ndjson"
    _write(source, lines)
    rejects = tmp_path / "big.rejects.ndjson"
    checkpoint = tmp_path / "big.rejects.ndjson.checkpoint"
    args = ["import", str(source), "--rejects", str(rejects), "--batch", "2000"]
    # Ctrl-C (SIGINT) once a batch is in, then a SIGKILL part way through the resumed run.
    first = _interrupt(database_url, args, checkpoint, 0, signal.SIGINT)
    assert 2000 <= first < total
    second = _interrupt(database_url, [*args, "--resume"], checkpoint, first, signal.SIGKILL)
    assert first < second < total
    resumed = hub(database_url, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    good = total - len(bad)
    # This run saw only the lines after the second checkpoint (a batch may have committed
    # after it, before the kill: found again by its keys, counted as duplicates).
    counts = json.loads(resumed.stdout)
    assert counts["stored"] + counts["duplicates"] + counts["rejected"] == total - second
    assert await db.fetchval("SELECT count(*) FROM interactions") == good
    assert await db.fetchval("SELECT count(DISTINCT attributes->>'n') FROM interactions") == good
    assert await db.fetchval("SELECT count(*) FROM customers") == 2000
    rejected = _rejects(rejects)
    assert [r["line"] for r in rejected] == bad  # each bad line once, in file order
    assert {r["reason"] for r in rejected} == {
        "the line is not JSON",
        "'NOT_A_TYPE' is not a registered interaction type (`interactionTypes` lists them; an"
        " ADMIN adds one with `defineInteractionType`)",
    }
    assert _checkpoint_line(checkpoint) == total


async def test_export_then_import_into_an_empty_database_gives_the_same_interactions(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, shop: uuid.UUID
) -> None:
    source = _write(
        tmp_path / "seed.ndjson",
        [
            _line(shop, "eve@example.com", 1, summary="hello", conversationKey="c-1"),
            _line(shop, "eve@example.com", 2, sentiment=0.5, outcome="ok", agent="bot"),
            _line(shop, "+33698765432", 3, identities=[{"kind": "PHONE", "value": "+33698765432"}]),
        ],
    )
    assert hub(database_url, "import", str(source)).returncode == 0

    columns = (
        "SELECT x.type, x.direction, x.occurred_at, x.summary, x.sentiment, x.outcome, x.agent,"
        " x.attributes, c.key AS conversation, i.kind, i.value FROM interactions x"
        " LEFT JOIN conversations c ON c.id = x.conversation_id"
        " JOIN identities i ON i.id = x.matched_identity_id ORDER BY x.occurred_at"
    )
    before = [dict(r) for r in await db.fetch(columns)]
    exported = tmp_path / "out.ndjson"
    done = hub(database_url, "export", "--interactions", "--pii", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    assert len(exported.read_text().splitlines()) == 3

    masked = hub(database_url, "export", "--interactions")
    assert masked.returncode == 0, masked.stderr
    values = [json.loads(line)["identities"][0]["value"] for line in masked.stdout.splitlines()]
    assert "eve@example.com" not in values and "+33698765432" not in values
    assert any(value.endswith("@example.com") for value in values)

    await db.execute("TRUNCATE customers CASCADE")
    assert await db.fetchval("SELECT count(*) FROM interactions") == 0
    back = hub(database_url, "import", str(exported))
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout) == {"stored": 3, "duplicates": 0, "rejected": 0}
    assert [dict(r) for r in await db.fetch(columns)] == before

    customers = hub(database_url, "export", "--customers", "--pii")
    assert customers.returncode == 0, customers.stderr
    profiles = sorted(
        (json.loads(line)["profile"] for line in customers.stdout.splitlines()),
        key=lambda p: p["identities"][0]["value"],
    )
    assert profiles == [
        {"identities": [{"kind": "PHONE", "value": "+33698765432"}], "traits": {}},
        {"identities": [{"kind": "EMAIL", "value": "eve@example.com"}], "traits": {}},
    ]


async def test_profiles_with_consents_round_trip_and_a_filtered_export(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, shop: uuid.UUID
) -> None:
    gil = {
        "identities": [{"kind": "EMAIL", "value": "gil@example.com"}],
        "traits": {"tier": "silver"},
        "displayName": "Gil",
        "consents": [
            {"purpose": "MARKETING", "channel": "EMAIL", "status": "GRANTED", "source": "form"},
            {
                "purpose": "PARTNER_SHARING",
                "channel": "ANY",
                "status": "DENIED",
                "expiresAt": "2030-01-01T00:00:00+00:00",
            },
        ],
    }
    hal = {"identities": [{"kind": "EMAIL", "value": "hal@example.com"}], "traits": {}}
    source = _write(
        tmp_path / "people.ndjson",
        [
            {"profile": gil},
            {"profile": hal},
            {"profile": {**hal, "consents": [{"purpose": "NOPE", "status": "GRANTED"}]}},
            {"profile": {**hal, "consents": [{"purpose": "MARKETING", "status": "MAYBE"}]}},
            _line(shop, "hal@example.com", 5),
        ],
    )
    done = hub(database_url, "import", str(source))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stored": 3, "duplicates": 0, "rejected": 2}
    reasons = [
        (r["line"], r["reason"]) for r in _rejects(tmp_path / "people.ndjson.rejects.ndjson")
    ]
    assert reasons == [
        (
            3,
            "'NOPE' is not a registered consent purpose (`consentPurposes` lists them; an ADMIN"
            " adds one with `defineConsentPurpose`)",
        ),
        (4, "`profile.consents[0].status` must be one of GRANTED, DENIED, REVOKED; got 'MAYBE'"),
    ]
    consents = await db.fetch(
        "SELECT k.purpose, k.channel, k.status, k.source, k.expires_at FROM consents k"
        " JOIN identities i ON i.customer_id = k.customer_id WHERE i.value = 'gil@example.com'"
        " ORDER BY k.purpose"
    )
    assert [tuple(r) for r in consents] == [
        ("MARKETING", "EMAIL", "GRANTED", "form", None),
        ("PARTNER_SHARING", "", "DENIED", None, datetime(2030, 1, 1, tzinfo=UTC)),
    ]
    assert await db.fetchval("SELECT count(*) FROM consent_history") == 2
    # A re-run states the same consents: no new history (a consent is state, its history real).
    again = hub(database_url, "import", str(source))
    assert again.returncode == 0, again.stderr
    assert await db.fetchval("SELECT count(*) FROM consent_history") == 2

    # Who may be e-mailed: gil only; hal (no consent) is the negative control.
    marketing = json.dumps({"hasConsent": {"purpose": "MARKETING", "channel": "EMAIL"}})
    exported = hub(database_url, "export", "--customers", "--pii", "--filter", marketing)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in exported.stdout.splitlines()] == [{"profile": gil}]
    hals = json.dumps({"identity": {"kind": "EMAIL", "value": "HAL@example.com"}})
    interactions = hub(database_url, "export", "--interactions", "--pii", "--filter", hals)
    assert [json.loads(line)["attributes"] for line in interactions.stdout.splitlines()] == [
        {"n": 5}
    ]
    none = hub(database_url, "export", "--interactions", "--filter", marketing)
    assert none.returncode == 0 and none.stdout == ""

    broken = hub(database_url, "export", "--customers", "--filter", '{"stage": 3}')
    assert broken.returncode == 1
    assert "`filter.stage` must be a JSON object" in broken.stderr
