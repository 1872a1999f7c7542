"""What the patch does not know: memory routes it left in place and memory-table columns it was
not written for.

LiteLLM's development branch adds a second memory API (``/v2/memory/...``) on the same table,
with new columns. Routes the patch does not replace are not confined by it, and under FORCE
row-level security LiteLLM's own handlers see no rows when the proxy logs in as the table owner
(and every row as a superuser). Each worker says so once at start-up, and ``doctor`` reports the
columns as a warning; neither stops anything.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psycopg

from . import __version__
from .config import Settings, quote_ident
from .migrations.enforcement import TABLE_NAME

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger("litellm_memory_patch")

MEMORY_PREFIXES = ("/v1/memory", "/v2/memory")

# LiteLLM_MemoryTable's columns from 1.83.14 through 1.110.2: the ones the patch reads and writes.
KNOWN_COLUMNS = frozenset(
    {
        "memory_id",
        "key",
        "value",
        "metadata",
        "user_id",
        "team_id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    }
)

# One catalog lookup; a missing table has no columns (the readiness check reports it).
COLUMNS_QUERY = (
    "SELECT attname FROM pg_attribute"
    " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
)

ROUTES_MEANING = (
    "Routes the patch does not replace are not confined to the caller's team by it, and under"
    " FORCE row-level security LiteLLM's own handlers see no rows when the proxy logs in as the"
    " table owner, every row when it logs in as a superuser."
)
COLUMNS_MEANING = "The patch neither sets the columns it does not know nor confines by them."
WHAT_TO_DO = "Use a LiteLLM version the patch lists as tested, or a patch release that knows them."

CHECK_NAME = "known schema"


def _route_entries(table) -> list[tuple[str, object]]:
    """Every (full path, route) of a route table, routers included by FastAPI 0.165 too."""
    entries = []
    for route in table:
        # FastAPI 0.165 keeps an included router as one entry that expands to its routes.
        expand = getattr(route, "effective_route_contexts", None)
        if expand is not None:
            entries += [(context.path, context.original_route) for context in expand()]
        else:
            entries.append((getattr(route, "path", ""), route))
    return entries


def unreplaced_routes(app: FastAPI) -> list[str]:
    """The app's memory routes that are not the patch's, as "METHOD path" (a mount as its path)."""
    from . import routes  # imports LiteLLM, which doctor (a user of this module) does without

    patched = {route.endpoint for route in routes.router.routes}
    found = set()
    for path, route in _route_entries(app.router.routes):
        under = any(path == prefix or path.startswith(prefix + "/") for prefix in MEMORY_PREFIXES)
        if not under or getattr(route, "endpoint", None) in patched:
            continue
        methods = sorted(getattr(route, "methods", None) or {"*"})
        found.update(f"{method} {path}" for method in methods)
    return sorted(found)


def unknown_columns(names) -> list[str]:
    return sorted(set(names) - KNOWN_COLUMNS)


def _table(schema: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(TABLE_NAME)}"


async def _columns(settings: Settings) -> list[str]:
    try:
        async with await psycopg.AsyncConnection.connect(
            settings.database.conninfo,
            autocommit=True,
            connect_timeout=settings.connect_timeout,
            application_name="litellm-memory-patch",
        ) as conn:
            cur = await conn.execute(COLUMNS_QUERY, (_table(settings.database.schema),))
            return [name for (name,) in await cur.fetchall()]
    except psycopg.Error as exc:
        # The database answered the readiness check a moment ago; if it fails now, the
        # requests will say so. Only the columns go unchecked.
        logger.info("litellm-memory-patch could not read the memory table's columns: %s", exc)
        return []


def describe(route_names: list[str], column_names: list[str]) -> str | None:
    """The one warning for what the patch does not know, or None when it knows everything."""
    found, meaning = [], []
    if route_names:
        found.append(f"memory routes it does not replace ({', '.join(route_names)})")
        meaning.append(ROUTES_MEANING)
    if column_names:
        found.append(f"memory-table columns it does not know ({', '.join(column_names)})")
        meaning.append(COLUMNS_MEANING)
    if not found:
        return None
    return (
        f"litellm-memory-patch {__version__} found {' and '.join(found)}."
        f" {' '.join(meaning)} {WHAT_TO_DO}"
    )


async def warn_about_unknowns(app: FastAPI, settings: Settings | None) -> None:
    """Log one warning naming what the patch does not know; ``settings`` None skips the table
    (no usable database)."""
    columns = unknown_columns(await _columns(settings)) if settings is not None else []
    message = describe(unreplaced_routes(app), columns)
    if message:
        logger.warning(message)


def columns_check(cur: psycopg.Cursor, table: str):
    """doctor's check of the memory table's columns: a warning, never a failure."""
    from .doctor import OK, WARN, Check  # doctor imports this module, so not at the top

    cur.execute(COLUMNS_QUERY, (table,))
    unknown = unknown_columns(name for (name,) in cur.fetchall())
    if not unknown:
        return Check(CHECK_NAME, OK, "the memory table has only the columns the patch knows")
    return Check(CHECK_NAME, WARN, describe([], unknown))
