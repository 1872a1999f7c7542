"""The benchmark's report: docs/BENCHMARKS.md and the lines printed at the end of a run.

Everything here is arithmetic on what the run measured; the only fixed text is the description
of the method. A block between ``<!-- exposure:begin -->`` and ``<!-- exposure:end -->`` in the
document being replaced is carried over verbatim (another measurement writes it).
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
from importlib.metadata import version
from pathlib import Path

import psycopg
from psycopg import pq

from attribution import logged_medians, medians
from litellm_memory_patch import __version__
from litellm_memory_patch.config import PATCH_SCHEMA
from measurement import ms
from plans import SEQ_SCAN
from tracing import MIN_ROUND_TRIPS, first_request
from workload import CALLER_TEAMS, CONCURRENCY, LARGE_TEAMS, OP_NAMES, OPS, POOL_SIZE, ROWS_PER_TEAM, SIDES, SMALL_TEAMS

# (p50 ratio at most, throughput ratios at least) per authentication: through custom_auth, and
# through LiteLLM's own user_api_key_auth, as production requests are authenticated.
TARGETS = {"custom_auth": (1.08, 0.92), "litellm": (1.05, 0.95)}
P50_TARGET = TARGETS["custom_auth"][0]
SCALE_TARGET = 1.5

EXPOSURE = re.compile(r"^<!-- exposure:begin -->$.*?^<!-- exposure:end -->$", re.S | re.M)

# The attribution's rows: part name, a short name, what it is.
ATTRIBUTION_ROWS = (
    ("request", "whole request", "whole request (client side)"),
    ("outside", "outside the handler", "outside the handler: routing, middleware, LiteLLM's auth, serialization, client"),
    ("before_route", "before the route", "of which before the route: client, middleware, route matching"),
    ("dependencies", "dependencies", "of which the dependencies: LiteLLM's auth, scope, store, query and body validation"),
    ("serialization", "serialization", "of which the answer's validation and serialization by the response model"),
    ("route_rest", "the route's rest", "of which the route's rest: reading the body, sending the response, the header wrapper"),
    ("own", "handler's Python", "handler's own Python: checks, scope, building the statements, pool bookkeeping, answer"),
    ("render", "composing", "composing the message: psycopg rendering the statements to bytes"),
    ("pool_check", "pool check", "the pool's connection check (one empty-query round trip)"),
    ("exchange", "exchange", "sending the messages and waiting for the answers"),
    (
        "logged", "server",
        "of which the server, as it logs each message: parse, rewrite (where row-level security "
        "adds its policies), plan and execute every statement",
    ),
    ("server", "planning + execution", "of those, planning + execution of each statement (replayed)"),
    ("wire", "round trips and protocol", "the exchange's rest: round trips, protocol, psycopg's send and receive"),
    ("fetch", "reading rows", "reading the rows (psycopg)"),
)


WHAT_WOULD_CLOSE_IT = """
What would close it: the gap is server work that each guarantee costs, not round trips (both
sides make the same number). The start's check is what lets a request refuse to run on a
weakened database; a cheaper one needs a signal that the catalog changed that SQL cannot read
(the check reads the catalog rows themselves, one query). Row-level security plans its policies
into every statement; the policies already read the settings directly rather than through
functions the planner would parse again. Every request is now one message of one statement
after the start (a PUT or DELETE reads, authorises and writes in one; a list counts in its page's
statement), and the start's rendering is done once per caller. What is left is on the server,
measured piece by piece above: the check, and row-level security planning the policies into
each statement (the role switch's row).
"""


def verdict(ok: bool, ratio: float, target: float, higher_is_better: bool = False) -> str:
    if ok:
        return "PASS"
    miss = (target - ratio) if higher_is_better else (ratio - target)
    return f"MISS by {miss:.3f}"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}"


def kept_exposure(previous: Path) -> str | None:
    """The exposure block of the document being replaced, verbatim, if it has one."""
    if not previous.exists():
        return None
    found = EXPOSURE.search(previous.read_text())
    return found.group(0) if found else None


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


def versions(root: Path, server_url: str) -> dict[str, str]:
    with psycopg.connect(server_url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *arguments], capture_output=True, text=True, check=True
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


def ratios(seq: dict, conc: dict, op: str) -> tuple[float, float, float]:
    """p50 ratio, sequential and concurrent throughput ratios, patched over baseline."""
    b, p = seq[(op, "baseline")], seq[(op, "patched")]
    cb, cp = conc[(op, "baseline")], conc[(op, "patched")]
    return p.p(50) / b.p(50), p.throughput / b.throughput, cp.throughput / cb.throughput


# How the request's start begins, as the replayed statements are labelled (cut after 35
# characters, so the function's name is not whole).
START_CALL = f'SELECT "{PATCH_SCHEMA}".begin'


def start_and_rest(server: dict, op: str, allowed: float) -> str:
    """The patched request's start (its guard call) and the rest of its statements' extra time
    over the baseline's, against what the target allows."""
    patched = server[(op, "patched")]
    start = sum(seconds for (_, statement), seconds in patched.items() if START_CALL in statement)
    rest = sum(patched.values()) - start - sum(server[(op, "baseline")].values())
    enforcement = start + rest
    return (
        f"the request's start takes {us(start)} µs and its other statements take {us(rest)} µs "
        f"more than the baseline's, under row-level security (and, for writes, the ownership "
        f"trigger): {us(enforcement)} µs of planning and execution alone, "
        + ("within" if enforcement <= allowed else "over")
        + " the allowance"
    )


def main_table(add, seq_runs, conc_runs, seq, conc, authentication: str) -> list:
    """The comparison's table and its per-repeat noise; returns its target rows."""
    p50_target, throughput_target = TARGETS[authentication]
    targets = []
    add(
        "| operation | baseline p50 ms | patched p50 ms | p50 ratio | baseline p95 ms | "
        "patched p95 ms | seq. req/s base / patched | ratio | "
        f"{CONCURRENCY}-way req/s base / patched | ratio |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for op in OPS:
        b, p = seq[(op, "baseline")], seq[(op, "patched")]
        cb, cp = conc[(op, "baseline")], conc[(op, "patched")]
        ratio, tput, ctput = ratios(seq, conc, op)
        add(
            f"| {OP_NAMES[op]} | {ms(b.p(50))} | {ms(p.p(50))} | **{ratio:.3f}** | "
            f"{ms(b.p(95))} | {ms(p.p(95))} | {b.throughput:.0f} / {p.throughput:.0f} | "
            f"**{tput:.3f}** | {cb.throughput:.0f} / {cp.throughput:.0f} | **{ctput:.3f}** |"
        )
        targets += [
            (
                f"{authentication}, {OP_NAMES[op]}: p50 ratio ≤ {p50_target}", ratio,
                verdict(ratio <= p50_target, ratio, p50_target),
            ),
            (
                f"{authentication}, {OP_NAMES[op]}: sequential throughput ≥ {throughput_target} of baseline",
                tput, verdict(tput >= throughput_target, tput, throughput_target, True),
            ),
            (
                f"{authentication}, {OP_NAMES[op]}: {CONCURRENCY}-way throughput ≥ {throughput_target} of baseline",
                ctput, verdict(ctput >= throughput_target, ctput, throughput_target, True),
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
    add("Run-to-run noise: the same ratios in each repeat.\n")
    add(
        "| operation | p50 ratio per repeat | seq. throughput ratio per repeat | "
        f"{CONCURRENCY}-way throughput ratio per repeat |"
    )
    add("| --- | --- | --- | --- |")
    for op in OPS:
        each = [ratios(s, c, op) for s, c in zip(seq_runs, conc_runs)]
        add(
            f"| {OP_NAMES[op]} | "
            + " | ".join(" / ".join(f"{r[k]:.3f}" for r in each) for k in range(3))
            + " |"
        )
    add("")
    return targets


def report(args, env: dict, setup: dict, m: dict, rss: dict, exposure: str | None) -> tuple[str, list[str]]:
    """The Markdown document, and the lines printed to the terminal."""
    seq, conc, traces, rt = m["sequential"], m["concurrent"], m["traces"], m["rt_cost"]
    out, terminal, targets = [], [], []
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
    out.extend(f"| {k} | {v} |" for k, v in env["machine"].items())
    add("\n| software | version |\n| --- | --- |")
    out.extend(f"| {k} | {v} |" for k, v in env["versions"].items())

    placed = m["positions"]
    add("\n## What is measured\n")
    add(
        "Every request goes through LiteLLM's real proxy app in-process (its middleware, its "
        "`user_api_key_auth` dependency with a `custom_auth` hook that reads the caller from "
        "the key), over httpx's ASGI transport, so each latency includes the client and the "
        "whole app. The patch is activated by LiteLLM's startup hook, as in production.\n"
    )
    add(
        "**Patched**: the project's `/v1/memory` routes: each request starts with the store's "
        "guard call, which checks the database's protection, switches to `litellm_memory_app` "
        "and sets the caller's scope (transaction-local), sent in one message with the "
        "request's first statements, which then run under row-level security (the messages "
        "themselves, as counted on the wire, are shown under round trips below).\n"
    )
    add(
        "**Baseline**: LiteLLM's stock handlers need Prisma, which cannot run here, so the "
        "closest runnable stand-in is measured: routes mounted on the same app at "
        "`/bench/baseline/v1/memory` (by the benchmark only), behind the same "
        "`user_api_key_auth` dependency, on the same psycopg pool, running the store's own "
        "statements (the same visibility filter included) sent the same way, but with no "
        "start: no guard call (so no check, no role switch, no settings) and no `BEGIN`/"
        "`COMMIT` around a PUT. The pool logs in as the "
        "superuser, which skips row-level security although the table FORCEs it.\n"
    )
    add(
        "**Where the routes sit**: Starlette tries an app's routes in order. The patch puts its "
        f"routes first in LiteLLM's table (index {placed['patched position']} here, behind only "
        "the baseline's routes, which the benchmark mounts right before them); LiteLLM's own "
        f"memory routes stand at index {m['stock_index']} of {m['table_size']}. The baseline's four routes and the patched ones are thus both near "
        "the top: a patched request is tried against the four baseline routes first (a few "
        "microseconds, see the placement section), a baseline request against none. The gain "
        "from the placement itself is measured apart, below, and is not part of the ratios.\n"
    )
    add(
        f"Data: {setup['small_rows']:,} rows in {SMALL_TEAMS} teams ({ROWS_PER_TEAM} rows per "
        f"team) for the comparison; callers are {CALLER_TEAMS} of those teams, each updating "
        "its own rows. POST creates new keys. "
        f"The pool holds {POOL_SIZE} connections (`LITELLM_MEMORY_POOL_MIN_SIZE` = "
        f"`..._MAX_SIZE` = {POOL_SIZE}); the database is on a Unix socket unless said otherwise.\n"
    )
    add(
        f"Method: {args.warmup} warm-up requests per operation and side, then "
        f"{args.repeats} repeats of {args.requests // args.repeats} measured requests per "
        "operation and side, one at a time, the sides alternating every "
        f"{args.batch} requests so that noise on the shared machine hits both alike; then the "
        f"same with {CONCURRENCY} in flight, alternating every {CONCURRENCY * args.batch // 2}. "
        "The tables merge the repeats; each repeat's ratio is shown as the run-to-run noise. "
        "Sequential throughput is requests per second of summed latency; concurrent "
        "throughput is requests per second of wall time.\n"
    )

    add("## Patched against baseline, authenticated by custom_auth\n")
    targets += main_table(add, m["seq_runs"], m["conc_runs"], seq, conc, "custom_auth")
    add("## Patched against baseline, authenticated by LiteLLM's own auth\n")
    add(
        "The same measurement, in the same run, right after the one above, with requests "
        "authenticated as in production: LiteLLM's `user_api_key_auth` with no `custom_auth`, "
        "a master key set, each caller's virtual key, user and team served from LiteLLM's "
        "cache, where LiteLLM keeps them after a key's first request (see "
        "`benchmarks/realauth.py`).\n"
    )
    (real_seq_runs, real_seq), (real_conc_runs, real_conc) = m["real_auth"]
    targets += main_table(add, real_seq_runs, real_conc_runs, real_seq, real_conc, "litellm")

    add("\n## Where the patched request's extra time goes\n")
    add(
        f"An instrumented pass of {args.attribution_requests} requests per operation and side, "
        "interleaved like the main measurement, after it: clocks around psycopg's cursor "
        "(`execute`, `fetchall`) and around each endpoint function of both sides. Each row is "
        "the median of that part over the pass, in µs; medians of parts need not add up to the "
        "median of the whole. The server logged its own time for each message during the pass "
        "(one log line per message on both sides, which the exchange includes). Planning and "
        "execution per statement are timed apart, by replaying the messages of one request "
        f"per operation and side (captured off the cursor) {args.replays} times, statement by "
        "statement, as the request ran them (each under "
        "`EXPLAIN (ANALYZE, TIMING OFF)` in a rolled-back savepoint, then for real, in one "
        "transaction rolled back at the end); the medians of planning + execution are summed. "
        "`BEGIN` and `COMMIT` are not explainable: their cost is in the exchange.\n"
    )
    attribution = {key: medians(clocks) for key, clocks in m["clocks"].items()}
    for key, parts in attribution.items():
        parts["server"] = sum(m["server"][key].values())
    header = " | ".join(f"{OP_NAMES[op]} base / patched / extra" for op in OPS)
    add(f"| part (µs) | {header} |")
    add("| --- |" + " ---: |" * len(OPS))
    for name, _, label in ATTRIBUTION_ROWS:
        cells = []
        for op in OPS:
            b, p = attribution[(op, "baseline")][name], attribution[(op, "patched")][name]
            cells.append(f"{us(b)} / {us(p)} / **{us(p - b)}**")
        add(f"| {label} | " + " | ".join(cells) + " |")

    add("\nServer time per statement (median planning + execution, µs), as replayed:\n")
    add("| operation | side | statement | µs |")
    add("| --- | --- | --- | ---: |")
    for op in OPS:
        for side in SIDES:
            for (_, label), seconds in m["server"][(op, side)].items():
                add(f"| {OP_NAMES[op]} | {side} | `{label}` | {us(seconds)} |")

    add(
        "\nServer time per message as the server logged it during the instrumented pass "
        "(`log_min_duration_statement = 0`, on for that pass only; median, µs):\n"
    )
    add("| operation | side | message | µs |")
    add("| --- | --- | --- | ---: |")
    for op in OPS:
        for side in SIDES:
            for message, seconds in logged_medians(m["clocks"][(op, side)]).items():
                add(f"| {OP_NAMES[op]} | {side} | `{message}` | {us(seconds)} |")

    add("\n## What the request's start costs, piece by piece\n")
    g = m["guard"]
    check = g["guard"] - g["and the lock"]
    get_p50 = seq[("get", "patched")].p(50)
    add(
        "Every patched request starts with `begin_request()`: the settings, the switch to the "
        "restricted role, the table's lock, then the check of the database's protection. Timed "
        f"at the store's level, on one connection as the proxy's login role, {args.guard_requests} "
        "messages of each kind interleaved in batches of 20, each a start then the patch's GET "
        "statement for a seeded key; each start is one plpgsql call that adds one piece to the "
        "one before (see `benchmarks/guard.py`). A piece's cost is the difference to the row "
        "above; the role switch's includes row-level security on the statement.\n"
    )
    add("| message | p50 µs | the piece | µs |")
    add("| --- | ---: | --- | ---: |")
    pieces = {
        "plain": "",
        "empty call": "calling a plpgsql function",
        "settings": "the settings (search_path, timeouts, the caller's three)",
        "settings and role switch": "the role switch, and row-level security on the statement",
        "and the lock": "the table's ACCESS SHARE lock",
        "guard": "the check",
    }
    previous = None
    for name, piece in pieces.items():
        cost = "" if previous is None else us(g[name] - g[previous])
        add(f"| {name} | {us(g[name])} | {piece} | {cost} |")
        previous = name
    add(
        f"\nThe whole start: **{us(g['guard'] - g['plain'])} µs** over the plain statement; the "
        f"check itself **{us(check)} µs** per request, {check / get_p50:.1%} of the patched GET's "
        f"p50 through the app in this run ({ms(get_p50)} ms).\n"
    )
    targets.append(
        (
            "the per-request check: under 2% of a GET's p50", check / get_p50,
            verdict(check / get_p50 < 0.02, check / get_p50, 0.02),
        )
    )

    add("\n## Database round trips per request\n")
    add(
        "Counted, not estimated: libpq's protocol trace (`PQtrace`) was switched on for every "
        f"connection of the pool while {args.trace_requests} requests per operation and side "
        "ran one at a time, after the warm-up; a round trip is a `ReadyForQuery` message from "
        "the server (one per simple `Query` or extended-protocol `Sync` the client sends). The "
        "pool's connection check (an empty query on every check-out, psycopg_pool's "
        "`check_connection`, configured by the store) is counted apart; it costs both sides "
        "the same. Messages sent: the simple `Query` messages (checks excluded) and "
        "extended-protocol `Execute`s; one `Query` may carry several statements.\n"
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
        f"\nOne empty-query round trip costs {us(rt)} µs here (psycopg's own work included; "
        "Unix socket, measured with 2,000 of them).\n"
    )
    add("| operation | patched round trips | fewest possible | extra round trips vs baseline | their cost µs |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for op in OPS:
        tp, tb = traces[(op, "patched")], traces[(op, "baseline")]
        patched_rt = (tp.round_trips - tp.pool_checks) / n
        extra = patched_rt - (tb.round_trips - tb.pool_checks) / n
        add(f"| {OP_NAMES[op]} | {patched_rt:.2f} | {MIN_ROUND_TRIPS[op] - 1} | {extra:.2f} | {extra * rt * 1e6:.0f} |")
    add(
        "\n\"Fewest possible\" counts everything that does not wait on an earlier answer sent "
        "together (pool check excluded); PUT must read the row first, because its id and owner "
        "decide the update.\n"
    )

    add("## Where the route sits in LiteLLM's table\n")
    trivial = m["trivial"]
    first, last = trivial[("get", "first")], trivial[("get", "last")]
    add(
        f"LiteLLM's app has {m['table_size']} entries in its route table and Starlette tries "
        "them in order. A trivial route (no dependency, an empty answer) added first in the "
        f"table and the same route added last, {args.placement_requests} requests each, "
        "interleaved:\n"
    )
    add("| trivial route | p50 ms | p95 ms |\n| --- | ---: | ---: |")
    add(f"| first | {ms(first.p(50))} | {ms(first.p(95))} |")
    add(f"| last | {ms(last.p(50))} | {ms(last.p(95))} |")
    per_route = (last.p(50) - first.p(50)) / max(m["table_size"], 1)
    add(
        f"\nLast costs {ms(last.p(50) - first.p(50))} ms more at the median: about "
        f"{per_route * 1e6:.2f} µs per route tried.\n"
    )
    add(
        "The patched routes where the patch now puts them (index "
        f"{placed['patched position']}) against the same routes moved back to where LiteLLM's "
        f"stock memory routes stand (index {placed['stock position']} of the table as it is "
        "during the run, with the benchmark's routes at the top), "
        f"{m['moved_requests']} requests each, interleaved. This gain is the placement's "
        "alone: the enforcement ratios above compare both sides at the top of the table.\n"
    )
    add("| operation | at the stock position p50 ms | first p50 ms | gain ms | gain |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for op in OPS:
        stock, top = m["moved"][(op, "stock position")], m["moved"][(op, "patched position")]
        gain = stock.p(50) - top.p(50)
        add(f"| {OP_NAMES[op]} | {ms(stock.p(50))} | {ms(top.p(50))} | **{ms(gain)}** | {gain / stock.p(50):.1%} |")

    if m["remote"]:
        remote = m["remote"]
        add("\n## The database over TCP\n")
        add(
            "The same comparison with the pool connecting over TCP to 127.0.0.1 (the same server, "
            "listening on loopback too), and through a relay on 127.0.0.1 that holds every "
            f"chunk {args.relay_delay_us} µs before forwarding it, either way: this kernel has "
            "no `netem` queueing discipline, so the latency is added in user space, by a "
            "separate process. The relay with no delay shows its own cost. "
            f"{args.remote_requests} requests per operation and side, sequential and "
            f"{CONCURRENCY}-way, interleaved, after {args.warmup // 4} warm-up requests.\n"
        )
        add("| connection | empty-query round trip µs |\n| --- | ---: |")
        add(f"| Unix socket | {us(rt)} |")
        for name, seconds in remote["round_trips"]:
            add(f"| {name} | {us(seconds)} |")
        add("\n| connection | operation | baseline p50 ms | patched p50 ms | p50 ratio | seq. throughput ratio | 8-way throughput ratio |")
        add("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for name, rseq, rconc in remote["runs"]:
            for op in OPS:
                ratio, tput, ctput = ratios(rseq, rconc, op)
                add(
                    f"| {name} | {OP_NAMES[op]} | {ms(rseq[(op, 'baseline')].p(50))} | "
                    f"{ms(rseq[(op, 'patched')].p(50))} | **{ratio:.3f}** | **{tput:.3f}** | **{ctput:.3f}** |"
                )

    if m["scale"]:
        add("\n## 1,000,000 rows against 10,000\n")
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
            "The messages of one patched request per operation, captured as the store sent them "
            "to the large database, replayed statement by statement as above, each explained "
            "with `EXPLAIN (ANALYZE, BUFFERS)` (caller: a member of one of the caller teams).\n"
        )
        seq_scans = 0
        for op, text, plan in m["plans"]:
            seq_scans += SEQ_SCAN in plan
            add(f"**{OP_NAMES[op]}** — `{text}`\n")
            add("```\n" + plan + "\n```\n")
        targets.append(
            ("no Seq Scan on the memory table in any plan", seq_scans, "PASS" if not seq_scans else f"MISS: {seq_scans} plans")
        )

    if rss["stock"]:
        add("\n## Memory\n")
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

    if exposure:
        add(exposure + "\n")

    add("\n## Targets\n")
    add("| target | measured | result |\n| --- | ---: | --- |")
    for name, value, result in targets:
        add(f"| {name} | {value:.3f} | {result} |" if isinstance(value, float) else f"| {name} | {value} | {result} |")

    add("\n## Where the gap comes from\n")
    add(
        f"Per operation, the p50 gap of the custom_auth run against what its {P50_TARGET} "
        f"target allows ({P50_TARGET - 1:.0%} of the baseline's p50), and the largest parts of the patched request's extra "
        "time in the instrumented pass (µs; a negative part is time the patched side spends "
        "less):\n"
    )
    for op in OPS:
        gap = seq[(op, "patched")].p(50) - seq[(op, "baseline")].p(50)
        allowed = (P50_TARGET - 1) * seq[(op, "baseline")].p(50)
        extra = {
            name: attribution[(op, "patched")][name] - attribution[(op, "baseline")][name]
            for name, _, _ in ATTRIBUTION_ROWS
            if name not in ("request", "outside", "exchange", "server")
        }
        largest = sorted(extra.items(), key=lambda item: -abs(item[1]))[:3]
        labels = {name: short for name, short, _ in ATTRIBUTION_ROWS}
        add(
            f"- {OP_NAMES[op]}: {us(gap)} µs at p50 (ratio {seq[(op, 'patched')].p(50) / seq[(op, 'baseline')].p(50):.3f}, "
            f"{us(allowed)} µs allowed); "
            + "; ".join(f"{labels[name]} {us(value)}" for name, value in largest)
            + f". On the server, {start_and_rest(m['server'], op, allowed)}."
        )
    add(WHAT_WOULD_CLOSE_IT)

    terminal.append(f"{'target':<62} {'measured':>9}  result")
    for name, value, result in targets:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        terminal.append(f"{name:<62} {shown:>9}  {result}")
    return "\n".join(out), terminal
