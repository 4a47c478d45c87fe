"""A PostgreSQL server of the test's own, to stop and start at will, and a TCP proxy to cut.

Never the machine's server: pgserver's bundled binaries (initdb, pg_ctl) on a fresh data folder
in /tmp, on a free port. As root, PostgreSQL runs as pgserver's system user ``pgserver``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pgserver

from tests.live_server import free_port

BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"


class PrivatePostgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            import pwd

            from pgserver.utils import ensure_user_exists

            ensure_user_exists("pgserver")
            user = pwd.getpwnam("pgserver")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid}
        self._pg(
            "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    def _pg(self, program: str, *args: object) -> None:
        subprocess.run(
            [str(BIN / program), *map(str, args)],
            check=True,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            **self._run_as,
        )

    def url(self, database: str = "postgres", port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c max_connections=200"
        )
        self._pg("pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "log", "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions are terminated, clean shutdown; ``immediate``: like a crash
        (recovery from the WAL at the next start)."""
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class CuttableProxy:
    """A TCP proxy on localhost in front of the database. ``cut()`` resets every connection
    through it and refuses new ones; ``blackhole()`` resets them too but lets new ones hang
    without an answer (packets dropped: only a connect timeout notices); ``restore()`` lets
    connections through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self.silent = False
        self._restored = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open and self.silent:
            await self._restored.wait()  # never answer; hang up once the network is back
            writer.transport.abort()
            return
        if not self.open:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}

    def cut(self, silent: bool = False) -> None:
        self.open = False
        self.silent = silent
        self._restored.clear()
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()  # RST: like a dropped route, the peer learns at its next read
        self._writers.clear()

    def blackhole(self) -> None:
        self.cut(silent=True)

    def restore(self) -> None:
        self.open = True
        self.silent = False
        self._restored.set()

    async def close(self) -> None:
        self.cut()
        self._restored.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
