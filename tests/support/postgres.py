"""A throwaway PostgreSQL cluster for the test session.

`initdb` refuses to run as root, and CI runs as root: there the cluster is made and run as
the `postgres` user that Debian's package creates. The cluster listens on 127.0.0.1 only,
on a free port, with its socket and data under a temporary directory removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "farebox"


@dataclass(frozen=True, slots=True)
class Cluster:
    host: str
    port: int
    pg_ctl: list[str]
    """pg_ctl on this cluster's data directory, run as the cluster's owner."""
    options: str
    log: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        _run([*self.pg_ctl, "-o", self.options, "-l", str(self.log), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session, as an operator's restart does."""
        _run([*self.pg_ctl, "-m", mode, "-w", "stop"], check=mode == "fast")


def server_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live, or None when PostgreSQL's server is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version_key)
    return candidates[-1].parent if candidates else None


def _version_key(initdb: Path) -> tuple[int, ...]:
    version = initdb.parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(command: list[str], *, check: bool = True) -> None:
    subprocess.run(command, check=check, capture_output=True, timeout=120)


@contextlib.contextmanager
def throwaway_cluster(bin_dir: Path) -> Iterator[Cluster]:
    """Start a fresh cluster, yield where it listens, then stop it and delete it."""
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="farebox-pg-"))
    try:
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        data, port = base / "data", _free_port()
        as_owner = ["runuser", "-u", owner, "--"] if owner else []
        _run([*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER])
        # Durability settings are off: this cluster lives for one test session only.
        options = (
            f"-k {base} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
        cluster = Cluster("127.0.0.1", port, pg_ctl, options, base / "log")
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)
