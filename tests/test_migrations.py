"""The Alembic migrations against real databases: upgrade, downgrade, data, layouts, login roles."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.exc import DBAPIError

from caller_session import as_caller, insert_row, visible_ids
from conftest import create_database, private_server
from litellm_memory_patch import doctor, embedded, migrator
from litellm_memory_patch.config import APP_ROLE, PATCH_SCHEMA, ConfigError, parse_database_url

TABLE = '"LiteLLM_MemoryTable"'

CATALOG_QUERIES = {
    "columns": """
        SELECT attname, format_type(atttypid, atttypmod), attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY attnum""",
    "indexes": "SELECT pg_get_indexdef(indexrelid) FROM pg_index"
    " WHERE indrelid = %(table)s::regclass ORDER BY 1",
    "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE conrelid = %(table)s::regclass ORDER BY 1",
    "triggers": "SELECT tgname, tgenabled FROM pg_trigger"
    " WHERE tgrelid = %(table)s::regclass AND NOT tgisinternal ORDER BY 1",
    "policies": "SELECT polname FROM pg_policy WHERE polrelid = %(table)s::regclass ORDER BY 1",
    "row security": "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
    " WHERE oid = %(table)s::regclass",
    "privileges": """
        SELECT coalesce(grantee.rolname, 'PUBLIC'), acl.privilege_type, acl.is_grantable
        FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) acl
        LEFT JOIN pg_roles grantee ON grantee.oid = acl.grantee
        WHERE c.oid = %(table)s::regclass ORDER BY 1, 2""",
}
ROWS_DIGEST = f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY memory_id), ''))" \
    f" FROM {TABLE} t"


def catalog_state(conninfo: str, table: str = TABLE) -> dict:
    with psycopg.connect(conninfo) as conn:
        return {
            name: conn.execute(query, {"table": table}).fetchall()
            for name, query in CATALOG_QUERIES.items()
        }


def patch_schema_exists(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (PATCH_SCHEMA,)).fetchone()[0]


def fill(conninfo: str, count: int) -> None:
    """``count`` rows spread over 50 teams, 200 users and some personal rows, as LiteLLM writes."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            f"""
            INSERT INTO {TABLE} (memory_id, key, value, metadata, team_id, user_id, created_by)
            SELECT md5(i::text), 'key-' || i, repeat('v', i %% 97),
                   jsonb_build_object('n', i),
                   CASE WHEN i %% 10 = 0 THEN NULL ELSE 'team-' || (i %% 50) END,
                   CASE WHEN i %% 7 = 0 THEN NULL ELSE 'user-' || (i %% 200) END, 'seed'
            FROM generate_series(1, %s) AS i""",
            (count,),
        )


def digest(conninfo: str):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(ROWS_DIGEST).fetchone()


def assert_isolated(conninfo: str, table: str = TABLE) -> None:
    """A row of team a (seeded by an admin session) is out of reach of team b with the same user."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        with as_caller(conn, role="proxy_admin"):
            insert_row(conn, "iso-a", team="a", user="u", table=table)
        with as_caller(conn, team="b", user="u"):
            assert visible_ids(conn, table) == set()
            assert conn.execute(f"DELETE FROM {table} WHERE memory_id = 'iso-a'").rowcount == 0
        with as_caller(conn, team="a", user="u"):
            assert visible_ids(conn, table) == {"iso-a"}


def test_upgrade_then_downgrade_restores_the_stock_table(litellm_db):
    stock = catalog_state(litellm_db.conninfo)
    migrator.upgrade(litellm_db)
    migrated = catalog_state(litellm_db.conninfo)
    assert migrated["row security"] == [(True, True)]
    assert [name for (name,) in migrated["policies"]] == [
        "litellm_memory_delete",
        "litellm_memory_insert",
        "litellm_memory_select",
        "litellm_memory_update",
    ]
    # Enabled always: in every replication role.
    assert migrated["triggers"] == [("litellm_memory_enforce_ownership", "A")]
    # Nothing LiteLLM's Prisma schema names changes: no column, index or constraint.
    for name in ("columns", "indexes", "constraints"):
        assert migrated[name] == stock[name]

    migrator.downgrade(litellm_db)
    assert catalog_state(litellm_db.conninfo) == stock
    with psycopg.connect(litellm_db.conninfo) as conn:
        assert migrator.current_revision(conn) is None
        leftover = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = to_regnamespace(%s)", (PATCH_SCHEMA,)
        ).fetchone()[0]
    assert leftover == 0


def test_rerun_is_a_no_op_and_round_trip_works(litellm_db):
    migrator.upgrade(litellm_db)
    once = catalog_state(litellm_db.conninfo)
    migrator.upgrade(litellm_db)
    assert catalog_state(litellm_db.conninfo) == once
    migrator.downgrade(litellm_db)
    migrator.upgrade(litellm_db)
    assert catalog_state(litellm_db.conninfo) == once
    with psycopg.connect(litellm_db.conninfo) as conn:
        assert migrator.current_revision(conn) == migrator.head_revision()
    assert_isolated(litellm_db.conninfo)


def test_rows_survive_upgrade_and_downgrade(litellm_db):
    fill(litellm_db.conninfo, 10_000)
    before = digest(litellm_db.conninfo)
    assert before[0] == 10_000
    migrator.upgrade(litellm_db)
    assert digest(litellm_db.conninfo) == before
    migrator.downgrade(litellm_db)
    assert digest(litellm_db.conninfo) == before


def test_time_to_migrate_100000_rows(litellm_db, capsys):
    fill(litellm_db.conninfo, 100_000)
    started = time.perf_counter()
    migrator.upgrade(litellm_db)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nmigrate on a memory table of 100,000 rows: {elapsed:.3f} s")
    assert digest(litellm_db.conninfo)[0] == 100_000


def test_missing_memory_table_is_a_clear_error_and_changes_nothing(litellm_db):
    with psycopg.connect(litellm_db.conninfo) as conn:
        conn.execute(f"DROP TABLE {TABLE}")
    # Refused before anything runs, saying what creates the table and where else it may be.
    with pytest.raises(migrator.MigrationRefused, match=r"1\.83\.14.*\?schema="):
        migrator.upgrade(litellm_db)
    # Not even the project's schema or its version table was left behind.
    assert not patch_schema_exists(litellm_db.conninfo)


def test_schema_named_in_the_url(server_url):
    url = create_database(server_url)
    embedded.apply_litellm_schema(parse_database_url(url).conninfo, schema="litellm")
    target = parse_database_url(f"{url}&schema=litellm&connection_limit=5")
    assert target.schema == "litellm"
    table = 'litellm."LiteLLM_MemoryTable"'
    stock = catalog_state(target.conninfo, table)

    migrator.upgrade(target)
    with psycopg.connect(target.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.\"LiteLLM_MemoryTable\"')").fetchone()[0] is None
    assert catalog_state(target.conninfo, table)["row security"] == [(True, True)]
    assert_isolated(target.conninfo, table)

    migrator.downgrade(target)
    assert catalog_state(target.conninfo, table) == stock


def test_the_ownership_trigger_fires_in_replica_mode_too(migrated_db):
    """session_replication_role = replica, set for the database, switches off every trigger
    enabled for the origin role only; the ownership trigger still stamps an insert."""
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET session_replication_role = replica").format(
                sql.Identifier(conn.info.dbname)
            )
        )
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        assert conn.execute("SHOW session_replication_role").fetchone()[0] == "replica"
        with as_caller(conn, team="a", user="u"):
            insert_row(conn, "unstamped")  # no team, no user: the trigger fills them in
            stamped = conn.execute(
                f"SELECT team_id, user_id FROM {TABLE} WHERE memory_id = 'unstamped'"
            ).fetchone()
    assert stamped == ("a", "u")


def test_superuser_login_role_is_bound_after_switching(migrated_db):
    with psycopg.connect(migrated_db.conninfo) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    assert_isolated(migrated_db.conninfo)


def _make_owner(admin_url: str, role: str) -> str:
    """A fresh LiteLLM database owned, tables and all, by a new LOGIN CREATEROLE role."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(role)))
    url = create_database(admin_url)
    name = url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(role))
        )
    # Over the Unix socket as that role: the embedded server trusts local connections.
    owner_url = url.replace("postgresql://postgres:@", f"postgresql://{role}@", 1)
    assert owner_url != url, "the test server URL is expected to log in as postgres"
    embedded.apply_litellm_schema(owner_url)
    return owner_url


def _assert_owner_migrates(owner_url: str) -> None:
    target = parse_database_url(owner_url)
    migrator.upgrade(target)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        login = conn.execute(
            "SELECT rolsuper, rolbypassrls, pg_get_userbyid(relowner) = current_user"
            " FROM pg_roles, pg_class WHERE rolname = current_user"
            " AND pg_class.oid = '\"LiteLLM_MemoryTable\"'::regclass"
        ).fetchone()
        assert login == (False, False, True)
        # The owner itself is bound by the forced row-level security: no policy, no rows.
        with as_caller(conn, role="proxy_admin"):
            insert_row(conn, "owned", team="o", user="u")
        assert visible_ids(conn) == set()
    assert_isolated(owner_url)
    migrator.downgrade(target)


@pytest.fixture
def private_server_url(tmp_path):
    """A server of our own, for a test that needs the restricted role not to exist yet."""
    with private_server(tmp_path / "pgdata") as url:
        yield url


def test_owner_login_role_creates_the_restricted_role(private_server_url):
    role = "litellm_owner"
    owner_url = _make_owner(private_server_url, role)
    with psycopg.connect(private_server_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()[0] == 0
    _assert_owner_migrates(owner_url)
    with psycopg.connect(private_server_url) as conn:
        # Created by the owner and dropped again by its downgrade.
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()[0] == 0


def test_owner_login_role_with_a_role_prepared_by_a_dba(server_url, migrated_db):
    # migrated_db makes sure the restricted role already exists, created by the superuser.
    role = f"owner_{uuid.uuid4().hex[:8]}"
    owner_url = _make_owner(server_url, role)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(role)))
    _assert_owner_migrates(owner_url)


def test_busy_table_times_out_and_changes_nothing(litellm_db):
    stock = catalog_state(litellm_db.conninfo)
    with psycopg.connect(litellm_db.conninfo) as holder:
        holder.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        with pytest.raises(DBAPIError) as raised:
            migrator.upgrade(litellm_db, lock_timeout_ms=1000)
        assert time.perf_counter() - started < 10
        holder.rollback()
    assert isinstance(raised.value.orig, errors.LockNotAvailable)
    assert catalog_state(litellm_db.conninfo) == stock
    assert not patch_schema_exists(litellm_db.conninfo)


HOSTILE_SCHEMAS = [
    "x$check$; SELECT 1; DO $check$BEGIN",
    'we"ird',
    "it's",
    "has space",
    "$body$",
    "%s per cent",
]


def _copy_into_schema(conninfo: str, schema: str) -> str:
    """LiteLLM's tables the migrations touch, moved from public into ``schema``."""
    quoted = sql.Identifier(schema)
    with psycopg.connect(conninfo) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(quoted))
        for name in ("LiteLLM_MemoryTable", "LiteLLM_TeamTable", "LiteLLM_OrganizationMembership"):
            conn.execute(
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier("public", name), quoted)
            )
    return sql.Identifier(schema, "LiteLLM_MemoryTable").as_string(None)


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS)
def test_a_schema_name_is_an_identifier_never_sql(litellm_db, schema):
    table = _copy_into_schema(litellm_db.conninfo, schema)
    target = parse_database_url(f"{litellm_db.conninfo}&schema={quote(schema, safe='')}")
    assert target.schema == schema
    migrator.upgrade(target)
    assert catalog_state(target.conninfo, table)["row security"] == [(True, True)]
    assert [c for c in doctor.run_checks(target) if c.status == doctor.FAIL] == []
    assert_isolated(target.conninfo, table)
    migrator.downgrade(target)
    assert catalog_state(target.conninfo, table)["policies"] == []


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS[:2])
def test_the_printed_script_quotes_a_schema_name(litellm_db, schema):
    table = _copy_into_schema(litellm_db.conninfo, schema)
    script = migrator.upgrade_sql(schema=schema)
    with psycopg.connect(litellm_db.conninfo, autocommit=True) as conn:
        conn.execute(script)
    assert catalog_state(litellm_db.conninfo, table)["row security"] == [(True, True)]
    assert_isolated(litellm_db.conninfo, table)


@pytest.mark.parametrize(
    "query, words",
    [("schema=" + "n" * 64, "longer than 63 bytes"), ("schema=a%00b", "NUL")],
)
def test_a_schema_name_no_identifier_can_hold_is_refused(query, words):
    with pytest.raises(ConfigError, match=words):
        parse_database_url(f"postgresql://somewhere/db?{query}")
