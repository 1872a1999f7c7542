"""What the patch does not know, said once at start-up and by doctor: memory routes it left in
place (LiteLLM's development branch adds /v2/memory) and memory-table columns it was not written
for. Run against the real proxy app and a real migrated database."""

from __future__ import annotations

import contextlib
import logging

import psycopg
from fastapi import APIRouter

from litellm_memory_patch import doctor

NEW_COLUMN = "namespace"


@contextlib.contextmanager
def extra_memory_api(app):
    """A second memory API under /v2/memory, as LiteLLM's development branch has; removed after."""
    router = APIRouter(prefix="/v2/memory")

    @router.get("/{key}")
    async def read_v2(key: str):
        return {"key": key}

    before = list(app.router.routes)
    app.include_router(router)
    try:
        yield
    finally:
        app.router.routes[:] = before
        app.openapi_schema = None


def add_column(database) -> None:
    with psycopg.connect(database.conninfo) as conn:
        conn.execute(f'ALTER TABLE "LiteLLM_MemoryTable" ADD COLUMN {NEW_COLUMN} text')


def start_up_warnings(proxy_session, database, monkeypatch, caplog) -> list[str]:
    """The patch's warnings of one worker start-up against ``database``."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="litellm_memory_patch"):
        proxy_session.install(database, monkeypatch)
    try:
        records = [r for r in caplog.records if r.name == "litellm_memory_patch"]
        assert any("active" in r.getMessage() for r in records), "the patch did not start serving"
        return [r.getMessage() for r in records if r.levelno == logging.WARNING]
    finally:
        proxy_session.close_store()


def test_stock_app_and_table_say_nothing(proxy_session, migrated_db, monkeypatch, caplog):
    assert start_up_warnings(proxy_session, migrated_db, monkeypatch, caplog) == []


def test_a_route_under_v2_memory_is_named_once(proxy_session, migrated_db, monkeypatch, caplog):
    with extra_memory_api(proxy_session.app):
        warnings = start_up_warnings(proxy_session, migrated_db, monkeypatch, caplog)
        # The route the patch left in place still answers, unconfined: that is the warning's point.
        response = proxy_session.request("GET", "/v2/memory/anything", key="unused")
    assert response.status_code == 200
    assert len(warnings) == 1
    assert "GET /v2/memory/{key}" in warnings[0]
    assert "not confined" in warnings[0] and "superuser" in warnings[0]
    assert "columns" not in warnings[0]


def test_an_unknown_column_is_named_once(proxy_session, migrated_db, monkeypatch, caplog):
    add_column(migrated_db)
    warnings = start_up_warnings(proxy_session, migrated_db, monkeypatch, caplog)
    assert len(warnings) == 1
    assert f"({NEW_COLUMN})" in warnings[0]
    assert "/v2/memory" not in warnings[0]


def test_routes_and_columns_share_one_warning(proxy_session, migrated_db, monkeypatch, caplog):
    add_column(migrated_db)
    with extra_memory_api(proxy_session.app):
        warnings = start_up_warnings(proxy_session, migrated_db, monkeypatch, caplog)
    assert len(warnings) == 1
    assert "/v2/memory/{key}" in warnings[0] and NEW_COLUMN in warnings[0]


def checks_of(database) -> dict[str, doctor.Check]:
    return {check.name: check for check in doctor.run_checks(database)}


def test_doctor_warns_about_an_unknown_column_without_failing(migrated_db):
    assert checks_of(migrated_db)["known schema"].status == doctor.OK
    add_column(migrated_db)
    checks = doctor.run_checks(migrated_db)
    found = next(check for check in checks if check.name == "known schema")
    assert found.status == doctor.WARN
    assert NEW_COLUMN in found.detail and "\n" not in found.detail
    assert doctor.all_ok(checks)
