"""``litellm-memory-patch exposure`` on LiteLLM's real schema, seeded as LiteLLM writes it.

One database holds every case of the report at once (users named after them):

- alice holds keys in team-a, team-b and one without a team: her rows in each place reach the
  others (cross-team, personal row, personal key). Her team keys name the memory routes in
  ``allowed_routes``, as an internal user's key must to reach them; her own key has none (NULL),
  so LiteLLM refuses it (barred);
- bob's team-c key was deleted after his team-a row was written: counted, in its lifetime;
- carol's team-c key was deleted before her team-a row was written: counted, not in its
  lifetime; its empty ``allowed_routes`` bars an internal user's key (barred);
- dave's team-a row was deleted before his team-c key was made: absent (memory rows keep no
  trace once deleted);
- a service key (team, no user) reaches only its own team: absent;
- erin's team-b key may only call ``llm_api_routes`` (barred), and her team-a key reaches her
  team-b row but is barred (empty list); frank's team-c key one memory path (partial); gina is a
  viewer whose team-b key names a group no tested LiteLLM has (unknown);
- root is a proxy admin: its team-b key reaches every row outside team-b, its UI session's rows
  (team ``litellm-dashboard``) included (admin team key); its key without a team and its UI
  session key read everything with the patch too, so they are no exposure, and neither is the
  key without a team of vera, a viewer.

The counts are worked out by hand in ``EXPECTED``. The command also runs as a login role with
only SELECT rights, leaves every LiteLLM table as it was, runs READ ONLY from its first
statement, and reads through row-level security after the migration.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from litellm_memory_patch import embedded, exposure
from litellm_memory_patch.config import APP_ROLE
from test_cli import run_cli

PROG = "litellm-memory-patch"
T0 = datetime(2026, 1, 1)
READER = "exposure_reader"
SECRET_VALUE = "secret value of"
MEMORY = ["/v1/memory", "/v1/memory/*"]  # how LiteLLM's own maintainers set up memory keys


def day(n: int) -> datetime:
    # LiteLLM stores naive UTC timestamps.
    return T0 + timedelta(days=n)


def iso(n: int) -> str:
    return day(n).isoformat() + "Z"


def hashed(api_key: str) -> str:
    # LiteLLM stores a virtual key as the SHA-256 hex digest of the key.
    return hashlib.sha256(api_key.encode()).hexdigest()


def add_team(conn, team_id: str, members: list[str]) -> None:
    roster = [{"user_id": user, "role": "user"} for user in members]
    conn.execute(
        'INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, members, members_with_roles)'
        " VALUES (%s, %s, %s, %s)",
        (team_id, team_id.title(), members, json.dumps(roster)),
    )


def add_key(conn, alias: str | None, *, user, team, created=0, deleted=None, routes=(),
            last_active=None, api_key: str | None = None) -> None:
    values = {
        "token": hashed(api_key or f"sk-{alias}"),
        "key_alias": alias,
        "user_id": user,
        "team_id": team,
        "allowed_routes": None if routes is None else list(routes),
        "created_at": day(created),
        "last_active": None if last_active is None else day(last_active),
    }
    table = "LiteLLM_VerificationToken"
    if deleted is not None:
        # LiteLLM copies the key into the deleted-keys table under a new id when it deletes it.
        table = "LiteLLM_DeletedVerificationToken"
        values.update(id=str(uuid.uuid4()), deleted_at=day(deleted))
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(map(sql.Placeholder, values)),
        ),
        values,
    )


def add_user(conn, user_id: str, role: str) -> None:
    conn.execute(
        'INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES (%s, %s)', (user_id, role)
    )


def add_row(conn, key: str, *, user, team, created=10) -> None:
    conn.execute(
        'INSERT INTO "LiteLLM_MemoryTable" (memory_id, key, value, metadata, user_id, team_id,'
        " created_at, created_by, updated_at, updated_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (str(uuid.uuid4()), key, f"{SECRET_VALUE} {key}", json.dumps({"note": "private"}),
         user, team, day(created), user, day(created), user),
    )


def seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        add_team(conn, "team-a", ["alice", "bob", "carol", "dave", "erin", "frank"])
        add_team(conn, "team-b", ["alice", "erin", "gina"])
        add_team(conn, "team-c", ["bob", "carol", "dave", "frank"])

        for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
            add_user(conn, user, "internal_user")
        add_user(conn, "gina", "proxy_admin_viewer")
        add_user(conn, "vera", "proxy_admin_viewer")
        add_user(conn, "root", "proxy_admin")

        add_key(conn, "alice-a", user="alice", team="team-a", last_active=50, routes=MEMORY)
        add_key(conn, "alice-b", user="alice", team="team-b", last_active=60, routes=MEMORY)
        # A key with no team, and allowed_routes never set (NULL): LiteLLM refuses it.
        add_key(conn, "alice-own", user="alice", team=None, routes=None)
        add_row(conn, "a:alice-1", user="alice", team="team-a")
        add_row(conn, "a:alice-2", user="alice", team="team-a", created=20)
        add_row(conn, "b:alice", user="alice", team="team-b")
        add_row(conn, "alice:diary", user="alice", team=None)
        # An empty team id is no team, as in LiteLLM's filter.
        add_row(conn, "alice:scratch", user="alice", team="")

        add_key(conn, "bob-a", user="bob", team="team-a")
        add_key(conn, "bob-c", user="bob", team="team-c", deleted=30, last_active=25,
                routes=MEMORY)
        add_row(conn, "a:bob", user="bob", team="team-a")

        add_key(conn, "carol-a", user="carol", team="team-a")
        add_key(conn, None, user="carol", team="team-c", deleted=5, api_key="sk-carol-c")
        add_row(conn, "a:carol", user="carol", team="team-a")

        add_key(conn, "dave-a", user="dave", team="team-a")
        add_row(conn, "a:dave", user="dave", team="team-a")
        conn.execute("""DELETE FROM "LiteLLM_MemoryTable" WHERE key = 'a:dave'""")
        add_key(conn, "dave-c", user="dave", team="team-c", created=40)

        add_key(conn, "svc-b", user=None, team="team-b")
        add_row(conn, "b:service", user=None, team="team-b")
        # An empty user id matches nothing, as in LiteLLM's filter.
        add_key(conn, "svc-c", user="", team="team-c")
        add_row(conn, "a:blank", user="", team="team-a")

        add_key(conn, "erin-a", user="erin", team="team-a")
        add_key(conn, "erin-b", user="erin", team="team-b", routes=["llm_api_routes"],
                last_active=70)
        add_row(conn, "a:erin", user="erin", team="team-a")
        add_row(conn, "b:erin", user="erin", team="team-b")

        add_key(conn, "frank-a", user="frank", team="team-a")
        add_key(conn, "frank-c", user="frank", team="team-c", routes=["/v1/memory/a:frank"])
        add_row(conn, "a:frank", user="frank", team="team-a")

        add_key(conn, "gina-b", user="gina", team="team-b", routes=["future_memory_routes"])
        add_row(conn, "a:gina", user="gina", team="team-a")

        add_key(conn, "root-b", user="root", team="team-b", created=15, last_active=80)
        add_key(conn, "root-own", user="root", team=None)
        add_key(conn, "root-ui", user="root", team="litellm-dashboard")
        add_row(conn, "ui:note", user="root", team="litellm-dashboard")
        add_key(conn, "vera-own", user="vera", team=None)
        add_row(conn, "b:vera", user="vera", team="team-b")


def routes(open=0, partial=0, reads=0, unknown=0, barred=0) -> dict:
    return {"open": open, "partial": partial, "reads": reads, "unknown": unknown, "barred": barred}


ADMIN = "admin team key"
# (kind, row team, key team, rows, in key lifetime, of those not barred, users, keys live,
#  keys deleted, last active, routes)
EXPECTED = [
    # root's team-b key reaches every team-a row, a:blank included (it needs no user).
    (ADMIN, "team-a", "team-b", 8, 8, 8, ["root"], 1, 0, iso(80), routes(open=1)),
    # erin's row is reached only by her barred key; gina's "unknown" key is not barred.
    ("cross-team", "team-a", "team-b", 4, 4, 3, ["alice", "erin", "gina"], 3, 0, iso(70),
     routes(open=1, unknown=1, barred=1)),
    # carol's key was deleted before her row was written; frank's "partial" key is not barred.
    ("cross-team", "team-a", "team-c", 3, 2, 2, ["bob", "carol", "frank"], 1, 2, iso(25),
     routes(open=1, partial=1, barred=1)),
    ("personal row", None, "team-a", 2, 2, 2, ["alice"], 1, 0, iso(50), routes(open=1)),
    (ADMIN, None, "team-b", 2, 2, 2, ["root"], 1, 0, iso(80), routes(open=1)),
    ("personal row", None, "team-b", 2, 2, 2, ["alice"], 1, 0, iso(60), routes(open=1)),
    # alice's key without a team has no allowed_routes: LiteLLM refuses it.
    ("personal key", "team-a", None, 2, 2, 0, ["alice"], 1, 0, None, routes(barred=1)),
    # erin's team-a key has an empty allowed_routes: barred.
    ("cross-team", "team-b", "team-a", 2, 2, 1, ["alice", "erin"], 2, 0, iso(50),
     routes(open=1, barred=1)),
    (ADMIN, "litellm-dashboard", "team-b", 1, 1, 1, ["root"], 1, 0, iso(80), routes(open=1)),
    ("personal key", "team-b", None, 1, 1, 0, ["alice"], 1, 0, None, routes(barred=1)),
]
MEMORY_KEYS = {
    (ADMIN, "team-a", "team-b"): [
        "a:alice-1", "a:alice-2", "a:blank", "a:bob", "a:carol", "a:erin", "a:frank", "a:gina"
    ],
    ("cross-team", "team-a", "team-b"): ["a:alice-1", "a:alice-2", "a:erin", "a:gina"],
    ("cross-team", "team-a", "team-c"): ["a:bob", "a:carol", "a:frank"],
    ("personal key", "team-a", None): ["a:alice-1", "a:alice-2"],
    ("personal row", None, "team-a"): ["alice:diary", "alice:scratch"],
    (ADMIN, None, "team-b"): ["alice:diary", "alice:scratch"],
    ("personal row", None, "team-b"): ["alice:diary", "alice:scratch"],
    ("personal key", "team-b", None): ["b:alice"],
    ("cross-team", "team-b", "team-a"): ["b:alice", "b:erin"],
    (ADMIN, "litellm-dashboard", "team-b"): ["ui:note"],
}


def summary(pair) -> tuple:
    return (
        pair["kind"], pair["row_team"], pair["key_team"], pair["rows"],
        pair["rows_in_key_lifetime"], pair["rows_not_barred"], pair["users"], pair["keys_live"],
        pair["keys_deleted"], pair["last_active"], pair["routes"],
    )


def exposure_json(url: str, *args: str) -> dict:
    result = run_cli("--database-url", url, "exposure", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def as_login(url: str, user: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname or ''}"))


@pytest.fixture
def reader(server_url, litellm_db):
    """A login role that may only SELECT LiteLLM's tables in ``litellm_db``; dropped after."""
    role = f"{READER}_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    with psycopg.connect(litellm_db.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                sql.Identifier(role)
            )
        )
    yield role
    with psycopg.connect(litellm_db.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def checksums(url: str) -> dict[str, str]:
    """An md5 of every row of every LiteLLM table, by table."""
    with psycopg.connect(url) as conn:
        tables = [
            name for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            table: conn.execute(
                sql.SQL("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|'"
                        " ORDER BY t::text)), '') FROM {} t").format(sql.Identifier(table))
            ).fetchone()[0]
            for table in tables
        }


# -- the cases ----------------------------------------------------------------------------------


def test_every_case_counts_exactly(litellm_db):
    seed(litellm_db.conninfo)
    report = exposure_json(litellm_db.conninfo)
    assert [summary(pair) for pair in report["pairs"]] == EXPECTED
    assert report["memory_rows"] == 15
    # b:service (no user) and b:vera (reached only by a viewer's key without a team) are not.
    assert report["rows_reached"] == 13
    # a:carol's own key was deleted before it was written, but root's team-b key reaches it.
    assert report["rows_exposed"] == 13
    # b:erin is reached only by erin's barred team-a key.
    assert report["rows_exposed_not_barred"] == 12
    everyone = {user for pair in report["pairs"] for user in pair["users"]}
    assert not {"dave", "vera"} & everyone
    keys = {key["key"] for pair in report["pairs"] for key in pair["keys"]}
    assert not {"svc-b", "svc-c", "dave-c", "root-own", "root-ui", "vera-own"} & keys
    # A UI session key has no team: it is no team's key.
    assert "litellm-dashboard" not in {pair["key_team"] for pair in report["pairs"]}


def test_json_field_by_field(litellm_db):
    seed(litellm_db.conninfo)
    report = exposure_json(litellm_db.conninfo)
    assert list(report) == [
        "schema", "key_tables", "last_active_recorded", "memory_read_as", "memory_rows",
        "rows_reached", "rows_exposed", "rows_exposed_not_barred", "pairs",
    ]
    assert report["schema"] == "public"
    assert report["key_tables"] == ["LiteLLM_VerificationToken", "LiteLLM_DeletedVerificationToken"]
    assert report["last_active_recorded"] is True
    assert report["memory_read_as"] == "login role"
    pair = report["pairs"][2]
    assert pair == {
        "kind": "cross-team",
        "row_team": "team-a",
        "key_team": "team-c",
        "rows": 3,
        "rows_in_key_lifetime": 2,
        "rows_not_barred": 2,
        "users": ["bob", "carol", "frank"],
        "keys_live": 1,
        "keys_deleted": 2,
        "last_active": iso(25),
        "routes": routes(open=1, partial=1, barred=1),
        "keys": [
            {
                "key": "frank-c", "user_id": "frank", "owner_role": "internal_user",
                "state": "live", "created_at": iso(0), "deleted_at": None, "last_active": None,
                "allowed_routes": ["/v1/memory/a:frank"], "routes": "partial",
            },
            {
                # No alias: the key is named by its hashed token, as LiteLLM stores it.
                "key": hashed("sk-carol-c"), "user_id": "carol", "owner_role": "internal_user",
                "state": "deleted", "created_at": iso(0), "deleted_at": iso(5),
                "last_active": None, "allowed_routes": [], "routes": "barred",
            },
            {
                "key": "bob-c", "user_id": "bob", "owner_role": "internal_user",
                "state": "deleted", "created_at": iso(0), "deleted_at": iso(30),
                "last_active": iso(25), "allowed_routes": MEMORY, "routes": "open",
            },
        ],
        "memory_keys": None,
    }


def test_rows_adds_memory_keys_and_never_values(litellm_db):
    seed(litellm_db.conninfo)
    default = run_cli("--database-url", litellm_db.conninfo, "exposure")
    with_rows = run_cli("--database-url", litellm_db.conninfo, "exposure", "--json", "--rows")
    for result in (default, with_rows):
        assert result.returncode == 0, result.stderr
        assert SECRET_VALUE not in result.stdout and "private" not in result.stdout
    assert "a:alice-1" not in default.stdout
    pairs = json.loads(with_rows.stdout)["pairs"]
    assert {
        (p["kind"], p["row_team"], p["key_team"]): p["memory_keys"] for p in pairs
    } == MEMORY_KEYS


def test_text_report(litellm_db):
    seed(litellm_db.conninfo)
    result = run_cli("--database-url", litellm_db.conninfo, "exposure")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == (
        "Key tables found: LiteLLM_VerificationToken, LiteLLM_DeletedVerificationToken"
    )
    table = lines[lines.index("") + 1:]
    assert table[0].split()[:3] == ["row", "team", "key"]
    assert table[2].split()[:10] == [
        "team-a", "team-b", "admin", "team", "key", "8", "8", "8", "1", "1"
    ]
    second = table[3].split()
    assert second[:8] == ["team-a", "team-b", "cross-team", "4", "4", "3", "3", "3"]
    assert table[3].endswith("1 open, 1 unknown, 1 barred")
    through = "  team-a <- team-c: users bob, carol, frank; keys frank-c (live, partial"
    assert through in result.stdout
    admin = "  team-a <- team-b (admin team key): users root; keys root-b (live, proxy_admin, open)"
    assert admin in result.stdout
    assert "gina-b (live, proxy_admin_viewer, unknown ['future_memory_routes'])" in result.stdout
    assert "not what they did" in result.stdout


# A proxy admin's key: only the key's own allowed_routes check applies.
@pytest.mark.parametrize(
    ("allowed", "verdict"),
    [
        (None, "open"),
        ([], "open"),
        (["/v1/memory"], "open"),
        (["/v1"], "open"),
        (["/v1/mem*"], "open"),
        (["*"], "open"),
        ([""], "open"),  # LiteLLM's prefix rule: every path starts with "" + "/"
        (["llm_api_routes", "/v1/memory"], "open"),
        (["/v1/memory/*"], "partial"),  # every key by name, but not the list
        (["/v1/memory/team-1:notes"], "partial"),
        (["llm_api_routes"], "barred"),
        (["management_routes", "/chat/completions"], "barred"),
        (["/v1/mem"], "barred"),  # a prefix must end at a "/"
        (["/v1/memory-usage"], "barred"),
        (["memory_routes"], "unknown"),
        (["memory_routes", "/v1/memory/*"], "unknown"),
    ],
)
def test_route_verdict_of_an_admins_key(allowed, verdict):
    assert exposure.route_verdict(allowed, "proxy_admin") == verdict


# Any other owner: only path entries open /v1/memory, which no role's route group holds.
@pytest.mark.parametrize(
    ("allowed", "role", "verdict"),
    [
        (None, "internal_user", "barred"),
        ([], "internal_user", "barred"),
        ([], None, "barred"),  # a key without a user, or whose user has no row
        ([], "internal_user_viewer", "barred"),
        (MEMORY, "internal_user", "open"),
        (MEMORY, None, "open"),
        (MEMORY, "internal_user_viewer", "open"),
        (MEMORY, "a role of another version", "open"),
        (["/v1/memory"], "internal_user", "open"),
        (["*"], "internal_user", "open"),
        (["/v1/memory/*"], "internal_user", "partial"),
        (["llm_api_routes"], "internal_user", "barred"),
        (["memory_routes"], "internal_user", "barred"),  # a name never opens a path here
        (["memory_routes", "/v1/memory/*"], "internal_user", "partial"),
        # A viewer: GETs only, from LiteLLM 1.110 on, within the key's allowed_routes.
        ([], "proxy_admin_viewer", "reads"),
        (MEMORY, "proxy_admin_viewer", "reads"),
        (["/v1/memory/*"], "proxy_admin_viewer", "reads"),
        (["llm_api_routes"], "proxy_admin_viewer", "barred"),
        (["memory_routes"], "proxy_admin_viewer", "unknown"),
    ],
)
def test_route_verdict_by_owner_role(allowed, role, verdict):
    assert exposure.route_verdict(allowed, role) == verdict


# -- read-only, schema detection, row-level security --------------------------------------------


def test_select_only_login_changes_nothing(litellm_db, reader):
    seed(litellm_db.conninfo)
    before = checksums(litellm_db.conninfo)
    report = exposure_json(as_login(litellm_db.conninfo, reader))
    assert [summary(pair) for pair in report["pairs"]] == EXPECTED
    assert checksums(litellm_db.conninfo) == before


def test_a_table_the_login_may_not_read_is_named(litellm_db, reader):
    with psycopg.connect(litellm_db.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL('REVOKE SELECT ON "LiteLLM_DeletedVerificationToken" FROM {}').format(
                sql.Identifier(reader)
            )
        )
    result = run_cli("--database-url", as_login(litellm_db.conninfo, reader), "exposure")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"{PROG}: error: " + exposure.NO_SELECT.format(
        tables='"LiteLLM_DeletedVerificationToken"'
    )


class RecordingCursor(psycopg.Cursor):
    """Notes, after each statement, whether the transaction it ran in is read-only."""

    seen: list[tuple[str, str]] = []

    def execute(self, query, params=None, **kwargs):
        result = super().execute(query, params, **kwargs)
        with psycopg.ClientCursor(self.connection) as probe:
            mode = probe.execute("SHOW transaction_read_only").fetchone()[0]
        RecordingCursor.seen.append((str(query)[:40], mode))
        return result


def test_every_statement_runs_read_only(litellm_db):
    seed(litellm_db.conninfo)
    RecordingCursor.seen = []
    with psycopg.connect(
        litellm_db.conninfo, autocommit=True, cursor_factory=RecordingCursor
    ) as conn:
        exposure.read_report(conn, schema="public")
    # All but the final ROLLBACK ran in a READ ONLY transaction.
    *statements, (last, _) = RecordingCursor.seen
    assert len(statements) >= 5 and last == "ROLLBACK"
    assert {mode for _, mode in statements} == {"on"}


def test_schema_without_deleted_keys_or_last_active(litellm_db):
    seed(litellm_db.conninfo)
    with psycopg.connect(litellm_db.conninfo) as conn:
        conn.execute('DROP TABLE "LiteLLM_DeletedVerificationToken"')
        conn.execute('ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN last_active')
    report = exposure_json(litellm_db.conninfo)
    assert report["key_tables"] == ["LiteLLM_VerificationToken"]
    assert report["last_active_recorded"] is False
    by_pair = {(p["row_team"], p["key_team"]): p for p in report["pairs"]}
    # Only frank's live key is left to reach team-a from team-c.
    assert summary(by_pair[("team-a", "team-c")]) == (
        "cross-team", "team-a", "team-c", 1, 1, 1, ["frank"], 1, 0, None, routes(partial=1)
    )
    text = run_cli("--database-url", litellm_db.conninfo, "exposure").stdout
    assert "Key tables found: LiteLLM_VerificationToken (no last_active column)" in text


def test_after_the_migration_reads_through_row_level_security(migrated_db, reader):
    seed(migrated_db.conninfo)
    login = as_login(migrated_db.conninfo, reader)
    refused = run_cli("--database-url", login, "exposure")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"{PROG}: error: " + exposure.HIDDEN_BY_RLS.format(login=reader)
    ]

    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(reader))
        )
    report = exposure_json(login)
    assert report["memory_read_as"] == f"{APP_ROLE} (proxy_admin_viewer)"
    assert [summary(pair) for pair in report["pairs"]] == EXPECTED
    assert (report["memory_rows"], report["rows_exposed"]) == (15, 13)
    # The superuser skips row-level security and reads the same.
    assert exposure_json(migrated_db.conninfo)["pairs"] == report["pairs"]


def test_not_a_litellm_database(server_url):
    from conftest import create_database

    url = create_database(server_url)
    result = run_cli("--database-url", url, "exposure")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    expected = exposure.NO_KEY_TABLE.format(schema="public")
    assert result.stderr.strip() == f"{PROG}: error: {expected}"


def test_litellm_schema_named_by_the_url(server_url):
    from conftest import create_database

    url = create_database(server_url)
    embedded.apply_litellm_schema(url, schema="litellm")
    seed(with_query(url, options="-csearch_path=litellm"))
    report = exposure_json(with_query(url, schema="litellm"))
    assert report["schema"] == "litellm"
    assert [summary(pair) for pair in report["pairs"]] == EXPECTED


def test_nothing_reachable(litellm_db):
    with psycopg.connect(litellm_db.conninfo) as conn:
        add_key(conn, "solo-a", user="solo", team="team-a")
        add_row(conn, "a:solo", user="solo", team="team-a")
    assert exposure_json(litellm_db.conninfo)["pairs"] == []
    result = run_cli("--database-url", litellm_db.conninfo, "exposure")
    assert result.returncode == 0, result.stderr
    assert "Memory rows: 1 (read as: login role)" in result.stdout
    assert "No memory row was reachable by a key of another team" in result.stdout


def test_without_the_user_table_the_roles_are_missing(litellm_db):
    with psycopg.connect(litellm_db.conninfo) as conn:
        conn.execute('DROP TABLE "LiteLLM_UserTable" CASCADE')
    result = run_cli("--database-url", litellm_db.conninfo, "exposure")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    expected = exposure.NO_USER_TABLE.format(schema="public")
    assert result.stderr.strip() == f"{PROG}: error: {expected}"
