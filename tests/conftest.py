"""Shared fixtures: a real PostgreSQL with LiteLLM's schema, one fresh database per test.

The server is an embedded ``pgserver`` (PostgreSQL 16) unless ``LITELLM_MEMORY_TEST_DATABASE_URL``
names one (a superuser URL: the tests create and drop databases) or
``LITELLM_MEMORY_TEST_POSTGRES`` names the ``bin`` folder of other PostgreSQL binaries, for which
the suite starts a cluster of its own. LiteLLM's schema is applied once to a template database;
every test that asks for a database gets a copy of it, which takes a few milliseconds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from litellm_memory_patch import embedded, migrator
from litellm_memory_patch.config import DatabaseTarget, parse_database_url
from postgres_cluster import Cluster

TEMPLATE = "litellm_template"
_numbers = itertools.count()

# The database-level tests: scripts/test.py runs them (``-m every_postgres``) on every tested
# PostgreSQL version. A test id starting with one of these is marked; a module may also carry
# ``pytestmark = pytest.mark.every_postgres`` itself.
EVERY_POSTGRES = (
    "tests/test_migrations.py",
    "tests/test_policies.py",
    "tests/test_authorization_matrix.py::test_authorization_matrix[database-",
    "tests/test_request_guard.py",
    "tests/test_doctor.py",
    "tests/test_search_path.py",
    "tests/test_managed_owner.py",
    "tests/test_litellm_upgrade.py",
)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "every_postgres: runs on every tested PostgreSQL version")


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.nodeid.startswith(EVERY_POSTGRES):
            item.add_marker(pytest.mark.every_postgres)


def url_for_database(server_url: str, name: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def private_server(folder: Path):
    """A server of the suite's PostgreSQL version started for one test; yields its superuser URL."""
    binaries = os.environ.get("LITELLM_MEMORY_TEST_POSTGRES")
    if binaries:
        cluster = Cluster(Path(binaries))
        try:
            yield cluster.url
        finally:
            cluster.stop()
    else:
        server = embedded.start_server(folder)
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory) -> str:
    """A superuser URL of the PostgreSQL server the suite runs against."""
    explicit = os.environ.get("LITELLM_MEMORY_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    with private_server(tmp_path_factory.mktemp("pgdata")) as url:
        yield url


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


# -- the real LiteLLM proxy app, in-process ------------------------------------------------
#
# LiteLLM's proxy module takes over 10 s to import, so it is imported once. Its app runs on one
# event loop in a background thread for the whole session (an AnyIO blocking portal); tests stay
# synchronous and send requests through ``ProxyClient``, which goes through the app's real
# middleware, LiteLLM's ``user_api_key_auth`` and the custom_auth hook above.

# Newer LiteLLM refuses to start without a master key. With custom_auth it decides every
# caller; the tests that run LiteLLM's own auth (litellm_auth.py) use the master key too.
LITELLM_MASTER_KEY = "sk-test-master-key-0123456789abcdef"
LITELLM_CONFIG = f"""\
model_list: []
general_settings:
  master_key: {LITELLM_MASTER_KEY}
  custom_auth: auth_hook.user_auth
"""


def write_litellm_config(config_dir):
    """LiteLLM's config.yaml and, next to it (LiteLLM loads it by file), the custom_auth hook."""
    (config_dir / "auth_hook.py").write_text("from identity_auth import user_auth\n")
    config_file = config_dir / "config.yaml"
    config_file.write_text(LITELLM_CONFIG)
    return config_file


class ProxyClient:
    """Synchronous requests to the in-process proxy; ``call`` runs any coroutine on its loop."""

    def __init__(self, portal, client, app) -> None:
        self._portal = portal
        self._client = client
        self.app = app

    def call(self, fn, *args):
        return self._portal.call(fn, *args)

    def request(self, method: str, path: str, *, key: str, **kwargs):
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return self._portal.call(
            lambda: self._client.request(method, path, headers=headers, **kwargs)
        )

    def install(self, target: DatabaseTarget, monkeypatch) -> None:
        """Point the patch at ``target``'s database, as a proxy restarted with that URL would."""
        from litellm_memory_patch.installer import install_patch

        monkeypatch.setenv("LITELLM_MEMORY_DATABASE_URL", target.conninfo)
        self._portal.call(install_patch, self.app)

    def close_store(self) -> None:
        store = self.app.state.litellm_memory_store
        if store is not None:
            self._portal.call(store.close)


@pytest.fixture(scope="session")
def proxy_session(tmp_path_factory, server_url, _template):
    """The real proxy app, started once, with the patch activated by LiteLLM's startup hook."""
    from anyio.from_thread import start_blocking_portal

    config_file = write_litellm_config(tmp_path_factory.mktemp("litellm"))
    boot_db = create_database(server_url, template=_template)
    migrator.upgrade(parse_database_url(boot_db))

    patch = pytest.MonkeyPatch()
    patch.setenv("CONFIG_FILE_PATH", str(config_file))
    patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    patch.setenv("LITELLM_WORKER_STARTUP_HOOKS", "litellm_memory_patch:install")
    patch.setenv("LITELLM_MEMORY_DATABASE_URL", boot_db)
    patch.delenv("DATABASE_URL", raising=False)
    import litellm.proxy.proxy_server as proxy_server

    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(_running(proxy_server.app)) as client:
            proxy = ProxyClient(portal, client, proxy_server.app)
            yield proxy
            proxy.close_store()
    patch.undo()


@contextlib.asynccontextmanager
async def _running(app):
    """The app's lifespan and an HTTP client over ASGI, both made on the portal's loop."""
    import httpx
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield client


@pytest.fixture
def proxy(proxy_session: ProxyClient, migrated_db: DatabaseTarget, monkeypatch) -> ProxyClient:
    """The proxy, its patch serving a fresh migrated database (``proxy.database``)."""
    proxy_session.install(migrated_db, monkeypatch)
    proxy_session.database = migrated_db
    yield proxy_session
    proxy_session.close_store()
