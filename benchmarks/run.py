"""Benchmark: the patched /v1/memory routes against a plain baseline, through LiteLLM's real app.

Run from the project's virtualenv: ``python benchmarks/run.py``. It starts a private PostgreSQL
in a temporary folder (on its Unix socket and on 127.0.0.1), applies LiteLLM's schema and this
project's migrations, seeds the memory table, imports LiteLLM's proxy app in-process with the
patch activated by its startup hook, and mounts the baseline routes of ``baseline.py`` beside
it. It then measures, prints the targets and writes ``docs/BENCHMARKS.md``:

- latency (p50, p95) and throughput, sequential and 8 at a time, for GET by key, list page 1,
  PUT (update) and POST, patched against baseline, interleaved, in repeats (``measurement``);
- where the patched request's extra time goes (``attribution``, ``plans``, ``serverlog``);
- what the per-request check of the database's protection costs (``guard``);
- database round trips per request, from libpq's protocol trace (``tracing``);
- what a route's place in LiteLLM's table costs (``placement``);
- the same comparison over TCP, and with latency added on loopback (``remote``);
- GET and list at 1,000,000 rows against 10,000 rows, and the plans of the patched statements;
- the resident memory the patch adds to the proxy process.

The slow parts can be shortened or left out (``--help``). Nothing here is a test: the targets
are printed as PASS/MISS, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the custom_auth hook the test suite uses
# Importing LiteLLM (the modules below do) fetches its model cost map from the network unless
# told to use the copy it ships.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import attribution  # noqa: E402
import guard  # noqa: E402
import measurement  # noqa: E402
import placement  # noqa: E402
import plans  # noqa: E402
import realauth  # noqa: E402
import remote  # noqa: E402
import report  # noqa: E402
import tracing  # noqa: E402
from workload import (  # noqa: E402
    CONCURRENCY,
    LARGE_TEAMS,
    LITELLM_CONFIG,
    OPS,
    POOL_SIZE,
    SIDES,
    SMALL_TEAMS,
    prepare_database,
    url_for,
)


async def open_store(url: str):
    from litellm_memory_patch.config import load_settings
    from litellm_memory_patch.store import MemoryStore

    store = MemoryStore(load_settings(url))
    await store.open()
    if problem := await store.readiness_problem():
        raise RuntimeError(problem)
    return store


async def compare(client, args, n: int, warmup: int, *, repeats: int):
    """Both sides, sequential then concurrent, after a warm-up: (runs, merged) of each."""
    await measurement.interleaved_sequential(client, OPS, SIDES, warmup, args.batch)
    per_repeat = n // repeats
    sequential = await measurement.repeated(
        repeats,
        lambda: measurement.interleaved_sequential(client, OPS, SIDES, per_repeat, args.batch),
    )
    concurrent = await measurement.repeated(
        repeats,
        lambda: measurement.interleaved_concurrent(
            client, OPS, per_repeat, batch=CONCURRENCY * args.batch // 2
        ),
    )
    return sequential, concurrent


async def over_tcp(client, app, args, tcp_url: str) -> dict:
    """The comparison over TCP to 127.0.0.1, directly and through the delaying relay."""
    home = app.state.litellm_memory_store
    found = {"round_trips": [], "runs": []}
    small = url_for(tcp_url, "bench_small")
    with remote.Relay(tcp_url, delay_us=0) as plain, remote.Relay(tcp_url, delay_us=args.relay_delay_us) as slow:
        found["round_trips"] = [
            ("TCP, 127.0.0.1", await tracing.round_trip_cost(small)),
            ("TCP through the relay, no delay", await tracing.round_trip_cost(plain.url("bench_small"))),
            (
                f"TCP through the relay, {args.relay_delay_us} µs each way",
                await tracing.round_trip_cost(slow.url("bench_small"), n=500),
            ),
        ]
        for name, url in (
            ("TCP", small),
            (f"TCP + {args.relay_delay_us} µs each way", slow.url("bench_small")),
        ):
            store = app.state.litellm_memory_store = await open_store(url)
            try:
                (_, seq), (_, conc) = await compare(
                    client, args, args.remote_requests, args.warmup // 4, repeats=1
                )
            finally:
                app.state.litellm_memory_store = home
                await store.close()
            found["runs"].append((name, seq, conc))
    return found


async def measure(
    args, small_url: str, large_url: str | None, tcp_url: str, server_log: Path, folder: Path
) -> dict:
    import httpx
    from asgi_lifespan import LifespanManager

    import baseline

    started = time.perf_counter()
    import litellm.proxy.proxy_server as proxy_server

    app = proxy_server.app
    print(f"LiteLLM proxy imported in {time.perf_counter() - started:.1f} s", flush=True)
    stock_index, successor = placement.stock_place(app)  # before the patch swaps the routes
    m: dict = {"table_size": len(app.router.routes), "stock_index": stock_index}
    async with LifespanManager(app, startup_timeout=120) as manager:
        store = app.state.litellm_memory_store
        if store is None or (problem := await store.readiness_problem()):
            raise RuntimeError(f"the patch is not serving: {store and problem}")
        baseline.mount(app)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            print("warming up, counting round trips", flush=True)
            await measurement.interleaved_sequential(client, OPS, SIDES, args.warmup, args.batch)
            m["rt_cost"] = await tracing.round_trip_cost(small_url)
            m["traces"] = {
                (op, side): await tracing.count_round_trips(
                    client, store._pool, op, side, args.trace_requests, folder
                )
                for op in OPS
                for side in SIDES
            }
            print("patched against baseline, sequential and concurrent", flush=True)
            (m["seq_runs"], m["sequential"]), (m["conc_runs"], m["concurrent"]) = await compare(
                client, args, args.requests, 0, repeats=args.repeats
            )
            print("the same through LiteLLM's own authentication", flush=True)
            async with realauth.litellm_auth():
                await measurement.interleaved_sequential(client, OPS, SIDES, args.warmup, args.batch)
                m["real_auth"] = await compare(client, args, args.requests, 0, repeats=args.repeats)

            print("where the time goes", flush=True)
            m["clocks"] = await attribution.attribution_pass(
                client, app, OPS, args.attribution_requests, args.batch,
                conninfo=small_url, log=server_log,
            )
            captured = {
                (op, side): await attribution.capture(client, app, op, side, 7, conninfo=small_url)
                for op in OPS
                for side in SIDES
            }
            m["server"] = await plans.server_times(small_url, captured, args.replays)
            print("what the per-request check costs", flush=True)
            m["guard"] = guard.check_cost(small_url, n=args.guard_requests)

            print("route placement", flush=True)
            m["trivial"] = await placement.trivial_first_and_last(
                client, app, args.placement_requests, args.batch
            )
            m["moved_requests"] = args.placement_requests // 2
            m["moved"], m["positions"] = await placement.memory_routes_moved(
                client, app, successor, m["moved_requests"], args.batch, args.warmup // 4
            )

            m["remote"] = None
            if args.remote_requests:
                print("over TCP, and with latency added", flush=True)
                m["remote"] = await over_tcp(client, app, args, tcp_url)

            m["scale"] = m["plans"] = None
            if large_url:
                print("1,000,000 rows against 10,000", flush=True)
                large = await open_store(large_url)
                stores = {"10,000 rows": store, "1,000,000 rows": large}

                def use(size: str) -> str:
                    app.state.litellm_memory_store = stores[size]
                    return "patched"

                m["sizes"] = sizes = tuple(stores)
                scale_ops = ("get", "list")
                await measurement.interleaved_sequential(client, scale_ops, sizes, args.warmup, args.batch, use)
                m["scale"] = await measurement.interleaved_sequential(
                    client, scale_ops, sizes, args.scale_requests, args.batch, use
                )
                use("1,000,000 rows")
                try:
                    requests = {
                        op: await attribution.capture(client, app, op, "patched", 7, conninfo=large_url)
                        for op in OPS
                    }
                finally:
                    use("10,000 rows")
                    await large.close()
                m["plans"] = await plans.plans(large_url, requests)
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per op and side")
    parser.add_argument("--repeats", type=int, default=2, help="the measured requests in this many repeats")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch", type=int, default=20, help="requests per side before switching")
    parser.add_argument("--trace-requests", type=int, default=50)
    parser.add_argument("--attribution-requests", type=int, default=300)
    parser.add_argument("--replays", type=int, default=50, help="replays of each request's statements")
    parser.add_argument(
        "--guard-requests", type=int, default=2000, help="messages of each kind timing the check"
    )
    parser.add_argument("--placement-requests", type=int, default=600)
    parser.add_argument(
        "--remote-requests", type=int, default=320, help="per op and side over TCP; 0 leaves TCP out"
    )
    parser.add_argument("--relay-delay-us", type=int, default=500, help="latency added each way")
    parser.add_argument(
        "--scale-requests", type=int, default=1000,
        help="per op and size at 1,000,000 rows; 0 leaves the large database out (seeding takes about 35 s)",
    )
    parser.add_argument("--rss-requests", type=int, default=100)
    parser.add_argument("--rss-runs", type=int, default=2, help="0 leaves the memory probes out")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--rss-probe", choices=("stock", "patched"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_probe:
        asyncio.run(measurement.rss_probe(args.rss_probe == "patched", args.rss_requests))
        return
    run_started, load_before = time.perf_counter(), os.getloadavg()[0]

    with (
        tempfile.TemporaryDirectory(prefix="litellm-memory-bench-", ignore_cleanup_errors=True) as tmp,
        remote.server_on_loopback(Path(tmp) / "pgdata") as (server_url, tcp_url, server_log),
    ):
        folder = Path(tmp)
        print("seeding the databases", flush=True)
        small_url = prepare_database(server_url, "bench_small", SMALL_TEAMS)
        setup = {"seed_seconds": 0.0}
        large_url = None
        if args.scale_requests:
            started = time.perf_counter()
            large_url = prepare_database(server_url, "bench_large", LARGE_TEAMS)
            setup["seed_seconds"] = time.perf_counter() - started
        for name, url in (("small", small_url), ("large", large_url)):
            if url:
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
        measured = asyncio.run(measure(args, small_url, large_url, tcp_url, server_log, folder))

        rss = {"stock": [], "patched": []}
        if args.rss_runs:
            print("memory of the proxy process, with and without the patch", flush=True)
        for _ in range(args.rss_runs):
            for mode in ("stock", "patched"):
                rss[mode].append(measurement.measure_rss(Path(__file__), mode == "patched", args.rss_requests))

        env = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": report.machine(),
            "versions": report.versions(ROOT, server_url),
            "minutes": (time.perf_counter() - run_started) / 60,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
        document, terminal = report.report(
            args, env, setup, measured, rss, report.kept_exposure(args.output)
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document)
    print("\n".join(terminal))
    print(f"written: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
