"""A real PgBouncer in transaction mode in front of the test server, started by the tests.

Debian's ``pgbouncer`` package (``apt-get install -y pgbouncer``; ``.ci/run`` installs it where it
can). Tests that need it are skipped, with the reason, only when it is not installed or does not
start. It runs from a temporary directory: listening on a free loopback port (no Unix socket),
``auth_type = trust`` with the test server's user in its ``auth_file``, and one wildcard database
entry, so every database the tests create is reached through it. As root it is started with
``-u`` (PgBouncer refuses to run as root) as a user that may reach the server.

The pool is deliberately small: many client connections share a few server connections, as in
production, so anything that leans on a connection's session (a prepared statement, a ``SET``, a
session-level lock) meets another client's server connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.test_cli import free_port

# Where Debian installs it (outside an unprivileged user's PATH).
_CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer")
# Server connections per database and user: several, so that consecutive transactions of one
# client land on different ones, but far fewer than the clients' connections.
DEFAULT_POOL_SIZE = 6


class PgBouncerUnavailable(RuntimeError):
    """PgBouncer is not installed here, or did not start; the message says which."""


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


def _quoted(value: str) -> str:
    # auth_file format: "name" "password", a double quote doubled.
    return '"' + value.replace('"', '""') + '"'


@dataclass
class PgBouncer:
    """A running PgBouncer (pool_mode = transaction) in front of one Postgres server."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    log_path: Path

    def url(self, database_url: str) -> str:
        """``database_url`` (any database of the server, same user and password) through PgBouncer."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.difference_update_query(["host", "port"]).render_as_string(False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "safe shutdown": waits for clients to go
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _server_address(server_url: str) -> tuple[str, int]:
    url = make_url(server_url)
    host = url.host or url.query.get("host") or "127.0.0.1"
    port = url.port or url.query.get("port") or 5432
    if isinstance(host, tuple) or isinstance(port, tuple):
        raise PgBouncerUnavailable(f"the test server has several hosts: {url.render_as_string(True)}")
    return host, int(port)


def _write_config(directory: Path, server_url: str, port: int, pool_size: int, run_as: str | None) -> Path:
    url = make_url(server_url)
    host, server_port = _server_address(server_url)
    user = url.username or "postgres"
    auth_file = directory / "userlist.txt"
    auth_file.write_text(f"{_quoted(user)} {_quoted(url.password or '')}\n")
    auth_file.chmod(0o600)
    config = directory / "pgbouncer.ini"
    config.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={host} port={server_port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {auth_file}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 2000",
                # As strict as a default installation: a startup parameter it does not track
                # (jit, search_path...) is refused, as a managed PgBouncer would refuse it.
                "ignore_startup_parameters =",
                "",
            ]
        )
    )
    config.chmod(0o644)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(auth_file, entry.pw_uid, entry.pw_gid)
    return config


def _run_as(server_url: str) -> str | None:
    """The user PgBouncer switches to when the tests run as root (it refuses to run as root): the
    owner of the server's socket directory when it is reached through one (the embedded server's
    is its own user's alone), else ``postgres`` or ``nobody``."""
    if os.geteuid() != 0:
        return None
    host, _ = _server_address(server_url)
    if host.startswith("/"):
        with contextlib.suppress(OSError, KeyError):
            owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
            if owner != "root":
                return owner
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PgBouncerUnavailable("running as root, and neither a 'postgres' nor a 'nobody' user to run PgBouncer as")


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, statement_cache_size=0, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    finally:
        await conn.close()


def start_pgbouncer(server_url: str, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = 30) -> PgBouncer:
    """Start PgBouncer in front of ``server_url``'s server and wait until a query gets through it.

    Raises :class:`PgBouncerUnavailable` when it is not installed or does not start.
    """
    binary = find_pgbouncer()
    if binary is None:
        raise PgBouncerUnavailable("pgbouncer is not installed (apt-get install -y pgbouncer)")
    run_as = _run_as(server_url)
    failures = []
    for _ in range(3):  # the free port may be taken before PgBouncer binds it
        directory = Path(tempfile.mkdtemp(prefix="gw-pgbouncer-"))
        directory.chmod(0o755)
        port = free_port()
        config = _write_config(directory, server_url, port, pool_size, run_as)
        log_path = directory / "pgbouncer.log"
        with log_path.open("wb") as log:
            args = [binary, *(["-u", run_as] if run_as else []), str(config)]
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        bouncer = PgBouncer(port, process, directory, log_path)
        probe = make_url(bouncer.url(server_url)).set(drivername="postgresql").render_as_string(False)
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(1) as thread:  # off the loop a test may be running
            while time.monotonic() < deadline and process.poll() is None:
                if thread.submit(asyncio.run, _answers(probe)).result():
                    return bouncer
                time.sleep(0.1)
        exited = process.poll() is not None
        failures.append(bouncer.log()[-2000:].strip() or f"exit code {process.poll()}")
        bouncer.stop()
        if not exited:  # it runs but no query gets through: another port will not help
            raise PgBouncerUnavailable(f"no query got through {binary} in {timeout:.0f} s: {failures[-1]}")
    raise PgBouncerUnavailable(f"{binary} did not start: {failures[-1]}")
