"""Running the Alembic migrations: upgrade, downgrade, SQL for review, and the revision state.

The migration scripts travel inside the package (``litellm_memory_patch.migrations``), so this
works from any working directory after a plain ``pip install``.
"""

from __future__ import annotations

import io
from importlib.resources import files

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from .config import PATCH_SCHEMA, DatabaseTarget

DEFAULT_LOCK_TIMEOUT_MS = 5000


def _alembic_config(
    *, schema: str, conninfo: str | None, lock_timeout_ms: int, output_buffer=None, reapply=False
) -> Config:
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(files("litellm_memory_patch.migrations")))
    config.attributes.update(
        conninfo=conninfo, litellm_schema=schema, lock_timeout_ms=lock_timeout_ms, reapply=reapply
    )
    return config


def head_revision() -> str:
    """The newest revision this package ships."""
    config = _alembic_config(schema="public", conninfo=None, lock_timeout_ms=0)
    return ScriptDirectory.from_config(config).get_current_head()


def upgrade(
    target: DatabaseTarget, *, revision: str = "head", lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
) -> None:
    """Upgrade to ``revision``; at head, also write every enforcement object again (repair)."""
    config = _alembic_config(
        schema=target.schema,
        conninfo=target.conninfo,
        lock_timeout_ms=lock_timeout_ms,
        reapply=revision == "head",
    )
    command.upgrade(config, revision)


def downgrade(
    target: DatabaseTarget, *, revision: str = "base", lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
) -> None:
    config = _alembic_config(
        schema=target.schema, conninfo=target.conninfo, lock_timeout_ms=lock_timeout_ms
    )
    command.downgrade(config, revision)


def upgrade_sql(*, schema: str, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> str:
    """The whole upgrade as one SQL script (one transaction), without touching a database."""
    out = io.StringIO()
    config = _alembic_config(
        schema=schema, conninfo=None, lock_timeout_ms=lock_timeout_ms, output_buffer=out
    )
    command.upgrade(config, "head", sql=True)
    return out.getvalue()


def current_revision(conn: psycopg.Connection) -> str | None:
    """The revision recorded in the database, or None when it was never migrated."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{PATCH_SCHEMA}.alembic_version",)
        )
        if not cur.fetchone()[0]:
            return None
        cur.execute(f"SELECT version_num FROM {PATCH_SCHEMA}.alembic_version")
        row = cur.fetchone()
        return row[0] if row else None
