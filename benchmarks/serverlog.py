"""The server's own time per message: PostgreSQL's statement log while requests run.

With ``log_min_duration_statement = 0`` the server logs, for every simple-protocol message,
the time from receiving it to finishing its last statement: parsing, rewriting (where
row-level security adds its policies), planning and executing every statement of the message.
The line is written before the server answers, so once a request is answered its messages are
in the log. The setting is switched on for the whole server only while :func:`logging_every_message`
lasts, since writing the log costs time too (one line per message, on both sides alike).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import psycopg

from tracing import short

DURATION = re.compile(r"LOG:  duration: ([0-9.]+) ms  statement: (.*)$")


def _set(conninfo: str, statement: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statement)
        # Every session reads the new setting before its next message.
        conn.execute("SELECT pg_reload_conf()")


@contextlib.contextmanager
def logging_every_message(conninfo: str):
    _set(conninfo, "ALTER SYSTEM SET log_min_duration_statement = 0")
    try:
        yield
    finally:
        _set(conninfo, "ALTER SYSTEM RESET log_min_duration_statement")


def logged_since(log: Path, offset: int) -> list[tuple[str, float]]:
    """(message, shortened; seconds) of every message logged after ``offset``, in order."""
    found = []
    with log.open(errors="replace") as lines:
        lines.seek(offset)
        for line in lines:
            if (match := DURATION.search(line)) and match.group(2).strip():
                found.append((short(match.group(2)), float(match.group(1)) / 1000))
    return found
