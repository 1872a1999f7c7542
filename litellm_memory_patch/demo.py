"""``litellm-memory-patch demo``: LiteLLM issue #27722 replayed against the patched proxy.

Everything runs on this machine and is removed afterwards: a private PostgreSQL in a temporary
folder, LiteLLM's schema and this project's migration in it, and the real LiteLLM proxy with the
patch, served on 127.0.0.1. Demo keys stand for two teams that share one user (the situation of
the issue) and an admin; :func:`demo_auth` is the proxy's ``custom_auth`` hook that knows them.

Before the migration the demo records its keys and teams as LiteLLM would, with a few entries
team 1 wrote before the patch, and takes the ``exposure`` report of that database. It replays the
issue's steps over HTTP and prints what each one answered, shows the database refusing the same
access by direct SQL, prints that report (the blast radius the patch closed), then keeps serving
so you can try it with curl (``--once`` stops after the report, with a non-zero exit status if
any step failed).

Imports stay light at module level: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg import errors

from . import exposure
from .config import APP_ROLE, parse_database_url
from .scope import CallerScope

HOST = "127.0.0.1"
DEFAULT_PORT = 4000
ENTRY = "team-1:test"
SECRET = "team 1 secret"

TEAM_1_KEY = "sk-demo-team-1"
TEAM_2_KEY = "sk-demo-team-2"
ADMIN_KEY = "sk-demo-admin"

# Both team keys carry the same user: that is what let team 2 in (LiteLLM issue #27722).
DEMO_KEYS = {
    TEAM_1_KEY: CallerScope(team_id="team-1", user_id="demo-user", role="internal_user"),
    TEAM_2_KEY: CallerScope(team_id="team-2", user_id="demo-user", role="internal_user"),
    ADMIN_KEY: CallerScope(team_id=None, user_id="demo-admin", role="proxy_admin"),
}

ERROR = "litellm-memory-patch: error: "
UNKNOWN_KEY = "Unknown API key. The demo knows: " + ", ".join(DEMO_KEYS)
MISSING_EXTRAS = (
    ERROR + "the demo needs {missing}: pip install 'litellm-memory-patch[demo]'"
    " (or run python3 scripts/demo.py from a checkout, which sets itself up)"
)
PORT_BUSY = ERROR + "cannot listen on {host}:{port} ({reason}); pick another with --port"
PROXY_DID_NOT_START = ERROR + "the proxy did not start; see its log above"

# Newer LiteLLM refuses to start without a master key. The demo's is random and never used:
# the custom_auth hook decides who every key is.
CONFIG_YAML = """\
model_list: []
general_settings:
  master_key: sk-{master_key}
  custom_auth: demo_auth_hook.demo_auth
"""
# LiteLLM loads custom_auth from a file next to its config, not by import.
AUTH_HOOK = "from litellm_memory_patch.demo import demo_auth\n"

MEMORY_TABLE = '"LiteLLM_MemoryTable"'
SCOPE_SQL = (
    "SELECT set_config('role', %(role)s, true),"
    " set_config('litellm_memory.team_id', %(litellm_memory.team_id)s, true),"
    " set_config('litellm_memory.user_id', %(litellm_memory.user_id)s, true),"
    " set_config('litellm_memory.user_role', %(litellm_memory.user_role)s, true)"
)
PASS = "PASS"
FAIL = "FAIL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on {HOST} to serve the proxy on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit after the replay instead of serving; the exit status is 1 if any step failed",
    )


async def demo_auth(request: Any, api_key: str):
    """LiteLLM ``custom_auth`` hook: a demo key becomes its caller; any other key gets a 401."""
    from litellm.proxy._types import ProxyErrorTypes, ProxyException, UserAPIKeyAuth

    caller = DEMO_KEYS.get(api_key)
    if caller is None:
        raise ProxyException(
            message=UNKNOWN_KEY, type=ProxyErrorTypes.auth_error, param="api_key", code=401
        )
    return UserAPIKeyAuth(
        api_key=api_key, team_id=caller.team_id, user_id=caller.user_id, user_role=caller.role
    )


def say(text: str = "") -> None:
    print(text, flush=True)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        say("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# -- the replay over HTTP -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    title: str
    method: str
    path: str
    key: str
    expected: str
    passes: Callable[[int, Any], bool]
    body: dict | None = None


STEPS = [
    Step(
        "1. team 1 creates 'team-1:test'",
        "POST", "/v1/memory", TEAM_1_KEY,
        "200, created",
        lambda status, body: status == 200 and body.get("key") == ENTRY,
        {"key": ENTRY, "value": SECRET},
    ),
    Step(
        "2. team 2 reads it",
        "GET", f"/v1/memory/{ENTRY}", TEAM_2_KEY,
        "404 not found",
        lambda status, body: status == 404,
    ),
    Step(
        "3. team 2 lists its memories",
        "GET", "/v1/memory", TEAM_2_KEY,
        "200, 0 entries",
        lambda status, body: status == 200 and body == {"memories": [], "total": 0},
    ),
    Step(
        "4. team 2 overwrites it (PUT)",
        "PUT", f"/v1/memory/{ENTRY}", TEAM_2_KEY,
        "409 key taken",
        lambda status, body: status == 409 and SECRET not in str(body),
        {"value": "overwritten by team 2"},
    ),
    Step(
        "5. team 2 deletes it",
        "DELETE", f"/v1/memory/{ENTRY}", TEAM_2_KEY,
        "404 not found",
        lambda status, body: status == 404,
    ),
    Step(
        "6. team 1 reads it again",
        "GET", f"/v1/memory/{ENTRY}", TEAM_1_KEY,
        f'200, value "{SECRET}"',
        lambda status, body: status == 200 and body.get("value") == SECRET,
    ),
]


def _summary(status: int, body: Any) -> str:
    if not isinstance(body, dict):
        return str(status)
    if "memories" in body:
        return f"{status}, {body.get('total')} entries"
    if "value" in body:
        return f'{status}, value "{body["value"]}"'
    detail = body.get("detail") or body.get("error", {}).get("message", "")
    return f"{status} {detail}".strip()


async def replay(base_url: str) -> bool:
    """The issue's steps over real HTTP; prints the table and returns whether all passed."""
    import httpx
    from .routes import PATCH_HEADER

    rows = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for step in STEPS:
            response = await client.request(
                step.method,
                step.path,
                json=step.body,
                headers={"Authorization": f"Bearer {step.key}"},
            )
            try:
                body = response.json()
            except ValueError:
                body = response.text
            got = _summary(response.status_code, body)
            # The header proves the patched handler answered, not LiteLLM's own.
            served = PATCH_HEADER in response.headers
            if not served:
                got += f" (no {PATCH_HEADER} header)"
            ok = served and step.passes(response.status_code, body)
            rows.append((step.title, step.expected, got, PASS if ok else FAIL))
    say(f"Replaying LiteLLM issue #27722 over HTTP at {base_url}")
    say("(keys: team 1 and team 2 both carry user 'demo-user')")
    say()
    print_table(("step", "expected", "got", "verdict"), rows)
    say()
    say("Unpatched, LiteLLM's own handlers answer 200 to steps 2 to 5: team 2 reads, lists,")
    say("overwrites and deletes team 1's entry, and step 6 then finds nothing.")
    return all(row[-1] == PASS for row in rows)


# -- the same access by direct SQL ----------------------------------------------------------


def _rows(count: int | str) -> str:
    if isinstance(count, str):
        return count
    return f"{count} row" if count == 1 else f"{count} rows"


def _as_caller(conn: psycopg.Connection, caller: CallerScope) -> None:
    # Transaction-local, as every patched request does: nothing outlives the transaction.
    conn.execute(SCOPE_SQL, {"role": APP_ROLE, **caller.settings()})


def database_refuses(conninfo: str) -> bool:
    """Team 2's access by direct SQL as the restricted role; prints the table, returns all-pass.

    Everything happens in one transaction that is rolled back.
    """
    team_1, team_2 = DEMO_KEYS[TEAM_1_KEY], DEMO_KEYS[TEAM_2_KEY]
    select = f"SELECT value FROM {MEMORY_TABLE} WHERE key = %s"
    shown = f"WHERE key = '{ENTRY}'"
    rows = []

    def check(statement: str, expected: int | str, got: int | str, ok: bool) -> None:
        rows.append((statement, _rows(expected), _rows(got), PASS if ok else FAIL))

    with psycopg.connect(conninfo) as conn:
        _as_caller(conn, team_2)
        found = len(conn.execute(select, (ENTRY,)).fetchall())
        check(f"SELECT ... {shown}", 0, found, found == 0)
        update = f"UPDATE {MEMORY_TABLE} SET value = 'overwritten' WHERE key = %s"
        updated = conn.execute(update, (ENTRY,)).rowcount
        check(f"UPDATE ... SET value = 'overwritten' {shown}", 0, updated, updated == 0)
        deleted = conn.execute(f"DELETE FROM {MEMORY_TABLE} WHERE key = %s", (ENTRY,)).rowcount
        check(f"DELETE ... {shown}", 0, deleted, deleted == 0)
        insert = (
            f"INSERT INTO {MEMORY_TABLE} (memory_id, key, value, team_id, user_id)"
            " VALUES (%s, %s, 'forged', %s, %s)"
        )
        forged = f"INSERT ... team_id = '{team_1.team_id}'"
        try:
            with conn.transaction():
                conn.execute(
                    insert, (str(uuid.uuid4()), "team-1:forged", team_1.team_id, team_2.user_id)
                )
            check(forged, "error", "inserted", False)
        except (errors.RaiseException, errors.InsufficientPrivilege) as exc:
            # The ownership trigger (or the insert policy) refused it.
            check(forged, "error", f"error: {exc.diag.message_primary}", True)
        # The controls: the same statements succeed in the caller's own scope, so the refusals
        # come from the rules, not from statements that could never work.
        inserted = conn.execute(
            insert, (str(uuid.uuid4()), "team-2:own", team_2.team_id, team_2.user_id)
        ).rowcount
        check(f"INSERT ... team_id = '{team_2.team_id}'", 1, inserted, inserted == 1)
        _as_caller(conn, team_1)
        own = len(conn.execute(select, (ENTRY,)).fetchall())
        check(f"as team 1: SELECT ... {shown}", 1, own, own == 1)
        updated = conn.execute(update, (ENTRY,)).rowcount
        check(f"as team 1: UPDATE ... {shown}", 1, updated, updated == 1)
        conn.rollback()
    say()
    say(f"The same access by direct SQL on {MEMORY_TABLE}, as {APP_ROLE}")
    say(f"with team 2's settings (team_id={team_2.team_id}, user_id={team_2.user_id}),")
    say("in one transaction that is rolled back:")
    say()
    print_table(("statement", "expected", "got", "verdict"), rows)
    return all(row[-1] == PASS for row in rows)


# -- LiteLLM's own records, as they were before the patch ------------------------------------

# Entries written through team 1's key before the patch (the replay's own entry comes later).
EARLIER_ENTRIES = {
    "team-1:roadmap": "team-1",
    "team-1:customers": "team-1",
    "demo-user:todo": None,  # a personal entry: no team
}


def record_litellm_state(conninfo: str) -> None:
    """Write the demo's teams, user and keys the way LiteLLM's proxy does, and earlier entries.

    LiteLLM stores a virtual key as the SHA-256 hex digest of the key; the alias is a name.
    """
    with psycopg.connect(conninfo) as conn:
        for team in ("team-1", "team-2"):
            members = [{"user_id": "demo-user", "role": "user"}]
            conn.execute(
                'INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, members, members_with_roles)'
                " VALUES (%s, %s, %s, %s)",
                (team, team, ["demo-user"], json.dumps(members)),
            )
        for user, role, teams in (
            ("demo-user", "internal_user", ["team-1", "team-2"]),
            ("demo-admin", "proxy_admin", []),
        ):
            conn.execute(
                'INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES (%s, %s, %s)',
                (user, role, teams),
            )
        for api_key, caller in DEMO_KEYS.items():
            conn.execute(
                'INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, user_id, team_id)'
                " VALUES (%s, %s, %s, %s)",
                (
                    hashlib.sha256(api_key.encode()).hexdigest(),
                    api_key.removeprefix("sk-"),
                    caller.user_id,
                    caller.team_id,
                ),
            )
        for key, team in EARLIER_ENTRIES.items():
            conn.execute(
                f"INSERT INTO {MEMORY_TABLE} (memory_id, key, value, user_id, team_id, created_by,"
                " updated_by) VALUES (%s, %s, 'written before the patch', 'demo-user', %s,"
                " 'demo-user', 'demo-user')",
                (str(uuid.uuid4()), key, team),
            )


def print_exposure(report: str) -> None:
    say()
    say("Before the patch's migration, the exposure report of this database")
    say("(litellm-memory-patch exposure) showed what LiteLLM's stock rules left open:")
    say()
    for line in report.splitlines():
        say("  " + line if line else "")


# -- serving --------------------------------------------------------------------------------


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(PORT_BUSY.format(host=HOST, port=port, reason=exc.strerror)) from None
    return sock


def curl_lines(base_url: str) -> list[str]:
    auth = "-H 'Authorization: Bearer {}'"
    return [
        f"curl -s {base_url}/v1/memory/{ENTRY} {auth.format(TEAM_1_KEY)}",
        f"curl -s -i {base_url}/v1/memory/{ENTRY} {auth.format(TEAM_2_KEY)}",
        f"curl -s -X POST {base_url}/v1/memory {auth.format(TEAM_2_KEY)}"
        " -H 'Content-Type: application/json'"
        " -d '{\"key\": \"team-2:notes\", \"value\": \"hello\"}'",
        f"curl -s {base_url}/v1/memory {auth.format(TEAM_2_KEY)}",
        f"curl -s {base_url}/v1/memory {auth.format(ADMIN_KEY)}",
    ]


async def serve(
    app: Any, sock: socket.socket, conninfo: str, *, once: bool, outcome: dict, exposure_text: str
) -> None:
    """Serve ``app`` on ``sock``, replay, print the exposure report, then stop or keep serving.

    ``outcome["ok"]`` is set as soon as the replay is done, so that a signal while serving
    still ends the demo with the replay's verdict.
    """
    import uvicorn

    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again, which ends
    # the demo through the caller's clean-up.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            raise SystemExit(PROXY_DID_NOT_START)
        await asyncio.sleep(0.05)
    port = sock.getsockname()[1]
    base_url = f"http://{HOST}:{port}"
    started = time.monotonic()
    ok = await replay(base_url)
    ok = await asyncio.to_thread(database_refuses, conninfo) and ok
    say()
    outcome["ok"] = ok
    say(f"Replay {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s.")
    print_exposure(exposure_text)
    if once:
        server.should_exit = True
    else:
        say()
        say(f"The patched proxy is serving at {base_url}. Try (keys: {', '.join(DEMO_KEYS)}):")
        say()
        for line in curl_lines(base_url):
            say("  " + line)
        say()
        say("Press Ctrl-C to stop; everything the demo started is then removed.")
    await serving


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    needed = ("pgserver", "uvicorn", "litellm")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(MISSING_EXTRAS.format(missing=", ".join(missing)))
    sock = _listen(args.port)
    # Termination cleans up like Ctrl-C does.
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT)}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
    folder = Path(tempfile.mkdtemp(prefix="litellm-memory-demo-"))
    server = None
    outcome: dict = {}
    try:
        say(f"Starting PostgreSQL in {folder} ...")
        from . import embedded, migrator

        # pgserver's platformdirs warns about XDG_RUNTIME_DIR on servers; it is harmless.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        server = embedded.start_server(folder / "pgdata")
        url = server.get_uri()
        say("Applying LiteLLM's schema ...")
        embedded.apply_litellm_schema(url)
        say("Recording the demo's teams and keys as LiteLLM does, and earlier entries ...")
        record_litellm_state(url)
        exposure_text = exposure.format_text(exposure.build_report(parse_database_url(url)))
        say("Applying the patch's migration (row-level security) ...")
        migrator.upgrade(parse_database_url(url))

        (folder / "config.yaml").write_text(CONFIG_YAML.format(master_key=secrets.token_hex(16)))
        (folder / "demo_auth_hook.py").write_text(AUTH_HOOK)
        os.environ.update(
            CONFIG_FILE_PATH=str(folder / "config.yaml"),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_WORKER_STARTUP_HOOKS="litellm_memory_patch:install",
            LITELLM_MEMORY_DATABASE_URL=url,
        )
        # With DATABASE_URL set LiteLLM would start its own Prisma data layer; the demo needs none.
        os.environ.pop("DATABASE_URL", None)
        say("Importing LiteLLM's proxy (about 15 s) ...")
        from litellm.proxy.proxy_server import app

        say("Starting the proxy with the patch ...")
        asyncio.run(
            serve(app, sock, url, once=args.once, outcome=outcome, exposure_text=exposure_text)
        )
    except KeyboardInterrupt:
        say("\nStopped.")
        if "ok" not in outcome:
            return 130
    finally:
        # A second Ctrl-C must not interrupt the clean-up and leave PostgreSQL running.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        sock.close()
        say("Stopping PostgreSQL and removing the demo's files ...")
        if server is not None:
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if outcome["ok"] else 1
