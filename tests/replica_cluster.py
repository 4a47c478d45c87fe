"""A private PostgreSQL primary with a streaming replica, from pgserver's bundled binaries.

Both run in a temporary folder, listening only on Unix sockets there (no TCP port, nothing of
the machine's PostgreSQL is touched), with fsync off (a throw-away test cluster). PostgreSQL
refuses to run as root: as root, the servers run as pgserver's ``pgserver`` system user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pgserver

BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
PRIMARY_PORT = 5433  # ports only name the socket files; each cluster has its own folder
REPLICA_PORT = 5434


@dataclass
class Cluster:
    root: Path
    user: str | None

    def url(self, port: int, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.root}&port={port}"

    def primary_url(self, database: str = "postgres") -> str:
        return self.url(PRIMARY_PORT, database)

    def replica_url(self, database: str = "postgres") -> str:
        return self.url(REPLICA_PORT, database)

    def run(self, program: str, *args: str) -> None:
        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        subprocess.run(
            [str(BIN / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
            **kwargs,
        )

    def pg_ctl(self, name: str, action: str) -> None:
        data = self.root / name
        if action == "start":
            self.run("pg_ctl", "-D", str(data), "-l", str(self.root / f"{name}.log"), "-w", action)
        else:
            self.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", action)


def _configure(data: Path, port: int, socket_dir: Path) -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{socket_dir}'\n"
            "fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 60\n"
            "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
            "hot_standby_feedback = on\nwal_receiver_status_interval = 1s\n"
        )


@contextmanager
def replica_cluster() -> Iterator[Cluster]:
    """Start a primary and a streaming replica of it (pg_basebackup -R); stop and delete both
    afterwards."""
    user = None
    if os.geteuid() == 0:
        from pgserver.utils import ensure_user_exists

        user = "pgserver"
        ensure_user_exists(user)
    root = Path(tempfile.mkdtemp(prefix="hub-rep-"))  # short: socket paths are limited
    root.chmod(0o755)
    if user:
        shutil.chown(root, user)
    cluster = Cluster(root, user)
    started: list[str] = []
    try:
        cluster.run(
            "initdb", "-D", str(root / "primary"), "-U", "postgres", "--auth=trust", "--no-sync"
        )
        _configure(root / "primary", PRIMARY_PORT, root)
        cluster.pg_ctl("primary", "start")
        started.append("primary")
        cluster.run(
            "pg_basebackup",
            *("-h", str(root), "-p", str(PRIMARY_PORT), "-U", "postgres"),
            *("-D", str(root / "replica"), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )
        with (root / "replica" / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {REPLICA_PORT}\n")
        cluster.pg_ctl("replica", "start")
        started.append("replica")
        yield cluster
    except subprocess.CalledProcessError as error:
        logs = "\n".join(p.read_text() for p in root.glob("*.log"))
        raise RuntimeError(f"{error} {error.stderr!r}\n{logs}") from error
    finally:
        for name in reversed(started):
            with suppress(subprocess.CalledProcessError):
                cluster.pg_ctl(name, "stop")
        shutil.rmtree(root, ignore_errors=True)
