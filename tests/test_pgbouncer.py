"""The patch behind PgBouncer in transaction pooling mode, the set-up many LiteLLM deployments use.

The test starts its own PgBouncer on 127.0.0.1 in front of the test server: ``pool_mode =
transaction`` and at most two server connections per database, so that the patch's pool of
eight client connections is multiplexed onto two PostgreSQL sessions and consecutive
transactions of one client land on different server connections (and vice versa).

What works behind it (PgBouncer 1.18 here, Debian's package):

- No server-side prepared statements: psycopg's ``prepare_threshold=None``, which the patch's
  pool always uses (its statements travel as simple-protocol messages, never prepared), with or
  without Prisma's ``?pgbouncer=true`` in the URL (the URL LiteLLM itself needs behind PgBouncer;
  the patch accepts it and drops it from what it gives libpq). With psycopg's default (a
  statement is prepared after five executions on a connection) the prepared statement lives on
  one server connection while psycopg believes its client connection has it; the next
  transaction runs on another server connection, or another client's statement of the same
  generated name (``_pg3_0``) meets it, and PostgreSQL answers ``prepared statement "_pg3_0"
  already exists`` (42P05) or ``... does not exist`` (26000). PgBouncer 1.21 and later can
  track prepared statements (``max_prepared_statements``); 1.18 cannot.
- Everything the patch sets is transaction-local (``set_config(..., true)``), so a server
  connection carries nothing from one client's transaction to the next: no role, no team.
- No ``options=`` startup parameter in the URL: PgBouncer refuses unknown startup parameters
  unless ``ignore_startup_parameters`` lists them. The patch needs none.

PgBouncer refuses to run as root ("PgBouncer should not run as root"); as root, the test runs it
as the owner of the PostgreSQL socket directory (the user the embedded server runs as, which can
reach the socket), through ``setpriv``. When the binary is missing the tests skip, except in CI
(``CI`` set), where they fail: CI installs Debian's ``pgbouncer``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from litellm_memory_patch.config import DatabaseTarget, parse_database_url
from load import Driver, Seeds, check_table, make_workers, run_workers, serving

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
MISSING = "PgBouncer is not installed (apt-get install pgbouncer)"
SERVER_CONNECTIONS = 2

TEAMS = [f"team-{n}" for n in range(8)]
# The same users in every team, as in LiteLLM issue #27722.
USERS = [f"user-{n}" for n in range(6)]
STEPS_PER_WORKER = 105  # 48 workers: over 5,000 requests
CONCURRENCY = 32

CONFIG = """\
[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = {size}
max_db_connections = {size}
query_wait_timeout = 30
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user(host: str):
    """Who runs PgBouncer when we are root (it refuses to run as root), else None."""
    if os.geteuid() != 0:
        return None
    # The server's own user can reach its Unix socket; for TCP any unprivileged user will do.
    owner = Path(host).stat().st_uid if host.startswith("/") else 0
    return pwd.getpwuid(owner) if owner else pwd.getpwnam("nobody")


class PgBouncer:
    def __init__(self, server_url: str, folder: Path) -> None:
        server = conninfo_to_dict(server_url)
        self.user = server.get("user") or "postgres"
        self.port = _free_port()
        target = {k: server[k] for k in ("host", "port", "user", "password") if server.get(k)}
        (folder / "users.txt").write_text(f'"{self.user}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            CONFIG.format(
                server=make_conninfo(**target),
                port=self.port,
                folder=folder,
                size=SERVER_CONNECTIONS,
            )
        )
        prefix = []
        user = _unprivileged_user(server.get("host") or "localhost")
        if user:
            for path in (folder, *folder.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        self.log = folder / "pgbouncer.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [*prefix, PGBOUNCER, str(folder / "pgbouncer.ini")], stdout=log, stderr=log
            )
        self._wait_until_ready()

    def url(self, database: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"PgBouncer exited: {self.log.read_text()}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    pytest.fail(f"PgBouncer did not start: {self.log.read_text()}")
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def pgbouncer(server_url):
    if not os.access(PGBOUNCER, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING}; CI must install it")
        pytest.skip(MISSING)
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as folder:
        bouncer = PgBouncer(server_url, Path(folder))
        yield bouncer
        bouncer.stop()


def _database_name(target: DatabaseTarget) -> str:
    return conninfo_to_dict(target.conninfo)["dbname"]


def _interleaved_statements(url: str, **connect_kwargs) -> int:
    """Three clients take turns, one short transaction each, 20 rounds: more clients than
    server connections, so a statement prepared on one server connection meets another client."""
    clients = [psycopg.connect(url, **connect_kwargs) for _ in range(3)]
    try:
        for round_number in range(20):
            for client in clients:
                with client.transaction():
                    client.execute("SELECT %s::int + 1", (round_number,)).fetchone()
        return round_number + 1
    finally:
        for client in clients:
            client.close()


def test_prepared_statements_must_be_off_behind_transaction_pooling(pgbouncer, litellm_db):
    url = pgbouncer.url(_database_name(litellm_db))
    assert _interleaved_statements(url, prepare_threshold=None, autocommit=True) == 20
    with pytest.raises((psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)):
        _interleaved_statements(url, autocommit=True)  # psycopg's default: prepare after 5


def test_the_store_never_prepares_statements(pgbouncer, proxy_session, migrated_db, monkeypatch):
    database = _database_name(migrated_db)

    async def threshold(store):
        async with store._pool.connection() as conn:
            return conn.prepare_threshold

    for url in (pgbouncer.url(database), pgbouncer.url(database, pgbouncer="true")):
        with serving(proxy_session, DatabaseTarget(conninfo=url), monkeypatch) as store:
            assert store is not None
            assert proxy_session.call(threshold, store) is None


def test_a_server_connection_carries_nothing_to_the_next_transaction(pgbouncer, migrated_db):
    """The patch's settings are transaction-local, so another client that gets the same server
    connection next starts as the login role with no team (the contract's pooling promise)."""
    url = pgbouncer.url(_database_name(migrated_db), pgbouncer="true")
    target = parse_database_url(url)
    begin = (
        "SELECT set_config('role', 'litellm_memory_app', true),"
        " set_config('litellm_memory.team_id', 'team-a', true), pg_backend_pid()"
    )
    after = "SELECT current_user, current_setting('litellm_memory.team_id', true), pg_backend_pid()"
    shared = 0
    with psycopg.connect(target.conninfo, prepare_threshold=None) as first, psycopg.connect(
        target.conninfo, prepare_threshold=None
    ) as second:
        for _ in range(20):
            with first.transaction():
                backend = first.execute(begin).fetchone()[2]
            with second.transaction():
                user, team, next_backend = second.execute(after).fetchone()
            if next_backend == backend:
                shared += 1
                assert (user, team or None) == (pgbouncer.user, None)
    assert shared, "PgBouncer never handed the same server connection to the other client"


def test_thousands_of_requests_of_many_teams_through_pgbouncer(
    pgbouncer, proxy_session, migrated_db, monkeypatch
):
    # More client connections than PgBouncer has server connections: it must multiplex.
    monkeypatch.setenv("LITELLM_MEMORY_POOL_MAX_SIZE", str(4 * SERVER_CONNECTIONS))
    url = pgbouncer.url(_database_name(migrated_db), pgbouncer="true")

    async def load(app):
        driver = Driver(app, concurrency=CONCURRENCY)
        async with driver.running():
            seeds = await Seeds.plant(driver, TEAMS, per_team=3)
            workers = make_workers(TEAMS, USERS, keys=6, seeds=seeds)
            await run_workers(driver, workers, steps=STEPS_PER_WORKER)
        return driver, workers, seeds

    with serving(proxy_session, DatabaseTarget(conninfo=url), monkeypatch):
        driver, workers, seeds = proxy_session.call(load, proxy_session.app)

    print(f"statuses {dict(driver.statuses)}, peak in flight {driver.peak_in_flight}")
    assert len(driver.answers) >= 5000
    assert driver.peak_in_flight == CONCURRENCY
    assert set(driver.statuses) <= {200, 404, 409}
    # Every kind of answer happened, so every check above had something to check.
    assert min(driver.statuses[status] for status in (200, 404, 409)) > 100
    rows = check_table(migrated_db.conninfo, workers, seeds)
    assert {row["team_id"] for row in rows.values()} == set(TEAMS)
