"""Benchmark: the patched /v1/memory routes against a plain baseline, through LiteLLM's real app.

Run from the project's virtualenv: ``python benchmarks/run.py``. It starts a private PostgreSQL
in a temporary folder, applies LiteLLM's schema and this project's migrations, seeds the memory
table, imports LiteLLM's proxy app in-process with the patch activated by its startup hook, and
mounts the baseline routes of ``baseline.py`` beside it. It then measures, prints a summary and
writes ``docs/BENCHMARKS.md``:

- latency (p50, p95) and throughput, sequential and 8 at a time, for GET by key, list page 1,
  PUT (update) and POST, patched against baseline, interleaved in small batches after a warm-up;
- database round trips per request, counted from libpq's protocol trace of the pool's
  connections;
- GET and list at 1,000,000 rows against 10,000 rows, and the plans of the patched statements;
- the resident memory the patch adds to the proxy process.

Nothing here is a test: the targets are printed as PASS/MISS, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq, sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the custom_auth hook the test suite uses

from identity_auth import api_key  # noqa: E402

from litellm_memory_patch import __version__, embedded, migrator  # noqa: E402
from litellm_memory_patch.config import parse_database_url  # noqa: E402

SIDES = ("baseline", "patched")
OPS = ("get", "list", "put", "post")
OP_NAMES = {"get": "GET by key", "list": "list page 1", "put": "PUT update", "post": "POST create"}
PREFIX = {"baseline": "/bench/baseline", "patched": ""}

ROWS_PER_TEAM = 100
SMALL_TEAMS = 100  # 10,000 rows
LARGE_TEAMS = 10_000  # 1,000,000 rows
CALLER_TEAMS = 8  # the benchmark's callers, present in both databases
CONCURRENCY = 8
POOL_SIZE = 4

P50_TARGET = 1.15
THROUGHPUT_TARGET = 0.85
SCALE_TARGET = 1.5

LITELLM_CONFIG = """\
model_list: []
general_settings:
  custom_auth: auth_hook.user_auth
"""

SEED = """
INSERT INTO {table} (memory_id, key, value, metadata, user_id, team_id,
                     created_at, created_by, updated_at, updated_by)
SELECT gen_random_uuid()::text,
       format('team-%%s/note-%%s', lpad((g %% t)::text, 5, '0'), lpad((g / t)::text, 3, '0')),
       repeat('v', 200),
       jsonb_build_object('n', g / t),
       format('user-%%s', lpad((g %% t)::text, 5, '0')),
       format('team-%%s', lpad((g %% t)::text, 5, '0')),
       ts, 'seed', ts, 'seed'
FROM generate_series(0, %(rows)s - 1) AS g,
     LATERAL (SELECT %(teams)s::int AS t,
                     timestamp '2026-01-01' + g * interval '1 second' AS ts) AS s
"""

SEQ_SCAN = 'Seq Scan on "LiteLLM_MemoryTable"'


# -- the requests --------------------------------------------------------------------------


def team(n: int) -> str:
    return f"{n:05d}"


def caller(i: int) -> str:
    """The API key of request ``i``'s caller: a member of one of the caller teams."""
    n = i % CALLER_TEAMS
    return api_key(team=f"team-{team(n)}", user=f"user-{team(n)}", role="internal_user")


def seeded_key(i: int) -> str:
    n = i % CALLER_TEAMS
    return f"team-{team(n)}/note-{(i // CALLER_TEAMS) % ROWS_PER_TEAM:03d}"


_post_numbers = itertools.count()


async def send(client, side: str, op: str, i: int, *, check: bool = True) -> None:
    headers = {"Authorization": f"Bearer {caller(i)}"}
    base = PREFIX[side] + "/v1/memory"
    if op == "get":
        response = await client.get(f"{base}/{seeded_key(i)}", headers=headers)
    elif op == "list":
        response = await client.get(base, headers=headers)
    elif op == "put":
        response = await client.put(
            f"{base}/{seeded_key(i)}", headers=headers, json={"value": f"updated {i}"}
        )
    else:
        # The process id keeps keys unique across the memory probes' processes too.
        new_key = f"bench/{side}/{os.getpid()}/{next(_post_numbers)}"
        response = await client.post(
            base, headers=headers, json={"key": new_key, "value": "new", "metadata": {"i": i}}
        )
    if check and response.status_code != 200:
        raise RuntimeError(f"{side} {op}: {response.status_code} {response.text[:300]}")


# -- statistics ----------------------------------------------------------------------------


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0  # seconds spent in the side's batches (concurrent runs)
    count: int = 0

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]

    @property
    def throughput(self) -> float:
        return self.count / (self.wall or sum(self.latencies))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def verdict(ok: bool, ratio: float, target: float, higher_is_better: bool = False) -> str:
    if ok:
        return "PASS"
    miss = (target - ratio) if higher_is_better else (ratio - target)
    return f"MISS by {miss:.2f}"


# -- measurements through the app ----------------------------------------------------------


async def interleaved_sequential(client, ops, groups, n: int, batch: int, switch=None):
    """``n`` requests per group and op, one at a time, groups alternating every ``batch``.

    A group is a side, unless ``switch(group)`` prepares the group's batch and names the side.
    """
    results = {(op, group): Sample() for op in ops for group in groups}
    for op in ops:
        numbers = itertools.count()
        for b in range(n // batch):
            for group in groups if b % 2 == 0 else reversed(groups):
                side = switch(group) if switch else group
                sample = results[(op, group)]
                for _ in range(batch):
                    start = time.perf_counter()
                    await send(client, side, op, next(numbers))
                    sample.latencies.append(time.perf_counter() - start)
                    sample.count += 1
    return results


async def interleaved_concurrent(client, ops, n: int, batch: int):
    """``n`` requests per side and op, ``CONCURRENCY`` in flight, sides alternating per batch."""
    results = {(op, side): Sample() for op in ops for side in SIDES}
    per_worker = batch // CONCURRENCY
    for op in ops:
        numbers = itertools.count()

        async def worker(side: str, sample: Sample) -> None:
            for _ in range(per_worker):
                i = next(numbers)
                start = time.perf_counter()
                await send(client, side, op, i)
                sample.latencies.append(time.perf_counter() - start)

        for b in range(n // batch):
            for side in SIDES if b % 2 == 0 else reversed(SIDES):
                sample = results[(op, side)]
                start = time.perf_counter()
                await asyncio.gather(*(worker(side, sample) for _ in range(CONCURRENCY)))
                sample.wall += time.perf_counter() - start
                sample.count += per_worker * CONCURRENCY
    return results


# -- round trips, counted from libpq's protocol trace ----------------------------------------


@dataclass
class Trace:
    round_trips: int = 0  # ReadyForQuery messages: one per Query or Sync the client sent
    pool_checks: int = 0  # the pool's empty-query connection check
    statements: int = 0  # simple Query messages (checks excluded) plus extended Execute messages
    sequence: list[str] = field(default_factory=list)  # the first request's messages, in order


def short(statement: str) -> str:
    words = " ".join(statement.split())
    return words if len(words) <= 36 else words[:35] + "…"


def read_trace(path: Path, prepared: dict[str, str]) -> Trace:
    """Tally one connection's trace; ``prepared`` names its prepared statements' texts."""
    trace = Trace()
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if "F" in fields[:2]:
            direction = fields.index("F")
        elif "B" in fields[:2]:
            direction = fields.index("B")
        else:
            continue
        kind = fields[direction + 2] if len(fields) > direction + 2 else ""
        detail = fields[direction + 3].strip() if len(fields) > direction + 3 else ""
        sent = fields[direction] == "F"
        if not sent and kind == "ReadyForQuery":
            trace.round_trips += 1
            if len(trace.sequence) < 40:
                trace.sequence.append("|")
        elif sent and kind == "Query":
            if detail == '""':
                trace.pool_checks += 1
                label = "pool check"
            else:
                trace.statements += 1
                label = short(detail.strip('"'))
            if len(trace.sequence) < 40:
                trace.sequence.append(label)
        elif sent and kind == "Execute":
            trace.statements += 1
        elif sent and kind == "Bind" and len(trace.sequence) < 40:
            name = detail.split(" ")[1].strip('"') if " " in detail else ""
            if name:
                trace.sequence.append(short(prepared.get(name, name)))
        elif sent and kind == "Parse" and len(trace.sequence) < 40:
            # An unnamed statement, or one being prepared now: its text is in the message.
            name, _, text = detail.partition('" "')
            trace.sequence.append(short(text.rsplit('"', 1)[0]))
    return trace


async def count_round_trips(client, store, op: str, side: str, requests: int, folder: Path):
    """Trace every pooled connection while ``requests`` requests run one at a time."""
    paths, prepared = {}, {}  # by server process id: the same connections come back
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(store._pool.connection()) for _ in range(POOL_SIZE)]
        for conn in conns:
            path = paths[conn.info.backend_pid] = folder / f"trace-{side}-{op}-{conn.info.backend_pid}.txt"
            # libpq owns the descriptor from here on (it fdopen()s it and never closes it).
            conn.pgconn.trace(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
    for i in range(requests):
        await send(client, side, op, i)
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(store._pool.connection()) for _ in range(POOL_SIZE)]
        for conn in conns:
            conn.pgconn.untrace()
            # psycopg's own record of the connection's prepared statements, to name them.
            names = conn._prepared._names.items()
            prepared[conn.info.backend_pid] = {
                name.decode(): query.decode() for (query, _), name in names
            }
    total = Trace()
    for pid, path in paths.items():
        part = read_trace(path, prepared.get(pid, {}))
        total.round_trips += part.round_trips
        total.pool_checks += part.pool_checks
        total.statements += part.statements
        if not total.sequence and part.sequence:
            total.sequence = part.sequence
    # The final check-out ran each connection's check once more while it was still traced.
    total.round_trips -= POOL_SIZE
    total.pool_checks -= POOL_SIZE
    return total


def first_request(sequence: list[str]) -> str:
    """The messages of the first traced request: up to the second pool check."""
    groups, current = [], []
    for item in sequence:
        if item == "|":
            groups.append(current)
            current = []
        else:
            current.append(item)
    request = []
    for group in groups:
        if group == ["pool check"] and request:
            break
        request.append(" + ".join(group))
    return " → ".join(request)


async def round_trip_cost(store, n: int = 2000) -> float:
    """Seconds for one empty-query round trip on a pooled connection (psycopg included)."""
    async with store._pool.connection() as conn:
        was = conn.autocommit
        await conn.set_autocommit(True)
        try:
            start = time.perf_counter()
            for _ in range(n):
                await conn.execute("")
            return (time.perf_counter() - start) / n
        finally:
            await conn.set_autocommit(was)


# Round trips each operation needs at least, if everything that does not wait on an earlier
# answer were pipelined: the pool check, then one exchange; PUT must read the row (its id and
# owner decide the write) before it updates.
MIN_ROUND_TRIPS = {"get": 2, "list": 2, "put": 3, "post": 2}


# -- EXPLAIN of the patched statements -----------------------------------------------------


class _Rollback(Exception):
    """Leaves the explained transaction without committing anything."""


class ExplainingConnection:
    """Stands in for a store transaction's connection. The store sends its statements joined
    into one message (its transaction start first, ``COMMIT`` last when the request ends):
    this runs the start, then each statement under ``EXPLAIN (ANALYZE, BUFFERS)`` in a
    savepoint that is rolled back, then the statements for real, never the ``COMMIT``. So the
    store's own statements are explained as the role and with the settings the store set."""

    def __init__(self, conn: psycopg.AsyncConnection, start, commit) -> None:
        self.conn = conn
        self._skip = (start, commit)
        self._start = start
        self.plans: list[tuple[str, str]] = []

    def cursor(self, **kwargs):
        return _ExplainingCursor(self, self.conn.cursor(**kwargs))


class _ExplainingCursor:
    def __init__(self, owner: ExplainingConnection, cursor) -> None:
        self._owner = owner
        self._cursor = cursor

    async def __aenter__(self):
        await self._cursor.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._cursor.__aexit__(*exc)

    async def execute(self, query: sql.Composed, **kwargs):
        owner, conn = self._owner, self._owner.conn
        parts = list(query)[::2]  # the statements, without the "; " between them
        if parts[0] is owner._start:
            await conn.execute(owner._start, prepare=False)
        statements = [part for part in parts if not any(part is skip for skip in owner._skip)]
        for statement in statements:
            async with conn.transaction(force_rollback=True), conn.cursor() as cur:
                await cur.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + statement)
                plan = "\n".join(row[0] for row in await cur.fetchall())
            owner.plans.append((statement.as_string(conn), plan))
        return await self._cursor.execute(sql.SQL("; ").join(statements), **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


async def explain_patched_statements(store) -> list[tuple[str, str, str]]:
    from litellm_memory_patch import store as store_module
    from litellm_memory_patch.scope import CallerScope
    from litellm_memory_patch.store import KeyMatch, visibility

    scope = CallerScope(team_id="team-00007", user_id="user-00007", role="internal_user")
    where = visibility(scope)
    explained = []
    try:
        async with store.transaction(scope) as tx:
            spy = tx._conn = ExplainingConnection(tx._conn, tx._start, store_module._COMMIT)
            await tx.find("team-00007/note-042", where=where)
            explained += [("get", *plan) for plan in spy.plans]
            spy.plans.clear()
            await tx.page(KeyMatch(), where=where, offset=0, limit=50)
            tx.open = True  # the spy never ran the COMMIT: the transaction goes on
            explained += [("list", *plan) for plan in spy.plans]
            spy.plans.clear()
            row = await tx.find("team-00007/note-043", where=where)
            await tx.update(row.memory_id, {"value": "explained"}, where=where, actor="user-00007")
            tx.open = True
            explained += [("put", *plan) for plan in spy.plans]
            spy.plans.clear()
            await tx.create(
                key="team-00007/explained", value="v", metadata={"a": 1},
                user_id="user-00007", team_id="team-00007", actor="user-00007",
            )
            explained += [("post", *plan) for plan in spy.plans]
            raise _Rollback()
    except _Rollback:
        pass
    return explained


# -- the database --------------------------------------------------------------------------


def url_for(server_url: str, database: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


def prepare_database(server_url: str, name: str, teams: int) -> str:
    """A database with LiteLLM's schema, the migrations and ``teams`` × 100 seeded rows."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = url_for(server_url, name)
    embedded.apply_litellm_schema(url)
    migrator.upgrade(parse_database_url(url))
    table = sql.Identifier("LiteLLM_MemoryTable")
    with psycopg.connect(url) as conn:
        # Replica mode skips the ownership trigger for the bulk load, for this transaction only.
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            sql.SQL(SEED).format(table=table), {"rows": teams * ROWS_PER_TEAM, "teams": teams}
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))
    return url


# -- the resident memory the patch adds ------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def rss_probe(patched: bool, requests: int) -> None:
    """In a fresh process: the proxy app's lifespan, requests served, then the RSS (printed)."""
    import httpx
    from asgi_lifespan import LifespanManager

    import litellm.proxy.proxy_server as proxy_server

    async with LifespanManager(proxy_server.app, startup_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            for op in OPS:
                for i in range(requests):
                    # Unpatched, the stock routes answer 500 (no Prisma): served all the same.
                    await send(client, "patched", op, i, check=patched)
        gc.collect()
        print(json.dumps({"rss_mb": rss_mb()}))


def measure_rss(patched: bool, requests: int) -> float:
    env = dict(os.environ)
    if not patched:
        env.pop("LITELLM_WORKER_STARTUP_HOOKS", None)
        env.pop("LITELLM_MEMORY_DATABASE_URL", None)
    mode = "patched" if patched else "stock"
    done = subprocess.run(
        [sys.executable, __file__, "--rss-probe", mode, "--rss-requests", str(requests)],
        env=env, capture_output=True, text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the {mode} memory probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"]


# -- the environment -------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
    }


def versions(server_url: str) -> dict[str, str]:
    with psycopg.connect(server_url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        if git("status", "--porcelain", "--", "litellm_memory_patch", "migrations"):
            commit += ", with uncommitted changes to the package"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "Python": platform.python_version(),
        "LiteLLM": version("litellm"),
        "PostgreSQL": server,
        "psycopg": f"{psycopg.__version__} (libpq {pq.version()}, {pq.__impl__})",
        "psycopg-pool": version("psycopg-pool"),
        "litellm-memory-patch": f"{__version__} (commit {commit})",
    }


# -- the run ---------------------------------------------------------------------------------


async def measure(args, small_url: str, large_url: str, folder: Path) -> dict:
    import httpx
    from asgi_lifespan import LifespanManager

    import baseline
    from litellm_memory_patch.config import load_settings
    from litellm_memory_patch.store import MemoryStore

    started = time.perf_counter()
    import litellm.proxy.proxy_server as proxy_server

    app = proxy_server.app
    print(f"LiteLLM proxy imported in {time.perf_counter() - started:.1f} s", flush=True)
    async with LifespanManager(app, startup_timeout=120) as manager:
        store = app.state.litellm_memory_store
        if store is None or (problem := await store.readiness_problem()):
            raise RuntimeError(f"the patch is not serving: {store and problem}")
        baseline.mount(app)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            print("warming up", flush=True)
            await interleaved_sequential(client, OPS, SIDES, args.warmup, args.batch)
            rt_cost = await round_trip_cost(store)
            traces = {}
            for op in OPS:
                for side in SIDES:
                    traces[(op, side)] = await count_round_trips(
                        client, store, op, side, args.trace_requests, folder
                    )
            print("sequential, interleaved", flush=True)
            sequential = await interleaved_sequential(client, OPS, SIDES, args.requests, args.batch)
            print(f"{CONCURRENCY} at a time, interleaved", flush=True)
            concurrent = await interleaved_concurrent(
                client, OPS, args.requests, batch=CONCURRENCY * args.batch // 2
            )

            print("1,000,000 rows against 10,000", flush=True)
            large = MemoryStore(load_settings(large_url))
            await large.open()
            if problem := await large.readiness_problem():
                raise RuntimeError(problem)
            stores = {"10,000 rows": store, "1,000,000 rows": large}

            def use(size: str) -> str:
                app.state.litellm_memory_store = stores[size]
                return "patched"

            sizes = tuple(stores)
            await interleaved_sequential(client, ("get", "list"), sizes, args.warmup, args.batch, use)
            scale = await interleaved_sequential(
                client, ("get", "list"), sizes, args.scale_requests, args.batch, use
            )
            use("10,000 rows")
            plans = await explain_patched_statements(large)
            await large.close()
    return {
        "rt_cost": rt_cost,
        "traces": traces,
        "sequential": sequential,
        "concurrent": concurrent,
        "scale": scale,
        "sizes": sizes,
        "plans": plans,
    }


def report(args, env: dict, setup: dict, m: dict, rss: dict) -> tuple[str, list[str]]:
    """The Markdown document, and the lines printed to the terminal."""
    seq, conc, traces, rt = m["sequential"], m["concurrent"], m["traces"], m["rt_cost"]
    out, terminal = [], []
    add = out.append

    add("# Benchmarks\n")
    add(
        "Generated by `python benchmarks/run.py` (run from the project's virtualenv); "
        "re-run it to refresh this page. Figures from one run on the machine below.\n"
    )
    add(
        f"Date: {env['date']}. The whole run took {env['minutes']:.1f} min; load average "
        f"(1 min) {env['load_before']:.1f} at the start and {env['load_after']:.1f} at the end "
        "(the machine is shared: absolute times vary, the interleaved ratios much less).\n"
    )
    add("| machine | |\n| --- | --- |")
    out += [f"| {k} | {v} |" for k, v in env["machine"].items()]
    add("\n| software | version |\n| --- | --- |")
    out += [f"| {k} | {v} |" for k, v in env["versions"].items()]

    add("\n## What is measured\n")
    add(
        "Every request goes through LiteLLM's real proxy app in-process (its middleware, its "
        "`user_api_key_auth` dependency with a `custom_auth` hook that reads the caller from "
        "the key), over httpx's ASGI transport, so each latency includes the client and the "
        "whole app. The patch is activated by LiteLLM's startup hook, as in production.\n"
    )
    add(
        "**Patched**: the project's `/v1/memory` routes: one transaction per request that "
        "switches to `litellm_memory_app` and sets the caller's scope (transaction-local), "
        "sent in one message with the request's first statement, then the statements under "
        "row-level security.\n"
    )
    add(
        "**Baseline**: LiteLLM's stock handlers need Prisma, which cannot run here, so the "
        "closest runnable stand-in is measured: routes mounted on the same app at "
        "`/bench/baseline/v1/memory` (by the benchmark only), behind the same "
        "`user_api_key_auth` dependency, on the same psycopg pool, running the store's own "
        "statements (the same visibility filter included) sent the same way, but without the "
        "transaction start: no `BEGIN`, no role switch, no settings. The pool logs in as the "
        "superuser, which skips row-level security although the table FORCEs it. Starlette tries "
        "an app's routes in order and LiteLLM's app has hundreds, so the baseline routes sit "
        "right before the patched ones in the table: mounted first instead, a route answered "
        "about 2.5 ms sooner here, more than the whole difference being measured.\n"
    )
    add(
        f"Data: {setup['small_rows']:,} rows in {SMALL_TEAMS} teams ({ROWS_PER_TEAM} rows per "
        f"team) for the comparison; callers are {CALLER_TEAMS} of those teams, each updating "
        "its own rows. POST creates new keys. "
        f"The pool holds {POOL_SIZE} connections (`LITELLM_MEMORY_POOL_MIN_SIZE` = "
        f"`..._MAX_SIZE` = {POOL_SIZE}).\n"
    )
    add(
        f"Method: {args.warmup} warm-up requests per operation and side, then "
        f"{args.requests} measured requests per operation and side, one at a time, the sides "
        f"alternating every {args.batch} requests so that noise on the shared machine hits "
        f"both alike; then {args.requests} more per operation and side with {CONCURRENCY} in "
        f"flight, alternating every {CONCURRENCY * args.batch // 2}. Sequential throughput is "
        "requests per second of summed latency; concurrent throughput is requests per "
        "second of wall time.\n"
    )

    add("## Patched against baseline\n")
    add(
        "| operation | baseline p50 ms | patched p50 ms | p50 ratio | baseline p95 ms | "
        "patched p95 ms | seq. req/s base / patched | ratio | "
        f"{CONCURRENCY}-way req/s base / patched | ratio |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    targets = []
    for op in OPS:
        b, p = seq[(op, "baseline")], seq[(op, "patched")]
        cb, cp = conc[(op, "baseline")], conc[(op, "patched")]
        ratio = p.p(50) / b.p(50)
        tput = p.throughput / b.throughput
        ctput = cp.throughput / cb.throughput
        add(
            f"| {OP_NAMES[op]} | {ms(b.p(50))} | {ms(p.p(50))} | **{ratio:.3f}** | "
            f"{ms(b.p(95))} | {ms(p.p(95))} | {b.throughput:.0f} / {p.throughput:.0f} | "
            f"**{tput:.3f}** | {cb.throughput:.0f} / {cp.throughput:.0f} | **{ctput:.3f}** |"
        )
        targets += [
            (f"{OP_NAMES[op]}: p50 ratio ≤ {P50_TARGET}", ratio, verdict(ratio <= P50_TARGET, ratio, P50_TARGET)),
            (
                f"{OP_NAMES[op]}: sequential throughput ≥ {THROUGHPUT_TARGET} of baseline", tput,
                verdict(tput >= THROUGHPUT_TARGET, tput, THROUGHPUT_TARGET, True),
            ),
            (
                f"{OP_NAMES[op]}: {CONCURRENCY}-way throughput ≥ {THROUGHPUT_TARGET} of baseline",
                ctput, verdict(ctput >= THROUGHPUT_TARGET, ctput, THROUGHPUT_TARGET, True),
            ),
        ]
    add(
        f"\nLatency under {CONCURRENCY}-way concurrency, p50 ms (baseline / patched): "
        + ", ".join(
            f"{OP_NAMES[op]} {ms(conc[(op, 'baseline')].p(50))} / {ms(conc[(op, 'patched')].p(50))}"
            for op in OPS
        )
        + ".\n"
    )

    add("## Database round trips per request\n")
    add(
        "Counted, not estimated: libpq's protocol trace (`PQtrace`) was switched on for every "
        f"connection of the pool while {args.trace_requests} requests per operation and side "
        "ran one at a time, after the warm-up; a round "
        "trip is a `ReadyForQuery` message from the server (one per simple `Query` or "
        "extended-protocol `Sync` the client sends). The pool's connection check (an empty "
        "query on every check-out, psycopg_pool's `check_connection`, configured by the "
        "store) is counted apart; it costs both sides the same. Messages sent: the simple "
        "`Query` messages (checks excluded) and extended-protocol `Execute`s; one `Query` may "
        "carry several statements.\n"
    )
    add(
        "| operation | side | round trips | of which pool check | messages sent | sequence of "
        "the first request (→ separates round trips) |"
    )
    add("| --- | --- | ---: | ---: | ---: | --- |")
    n = args.trace_requests
    for op in OPS:
        for side in SIDES:
            t = traces[(op, side)]
            add(
                f"| {OP_NAMES[op]} | {side} | {t.round_trips / n:.2f} | {t.pool_checks / n:.2f} | "
                f"{t.statements / n:.2f} | {first_request(t.sequence)} |"
            )
    add(
        f"\nOne empty-query round trip on a pooled connection costs {rt * 1e6:.0f} µs here "
        "(psycopg's own work included; Unix socket, measured with 2,000 of them).\n"
    )
    add("What pipelining would save, computed from the counts (pool check excluded):\n")
    add(
        "| operation | patched round trips | with pipelining | saved | ≈ µs saved | p50 gap µs | "
        "extra round trips vs baseline | their cost µs |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    analysis = []
    for op in OPS:
        tp, tb = traces[(op, "patched")], traces[(op, "baseline")]
        patched_rt = (tp.round_trips - tp.pool_checks) / n
        base_rt = (tb.round_trips - tb.pool_checks) / n
        minimum = MIN_ROUND_TRIPS[op] - 1
        saved = max(patched_rt - minimum, 0)
        gap = (seq[(op, "patched")].p(50) - seq[(op, "baseline")].p(50)) * 1e6
        extra = patched_rt - base_rt
        add(
            f"| {OP_NAMES[op]} | {patched_rt:.2f} | {minimum} | {saved:.2f} | {saved * rt * 1e6:.0f} | "
            f"{gap:.0f} | {extra:.2f} | {extra * rt * 1e6:.0f} |"
        )
        analysis.append((op, gap, extra, extra * rt * 1e6))
    add(
        "\n\"With pipelining\" is the fewest exchanges the operation allows: everything that "
        "does not wait on an earlier answer sent together (`BEGIN`, the role and settings, "
        "the statements, `COMMIT`); PUT must read the row first, because its id and owner "
        "decide the update. The µs figures multiply by the measured round-trip cost; psycopg's "
        "pipeline mode has its own overhead, so the real saving is smaller.\n"
    )

    add("## 1,000,000 rows against 10,000\n")
    add(
        f"The same patched requests against a second database of {setup['large_rows']:,} rows "
        f"in {LARGE_TEAMS:,} teams ({ROWS_PER_TEAM} rows per team, so a team's page and total "
        "are the same in both; a team's rows are spread over the whole table, as rows written "
        "over time would be), the two databases alternating every "
        f"{args.batch} requests, {args.scale_requests} requests each after a warm-up. "
        f"Table sizes with indexes: {setup['small_size']} and {setup['large_size']}; "
        f"seeding the large one took {setup['seed_seconds']:.0f} s.\n"
    )
    add("| operation | 10,000 rows p50 ms | 1,000,000 rows p50 ms | ratio | p95 ms (10k / 1M) |")
    add("| --- | ---: | ---: | ---: | ---: |")
    small, big = m["sizes"]
    for op in ("get", "list"):
        s, b = m["scale"][(op, small)], m["scale"][(op, big)]
        ratio = b.p(50) / s.p(50)
        add(f"| {OP_NAMES[op]} | {ms(s.p(50))} | {ms(b.p(50))} | **{ratio:.3f}** | {ms(s.p(95))} / {ms(b.p(95))} |")
        targets.append(
            (f"{OP_NAMES[op]}: 1M-row p50 within {SCALE_TARGET}× of 10k", ratio,
             verdict(ratio <= SCALE_TARGET, ratio, SCALE_TARGET))
        )

    add("\n### Plans of the patched statements (1,000,000 rows)\n")
    add(
        "Each statement exactly as the store composes it, run by the store in its own "
        "transaction (role `litellm_memory_app`, the settings of team `team-00007`, user "
        "`user-00007`, role `internal_user`), explained with `EXPLAIN (ANALYZE, BUFFERS)` in a "
        "savepoint that was rolled back; the whole transaction was rolled back at the end.\n"
    )
    seq_scans = 0
    for op, text, plan in m["plans"]:
        seq_scans += SEQ_SCAN in plan
        add(f"**{OP_NAMES[op]}** — `{text}`\n")
        add("```\n" + plan + "\n```\n")
    targets.append(
        ("no Seq Scan on the memory table in any plan", seq_scans, "PASS" if not seq_scans else f"MISS: {seq_scans} plans")
    )

    add("## Memory\n")
    add(
        "Resident set size of a fresh proxy process after importing LiteLLM's proxy, running "
        f"its lifespan and serving {args.rss_requests} requests of each operation: without the "
        "patch (the stock routes answer 500 without Prisma) and with the patch active, its "
        f"pool of {POOL_SIZE} open. Each measured {len(rss['stock'])} times, alternating.\n"
    )
    stock, patched = statistics.mean(rss["stock"]), statistics.mean(rss["patched"])
    add("| process | RSS MB (each run) | mean |\n| --- | --- | ---: |")
    add(f"| stock | {', '.join(f'{v:.1f}' for v in rss['stock'])} | {stock:.1f} |")
    add(f"| patched | {', '.join(f'{v:.1f}' for v in rss['patched'])} | {patched:.1f} |")
    add(f"\nThe patch adds about **{patched - stock:.1f} MB** to the proxy process.\n")

    add("## Targets\n")
    add("| target | measured | result |\n| --- | ---: | --- |")
    for name, value, result in targets:
        add(f"| {name} | {value:.3f} | {result} |" if isinstance(value, float) else f"| {name} | {value} | {result} |")

    add("\n## Where the overhead comes from\n")
    for op, gap, extra, cost in analysis:
        add(
            f"- {OP_NAMES[op]}: the patched p50 is {gap:.0f} µs above the baseline's. Its "
            f"{extra:.2f} extra round trips cost about {cost:.0f} µs at the {rt * 1e6:.0f} µs an "
            "empty query takes in a tight loop, a lower bound: inside a request each extra "
            "statement also costs psycopg's and the server's per-statement work (parse of "
            "the message, the policies' InitPlans, the role and settings change), which an "
            "empty query does not."
        )
    add(
        "\nThe pool's connection check costs every request one round trip more, on both sides "
        "alike; a request whose round trips exceed the minimum above could lose the "
        "difference by sending its statements together.\n"
    )

    terminal.append(f"{'target':<62} {'measured':>9}  result")
    for name, value, result in targets:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        terminal.append(f"{name:<62} {shown:>9}  {result}")
    return "\n".join(out), terminal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per op and side")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch", type=int, default=20, help="requests per side before switching")
    parser.add_argument("--trace-requests", type=int, default=50)
    parser.add_argument("--scale-requests", type=int, default=1000)
    parser.add_argument("--rss-requests", type=int, default=100)
    parser.add_argument("--rss-runs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--rss-probe", choices=("stock", "patched"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_probe:
        asyncio.run(rss_probe(args.rss_probe == "patched", args.rss_requests))
        return
    run_started, load_before = time.perf_counter(), os.getloadavg()[0]

    with (
        tempfile.TemporaryDirectory(prefix="litellm-memory-bench-", ignore_cleanup_errors=True) as tmp,
        embedded.start_server(Path(tmp) / "pgdata") as server,
    ):
        folder = Path(tmp)
        server_url = server.get_uri()
        print("seeding 10,000 and 1,000,000 rows", flush=True)
        small_url = prepare_database(server_url, "bench_small", SMALL_TEAMS)
        started = time.perf_counter()
        large_url = prepare_database(server_url, "bench_large", LARGE_TEAMS)
        setup = {"seed_seconds": time.perf_counter() - started}
        for name, url in (("small", small_url), ("large", large_url)):
            with psycopg.connect(url) as conn:
                setup[f"{name}_rows"], setup[f"{name}_size"] = conn.execute(
                    'SELECT count(*), pg_size_pretty(pg_total_relation_size(\'"LiteLLM_MemoryTable"\'))'
                    ' FROM "LiteLLM_MemoryTable"'
                ).fetchone()

        config = folder / "litellm"
        config.mkdir()
        (config / "config.yaml").write_text(LITELLM_CONFIG)
        (config / "auth_hook.py").write_text("from identity_auth import user_auth\n")
        os.environ.pop("DATABASE_URL", None)  # LiteLLM would start Prisma, which cannot run here
        os.environ.update(
            CONFIG_FILE_PATH=str(config / "config.yaml"),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_WORKER_STARTUP_HOOKS="litellm_memory_patch:install",
            LITELLM_MEMORY_DATABASE_URL=small_url,
            LITELLM_MEMORY_POOL_MIN_SIZE=str(POOL_SIZE),
            LITELLM_MEMORY_POOL_MAX_SIZE=str(POOL_SIZE),
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(ROOT / "tests"), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")])
            ),
        )
        measured = asyncio.run(measure(args, small_url, large_url, folder))

        print("memory of the proxy process, with and without the patch", flush=True)
        rss = {"stock": [], "patched": []}
        for _ in range(args.rss_runs):
            for mode in ("stock", "patched"):
                rss[mode].append(measure_rss(mode == "patched", args.rss_requests))

        env = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "versions": versions(server_url),
            "minutes": (time.perf_counter() - run_started) / 60,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
        document, terminal = report(args, env, setup, measured, rss)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document)
    print("\n".join(terminal))
    print(f"written: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
