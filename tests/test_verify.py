"""``litellm-memory-patch verify`` against a served proxy: it passes when the teams are kept
apart, fails when the two keys share what a team key must not, and leaves nothing behind."""

from __future__ import annotations

import psycopg

from identity_auth import api_key
from test_cli import run_cli
from test_served_proxy import served_proxy  # noqa: F401 (a fixture)

TEAM_1 = api_key(team="team-1", user="shared-user")
TEAM_2 = api_key(team="team-2", user="shared-user")
ADMIN_WITHOUT_TEAM = api_key(user="admin", role="proxy_admin")


def _rows(database) -> int:
    with psycopg.connect(database.conninfo) as conn:
        return conn.execute('SELECT count(*) FROM "LiteLLM_MemoryTable"').fetchone()[0]


def test_verify_passes_on_the_patched_proxy_and_fails_for_a_key_that_reaches_everything(
    served_proxy, migrated_db  # noqa: F811
):
    url = str(served_proxy.base_url)
    passed = run_cli("verify", "--proxy-url", url, "--key-1", TEAM_1, "--key-2", TEAM_2)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "FAIL" not in passed.stdout and "cross-team access refused" in passed.stdout
    assert _rows(migrated_db) == 0

    # An admin key with no team reaches every entry: verify must say so, and still clean up.
    failed = run_cli("verify", "--proxy-url", url, "--key-1", TEAM_1, "--key-2", ADMIN_WITHOUT_TEAM)
    assert failed.returncode == 1
    failing = [line.split("  ")[0] for line in failed.stdout.splitlines() if "  FAIL  " in line]
    assert "key 2 reads key 1's entry" in failing and "overall" in failing
    assert _rows(migrated_db) == 0


def test_verify_with_a_key_that_may_not_create_is_one_line(served_proxy):  # noqa: F811
    result = run_cli("verify", "--proxy-url", str(served_proxy.base_url), "--key-1", "", "--key-2", TEAM_2)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not create an entry" in lines[0]
