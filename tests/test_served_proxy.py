"""LiteLLM issue #27722 over real HTTP: the proxy served by uvicorn, the patch activated only by
LiteLLM's worker startup hook, exactly as an operator deploys it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import write_litellm_config
from identity_auth import api_key

STARTUP_TIMEOUT = 180  # seconds; importing LiteLLM's proxy alone takes over 10 on a busy machine
TEAM_1 = {"Authorization": f"Bearer {api_key(team='team-1', user='shared-user')}"}
TEAM_2 = {"Authorization": f"Bearer {api_key(team='team-2', user='shared-user')}"}
KEY = "team-1:test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the proxy exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the proxy did not serve within {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served_proxy(tmp_path, migrated_db):
    """``uvicorn litellm.proxy.proxy_server:app`` on a free 127.0.0.1 port; always stopped."""
    port = _free_port()
    env = {
        **os.environ,
        "CONFIG_FILE_PATH": str(write_litellm_config(tmp_path)),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_WORKER_STARTUP_HOOKS": "litellm_memory_patch:install",
        "LITELLM_MEMORY_DATABASE_URL": migrated_db.conninfo,
        # The custom_auth hook imports the tests' identity module.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DATABASE_URL", None)
    log = tmp_path / "proxy.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "litellm.proxy.proxy_server:app",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_serving(process, base_url, log)
        with httpx.Client(base_url=base_url, timeout=30) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _row(database):
    with psycopg.connect(database.conninfo) as conn:
        return conn.execute(
            'SELECT memory_id, value, user_id, team_id, created_at, updated_at'
            ' FROM "LiteLLM_MemoryTable" WHERE key = %s',
            (KEY,),
        ).fetchone()


def test_issue_27722_steps_over_real_http(served_proxy, migrated_db):
    client = served_proxy
    created = client.post("/v1/memory", headers=TEAM_1, json={"key": KEY, "value": "team 1 secret"})
    assert created.status_code == 200, created.text
    assert created.headers.get("x-litellm-memory-patch")
    before = _row(migrated_db)

    # Team 2's key carries the same user: it gets the answers of a key that does not exist.
    assert client.get(f"/v1/memory/{KEY}", headers=TEAM_2).status_code == 404
    assert client.delete(f"/v1/memory/{KEY}", headers=TEAM_2).status_code == 404
    overwrite = client.put(f"/v1/memory/{KEY}", headers=TEAM_2, json={"value": "overwritten"})
    assert overwrite.status_code == 409
    assert "team 1 secret" not in overwrite.text
    listed = client.get("/v1/memory", headers=TEAM_2, params={"key": KEY})
    assert listed.json() == {"memories": [], "total": 0}

    assert _row(migrated_db) == before
    own = client.get(f"/v1/memory/{KEY}", headers=TEAM_1)
    assert own.status_code == 200 and own.json()["value"] == "team 1 secret"
