"""Faults under load: PostgreSQL stopped and started, backends killed, a statement that waits too long.

The proxy is never restarted. While the database cannot serve, the memory routes answer 503
within the pool timeout (``LITELLM_MEMORY_POOL_TIMEOUT``, 2 s here) plus a generous margin (a
correctness bound against hanging, not a speed claim); afterwards they recover by themselves;
and every write landed whole or not at all, as the client was told: a 200 is in the table with
its value, a 503 may or may not be, but a row that is there is whole (its metadata repeats its
value; see ``load.py``). No fault ever turns into a 500.

Stopping the server uses a private PostgreSQL (its own data directory), so the suite's shared
server is untouched; it is stopped with ``pg_ctl stop -m immediate``, the way a crash stops it.
"""

from __future__ import annotations

import asyncio
import time

import pgserver
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from conftest import create_database
from identity_auth import api_key
from litellm_memory_patch import embedded, migrator
from litellm_memory_patch.config import parse_database_url
from litellm_memory_patch.store import NOT_MIGRATED, TIMED_OUT, UNAVAILABLE
from load import Driver, check_table, serving, under_load

POOL_TIMEOUT = 2.0
# Generous: LiteLLM's own work and a busy two-core machine come on top of the pool's wait.
MARGIN = 10.0
TEAMS = ["team-a", "team-b", "team-c"]
USERS = ["user-1", "user-2", "user-3", "user-4"]
APP_BACKENDS = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = 'litellm-memory-patch'"
)


class RestartablePostgres:
    """A private embedded server this module may stop and start, with pgserver's own pg_ctl."""

    def __init__(self, folder) -> None:
        # No clean-up by pgserver at exit: it would look for the process it started, not the
        # one started here after a stop. The fixture stops the server.
        self.server = pgserver.get_server(folder, cleanup_mode=None)
        self.url = self.server.get_uri()
        info = self.server.get_postmaster_info()
        # The options pgserver starts it with: no TCP, the socket in the same directory.
        self._start = ["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(self.server.log), "start"]

    def _pg_ctl(self, *args: str) -> None:
        pgserver.pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        self._pg_ctl(*self._start)


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory):
    postgres = RestartablePostgres(tmp_path_factory.mktemp("fault-pgdata"))
    yield postgres
    postgres.stop()


@pytest.fixture
def fault_db(own_postgres):
    """A migrated LiteLLM database, the only one on the private server."""
    url = create_database(own_postgres.url)
    embedded.apply_litellm_schema(url)
    target = parse_database_url(url)
    migrator.upgrade(target)
    yield target
    migrator.downgrade(target)
    with psycopg.connect(own_postgres.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(conninfo_to_dict(url)["dbname"])))


@pytest.fixture
def short_pool_timeout(monkeypatch):
    monkeypatch.setenv("LITELLM_MEMORY_POOL_TIMEOUT", str(POOL_TIMEOUT))


def _finished_within(answers, start: float, end: float):
    return [a for a in answers if a.started >= start and a.started + a.elapsed <= end]


def test_postgres_stopped_and_started_during_load(
    proxy_session, own_postgres, fault_db, short_pool_timeout, monkeypatch
):
    phases: dict[str, float] = {}

    async def scenario(app):
        driver = Driver(app, concurrency=16, allow_unavailable=True)
        stop = asyncio.Event()

        async def conduct():
            await driver.wait_for_answers(150, since=0, within=60)
            await asyncio.to_thread(own_postgres.stop)
            phases["down"] = time.monotonic()
            await asyncio.sleep(3 * POOL_TIMEOUT)
            phases["starting"] = time.monotonic()
            await asyncio.to_thread(own_postgres.start)
            phases["up"] = time.monotonic()
            await driver.wait_for_answers(150, since=phases["up"], within=60)
            stop.set()

        workers, seeds = await under_load(
            driver, conduct, teams=TEAMS, users=USERS, per_team=2, stop=stop
        )
        return driver, workers, seeds

    with serving(proxy_session, fault_db, monkeypatch) as store:
        driver, workers, seeds = proxy_session.call(scenario, proxy_session.app)
        assert proxy_session.app.state.litellm_memory_store is store  # recovered in place

    print(f"statuses {dict(driver.statuses)}, slowest {max(a.elapsed for a in driver.answers):.2f} s")
    while_down = _finished_within(driver.answers, phases["down"], phases["starting"])
    assert while_down, "no request was answered while the database was down"
    assert {a.status for a in while_down} == {503}
    assert {a.body["detail"] for a in while_down} == {UNAVAILABLE}
    slow = [a for a in driver.answers if a.elapsed > POOL_TIMEOUT + MARGIN]
    assert not slow, f"requests past the pool timeout: {slow[:3]}"
    assert set(driver.statuses) <= {200, 404, 409, 503}
    check_table(fault_db.conninfo, workers, seeds)


async def _wait_for_app_backend(conn, *, waiting_on_lock: bool) -> int:
    query = APP_BACKENDS + (" AND wait_event_type = 'Lock'" if waiting_on_lock else "")
    for _ in range(400):
        row = await (await conn.execute(query)).fetchone()
        if row:
            return row[0]
        await asyncio.sleep(0.025)
    raise AssertionError("the request never reached the database")


def test_backend_killed_mid_transaction_answers_503_then_recovers(proxy):
    owner = api_key(team="team-a", user="user-1")
    key = "team-a/locked"
    assert proxy.request("PUT", f"/v1/memory/{key}", key=owner, json={"value": "before"}).status_code == 200

    async def kill_while_waiting(app):
        driver = Driver(app, concurrency=1, allow_unavailable=True)
        async with driver.running(), await psycopg.AsyncConnection.connect(
            proxy.database.conninfo
        ) as locker, await psycopg.AsyncConnection.connect(
            proxy.database.conninfo, autocommit=True
        ) as killer:
            # The request's UPDATE waits for this row lock, inside its transaction.
            await locker.execute('SELECT 1 FROM "LiteLLM_MemoryTable" WHERE key = %s FOR UPDATE', (key,))
            put = asyncio.create_task(
                driver.send("owner", "PUT", f"/v1/memory/{key}", key=owner, json={"value": "after"})
            )
            pid = await _wait_for_app_backend(killer, waiting_on_lock=True)
            await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
            answer = await put
            await locker.rollback()
        return answer

    answer = proxy.call(kill_while_waiting, proxy.app)
    assert (answer.status, answer.body["detail"]) == (503, UNAVAILABLE)
    assert proxy.request("GET", f"/v1/memory/{key}", key=owner).json()["value"] == "before"
    again = proxy.request("PUT", f"/v1/memory/{key}", key=owner, json={"value": "after"})
    assert again.status_code == 200 and again.json()["value"] == "after"


def test_backends_killed_repeatedly_under_load(proxy):
    async def scenario(app):
        driver = Driver(app, concurrency=16, allow_unavailable=True)
        stop = asyncio.Event()

        async def conduct(killer):
            await driver.wait_for_answers(100, since=0, within=60)
            for _ in range(8):
                await killer.execute(f"SELECT pg_terminate_backend(pid) FROM ({APP_BACKENDS}) app")
                await asyncio.sleep(0.2)
            await driver.wait_for_answers(100, since=time.monotonic(), within=60)
            stop.set()

        async with await psycopg.AsyncConnection.connect(
            proxy.database.conninfo, autocommit=True
        ) as killer:
            workers, seeds = await under_load(
                driver, lambda: conduct(killer), teams=TEAMS, users=USERS, per_team=2, stop=stop
            )
        return driver, workers, seeds

    driver, workers, seeds = proxy.call(scenario, proxy.app)
    print(f"statuses {dict(driver.statuses)}")
    assert set(driver.statuses) <= {200, 404, 409, 503}
    check_table(proxy.database.conninfo, workers, seeds)


def test_statement_timeout_answers_503_and_leaves_nothing_behind(proxy, monkeypatch):
    monkeypatch.setenv("LITELLM_MEMORY_STATEMENT_TIMEOUT_MS", "300")
    owner = api_key(team="team-a", user="user-1")
    key = "team-a/held"
    with serving(proxy, proxy.database, monkeypatch) as store:
        created = proxy.request("PUT", f"/v1/memory/{key}", key=owner, json={"value": "kept"})
        assert created.status_code == 200
        with psycopg.connect(proxy.database.conninfo) as locker:
            locker.execute('SELECT 1 FROM "LiteLLM_MemoryTable" WHERE key = %s FOR UPDATE', (key,))
            for method, body in (("PUT", {"value": "lost", "metadata": {"x": 1}}), ("DELETE", None)):
                answer = proxy.request(method, f"/v1/memory/{key}", key=owner, json=body)
                assert (answer.status_code, answer.json()["detail"]) == (503, TIMED_OUT)
            locker.rollback()
            # No transaction left open, no connection kept out of the pool.
            busy = locker.execute(APP_BACKENDS + " AND state <> 'idle'").fetchall()
            assert busy == []
        stats = store._pool.get_stats()
        assert stats["pool_available"] == stats["pool_size"]
        assert proxy.request("GET", f"/v1/memory/{key}", key=owner).json() == created.json()
        assert proxy.request("PUT", f"/v1/memory/{key}", key=owner, json={"value": "new"}).status_code == 200


def test_a_downgrade_that_drops_the_role_answers_503_until_migrated_again(
    proxy_session, fault_db, monkeypatch
):
    """On a server where no other database uses it, ``downgrade`` drops the restricted role:
    the proxy then cannot switch to it, and says the database needs ``migrate``."""
    caller = api_key(team="team-a", user="user-1")
    with serving(proxy_session, fault_db, monkeypatch):
        assert proxy_session.request("PUT", "/v1/memory/team-a/k", key=caller, json={"value": "v"}).status_code == 200
        migrator.downgrade(fault_db)
        with psycopg.connect(fault_db.conninfo) as conn:
            assert conn.execute("SELECT to_regrole('litellm_memory_app')").fetchone() == (None,)
        for method in ("GET", "DELETE"):
            answer = proxy_session.request(method, "/v1/memory/team-a/k", key=caller)
            assert (answer.status_code, answer.json()["detail"]) == (503, NOT_MIGRATED)
        migrator.upgrade(fault_db)
        answer = proxy_session.request("GET", "/v1/memory/team-a/k", key=caller)
        assert answer.status_code == 200 and answer.json()["value"] == "v"
