"""Shared fixtures: a real PostgreSQL with LiteLLM's schema, one fresh database per test.

The server is an embedded ``pgserver`` unless ``LITELLM_MEMORY_TEST_DATABASE_URL`` names one (a
superuser URL: the tests create and drop databases). LiteLLM's schema is applied once to a
template database; every test that asks for a database gets a copy of it, which takes a few
milliseconds.
"""

from __future__ import annotations

import itertools
import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from litellm_memory_patch import embedded, migrator
from litellm_memory_patch.config import DatabaseTarget, parse_database_url

TEMPLATE = "litellm_template"
_numbers = itertools.count()


def url_for_database(server_url: str, name: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory) -> str:
    """A superuser URL of the PostgreSQL server the suite runs against."""
    explicit = os.environ.get("LITELLM_MEMORY_TEST_DATABASE_URL")
    if explicit:
        return explicit
    server = embedded.start_server(tmp_path_factory.mktemp("pgdata"))
    return server.get_uri()


@pytest.fixture(scope="session")
def _template(server_url: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    embedded.apply_litellm_schema(url_for_database(server_url, TEMPLATE))
    return TEMPLATE


def create_database(server_url: str, *, template: str | None = None) -> str:
    """A new, uniquely named database (a copy of ``template`` if given); returns its URL."""
    name = f"t{os.getpid()}_{next(_numbers)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return url_for_database(server_url, name)


@pytest.fixture
def litellm_db(server_url: str, _template: str) -> DatabaseTarget:
    """A fresh database with LiteLLM's schema and no migration applied."""
    return parse_database_url(create_database(server_url, template=_template))


@pytest.fixture
def migrated_db(litellm_db: DatabaseTarget) -> DatabaseTarget:
    """A fresh LiteLLM database with this project's migrations at head."""
    migrator.upgrade(litellm_db)
    return litellm_db
