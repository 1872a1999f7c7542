"""Alembic environment for litellm-memory-patch.

Run through the ``litellm-memory-patch`` CLI, which puts into ``config.attributes``:

- ``conninfo``: a libpq connection string (online mode only);
- ``litellm_schema``: the schema that holds LiteLLM's tables (``public`` or ``?schema=``);
- ``lock_timeout_ms``: how long a DDL statement may wait for a table lock;
- ``reapply``: after upgrading, write the head's enforcement objects again (``migrate``), so a
  database whose objects were changed by hand is repaired even when it is at head already; and
  let the proxy's login roles switch to the restricted role (``grant_to``: roles named besides
  the migrating one and the memory table's owner);
- ``drop_leftovers``: after a downgrade to base, remove Alembic's version table and the
  project's schema, so that nothing of the patch is left and any role may migrate again.

Every revision of one run happens inside one transaction, so a failure leaves nothing behind.
Alembic's version table lives in the project's own schema, where LiteLLM's Prisma drift repair
never looks (a table in LiteLLM's schema would be dropped by it).
"""

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

from litellm_memory_patch import migrator
from litellm_memory_patch.config import PATCH_SCHEMA
from litellm_memory_patch.migrations import enforcement

config = context.config
attributes = config.attributes


def _prelude() -> None:
    # A short lock_timeout: on a busy table the migration fails fast (and says to retry)
    # instead of queueing an exclusive lock that would stall the proxy's traffic behind it.
    context.execute(f"SET LOCAL lock_timeout = {int(attributes['lock_timeout_ms'])}")
    # Every name the DDL does not qualify resolves in pg_catalog, never in a schema another
    # role may create objects in; and a quote in LiteLLM's schema name is doubled, never escaped.
    context.execute("SET LOCAL search_path = pg_catalog, pg_temp")
    context.execute("SET LOCAL standard_conforming_strings = on")
    context.execute(f"CREATE SCHEMA IF NOT EXISTS {PATCH_SCHEMA}")
    if attributes.get("reapply"):
        context.execute(migrator.role_repair_sql())


def _grants() -> None:
    if attributes.get("reapply"):
        context.execute(
            migrator.switch_grants_sql(attributes["litellm_schema"], attributes.get("grant_to", ()))
        )


# Back at base only the version table is left in the project's schema; anything else there
# (an object someone added) keeps the schema.
_DROP_LEFTOVERS = f"""DO $leftovers$
BEGIN
    DROP TABLE {PATCH_SCHEMA}.alembic_version;
    IF NOT EXISTS (SELECT FROM pg_depend d JOIN pg_namespace n ON n.oid = d.refobjid
                   WHERE d.refclassid = 'pg_namespace'::regclass AND n.nspname = '{PATCH_SCHEMA}') THEN
        DROP SCHEMA {PATCH_SCHEMA};
    END IF;
END
$leftovers$;"""


def _configure(**kwargs) -> None:
    context.configure(
        version_table_schema=PATCH_SCHEMA,
        transaction_per_migration=False,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit the SQL for a DBA to review or apply by hand; no database is contacted."""
    _configure(url="postgresql://", literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        _prelude()
        context.run_migrations()
        _grants()


def run_migrations_online() -> None:
    """Apply the migrations over one connection, in one transaction."""
    conninfo = attributes["conninfo"]
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(conninfo),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            _prelude()
            context.run_migrations()
            if attributes.get("reapply") and _at_head():
                context.execute(
                    enforcement.upgrade_sql(
                        attributes["litellm_schema"], revision=context.script.get_current_head()
                    )
                )
                _grants()
            if attributes.get("drop_leftovers") and not context.get_context().get_current_heads():
                context.execute(_DROP_LEFTOVERS)


def _at_head() -> bool:
    heads = context.get_context().get_current_heads()
    return heads == (context.script.get_current_head(),)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
