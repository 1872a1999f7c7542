"""``migrate`` and ``downgrade`` while requests flow through the proxy.

Every answer during the moves is a success confined to the caller's team or a fail-closed 503
(never another team's row, never a 500, never a misleading 403), the proxy keeps serving without
a restart, and no row is lost: the rows nobody writes during the run keep their count and
checksum, and every row the workers wrote is what they were told (``load.py``).

A busy table makes the migration give up after its lock timeout, with the CLI's one-line
message, and changes nothing.
"""

from __future__ import annotations

import asyncio
import time

import psycopg

from litellm_memory_patch import cli, migrator
from load import Driver, check_table, under_load

TEAMS = ["team-a", "team-b", "team-c"]
USERS = ["user-1", "user-2", "user-3", "user-4"]
# Down step by step, back up, down at once, up again.
MOVES = ["0001_ownership", "base", "head", "base", "head"]
CHECKSUM = """
SELECT count(*), md5(string_agg(concat_ws('|', memory_id, key, value, metadata::text, team_id,
                                          user_id, created_at, updated_at), ',' ORDER BY key))
FROM "LiteLLM_MemoryTable" WHERE key LIKE '%/seed/%'
"""


def _checksum(conninfo: str):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(CHECKSUM).fetchone()


def _revision(conninfo: str) -> str | None:
    with psycopg.connect(conninfo) as conn:
        return migrator.current_revision(conn)


def _move(target, revision: str) -> None:
    if revision == "head":
        migrator.upgrade(target)
    else:
        migrator.downgrade(target, revision=revision)


def test_downgrade_and_migrate_while_requests_flow(proxy):
    target = proxy.database
    moved: list[str] = []
    before: list = []

    async def scenario(app):
        driver = Driver(app, concurrency=16, allow_unavailable=True)
        stop = asyncio.Event()

        async def conduct():
            await driver.wait_for_answers(100, since=0, within=60)
            before.append(await asyncio.to_thread(_checksum, target.conninfo))
            for revision in MOVES:
                await asyncio.to_thread(_move, target, revision)
                moved.append(revision)
                await driver.wait_for_answers(20, since=time.monotonic(), within=60, served=False)
            await driver.wait_for_answers(100, since=time.monotonic(), within=60)
            stop.set()

        workers, seeds = await under_load(
            driver, conduct, teams=TEAMS, users=USERS, per_team=20, stop=stop
        )
        return driver, workers, seeds

    driver, workers, seeds = proxy.call(scenario, proxy.app)
    print(f"statuses {dict(driver.statuses)}")
    assert moved == MOVES
    assert _revision(target.conninfo) == migrator.head_revision()
    assert set(driver.statuses) <= {200, 404, 409, 503}
    assert before == [_checksum(target.conninfo)]
    assert before[0][0] == len(seeds.rows)
    check_table(target.conninfo, workers, seeds)


def test_a_busy_table_makes_migrate_give_up_and_change_nothing(proxy, capsys):
    # At head, migrate writes every enforcement object again: it needs the table's lock too.
    target = proxy.database
    codes: list[int] = []

    async def scenario(app):
        driver = Driver(app, concurrency=8, allow_unavailable=True)
        stop = asyncio.Event()

        async def conduct():
            await driver.wait_for_answers(50, since=0, within=60)
            async with await psycopg.AsyncConnection.connect(target.conninfo) as locker:
                await locker.execute('LOCK TABLE "LiteLLM_MemoryTable" IN ACCESS SHARE MODE')
                argv = ["--database-url", target.conninfo, "migrate", "--lock-timeout", "1"]
                codes.append(await asyncio.to_thread(cli.main, argv))
            await driver.wait_for_answers(50, since=time.monotonic(), within=60)
            stop.set()

        workers, seeds = await under_load(
            driver, conduct, teams=TEAMS, users=USERS, per_team=2, stop=stop
        )
        return driver, workers, seeds

    driver, workers, seeds = proxy.call(scenario, proxy.app)
    assert codes == [1]
    assert f"{cli.PROG}: error: {cli.TABLE_BUSY}" in capsys.readouterr().err.splitlines()
    assert _revision(target.conninfo) == migrator.head_revision()
    assert set(driver.statuses) <= {200, 404, 409}
    check_table(target.conninfo, workers, seeds)
