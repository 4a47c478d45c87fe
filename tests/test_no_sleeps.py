"""No `sleep` as synchronisation in the suite (issue 19).

A sleep that waits for something to happen (a subscription to register, a lock to be taken, a
server to settle) makes a correct hub fail on a busy machine and a broken one pass on a quiet
one. Tests wait for an explicit signal instead: a probe event (tests/feed_sync.py), a row, a
lock wait in pg_stat_activity, a readiness probe, a log line, bounded by a timeout that fails.

This scans every tests/**/*.py (its syntax tree, so comments and strings do not count) for calls
of ``time.sleep``, ``asyncio.sleep`` and ``anyio.sleep`` (also imported bare as ``sleep``) and
fails listing each one outside the allowlist below: bounded polling helpers (they sleep between
polls of an explicit condition, with a deadline that fails) and load generators' pacing (a
sleep that spaces out work, never one that waits for it). Each entry says why; an entry that no
longer matches a sleep fails too, so the list stays true.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLEEPS = {"time.sleep", "asyncio.sleep", "anyio.sleep", "sleep"}

# (file relative to tests/, the enclosing function's qualified name) -> why it may sleep
ALLOWED: dict[tuple[str, str], str] = {
    ("waiting.py", "until"): "the suite's bounded polling helper (async)",
    ("waiting.py", "until_sync"): "the suite's bounded polling helper (sync)",
    ("waiting.py", "loop_steps"): "counts event-loop iterations to place a cancellation",
    ("live_server.py", "_await_ready"): "polls /readyz of the process it started (60 s bound)",
    ("live_server.py", "wait_until"): "bounded polling helper (sync, 30 s)",
    ("access/test_wire.py", "server"): "fixture: polls /healthz of the process it started",
    ("http/test_browser.py", "_serve"): "polls /healthz of the process it started",
    ("ops/test_gateway.py", "wait_until_up"): "polls the gateway's port until it answers",
    ("reads/test_runtime.py", "_wait_ready"): "polls /readyz of the process it started",
    ("events/test_broker_redis.py", "eventually"): "bounded polling helper (off the loop)",
    ("reads/test_replica.py", "eventually"): "bounded polling helper (300 polls)",
    ("ops_load.py", "eventually"): "bounded polling helper of the load tests",
    ("ops/test_resilience.py", "until_readiness"): "polls /readyz for a status (bounded)",
    ("ops/test_resilience.py", "eventually_waiting_for_lock"): "polls pg_locks (bounded)",
    ("ops/test_metrics.py", "wait_for_gauges"): "polls /metrics for gauge values (bounded)",
    ("ops/test_tracing.py", "Receiver.wait_for"): "polls the span receiver (bounded)",
    ("ops/test_tracing.py", "log_line"): "polls the server log for a request line (bounded)",
    ("ops_load.py", "IngestLoad._reader"): "load pacing: spaces out reads",
    ("ops_load.py", "IngestLoad._client"): "load pacing: backs off after a refusal",
    ("ops_load.py", "Follower._run"): "reconnect backoff of a resuming subscriber",
    ("subscriptions/test_resume.py", "_write_concurrently.one_writer"): (
        "load pacing: random gaps interleave the concurrent writers"
    ),
}


def sleep_calls(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function's qualified name, line, call) of every sleep call in ``path``."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call) and ast.unparse(child.func) in SLEEPS:
                found.append((".".join(scope), child.lineno, ast.unparse(child)))
            visit(child, scope)

    visit(ast.parse(path.read_text(), str(path)), [])
    return found


def test_no_test_sleeps_to_synchronise() -> None:
    offending = []
    used = set()
    for path in sorted(TESTS.rglob("*.py")):
        name = path.relative_to(TESTS).as_posix()
        for scope, line, call in sleep_calls(path):
            if (name, scope) in ALLOWED:
                used.add((name, scope))
            else:
                offending.append(f"tests/{name}:{line} in {scope or '<module>'}: {call}")
    assert offending == [], "sleep as synchronisation (wait for a signal instead):\n" + "\n".join(
        offending
    )
    assert sorted(set(ALLOWED) - used) == [], "allowlist entries that match no sleep any more"


def test_the_scan_finds_each_kind_of_sleep(tmp_path: Path) -> None:
    # The negative control: the scanner is not blind (aliases and nesting included).
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import asyncio, time, anyio\n"
        "from asyncio import sleep\n"
        "async def test_a():\n"
        "    await asyncio.sleep(0.3)\n"
        "    # time.sleep(1) in a comment does not count\n"
        "class Helper:\n"
        "    def wait(self):\n"
        "        time.sleep(0.1)\n"
        "        async def inner():\n"
        "            await anyio.sleep(1)\n"
        "            await sleep(2)\n"
    )
    assert sleep_calls(sample) == [
        ("test_a", 4, "asyncio.sleep(0.3)"),
        ("Helper.wait", 8, "time.sleep(0.1)"),
        ("Helper.wait.inner", 10, "anyio.sleep(1)"),
        ("Helper.wait.inner", 11, "sleep(2)"),
    ]
