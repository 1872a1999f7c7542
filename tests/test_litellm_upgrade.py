"""LiteLLM upgraded on a patched database, as operators do: the patch first, LiteLLM later.

LiteLLM's start-up applies the migrations its ``litellm-proxy-extras`` ships that the database
has not seen. Those of 1.110.2 must apply under the patch and leave it whole. A migration that
changes the type of ``team_id`` or ``user_id`` cannot (the policies use both columns): the
README's path for it is tested here too.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest

from caller_session import as_caller
from conftest import create_database
from identity_auth import api_key
from litellm_memory_patch import doctor, embedded, migrator
from litellm_memory_patch.config import parse_database_url
from test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
UPGRADE_SECTION = "## Upgrading LiteLLM"
PROG = "litellm-memory-patch"
EXTRAS = "litellm-proxy-extras"
TEAMS = ("team-1", "team-2")
# Both teams' keys carry one user: LiteLLM issue #27722's case.
USER = "shared-user"


def extras_version(litellm: str) -> str:
    """The ``litellm-proxy-extras`` the tested environment of LiteLLM ``litellm`` pins."""
    pins = (ROOT / "constraints" / f"litellm-{litellm}.txt").read_text()
    return re.search(rf"^{EXTRAS}==(\S+)$", pins, re.MULTILINE).group(1)


def litellm_migrations(version: str, cache: Path) -> dict[str, str]:
    """Each migration of ``litellm-proxy-extras`` ``version``, folder name to SQL: from the
    installed package when it is that version, else from its wheel (downloaded once)."""
    if importlib.metadata.version(EXTRAS) == version:
        return {path.parent.name: path.read_text() for path in embedded.litellm_migration_files()}
    wheels = sorted(cache.glob(f"litellm_proxy_extras-{version}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(cache),
             f"{EXTRAS}=={version}"],
            check=True,
            timeout=300,
        )
        wheels = sorted(cache.glob(f"litellm_proxy_extras-{version}-*.whl"))
    pattern = re.compile(r"litellm_proxy_extras/migrations/([^/]+)/migration\.sql")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return {
            match.group(1): wheel.read(name).decode()
            for name in wheel.namelist()
            if (match := pattern.fullmatch(name))
        }


@pytest.fixture(scope="module")
def migrations(request) -> tuple[dict[str, str], dict[str, str]]:
    """LiteLLM 1.83.14's migrations and 1.110.2's."""
    cache = request.config.cache.mkdir(EXTRAS)
    return tuple(litellm_migrations(extras_version(litellm), cache) for litellm in ("1.83.14", "1.110.2"))


@pytest.fixture
def serving(proxy_session, monkeypatch):
    """Serve a database through the proxy; its rows are one row per team."""

    def serve(target):
        proxy_session.install(target, monkeypatch)
        for team in TEAMS:
            body = {"key": f"{team}:note", "value": f"of {team}"}
            answer = proxy_session.request("POST", "/v1/memory", key=api_key(team=team, user=USER), json=body)
            assert answer.status_code == 200, answer.text
        return proxy_session

    yield serve
    proxy_session.close_store()


def assert_teams_confined(proxy, target) -> None:
    """Each team's key reaches its own row only, through the proxy and in the database."""
    for team, other in (TEAMS, TEAMS[::-1]):
        key = api_key(team=team, user=USER)
        listed = proxy.request("GET", "/v1/memory", key=key)
        assert listed.status_code == 200, listed.text
        assert [row["key"] for row in listed.json()["memories"]] == [f"{team}:note"]
        for method in ("GET", "DELETE"):
            assert proxy.request(method, f"/v1/memory/{other}:note", key=key).status_code == 404
    with psycopg.connect(target.conninfo) as conn:
        for team in TEAMS:
            with as_caller(conn, team=team, user=USER):
                keys = [row[0] for row in conn.execute('SELECT key FROM "LiteLLM_MemoryTable"')]
                assert keys == [f"{team}:note"]


def assert_doctor_ok(target) -> None:
    failed = [check for check in doctor.run_checks(target) if check.status == doctor.FAIL]
    assert failed == []


def test_litellm_1_110_2_migrations_apply_on_a_patched_1_83_14_database(server_url, migrations, serving):
    old, new = migrations
    assert old.keys() <= new.keys(), "LiteLLM removed a migration: the upgrade is not additive"
    added = sorted(new.keys() - old.keys())
    assert added

    target = parse_database_url(create_database(server_url))
    embedded.run_litellm_migrations(target.conninfo, [old[name] for name in sorted(old)])
    migrator.upgrade(target)
    proxy = serving(target)

    # As LiteLLM's start-up does: the migrations the database has not seen, in name order.
    embedded.run_litellm_migrations(target.conninfo, [new[name] for name in added])

    assert_teams_confined(proxy, target)
    assert_doctor_ok(target)


def readme_upgrade_steps() -> list[str]:
    """The lines of the shell block of the README's section on upgrading LiteLLM."""
    text = README.read_text()
    section = text[text.index(UPGRADE_SECTION) :]
    section = section[: section.find("\n## ", len(UPGRADE_SECTION))]
    block = re.search(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("column", ["team_id", "user_id"])
def test_a_litellm_migration_changing_an_owner_column_type_takes_the_readme_path(
    migrated_db, serving, column
):
    change = f'ALTER TABLE "LiteLLM_MemoryTable" ALTER COLUMN "{column}" TYPE VARCHAR(500)'
    proxy = serving(migrated_db)
    url = migrated_db.conninfo

    # What the proxy's start would meet: PostgreSQL refuses, and changes nothing.
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="used in a policy definition"):
        embedded.run_litellm_migrations(url, [change])

    # The README's steps as written; its one comment line is LiteLLM's start.
    steps = readme_upgrade_steps()
    assert sum(line.startswith("#") for line in steps) == 1, steps
    for line in steps:
        if line.startswith("#"):
            listed = proxy.request("GET", "/v1/memory", key=api_key(team=TEAMS[0], user=USER))
            assert listed.status_code == 503, listed.text  # fails closed in between
            embedded.run_litellm_migrations(url, [change])
            continue
        program, *arguments = shlex.split(line)
        assert program == PROG, line
        result = run_cli(*arguments, "--database-url", url)
        assert result.returncode == 0, (line, result.stdout, result.stderr)

    with psycopg.connect(url) as conn:
        (column_type,) = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = '\"LiteLLM_MemoryTable\"'::regclass AND attname = %s",
            (column,),
        ).fetchone()
    assert column_type == "character varying(500)"
    assert_teams_confined(proxy, migrated_db)
    assert_doctor_ok(migrated_db)
