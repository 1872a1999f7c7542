"""A database that accepts no writes, as after a failover to a standby: writes answer 503
saying so, reads keep working, and ``doctor`` names the state instead of suggesting a repair."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from identity_auth import api_key
from litellm_memory_patch import doctor
from litellm_memory_patch.store import READ_ONLY

TEAM_KEY = api_key(team="team-1", user="user-1")


def set_read_only(target, on: bool) -> None:
    """``default_transaction_read_only`` for every new connection to ``target``'s database."""
    statement = (
        sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on")
        if on
        else sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only")
    )
    # A session of its own that may write, to undo the setting too.
    with psycopg.connect(
        target.conninfo, autocommit=True, options="-c default_transaction_read_only=off"
    ) as conn:
        conn.execute(statement.format(sql.Identifier(conn.info.dbname)))


@pytest.fixture
def read_only(proxy, monkeypatch):
    """The proxy's database made read-only; the patch reconnects, as after a failover."""
    created = proxy.request("POST", "/v1/memory", key=TEAM_KEY, json={"key": "kept", "value": "v"})
    assert created.status_code == 200, created.text
    set_read_only(proxy.database, True)
    proxy.close_store()
    proxy.install(proxy.database, monkeypatch)
    yield proxy
    set_read_only(proxy.database, False)


WRITES = [
    ("POST", "/v1/memory", {"key": "new", "value": "v"}),
    ("PUT", "/v1/memory/new", {"value": "v"}),
    ("PUT", "/v1/memory/kept", {"value": "changed"}),
    ("DELETE", "/v1/memory/kept", None),
]


@pytest.mark.parametrize("method, path, body", WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes_answer_503_read_only_and_reads_keep_working(read_only, method, path, body):
    answer = read_only.request(method, path, key=TEAM_KEY, json=body)
    assert (answer.status_code, answer.json()["detail"]) == (503, READ_ONLY), answer.text
    one = read_only.request("GET", "/v1/memory/kept", key=TEAM_KEY)
    assert one.status_code == 200 and one.json()["value"] == "v", one.text
    listed = read_only.request("GET", "/v1/memory", key=TEAM_KEY)
    assert listed.status_code == 200 and listed.json()["total"] == 1, listed.text


def test_writes_serve_again_once_the_database_accepts_them(read_only, monkeypatch):
    set_read_only(read_only.database, False)
    read_only.close_store()
    read_only.install(read_only.database, monkeypatch)
    answer = read_only.request("PUT", "/v1/memory/kept", key=TEAM_KEY, json={"value": "changed"})
    assert answer.status_code == 200, answer.text


def test_doctor_names_the_read_only_state_and_suggests_no_migrate(migrated_db):
    set_read_only(migrated_db, True)
    checks = doctor.run_checks(migrated_db)
    failed = {check.name: check.detail for check in checks if check.status == doctor.FAIL}
    assert failed == {"database": doctor.DATABASE_READ_ONLY.format(reason="default_transaction_read_only is on")}
    assert not any(doctor.MIGRATE_HINT in check.detail for check in checks)
    set_read_only(migrated_db, False)
    assert doctor.all_ok(doctor.run_checks(migrated_db))
