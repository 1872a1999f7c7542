"""The server's own time per message: PostgreSQL's statement log while requests run.

With ``log_min_duration_statement = 0`` the server logs, for every simple-protocol message,
the time from receiving it to finishing its last statement: parsing, rewriting (where
row-level security adds its policies), planning and executing every statement of the message.
The setting is switched on for the whole server only while this pass runs, since writing the
log costs time too; every session reads it before its next message.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import psycopg

from tracing import short
from workload import SIDES, send

DURATION = re.compile(r"LOG:  duration: ([0-9.]+) ms  statement: (.*)$")


def _log_every_statement(conninfo: str, on: bool) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if on:
            conn.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
        else:
            conn.execute("ALTER SYSTEM RESET log_min_duration_statement")
        conn.execute("SELECT pg_reload_conf()")


def _logged(log: Path, offset: int) -> dict[str, list[float]]:
    """Seconds per message, by message (shortened), logged since ``offset``."""
    found: dict[str, list[float]] = {}
    with log.open(errors="replace") as lines:
        lines.seek(offset)
        for line in lines:
            if (match := DURATION.search(line)) and match.group(2).strip():
                found.setdefault(short(match.group(2)), []).append(float(match.group(1)) / 1000)
    return found


async def server_time(client, conninfo: str, log: Path, ops, requests: int) -> dict:
    """Per op and side: the medians of each message's logged time, in seconds, by message."""
    times: dict = {(op, side): {} for op in ops for side in SIDES}
    _log_every_statement(conninfo, True)
    try:
        for op in ops:
            for half in (0, 1):  # the sides in both orders
                for side in SIDES if half == 0 else reversed(SIDES):
                    offset = log.stat().st_size
                    for i in range(requests // 2):
                        await send(client, side, op, i)
                    for message, seconds in _logged(log, offset).items():
                        times[(op, side)].setdefault(message, []).extend(seconds)
    finally:
        _log_every_statement(conninfo, False)
    return {
        key: {message: statistics.median(values) for message, values in found.items()}
        for key, found in times.items()
    }
