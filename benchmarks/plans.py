"""The server's share of a request: its captured messages replayed statement by statement.

A request's messages (as ``attribution.capture`` recorded them off the cursor) are split into
their statements and replayed on a connection of the pool's own login role, in one transaction
that is rolled back at the end. Each statement runs first under ``EXPLAIN (ANALYZE ...)`` in a
savepoint that is rolled back, then for real, so that every later statement runs as the
request's did: as the role, with the settings and the locks its first statement set.
``BEGIN`` and ``COMMIT`` are left out: the replay's own transaction stands in for them.
"""

from __future__ import annotations

import statistics

import psycopg

from tracing import short

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START")
SEQ_SCAN = 'Seq Scan on "LiteLLM_MemoryTable"'


def statements(message: str) -> list[str]:
    """The statements of a simple-protocol message: split at ``;`` outside quotes."""
    parts, start, quote = [], 0, None
    for position, char in enumerate(message):
        if quote:
            if char == quote:
                quote = None  # a doubled quote closes and reopens: the same result
        elif char in "'\"":
            quote = char
        elif char == ";":
            parts.append(message[start:position])
            start = position + 1
    parts.append(message[start:])
    return [part.strip() for part in parts if part.strip()]


def replayed(messages: list[str]) -> list[str]:
    return [
        statement
        for message in messages
        for statement in statements(message)
        if not statement.upper().startswith(TRANSACTION_CONTROL)
    ]


async def explain(conn: psycopg.AsyncConnection, messages: list[str], options: str) -> list[tuple[str, object]]:
    """Each statement of the request and its ``EXPLAIN (options)`` output (rows of one column)."""
    explained = []
    async with conn.transaction(force_rollback=True):
        for statement in replayed(messages):
            async with conn.transaction(force_rollback=True):
                cur = await conn.execute(f"EXPLAIN ({options}) {statement}".encode())
                explained.append((statement, [row[0] for row in await cur.fetchall()]))
            await conn.execute(statement.encode())
    return explained


async def server_times(conninfo: str, requests: dict, repeats: int) -> dict:
    """Per request (``requests``: key -> messages), each statement's median server time in
    seconds (planning plus execution), over ``repeats`` replays, the requests alternating."""
    times: dict = {key: {} for key in requests}
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for _ in range(repeats):
            for key, messages in requests.items():
                for number, (statement, (plan,)) in enumerate(
                    await explain(conn, messages, "ANALYZE, TIMING OFF, FORMAT JSON")
                ):
                    (top,) = plan
                    spent = (top["Planning Time"] + top["Execution Time"]) / 1000
                    times[key].setdefault((number, short(statement)), []).append(spent)
    return {
        key: {label: statistics.median(values) for label, values in found.items()}
        for key, found in times.items()
    }


async def plans(conninfo: str, requests: dict) -> list[tuple[object, str, str]]:
    """(key, statement, plan text) for every statement of each request, with buffers; each
    request is replayed once before, so that the plans show a warm connection, as a pooled
    one is (a new connection first reads the catalog)."""
    found = []
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for key, messages in requests.items():
            await explain(conn, messages, "ANALYZE, BUFFERS")
            for statement, lines in await explain(conn, messages, "ANALYZE, BUFFERS"):
                found.append((key, statement, "\n".join(lines)))
    return found
