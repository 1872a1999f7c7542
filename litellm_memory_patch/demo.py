"""``litellm-memory-patch demo``: LiteLLM issue #27722 replayed against the patched proxy.

Everything runs on this machine and is removed afterwards: a private PostgreSQL in a temporary
folder, LiteLLM's schema and this project's migration in it, and the real LiteLLM proxy with the
patch, served on 127.0.0.1. The demo's keys travel both roads of the issue: two keys of one
internal user in team 1 and team 2, whose ``allowed_routes`` name the memory routes (without
them LiteLLM refuses an internal user's key, as it refuses the demo's team-3 key), and a proxy
admin's keys of team 1 and team 2, which LiteLLM lets reach the memory routes whatever their team.

LiteLLM authenticates every request with its own ``user_api_key_auth``, no ``custom_auth``. It
reads keys, users and teams from its in-memory cache before any database, and the demo runs
LiteLLM without its Prisma data layer: so the demo puts them in that cache, shaped as LiteLLM
stores them (:func:`seed_litellm_auth`), and gives LiteLLM a database client that fails on any
use, so an unknown key is refused as LiteLLM refuses it.

Before the migration the demo records the same keys, users and teams in LiteLLM's tables, with a
few entries team 1 wrote before the patch, and takes the ``exposure`` report of that database.
It replays the issue's steps over HTTP and prints what LiteLLM's own handlers answer by their
rules next to what each step answered, shows the database refusing the same access by direct
SQL, prints that report (the blast radius the patch closed), then keeps serving so you can try
it with curl (``--once`` stops after the report, with a non-zero exit status if any step
failed).

Imports stay light at module level: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import logging
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
from .litellm_cache import AuthCache, NoDatabase
from .scope import CallerScope

HOST = "127.0.0.1"
DEFAULT_PORT = 4000
ENTRY = "team-1:test"
SECRET = "team 1 secret"

PLAN = "team-1:plan"
PLAN_SECRET = "team 1 plan"

TEAM_1_KEY = "sk-demo-team-1"
TEAM_2_KEY = "sk-demo-team-2"
TEAM_3_KEY = "sk-demo-team-3"
ADMIN_TEAM_1_KEY = "sk-demo-admin-team-1"
ADMIN_TEAM_2_KEY = "sk-demo-admin-team-2"
ADMIN_KEY = "sk-demo-admin"

USER = "demo-user"
ADMIN = "demo-admin"
USER_ROLES = {USER: "internal_user", ADMIN: "proxy_admin"}
TEAMS = ("team-1", "team-2", "team-3")  # demo-user is a member of each
# What an internal user's key must name to reach /v1/memory: no route group of LiteLLM has it.
MEMORY_ROUTES = ("/v1/memory", "/v1/memory/*")


@dataclass(frozen=True)
class DemoKey:
    """A LiteLLM virtual key as LiteLLM stores it: its owner, its team, its allowed_routes."""

    user_id: str
    team_id: str | None
    allowed_routes: tuple[str, ...] = ()

    @property
    def scope(self) -> CallerScope:
        # LiteLLM hands the handlers the owner's role from the owner's user row.
        return CallerScope(self.team_id, self.user_id, USER_ROLES[self.user_id])


# Road 1: both team keys carry the same user, which let team 2 in (LiteLLM issue #27722).
# Road 2: the admin's team keys, which LiteLLM's own handlers treat as admin keys.
DEMO_KEYS = {
    TEAM_1_KEY: DemoKey(USER, "team-1", MEMORY_ROUTES),
    TEAM_2_KEY: DemoKey(USER, "team-2", MEMORY_ROUTES),
    TEAM_3_KEY: DemoKey(USER, "team-3"),  # no memory routes: LiteLLM refuses it
    ADMIN_TEAM_1_KEY: DemoKey(ADMIN, "team-1"),
    ADMIN_TEAM_2_KEY: DemoKey(ADMIN, "team-2"),
    ADMIN_KEY: DemoKey(ADMIN, None),
}

ERROR = "litellm-memory-patch: error: "
MISSING_EXTRAS = (
    ERROR + "the demo needs {missing}: pip install 'litellm-memory-patch[demo]'"
    " (or run python3 scripts/demo.py from a checkout, which sets itself up)"
)
PORT_BUSY = ERROR + "cannot listen on {host}:{port} ({reason}); pick another with --port"
PROXY_DID_NOT_START = ERROR + "the proxy did not start; see its log above"

# Newer LiteLLM refuses to start without a master key; the demo's is random and never shown.
CONFIG_YAML = """\
model_list: []
general_settings:
  master_key: sk-{master_key}
"""

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


async def seed_litellm_auth() -> None:
    """Put the demo's keys, users and teams in LiteLLM's auth cache, as LiteLLM stores them."""
    cache = AuthCache()
    for user, role in USER_ROLES.items():
        await cache.user(user, role, teams=TEAMS if user == USER else ())
    for team in TEAMS:
        await cache.team(team, members={USER: "user"})
    for api_key, key in DEMO_KEYS.items():
        await cache.key(api_key, user=key.user_id, team=key.team_id, allowed_routes=key.allowed_routes)


def use_litellm_database(client: Any) -> None:
    """Give LiteLLM ``client`` as its database client (None: none)."""
    from litellm.proxy import proxy_server

    proxy_server.prisma_client = client


def quiet_litellm_lookups() -> None:
    """Keep LiteLLM's log to critical errors once the proxy serves.

    LiteLLM's auth looks up more than the cache holds (team memberships, budgets), logs each
    lookup the stand-in database fails with a traceback, and goes on without it; the demo's
    answers do not depend on them. The patch logs under its own name and is not affected.
    """
    from litellm._logging import verbose_proxy_logger

    verbose_proxy_logger.setLevel(logging.CRITICAL)


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
    stock: str  # what LiteLLM's own handlers answer, by their rules
    expected: str
    passes: Callable[[int, Any], bool]
    body: dict | None = None


def _found(value: str) -> Callable[[int, Any], bool]:
    return lambda status, body: status == 200 and body.get("value") == value


def _not_found(status: int, body: Any) -> bool:
    return status == 404


def _none_listed(status: int, body: Any) -> bool:
    return status == 200 and body == {"memories": [], "total": 0}


def _taken(secret: str) -> Callable[[int, Any], bool]:
    return lambda status, body: status == 409 and secret not in str(body)


def _road(
    number: int, first: str, second: str, owner: str, entry: str, secret: str, key_1: str,
    key_2: str,
) -> list[Step]:
    """The issue's steps, by the road of one pair of team keys."""
    return [
        Step(
            f"{number}. {first} creates '{entry}'", "POST", "/v1/memory", key_1,
            "200, created", "200, created",
            lambda status, body: status == 200 and body.get("key") == entry,
            {"key": entry, "value": secret},
        ),
        Step(
            f"{number + 1}. {second} reads it", "GET", f"/v1/memory/{entry}", key_2,
            f'200, value "{secret}"', "404 not found", _not_found,
        ),
        Step(
            f"{number + 2}. {second} lists its memories", "GET", "/v1/memory", key_2,
            f"200, {owner}", "200, 0 entries", _none_listed,
        ),
        Step(
            f"{number + 3}. {second} overwrites it (PUT)", "PUT", f"/v1/memory/{entry}", key_2,
            "200, overwritten", "409 key taken", _taken(secret),
            {"value": f"overwritten by {second}"},
        ),
        Step(
            f"{number + 4}. {second} deletes it", "DELETE", f"/v1/memory/{entry}", key_2,
            "200, deleted", "404 not found", _not_found,
        ),
        Step(
            f"{number + 5}. {first} reads it again", "GET", f"/v1/memory/{entry}", key_1,
            "404, gone", f'200, value "{secret}"', _found(secret),
        ),
    ]


REFUSED_BY_LITELLM = "401 (LiteLLM's own)"
STEPS = [
    *_road(
        1, "team 1", "team 2", "team 1's entries too", ENTRY, SECRET, TEAM_1_KEY, TEAM_2_KEY
    ),
    *_road(
        7, "admin's team-1 key", "admin's team-2 key", "every entry", PLAN, PLAN_SECRET,
        ADMIN_TEAM_1_KEY, ADMIN_TEAM_2_KEY,
    ),
    Step(
        "13. team 3 (no memory allowed_routes) lists", "GET", "/v1/memory", TEAM_3_KEY,
        REFUSED_BY_LITELLM, REFUSED_BY_LITELLM,
        lambda status, body: status == 401 and "error" in body,
    ),
]


def _summary(status: int, body: Any) -> str:
    if not isinstance(body, dict):
        return str(status)
    if "memories" in body:
        return f"{status}, {body.get('total')} entries"
    if "value" in body:
        return f'{status}, value "{body["value"]}"'
    if "error" in body:
        return f"{status} (LiteLLM's own)"  # LiteLLM's auth error, its long message left out
    return f"{status} {body.get('detail', '')}".strip()


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
            rows.append((step.title, step.stock, step.expected, got, PASS if ok else FAIL))
    say(f"Replaying LiteLLM issue #27722 over HTTP at {base_url}, by both roads,")
    say("authenticated by LiteLLM's own user_api_key_auth:")
    say(f"  steps 1-6:  keys of one internal user ({USER}) in team 1 and team 2, whose")
    say(f"              allowed_routes name {', '.join(MEMORY_ROUTES)}")
    say(f"  steps 7-12: a proxy admin's ({ADMIN}) keys of team 1 and team 2")
    say(f"  step 13:    {USER}'s team-3 key, without memory allowed_routes")
    say()
    print_table(("step", "LiteLLM's own handlers", "patched: expected", "got", "verdict"), rows)
    say()
    say("LiteLLM's own handlers read every entry of the key's user or team, and let an admin's")
    say("key, team key or not, read and change every entry: team 2 reads, lists, overwrites and")
    say("deletes team 1's entries by both roads, and steps 6 and 12 then find nothing.")
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
    """Team 2's access by direct SQL as the restricted role, by both roads; prints the table.

    Returns whether every check passed. Everything happens in one transaction that is rolled
    back.
    """
    # (who, the entry of team 1 it goes for, its key, the key of team 1 that wrote the entry)
    roads = (
        ("as team 2", ENTRY, TEAM_2_KEY, "as team 1", TEAM_1_KEY),
        ("as admin's team 2", PLAN, ADMIN_TEAM_2_KEY, "as admin's team 1", ADMIN_TEAM_1_KEY),
    )
    select = f"SELECT value FROM {MEMORY_TABLE} WHERE key = %s"
    update = f"UPDATE {MEMORY_TABLE} SET value = 'overwritten' WHERE key = %s"
    delete = f"DELETE FROM {MEMORY_TABLE} WHERE key = %s"
    insert = (
        f"INSERT INTO {MEMORY_TABLE} (memory_id, key, value, team_id, user_id)"
        " VALUES (%s, %s, 'forged', %s, %s)"
    )
    rows = []

    def check(statement: str, expected: int | str, got: int | str, ok: bool) -> None:
        rows.append((statement, _rows(expected), _rows(got), PASS if ok else FAIL))

    with psycopg.connect(conninfo) as conn:
        for who, entry, key, owner, owner_key in roads:
            shown = f"WHERE key = '{entry}'"
            caller = DEMO_KEYS[key].scope
            _as_caller(conn, caller)
            found = len(conn.execute(select, (entry,)).fetchall())
            check(f"{who}: SELECT ... {shown}", 0, found, found == 0)
            updated = conn.execute(update, (entry,)).rowcount
            check(f"{who}: UPDATE ... SET value = 'overwritten' {shown}", 0, updated, updated == 0)
            deleted = conn.execute(delete, (entry,)).rowcount
            check(f"{who}: DELETE ... {shown}", 0, deleted, deleted == 0)
            forged = f"{who}: INSERT ... team_id = 'team-1'"
            try:
                with conn.transaction():
                    conn.execute(
                        insert, (str(uuid.uuid4()), f"{entry}:forged", "team-1", caller.user_id)
                    )
                check(forged, "error", "inserted", False)
            except (errors.RaiseException, errors.InsufficientPrivilege) as exc:
                # The ownership trigger (or the insert policy) refused it.
                check(forged, "error", f"error: {exc.diag.message_primary}", True)
            # The controls: the same statements succeed in the caller's own team, and for the
            # key that wrote the entry, so the refusals come from the rules, not from
            # statements that could never work.
            inserted = conn.execute(
                insert, (str(uuid.uuid4()), f"{entry}:own", caller.team_id, caller.user_id)
            ).rowcount
            check(f"{who}: INSERT ... team_id = '{caller.team_id}'", 1, inserted, inserted == 1)
            _as_caller(conn, DEMO_KEYS[owner_key].scope)
            own = len(conn.execute(select, (entry,)).fetchall())
            check(f"{owner}: SELECT ... {shown}", 1, own, own == 1)
            updated = conn.execute(update, (entry,)).rowcount
            check(f"{owner}: UPDATE ... {shown}", 1, updated, updated == 1)
        conn.rollback()
    say()
    say(f"The same access by direct SQL on {MEMORY_TABLE}, as {APP_ROLE} with the")
    say("settings of team 2's keys (road 1: team_id=team-2, user_id=demo-user; road 2:")
    say("team_id=team-2, user_id=demo-admin, user_role=proxy_admin), in one transaction that is")
    say("rolled back:")
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
    """Write the demo's teams, users and keys the way LiteLLM's proxy does, and earlier entries.

    The same keys, users and teams as :func:`seed_litellm_auth` puts in LiteLLM's auth cache.
    LiteLLM stores a virtual key as the SHA-256 hex digest of the key; the alias is a name.
    """
    with psycopg.connect(conninfo) as conn:
        for team in TEAMS:
            members = [{"user_id": USER, "role": "user"}]
            conn.execute(
                'INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, members, members_with_roles)'
                " VALUES (%s, %s, %s, %s)",
                (team, team, [USER], json.dumps(members)),
            )
        for user, role in USER_ROLES.items():
            conn.execute(
                'INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams) VALUES (%s, %s, %s)',
                (user, role, list(TEAMS) if user == USER else []),
            )
        for api_key, key in DEMO_KEYS.items():
            conn.execute(
                'INSERT INTO "LiteLLM_VerificationToken"'
                " (token, key_alias, user_id, team_id, allowed_routes)"
                " VALUES (%s, %s, %s, %s, %s)",
                (
                    hashlib.sha256(api_key.encode()).hexdigest(),
                    api_key.removeprefix("sk-"),
                    key.user_id,
                    key.team_id,
                    list(key.allowed_routes),
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
        f"curl -s -i {base_url}/v1/memory/{PLAN} {auth.format(ADMIN_TEAM_2_KEY)}",
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

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            # LiteLLM's shutdown flushes to its database when it has one; the stand-in has none.
            use_litellm_database(None)
            await super().shutdown(sockets=sockets)

    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again, which ends
    # the demo through the caller's clean-up.
    server = Server(uvicorn.Config(app, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            raise SystemExit(PROXY_DID_NOT_START)
        await asyncio.sleep(0.05)
    # Started without a database client, LiteLLM would refuse every virtual key; with the
    # stand-in, its auth answers from its cache.
    use_litellm_database(NoDatabase())
    quiet_litellm_lookups()
    await seed_litellm_auth()
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
        say("Recording the demo's teams, users and keys as LiteLLM does, and earlier entries ...")
        record_litellm_state(url)
        exposure_text = exposure.format_text(exposure.build_report(parse_database_url(url)))
        say("Applying the patch's migration (row-level security) ...")
        migrator.upgrade(parse_database_url(url))

        (folder / "config.yaml").write_text(CONFIG_YAML.format(master_key=secrets.token_hex(16)))
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
