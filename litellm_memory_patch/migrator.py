"""Running the Alembic migrations: upgrade, downgrade, SQL for review, and the revision state.

The migration scripts travel inside the package (``litellm_memory_patch.migrations``), so this
works from any working directory after a plain ``pip install``.

Before touching anything, :func:`upgrade` and :func:`downgrade` check that the login role can
do the whole job (:func:`migrate_problem`): a refusal met half-way would roll back and leave the
operator with PostgreSQL's words, while this check names whose privilege is missing and the
one statement or command that gives it.
"""

from __future__ import annotations

import io
import re
from importlib.resources import files

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from .config import APP_ROLE, PATCH_SCHEMA, DatabaseTarget, dollar_tag, quote_ident, quote_literal
from .migrations.enforcement import TABLE_NAME

DEFAULT_LOCK_TIMEOUT_MS = 5000

TABLE_NOT_IN_SCHEMA = (
    "LiteLLM's memory table is not in schema {schema} of this database"
    " (found in: {found}): add ?schema=NAME to the database URL, as in LiteLLM's DATABASE_URL"
)
TABLE_MISSING = (
    "LiteLLM's memory table is not in schema {schema}, nor in any other schema of this database:"
    " LiteLLM creates it from version 1.83.14 on; start the proxy once, then run migrate again"
    " (if LiteLLM uses another database or schema, fix the URL or its ?schema=)"
)
NOT_THE_TABLE_OWNER = (
    "{login} does not own LiteLLM's memory table (its owner is {owner}):"
    " run migrate as {owner} or as a superuser"
)
NOT_THE_SCHEMA_OWNER = (
    "the schema {patch} belongs to {owner} (an earlier migrate ran as {owner}):"
    " run migrate and downgrade as {owner} or as a superuser"
)
CANNOT_CREATE_ROLE = (
    "role {role} does not exist and {login} may not create roles: have a superuser run"
    " ALTER ROLE {login} CREATEROLE (a managed service's admin login usually has it), or run"
    " migrate as a superuser (it lets {owner} switch to {role})"
)
CANNOT_GRANT = (
    "{grantees} cannot switch to {role} and {login} may not grant it: have a superuser run"
    " {statements} or run migrate as a superuser"
)
UNSAFE_ROLE = (
    "role {role} can log in, bypass row-level security or hold other powers it must not have:"
    " have a superuser run ALTER ROLE {role} {undo}, or run migrate as a superuser, which does it"
)
MIGRATED_FOR_ANOTHER_SCHEMA = (
    "this database is migrated for LiteLLM's schema {other}, not {schema}: the patch protects one"
    " schema per database; add ?schema={other} to the URL, or downgrade with it first"
)
UNKNOWN_GRANTEE = "--grant-to names role {name}, which does not exist on this server"
# What litellm_memory_app must not be or do; migrate as a superuser takes each away again.
ROLE_POWERS = {
    "rolcanlogin": "NOLOGIN",
    "rolsuper": "NOSUPERUSER",
    "rolbypassrls": "NOBYPASSRLS",
    "rolcreatedb": "NOCREATEDB",
    "rolcreaterole": "NOCREATEROLE",
    "rolinherit": "NOINHERIT",
    "rolreplication": "NOREPLICATION",
}


class MigrationRefused(Exception):
    """The login role cannot do what was asked; the message names who can, or what to grant."""


# The migration scripts, shipped inside the package.
SCRIPT_LOCATION = str(files("litellm_memory_patch.migrations"))


def _alembic_config(
    *,
    schema: str,
    conninfo: str | None,
    lock_timeout_ms: int,
    output_buffer=None,
    reapply=False,
    grant_to: tuple[str, ...] = (),
) -> Config:
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes.update(
        conninfo=conninfo,
        litellm_schema=schema,
        lock_timeout_ms=lock_timeout_ms,
        reapply=reapply,
        grant_to=grant_to,
    )
    return config


def revisions() -> list[str]:
    """Every revision this package ships, oldest first."""
    config = _alembic_config(schema="public", conninfo=None, lock_timeout_ms=0)
    newest_first = ScriptDirectory.from_config(config).walk_revisions()
    return [script.revision for script in reversed(list(newest_first))]


def switch_grants_sql(schema: str, grant_to: tuple[str, ...] = ()) -> str:
    """Let the login roles that run the proxy switch to the restricted role: the one running the
    migration, the owner of LiteLLM's memory table (the role a proxy usually logs in as) and
    every role of ``grant_to``. Only those that cannot yet: granting needs ADMIN on the role."""
    table = quote_ident(schema) + "." + quote_ident(TABLE_NAME)
    named = "".join(f", {quote_literal(name)}" for name in grant_to)
    body = f"""
DECLARE
    grantee name;
BEGIN
    FOREACH grantee IN ARRAY ARRAY[current_user,
            (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = {quote_literal(table)}::regclass){named}]::name[] LOOP
        IF NOT pg_has_role(grantee, '{APP_ROLE}', {_SWITCH_PRIVILEGE}) THEN
            EXECUTE 'GRANT {APP_ROLE} TO ' || quote_ident(grantee);
        END IF;
    END LOOP;
END
"""
    # Names from the URL and the command line stand inside the quoted body: its tag must not.
    tag = dollar_tag(body)
    return f"DO {tag}{body}{tag};"


def role_repair_sql() -> str:
    """Take from the restricted role every power it must not have (a superuser's migrate)."""
    unsafe = " OR ".join(ROLE_POWERS)
    return f"""DO $repair$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}' AND ({unsafe})) THEN
        ALTER ROLE {APP_ROLE} {" ".join(ROLE_POWERS.values())};
    END IF;
END
$repair$;"""


# PostgreSQL 16 split "may SET ROLE" from membership; before it, membership implied it.
_SWITCH_PRIVILEGE = (
    "CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END"
)


def table_problem(conn: psycopg.Connection, schema: str) -> str | None:
    """Why LiteLLM's memory table is not where the URL says, pointing at ``?schema=``."""
    table = quote_ident(schema) + "." + quote_ident(TABLE_NAME)
    with conn.cursor() as cur:
        if cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            return None
        found = [
            name
            for (name,) in cur.execute(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
                (TABLE_NAME,),
            )
        ]
    if found:
        return TABLE_NOT_IN_SCHEMA.format(schema=schema, found=", ".join(found))
    return TABLE_MISSING.format(schema=schema)


def migrated_schemas(conn: psycopg.Connection) -> list[str]:
    """The schemas whose memory table carries the patch's policies (one, once migrated)."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT DISTINCT n.nspname FROM pg_policy p"
            " JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = %s AND p.polname LIKE 'litellm\\_memory\\_%%' ORDER BY 1",
            (TABLE_NAME,),
        )
    ]


def migrate_problem(
    conn: psycopg.Connection, schema: str, *, grant_to: tuple[str, ...] = ()
) -> str | None:
    """Why this login role cannot run the migration (upgrade or downgrade), or None."""
    problem = table_problem(conn, schema)
    if problem:
        return problem
    others = [name for name in migrated_schemas(conn) if name != schema]
    if others:
        return MIGRATED_FOR_ANOTHER_SCHEMA.format(other=others[0], schema=schema)
    table = quote_ident(schema) + "." + quote_ident(TABLE_NAME)
    with conn.cursor() as cur:
        login, superuser, createrole, owner, acts_as_owner, schema_owner = cur.execute(
            "SELECT current_user, r.rolsuper, r.rolcreaterole, pg_get_userbyid(c.relowner),"
            " pg_has_role(current_user, c.relowner, 'USAGE'),"
            " (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s)"
            " FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = %s::regclass",
            (PATCH_SCHEMA, table),
        ).fetchone()
        for name in grant_to:
            if cur.execute("SELECT to_regrole(%s)", (quote_ident(name),)).fetchone()[0] is None:
                return UNKNOWN_GRANTEE.format(name=name)
        if superuser:
            return None
        if not acts_as_owner:
            return NOT_THE_TABLE_OWNER.format(login=login, owner=owner)
        if schema_owner is not None and not cur.execute(
            "SELECT pg_has_role(current_user, %s::regrole, 'USAGE')", (quote_ident(schema_owner),)
        ).fetchone()[0]:
            return NOT_THE_SCHEMA_OWNER.format(patch=PATCH_SCHEMA, owner=schema_owner)
        role = cur.execute(
            f"SELECT {', '.join(ROLE_POWERS)} FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
        ).fetchone()
        if role is None:
            if not createrole:
                return CANNOT_CREATE_ROLE.format(role=APP_ROLE, login=login, owner=owner)
            return None
        if any(role):
            undo = " ".join(word for word, on in zip(ROLE_POWERS.values(), role) if on)
            return UNSAFE_ROLE.format(role=APP_ROLE, undo=undo)
        lacking = [
            name
            for name in dict.fromkeys((login, owner, *grant_to))
            if not cur.execute(
                f"SELECT pg_has_role(%s::regrole, %s, {_SWITCH_PRIVILEGE})",
                (quote_ident(name), APP_ROLE),
            ).fetchone()[0]
        ]
        may_grant = cur.execute(
            "SELECT pg_has_role(current_user, %s, 'MEMBER WITH ADMIN OPTION')"
            " OR (current_setting('server_version_num')::int < 160000 AND %s)",
            (APP_ROLE, createrole),
        ).fetchone()[0]
        if lacking and not may_grant:
            return CANNOT_GRANT.format(
                grantees=", ".join(lacking),
                role=APP_ROLE,
                login=login,
                statements=" ".join(f"GRANT {APP_ROLE} TO {quote_ident(name)};" for name in lacking),
            )
    return None


def _check(target: DatabaseTarget, grant_to: tuple[str, ...] = ()) -> None:
    with psycopg.connect(target.conninfo) as conn:
        problem = migrate_problem(conn, target.schema, grant_to=grant_to)
    if problem:
        raise MigrationRefused(problem)


def served_revisions(revision: str) -> tuple[str, ...]:
    """The revisions whose proxies a database at ``revision`` serves, newest first: ``revision``
    itself and each older one down to the one its module names in ``serves_proxies_from``."""
    script = ScriptDirectory.from_config(_alembic_config(schema="public", conninfo=None, lock_timeout_ms=0))
    oldest = getattr(script.get_revision(revision).module, "serves_proxies_from", revision)
    served = []
    for older in script.iterate_revisions(revision, "base"):
        served.append(older.revision)
        if older.revision == oldest:
            return tuple(served)
    raise ValueError(f"{revision} names {oldest} in serves_proxies_from, which is not older than it")


def head_revision() -> str:
    """The newest revision this package ships."""
    config = _alembic_config(schema="public", conninfo=None, lock_timeout_ms=0)
    return ScriptDirectory.from_config(config).get_current_head()


def upgrade(
    target: DatabaseTarget,
    *,
    revision: str = "head",
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    grant_to: tuple[str, ...] = (),
) -> None:
    """Upgrade to ``revision``; at head, also write every enforcement object again (repair),
    and let the table's owner and the ``grant_to`` roles switch to the restricted role."""
    _check(target, grant_to)
    config = _alembic_config(
        schema=target.schema,
        conninfo=target.conninfo,
        lock_timeout_ms=lock_timeout_ms,
        reapply=revision == "head",
        grant_to=grant_to,
    )
    command.upgrade(config, revision)


def downgrade(
    target: DatabaseTarget, *, revision: str = "base", lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
) -> bool:
    """Go back to ``revision``; False, with nothing touched, when the database was never
    migrated. Back at base, the project's schema and Alembic's version table go too."""
    with psycopg.connect(target.conninfo) as conn:
        if not _version_table_exists(conn):
            return False
        problem = migrate_problem(conn, target.schema)
        if problem:
            raise MigrationRefused(problem)
        if current_revision(conn) is None:
            return False
    config = _alembic_config(
        schema=target.schema, conninfo=target.conninfo, lock_timeout_ms=lock_timeout_ms
    )
    config.attributes["drop_leftovers"] = True
    command.downgrade(config, revision)
    return True


def upgrade_sql(*, schema: str, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> str:
    """The whole upgrade as one SQL script (one transaction), without touching a database."""
    out = io.StringIO()
    config = _alembic_config(
        schema=schema,
        conninfo=None,
        lock_timeout_ms=lock_timeout_ms,
        output_buffer=out,
        reapply=True,
    )
    command.upgrade(config, "head", sql=True)
    # Alembic ends every statement with ";", also those whose text ends with one already.
    return re.sub(r";;$", ";", out.getvalue(), flags=re.MULTILINE)


def _version_table_exists(conn: psycopg.Connection) -> bool:
    # From the catalog: to_regclass() needs USAGE on the schema, which another role may own.
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'alembic_version')",
        (PATCH_SCHEMA,),
    ).fetchone()[0]


def current_revision(conn: psycopg.Connection) -> str | None:
    """The revision recorded in the database, or None when it was never migrated."""
    if not _version_table_exists(conn):
        return None
    row = conn.execute(f"SELECT version_num FROM {PATCH_SCHEMA}.alembic_version").fetchone()
    return row[0] if row else None
