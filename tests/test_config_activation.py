"""Activation from config.yaml: the real ``litellm --config`` command with two workers.

The operator places the one-line ``litellm_memory_patch_hook.py`` next to config.yaml and names
its callback under ``litellm_settings.callbacks``; no environment variable is set. Every worker
then serves the patched routes from its first request. With the startup hook variable set as
well (or the config loaded again), a worker keeps the patch it installed first.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from conftest import LITELLM_CONFIG, create_database
from identity_auth import api_key
from litellm_memory_patch import migrator
from litellm_memory_patch.config import parse_database_url
from litellm_memory_patch.installer import install_during_startup
from test_server_modes import WORKERS, Server, connections_per_worker

HOOK_FILE = "litellm_memory_patch_hook.py"
HOOK_LINE = "from litellm_memory_patch.config_hook import activate\n"
CONFIG_WITH_CALLBACK = LITELLM_CONFIG + """\
litellm_settings:
  callbacks: ["litellm_memory_patch_hook.activate"]
"""
# The line each worker logs once the patch serves.
ACTIVE = "active: the stock /v1/memory routes replaced"


@pytest.fixture
def config_only_server(tmp_path, server_url, _template):
    conninfo = create_database(server_url, template=_template)
    migrator.upgrade(parse_database_url(conninfo))
    # Gunicorn: uvicorn's own supervisor restarts a worker that answers its ping late, which a
    # worker importing LiteLLM on a busy 2-core machine does, again and again.
    server = Server("gunicorn", tmp_path, conninfo)
    (tmp_path / HOOK_FILE).write_text(HOOK_LINE)
    (tmp_path / "config.yaml").write_text(CONFIG_WITH_CALLBACK)
    del server.env["LITELLM_WORKER_STARTUP_HOOKS"]
    try:
        server.start()
        yield server
    finally:
        server.kill()


async def _team_isolation_on_every_worker(server: Server) -> None:
    """On each worker: team 1 writes, the same user's team-2 key cannot read it."""
    async with connections_per_worker(server, per_worker=1) as clients:
        for pid, (client,) in clients.items():
            key = f"config-{pid}"
            team_1 = {"Authorization": f"Bearer {api_key(team='team-1', user='shared')}"}
            team_2 = {"Authorization": f"Bearer {api_key(team='team-2', user='shared')}"}
            created = await client.post("/v1/memory", json={"key": key, "value": "v"}, headers=team_1)
            assert created.status_code in (200, 201), created.text
            assert (await client.get(f"/v1/memory/{key}", headers=team_1)).status_code == 200
            assert (await client.get(f"/v1/memory/{key}", headers=team_2)).status_code == 404


def test_config_yaml_alone_activates_every_worker(config_only_server):
    server = config_only_server
    assert len(server.log_lines(ACTIVE)) == WORKERS
    asyncio.run(_team_isolation_on_every_worker(server))
    with psycopg.connect(server.conninfo) as conn:
        rows = conn.execute('SELECT team_id FROM "LiteLLM_MemoryTable"').fetchall()
    assert rows == [("team-1",)] * WORKERS


def test_a_worker_with_the_patch_installed_keeps_it(proxy):
    """The startup hook installed the patch in this app; the config's activation then finds it."""
    store = proxy.app.state.litellm_memory_store
    routes = list(proxy.app.router.routes)

    async def activate_from_config():
        install_during_startup(proxy.app)
        await asyncio.sleep(0.1)  # a queued install would have run by now

    proxy.call(activate_from_config)
    assert proxy.app.state.litellm_memory_store is store
    assert proxy.app.router.routes == routes
