"""Configuration: where the database is and how the patch talks to it.

Everything comes from the environment, read once per call of :func:`load_settings`, so that
the CLI, the proxy hook and the tests all see the same rules. A LiteLLM ``DATABASE_URL`` is a
Prisma URL: it may carry parameters libpq does not know (``connection_limit``, ``schema``, ...)
and names LiteLLM's schema with ``?schema=``. :func:`parse_database_url` turns it into a libpq
connection string plus the schema, so one URL serves LiteLLM and the patch alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict

URL_VARIABLES = ("LITELLM_MEMORY_DATABASE_URL", "DATABASE_URL")

# Query parameters only Prisma understands; libpq refuses unknown ones, so they are dropped.
PRISMA_ONLY_PARAMETERS = frozenset(
    {
        "schema",
        "connection_limit",
        "pool_timeout",
        "pgbouncer",
        "socket_timeout",
        "statement_cache_size",
        "sslaccept",
        "sslidentity",
        "max_idle_connection_lifetime",
    }
)

DEFAULT_SCHEMA = "public"
# PostgreSQL's NAMEDATALEN - 1: a longer identifier would be silently truncated.
MAX_IDENTIFIER_BYTES = 63

# The project's own schema: functions and Alembic's version table live here, out of sight of
# LiteLLM's Prisma drift repair, which only looks at LiteLLM's schema.
PATCH_SCHEMA = "litellm_memory_patch"

# The restricted role every request switches to; the migrations create it.
APP_ROLE = "litellm_memory_app"

def refuses_the_switch(message: str | None) -> bool:
    """Whether PostgreSQL's refusal means the login role may not use the restricted role: the
    role switch itself, or the project's schema, whose USAGE a login gets as a member of it."""
    return bool(message) and ("set role" in message or f"schema {PATCH_SCHEMA}" in message)


MISSING_URL = (
    "no database URL: pass --database-url, or set LITELLM_MEMORY_DATABASE_URL "
    "(or DATABASE_URL, as LiteLLM does)"
)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and what to do."""


@dataclass(frozen=True)
class DatabaseTarget:
    """A database URL made usable by psycopg, and what the URL said about LiteLLM's layout."""

    conninfo: str
    schema: str = DEFAULT_SCHEMA


def parse_database_url(url: str) -> DatabaseTarget:
    """Split a (possibly Prisma-style) PostgreSQL URL into a libpq conninfo and LiteLLM's schema."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            "the database URL must start with postgresql:// (got a URL of another kind)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    kept = [(name, value) for name, value in query if name not in PRISMA_ONLY_PARAMETERS]
    # quote, not urlencode's default quote_plus: libpq reads "+" as a plus sign, not a space.
    conninfo = urlunsplit(
        parts._replace(scheme="postgresql", query=urlencode(kept, quote_via=quote))
    )
    try:
        conninfo_to_dict(conninfo)
    except Exception as exc:  # psycopg raises ProgrammingError with libpq's own words
        raise ConfigError(f"the database URL cannot be read: {exc}") from None
    return DatabaseTarget(
        conninfo=conninfo,
        schema=check_schema_name(params.get("schema") or DEFAULT_SCHEMA),
    )


def database_url_from_env(explicit: str | None = None) -> str:
    """The URL to use: an explicit one, else the first of :data:`URL_VARIABLES` that is set."""
    if explicit:
        return explicit
    for name in URL_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise ConfigError(MISSING_URL)


def _env_number(name: str, default: float, *, minimum: float, kind: type = int):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {raw!r})") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {raw!r})")
    return value


@dataclass(frozen=True)
class Settings:
    """What the proxy side of the patch needs; see the README for each variable."""

    database: DatabaseTarget
    pool_min_size: int = 1
    pool_max_size: int = 4
    # Seconds a request waits for a pooled connection before it answers 503.
    pool_timeout: float = 5.0
    connect_timeout: int = 5
    # Milliseconds one statement may run before PostgreSQL cancels it (0: no limit).
    statement_timeout_ms: int = 5000
    max_value_bytes: int = 1024 * 1024


def load_settings(database_url: str | None = None) -> Settings:
    """Read the proxy-side settings from the environment."""
    target = parse_database_url(database_url_from_env(database_url))
    min_size = _env_number("LITELLM_MEMORY_POOL_MIN_SIZE", 1, minimum=0)
    max_size = _env_number("LITELLM_MEMORY_POOL_MAX_SIZE", 4, minimum=1)
    if max_size < min_size:
        raise ConfigError("LITELLM_MEMORY_POOL_MAX_SIZE must not be below LITELLM_MEMORY_POOL_MIN_SIZE")
    return Settings(
        database=target,
        pool_min_size=min_size,
        pool_max_size=max_size,
        pool_timeout=_env_number("LITELLM_MEMORY_POOL_TIMEOUT", 5.0, minimum=0.1, kind=float),
        connect_timeout=_env_number("LITELLM_MEMORY_CONNECT_TIMEOUT", 5, minimum=1),
        statement_timeout_ms=_env_number("LITELLM_MEMORY_STATEMENT_TIMEOUT_MS", 5000, minimum=0),
        max_value_bytes=_env_number("LITELLM_MEMORY_MAX_VALUE_BYTES", 1024 * 1024, minimum=1),
    )


def check_schema_name(name: str) -> str:
    """``name`` if PostgreSQL accepts it as a (quoted) identifier, else a :class:`ConfigError`.

    Any character but NUL is allowed once quoted, so quoting, not refusing, is what keeps a
    name from being read as SQL; only what no identifier can hold is refused.
    """
    if not name:
        raise ConfigError("the schema name is empty; give LiteLLM's schema, e.g. public")
    if "\x00" in name:
        raise ConfigError("the schema name contains a NUL character, which no identifier can hold")
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise ConfigError(
            f"the schema name is longer than {MAX_IDENTIFIER_BYTES} bytes,"
            " PostgreSQL's limit for an identifier"
        )
    return name


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (a schema name from a URL) the way PostgreSQL's quote_ident does."""
    return '"' + name.replace('"', '""') + '"'


def dollar_tag(*texts: str) -> str:
    """A dollar-quote tag that occurs in none of ``texts`` (names pasted into a quoted body)."""
    tag, n = "$body$", 0
    while any(tag in text for text in texts):
        n += 1
        tag = f"$body{n}$"
    return tag


def quote_literal(text: str) -> str:
    """Quote a string constant (standard_conforming_strings on, as every migration sets)."""
    return "'" + text.replace("'", "''") + "'"
