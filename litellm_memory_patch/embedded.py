"""An embedded PostgreSQL with LiteLLM's schema, for the demo and the test suite.

``pgserver`` ships PostgreSQL binaries and runs a private server over a Unix socket; LiteLLM's
schema is applied from the SQL migrations that the installed ``litellm_proxy_extras`` carries,
in the same sorted folder order LiteLLM applies them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import psycopg
from psycopg import sql


def litellm_migration_files() -> list[Path]:
    """LiteLLM's own schema migrations, oldest first."""
    root = Path(str(files("litellm_proxy_extras") / "migrations"))
    return sorted(root.glob("*/migration.sql"), key=lambda path: path.parent.name)


def apply_litellm_schema(conninfo: str, *, schema: str = "public") -> int:
    """Create LiteLLM's tables in ``schema``; returns how many migrations were applied."""
    migrations = litellm_migration_files()
    run_litellm_migrations(conninfo, [path.read_text() for path in migrations], schema=schema)
    return len(migrations)


def run_litellm_migrations(conninfo: str, scripts: list[str], *, schema: str = "public") -> None:
    """Run LiteLLM's migration scripts in the order given, in ``schema``.

    Each script runs on its own, outside an explicit transaction, as Prisma runs them: one of
    them is a single ``CREATE INDEX CONCURRENTLY``.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    with psycopg.connect(
        conninfo, autocommit=True, options=f"-c search_path={schema}"
    ) as conn:
        for script in scripts:
            conn.execute(script)


def start_server(folder: Path):
    """Start (or reuse) a private PostgreSQL in ``folder``; stopped when the process exits."""
    import pgserver  # an optional dependency: the demo and tests only

    return pgserver.get_server(folder, cleanup_mode="stop")
