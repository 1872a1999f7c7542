"""Upgrading the patch itself without a memory outage.

Each revision names the oldest revision whose proxies it still serves (``serves_proxies_from``),
and the per-request check accepts a proxy expecting any revision from that one up to the
database's. The tests add a next release's revision (written here, never shipped) that serves
the current release's proxies, and migrate to it while the current proxy's requests flow.
"""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from litellm_memory_patch import migrator
from load import Driver, under_load

HEAD = migrator.head_revision()
NEXT = "9999_next_release"
NEXT_REVISION = f'''"""A next release's revision, for the tests only: it writes the objects again."""

from alembic import context, op

from litellm_memory_patch.migrations import enforcement

revision = "{NEXT}"
down_revision = "{HEAD}"
serves_proxies_from = "{HEAD}"


def upgrade() -> None:
    op.execute(enforcement.upgrade_sql(context.config.attributes["litellm_schema"], revision=revision))


def downgrade() -> None:
    op.execute(enforcement.upgrade_sql(context.config.attributes["litellm_schema"], revision=down_revision))
'''
CALLER = "team:team-a,user:user-1"
OTHER_VERSION = "another version of the patch"


@pytest.fixture
def next_release(proxy, tmp_path, monkeypatch):
    """The migrations as the next release ships them; the proxy still expects ``HEAD``."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrator.SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / f"{NEXT}.py").write_text(NEXT_REVISION)
    monkeypatch.setattr(migrator, "SCRIPT_LOCATION", str(scripts))
    assert migrator.head_revision() == NEXT
    return proxy


def _expecting(proxy, revision: str, monkeypatch) -> None:
    monkeypatch.setattr(proxy.app.state.litellm_memory_store, "_revision", revision)


def test_migrating_to_the_next_release_keeps_the_current_proxies_serving(next_release):
    proxy = next_release
    moved = []

    async def scenario(app):
        # Any 503 fails the driver at once; its workers check every answer for another
        # team's rows and the table afterwards.
        driver = Driver(app, concurrency=8)
        stop = asyncio.Event()

        async def conduct():
            await driver.wait_for_answers(100, since=0, within=60)
            await asyncio.to_thread(migrator.upgrade, proxy.database)
            moved.append(NEXT)
            await driver.wait_for_answers(100, since=time.monotonic(), within=60)
            stop.set()

        await under_load(
            driver, conduct, teams=["team-a", "team-b"], users=["user-1", "user-2"], per_team=10,
            stop=stop,
        )
        return driver

    driver = proxy.call(scenario, proxy.app)
    assert moved == [NEXT]
    assert 503 not in driver.statuses and set(driver.statuses) <= {200, 404, 409}, driver.statuses


def test_a_proxy_of_the_next_release_answers_503_until_migrate(next_release, monkeypatch):
    proxy = next_release
    _expecting(proxy, NEXT, monkeypatch)
    refused = proxy.request("GET", "/v1/memory/k", key=CALLER)
    assert refused.status_code == 503 and OTHER_VERSION in refused.json()["detail"]
    migrator.upgrade(proxy.database)
    assert proxy.request("GET", "/v1/memory/k", key=CALLER).status_code == 404


def test_a_downgrade_serves_the_older_release_only(next_release, monkeypatch):
    proxy = next_release
    migrator.upgrade(proxy.database)
    migrator.downgrade(proxy.database, revision=HEAD)
    # The database now serves what HEAD serves: the current proxy, not the next release's.
    assert proxy.request("GET", "/v1/memory/k", key=CALLER).status_code == 404
    _expecting(proxy, NEXT, monkeypatch)
    refused = proxy.request("GET", "/v1/memory/k", key=CALLER)
    assert refused.status_code == 503 and OTHER_VERSION in refused.json()["detail"]


def test_this_release_serves_the_previous_releases_proxies(proxy, monkeypatch):
    oldest = migrator.served_revisions(HEAD)[-1]
    assert oldest != HEAD, "this release names no older revision whose proxies it serves"
    _expecting(proxy, oldest, monkeypatch)
    assert proxy.request("GET", "/v1/memory/k", key=CALLER).status_code == 404
    older = migrator.served_revisions("0002_row_level_security")[0]
    _expecting(proxy, older, monkeypatch)
    assert proxy.request("GET", "/v1/memory/k", key=CALLER).status_code == 503
