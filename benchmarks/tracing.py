"""Round trips per request, counted from libpq's protocol trace of the pool's connections.

A round trip is a ``ReadyForQuery`` message from the server: one per simple ``Query`` or
extended-protocol ``Sync`` the client sent. The pool's connection check (an empty query on
every check-out) is counted apart.
"""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import pq

from workload import POOL_SIZE, send

# Round trips each operation needs at least, if everything that does not wait on an earlier
# answer were sent together: the pool check, then one exchange; PUT must read the row (its id
# and owner decide the write) before it updates.
MIN_ROUND_TRIPS = {"get": 2, "list": 2, "put": 3, "post": 2}


@dataclass
class Trace:
    round_trips: int = 0  # ReadyForQuery messages: one per Query or Sync the client sent
    pool_checks: int = 0  # the pool's empty-query connection check
    statements: int = 0  # simple Query messages (checks excluded) plus extended Execute messages
    sequence: list[str] = field(default_factory=list)  # the first request's messages, in order


def short(statement: str) -> str:
    words = " ".join(statement.split())
    return words if len(words) <= 36 else words[:35] + "…"


def read_trace(path: Path) -> Trace:
    """Tally one connection's trace."""
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
        elif sent and kind == "Parse" and len(trace.sequence) < 40:
            # The extended protocol: the statement's text is in the message.
            _, _, text = detail.partition('" "')
            trace.sequence.append(short(text.rsplit('"', 1)[0]))
    return trace


async def count_round_trips(client, pool, op: str, side: str, requests: int, folder: Path) -> Trace:
    """Trace every connection of ``pool`` while ``requests`` requests run one at a time."""
    paths = {}  # by server process id: the same connections come back
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(pool.connection()) for _ in range(POOL_SIZE)]
        for conn in conns:
            path = paths[conn.info.backend_pid] = folder / f"trace-{side}-{op}-{conn.info.backend_pid}.txt"
            # libpq owns the descriptor from here on (it fdopen()s it and never closes it).
            conn.pgconn.trace(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
    for i in range(requests):
        await send(client, side, op, i)
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(pool.connection()) for _ in range(POOL_SIZE)]
        for conn in conns:
            conn.pgconn.untrace()
    total = Trace()
    for path in paths.values():
        part = read_trace(path)
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


async def round_trip_cost(conninfo: str, n: int = 2000) -> float:
    """Seconds for one empty-query round trip on a connection (psycopg's own work included)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("")  # the first exchange pays for the connection's warm-up
        start = time.perf_counter()
        for _ in range(n):
            await conn.execute("")
        return (time.perf_counter() - start) / n
