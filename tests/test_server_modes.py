"""The patch under LiteLLM's own server: the real ``litellm`` command with two workers, in every
server mode the installed LiteLLM's CLI offers (uvicorn, gunicorn, granian).

One server per mode for the whole module, against an embedded PostgreSQL, the patch activated
only by LiteLLM's worker startup hook. Each HTTP connection stays on one worker process, and
LiteLLM's ``/debug/memory/summary`` names that worker's pid: that is how the tests tell the
workers apart and kill one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from conftest import create_database, write_litellm_config
from litellm_memory_patch import migrator
from litellm_memory_patch.config import parse_database_url
from identity_auth import api_key
from load import ADMIN, Driver, Seeds, check_table, make_workers, metadata_for, table_rows
from test_served_proxy import STARTUP_TIMEOUT, _free_port, _wait_until_serving

TESTS = Path(__file__).parent
WORKERS = 2
PATCH_BACKEND = "litellm-memory-patch"
PATCH_HEADER = "x-litellm-memory-patch"
ACTIVE = "litellm-memory-patch"  # begins the line each worker logs at start-up
# How many connections may be opened to find one on every worker before giving up.
CONNECTION_ATTEMPTS = 40
SAMPLE_SECONDS = 0.05

# What each mode does when a worker dies: uvicorn's supervisor and gunicorn start a new one while
# the other keeps serving; granian, as LiteLLM starts it (no respawn_failed_workers), stops the
# whole server.
SERVER_SURVIVES_WORKER_LOSS = {"uvicorn": True, "gunicorn": True, "granian": False}

MODES = {
    "uvicorn": [],
    "gunicorn": ["--run_gunicorn"],
    "granian": ["--run_granian"],
}


def cli_options() -> set[str]:
    """Every option the installed LiteLLM's ``litellm`` command accepts."""
    with pytest.MonkeyPatch.context() as patch:
        # Importing LiteLLM otherwise fetches its cost map over the network first.
        patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from litellm.proxy.proxy_cli import run_server

    return {option for parameter in run_server.params for option in parameter.opts}


def shutdown_seconds() -> float:
    """How long LiteLLM's server may take to stop on SIGTERM."""
    try:
        from litellm.constants import GRACEFUL_SHUTDOWN_TEARDOWN_HEADROOM_SECONDS
        from litellm.proxy.shutdown.graceful_shutdown_manager import GracefulShutdownManager
    except ImportError:
        # Before LiteLLM had its own graceful shutdown: gunicorn's default graceful timeout,
        # which LiteLLM kept (uvicorn stops at once when no connection is open).
        return 30.0
    return GracefulShutdownManager.get_timeout() + GRACEFUL_SHUTDOWN_TEARDOWN_HEADROOM_SECONDS


class Server:
    """``litellm`` with two workers in one mode; ``start`` again after the server stopped."""

    def __init__(self, mode: str, folder: Path, conninfo: str) -> None:
        self.mode, self.folder, self.conninfo = mode, folder, conninfo
        self.base_url = f"http://127.0.0.1:{_free_port()}"
        self.command = [
            str(Path(sys.executable).with_name("litellm")),
            "--config", str(write_litellm_config(folder)),
            "--host", "127.0.0.1",
            "--port", self.base_url.rsplit(":", 1)[1],
            "--num_workers", str(WORKERS),
            *MODES[mode],
        ]
        self.env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_WORKER_STARTUP_HOOKS": "litellm_memory_patch:install",
            "LITELLM_MEMORY_DATABASE_URL": conninfo,
            # The custom_auth hook imports the tests' identity module; forking_master keeps
            # gunicorn's workers clear of a LiteLLM fork hazard (its sitecustomize says which).
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(TESTS), str(TESTS / "forking_master"), os.environ.get("PYTHONPATH")])
            ),
        }
        self.env.pop("DATABASE_URL", None)
        # The in-process proxy's config (the suite's session sets it): LiteLLM would read it
        # instead of --config.
        self.env.pop("CONFIG_FILE_PATH", None)
        self.starts = 0
        self.process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"server-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "wb") as output:
            # A session of its own, so that cleanup reaches this server's workers and no others.
            self.process = subprocess.Popen(
                self.command, cwd=self.folder, env=self.env, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait_until_serving(self.process, self.base_url, self.log)
        self.wait_for(lambda: len(self.log_lines(ACTIVE)) >= WORKERS, STARTUP_TIMEOUT)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is None:
            return
        # The whole session: a worker may outlive a server that already exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_lines(self, fragment: str) -> list[str]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if fragment in line]

    def wait_for(self, condition, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"gave up after {seconds} s:\n{tail}")
            time.sleep(0.2)


@pytest.fixture(scope="module", params=list(MODES))
def server(request, tmp_path_factory, server_url, _template):
    mode = request.param
    flag = MODES[mode][:1]
    if flag and flag[0] not in cli_options():
        pytest.skip(f"this LiteLLM's CLI has no {flag[0]}")
    conninfo = create_database(server_url, template=_template)
    migrator.upgrade(parse_database_url(conninfo))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # PostgreSQL then logs a client that went away without closing its connection.
        database = sql.Identifier(conn.info.dbname)
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_min_messages = debug1").format(database))
    server = Server(mode, tmp_path_factory.mktemp(f"server-{mode}"), conninfo)
    try:
        server.start()
        yield server
    finally:
        server.kill()


async def worker_pid(client: httpx.AsyncClient) -> int:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = await client.get("/debug/memory/summary", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["worker_pid"]


@contextlib.asynccontextmanager
async def connections_per_worker(server: Server, *, per_worker: int):
    """``per_worker`` open connections to each worker, keyed by worker pid: one client holds one
    keep-alive connection, and a connection is served by one process. All closed on exit."""
    found: dict[int, list[httpx.AsyncClient]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(CONNECTION_ATTEMPTS):
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.base_url,
                    timeout=30,
                    limits=httpx.Limits(max_connections=1),
                    event_hooks={"response": [require_header]},
                )
            )
            found.setdefault(await worker_pid(client), []).append(client)
            if len(found) == WORKERS and all(len(c) >= per_worker for c in found.values()):
                yield {pid: clients[:per_worker] for pid, clients in found.items()}
                return
        pytest.fail(f"{CONNECTION_ATTEMPTS} connections reached workers {sorted(found)} only")


def patch_backends(conninfo: str) -> list[tuple[int, str]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (PATCH_BACKEND,),
        ).fetchall()


def postgres_log(conninfo: str) -> Path | None:
    """The embedded server's log file (it logs to ``log`` in its data folder), if readable."""
    with psycopg.connect(conninfo) as conn:
        log = Path(conn.execute("SELECT current_setting('data_directory')").fetchone()[0]) / "log"
    return log if log.is_file() else None


def idle_lock_holders(conninfo: str) -> list[tuple[int, str]]:
    """Backends of this database that hold a lock while not running a statement."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT DISTINCT a.pid, a.state"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
            " AND a.state IS DISTINCT FROM 'active'"
        ).fetchall()


async def require_header(response: httpx.Response) -> None:
    if response.request.url.path.startswith("/v1/memory"):
        assert response.headers.get(PATCH_HEADER), f"no patch header: {response.request.url}"


# -- the tests, in the order they use the server -----------------------------------------


def test_every_worker_logs_active(server):
    active = [line for line in server.log_lines(ACTIVE) if " active: " in line]
    assert len(active) == WORKERS, active
    assert not server.log_lines("NOT serving")


def test_burst_of_mixed_teams_over_both_workers(server):
    async def burst():
        async with connections_per_worker(server, per_worker=2) as pinned:
            drivers = {}
            for pid, clients in pinned.items():
                for client in clients:
                    driver = Driver(None, concurrency=1)
                    driver.client = client
                    drivers.setdefault(pid, []).append(driver)
            # Alternating workers, so that every worker serves callers of every team.
            every = [driver for pair in zip(*drivers.values()) for driver in pair]
            teams, users = ["team-a", "team-b", "team-c"], ["shared", "other"]
            seeds = await Seeds.plant(every[0], teams, per_team=3)
            callers = make_workers(teams, users, keys=4, seeds=seeds)
            await asyncio.gather(
                *(caller.run(every[n % len(every)], steps=25) for n, caller in enumerate(callers))
            )
            # The connections stayed on their workers throughout.
            for pid, group in drivers.items():
                for driver in group:
                    assert await worker_pid(driver.client) == pid
        return drivers, callers, seeds

    drivers, callers, seeds = asyncio.run(burst())
    served = {pid: sum(len(d.answers) for d in group) for pid, group in drivers.items()}
    assert len(served) == WORKERS and min(served.values()) >= 50, served
    assert all(a.status != 503 for group in drivers.values() for d in group for a in d.answers)
    check_table(server.conninfo, callers, seeds)


def test_sigkill_of_one_worker_mid_burst(server):
    """The killed worker's requests may fail; no row is half-written, no connection is left
    holding a lock, and the other worker keeps serving where the server mode keeps going."""
    survives = SERVER_SURVIVES_WORKER_LOSS[server.mode]

    async def run():
        async with connections_per_worker(server, per_worker=1) as pinned:
            (victim, [doomed]), (survivor, [alive]) = sorted(pinned.items())
            answered = {victim: 0, survivor: 0}
            stop = asyncio.Event()

            async def writer(pid, client, team):
                key = api_key(team=team, user="writer")
                for number in range(2000):
                    if stop.is_set():
                        return
                    value = f"{team}|writer|{number}"
                    try:
                        response = await client.put(
                            f"/v1/memory/{team}/k{number % 10}",
                            headers={"Authorization": f"Bearer {key}"},
                            json={"value": value, "metadata": metadata_for(value)},
                        )
                    except httpx.TransportError:
                        assert pid == victim or not survives, "the other worker dropped a request"
                        return
                    assert response.status_code == 200, response.text
                    answered[pid] += 1

            async def conductor():
                deadline = time.monotonic() + 30
                while answered[victim] < 20:
                    assert time.monotonic() < deadline, "the worker to kill answered too little"
                    await asyncio.sleep(SAMPLE_SECONDS)
                os.kill(victim, signal.SIGKILL)
                since, deadline = answered[survivor], time.monotonic() + shutdown_seconds()
                while (answered[survivor] < since + 50) if survives else server.running():
                    failure = "the other worker stopped" if survives else "the server kept running"
                    assert time.monotonic() < deadline, failure
                    await asyncio.sleep(SAMPLE_SECONDS)
                stop.set()

            await asyncio.gather(
                writer(victim, doomed, "team-killed"),
                writer(survivor, alive, "team-alive"),
                conductor(),
            )

    asyncio.run(run())
    for key, row in table_rows(server.conninfo).items():
        team = key.split("/")[0]
        assert row["team_id"] == team and row["value"].startswith(f"{team}|"), row
        assert row["metadata"] == metadata_for(row["value"]), f"half-written row {row}"
    deadline = time.monotonic() + 10
    while holders := idle_lock_holders(server.conninfo):
        assert time.monotonic() < deadline, f"connections left holding locks: {holders}"
        time.sleep(SAMPLE_SECONDS)


def test_sigterm_closes_every_pool_within_litellms_shutdown_time(server):
    if not server.running():
        server.start()  # a server mode that stopped with its killed worker
    pools = {pid for pid, _ in patch_backends(server.conninfo)}
    assert pools, "the workers hold no connection to close"
    log = postgres_log(server.conninfo)
    logged_before = log.stat().st_size if log else 0
    limit = shutdown_seconds()
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    while server.process.poll() is None:
        elapsed = time.monotonic() - started
        assert elapsed < limit, f"still running {elapsed:.1f} s after SIGTERM"
        backends = patch_backends(server.conninfo)
        assert all(state != "idle in transaction" for _, state in backends), backends
        time.sleep(SAMPLE_SECONDS)
    deadline = time.monotonic() + 5
    while backends := patch_backends(server.conninfo):
        assert time.monotonic() < deadline, f"backends left after the server exited: {backends}"
        time.sleep(SAMPLE_SECONDS)
    # Gone is not closed: a process that exits drops its connections too. PostgreSQL notes each
    # connection dropped without a goodbye (log_min_messages debug1, set on this database).
    if log is None:
        pytest.skip("PostgreSQL's log is not readable here: closed or dropped is unchecked")
    with open(log, errors="replace") as text:
        text.seek(logged_before)
        dropped = [
            line
            for line in text
            if "unexpected EOF" in line and any(f"[{pid}]" in line for pid in pools)
        ]
    assert not dropped, f"connections dropped at exit, not closed: {dropped}"
