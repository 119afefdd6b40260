"""A throwaway PostgreSQL server for tests: initdb into a temp dir, start on a free loopback port, stop.

Debian puts the server binaries under /usr/lib/postgresql/<version>/bin; ``.ci/setup-test.sh``
installs them. initdb refuses to run as root, so as root the server runs as the ``postgres`` user.
Tests import the ``postgres_url`` fixture from here (``from tests.pg_server import postgres_server``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def find_pg_bin() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent  # e.g. a /usr/local/bin symlink into the real bin folder
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """One initdb'd cluster; ``start``/``stop``/``restart`` as the tests need (restart keeps the port)."""

    bin_dir: Path
    root: Path
    port: int
    database: str = "yaml2torch"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


def start_postgres() -> PostgresServer:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (run .ci/setup-test.sh)")
    root = Path(tempfile.mkdtemp(prefix="y2t-pg-"))
    server = PostgresServer(bin_dir, root, free_port())
    try:
        server.init()
    except BaseException:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="module")
def postgres_server():
    """A fresh server per test module. Without PostgreSQL installed the test is skipped only when
    YAML2TORCH_ALLOW_NO_POSTGRES=1 (CI installs it, so there it fails instead of skipping)."""
    if find_pg_bin() is None:
        if os.environ.get("YAML2TORCH_ALLOW_NO_POSTGRES") == "1":
            pytest.skip("PostgreSQL is not installed (.ci/setup-test.sh installs it)")
        pytest.fail("PostgreSQL is not installed: run .ci/setup-test.sh (or set YAML2TORCH_ALLOW_NO_POSTGRES=1)")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
