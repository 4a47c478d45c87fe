"""The results table, written between markers in docs/benchmarks.md (the prose around it stays)."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def markers(block: str) -> tuple[str, str]:
    """The markers around a harness's block: ``results`` (reads), ``write``, ``fanout``."""
    return f"<!-- {block}:start -->", f"<!-- {block}:end -->"


@dataclass
class Measurement:
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statements: str = "?"

    def add(self, result: dict[str, float], rate: str = "rps") -> None:
        """One load run's numbers (``rate``: which of its rates the table shows)."""
        self.rps.append(result[rate])
        self.p50.append(result["p50_ms"])
        self.p99.append(result["p99_ms"])
        self.errors += int(result["errors"])
        self.cpu_ms.append(result["cpu_ms"])

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}"


def node_version(node: Path) -> str:
    try:
        return subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _rate(value: float) -> str:
    # Below one request per second no request finished inside the measured window.
    return f"{value:,.0f}" if value >= 1 else "< 1"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


# The ratio columns: (numerator, denominator) servers; "-" where either did not run.
RATIOS = [
    ("hub", "postgraphile"),
    ("hub", "raw"),
    ("hub-trusted", "raw"),
    ("hub-partner", "postgraphile"),
    ("hub-dev", "postgraphile"),
    ("hub-granian", "hub"),
    ("hub", "hub-dataloader"),
]


def table(
    results: dict[tuple[int, str], Measurement],
    scenarios: dict[int, str],
    servers: list[str],
    unit: str = "requests/s",
    per: str = "request",
) -> str:
    lines = [
        f"| scenario | server | {unit} (median) | min-max over rounds | p50 ms | p99 ms "
        f"| CPU ms / {per} (server + PostgreSQL) | SQL statements / request | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, title in scenarios.items():
        for server in servers:
            m = results.get((number, server))
            if m is None:
                continue
            lines.append(
                f"| {number}. {title} | {server} | {_rate(m.median(m.rps))} | "
                f"{_rate(min(m.rps))}-{_rate(max(m.rps))} | {_ms(m.median(m.p50))} | "
                f"{_ms(m.median(m.p99))} | {_ms(m.median(m.cpu_ms))} | {m.statements} | "
                f"{m.errors} |"
            )
    lines += [
        "",
        f"Ratios: the first server's {unit} divided by the second's, and in brackets the "
        f"second's CPU time per {per} divided by the first's (the same comparison, far less "
        "sensitive to other work on the machine). Above 1: the first is ahead.",
        "",
        "| scenario | " + " | ".join(f"{a} / {b}" for a, b in RATIOS) + " |",
        "|---|" + "---:|" * len(RATIOS),
    ]
    for number, title in scenarios.items():

        def ratio(mine: str, other: str, number: int = number) -> str:
            hub, them = results.get((number, mine)), results.get((number, other))
            if hub is None or them is None or not hub.rps or not them.rps:
                return "-"
            if them.median(them.rps) == 0:
                return "-"
            speed = hub.median(hub.rps) / them.median(them.rps)
            cpu = them.median(them.cpu_ms) / hub.median(hub.cpu_ms) if hub.cpu_ms else math.nan
            return f"{speed:.2f} ({cpu:.2f})"

        cells = " | ".join(ratio(mine, other) for mine, other in RATIOS)
        lines.append(f"| {number}. {title} | {cells} |")
    return "\n".join(lines)


def write(
    path: Path,
    command: str,
    body: str,
    details: list[str],
    block: str = "results",
) -> None:
    start, end = markers(block)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = "\n".join(
        [
            start,
            f"Measured {stamp} on {machine()} with:",
            "",
            "```bash",
            command,
            "```",
            "",
            *[f"- {line}" for line in details],
            "",
            body,
            end,
        ]
    )
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    path.write_text(before + block + after)
