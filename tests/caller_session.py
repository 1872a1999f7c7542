"""Test helper: run SQL the way a patched request does, as one caller in one transaction."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg

from litellm_memory_patch.config import APP_ROLE

MEMORY_TABLE = '"LiteLLM_MemoryTable"'


@contextmanager
def as_caller(conn: psycopg.Connection, *, team=None, user=None, role=None, settings=True):
    """A transaction switched to the restricted role with the caller's transaction-local scope.

    ``settings=False`` switches the role but never sets the scope at all, which must read as
    "no caller" just like empty settings do. Leaving the block commits; an error rolls back.
    """
    with conn.transaction():
        conn.execute("SELECT set_config('role', %s, true)", (APP_ROLE,))
        if settings:
            conn.execute(
                "SELECT set_config('litellm_memory.team_id', %s, true),"
                " set_config('litellm_memory.user_id', %s, true),"
                " set_config('litellm_memory.user_role', %s, true)",
                (team or "", user or "", role or ""),
            )
        yield conn


def visible_ids(conn: psycopg.Connection, table: str = MEMORY_TABLE) -> set[str]:
    return {row[0] for row in conn.execute(f"SELECT memory_id FROM {table}")}


def insert_row(conn, memory_id, *, team=None, user=None, table: str = MEMORY_TABLE) -> None:
    """A memory row whose key is its id; team/user None leaves the columns NULL."""
    # The table's name stands in a query with placeholders: a "%" in it must be doubled.
    conn.execute(
        f"INSERT INTO {table.replace('%', '%%')} (memory_id, key, value, team_id, user_id)"
        " VALUES (%s, %s, 'v', %s, %s)",
        (memory_id, memory_id, team, user),
    )
