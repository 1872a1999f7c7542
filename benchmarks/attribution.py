"""Where each request's time goes, patched against baseline: an instrumented pass through the app.

For the pass only, clocks wrap psycopg's ``AsyncCursor.execute`` and ``fetchall`` and every
/v1/memory endpoint function of both sides, so each request yields, from the same run:

- ``request``: the whole request, seen by the client;
- ``outside``: everything outside the endpoint function (routing, middleware, LiteLLM's auth,
  the response's serialization, the client), the request minus the endpoint, split into:

  - ``before_route``: the client, the middleware and the route matching, up to the memory
    route's ``handle()`` (the request minus the time inside it);
  - ``dependencies``: FastAPI solving the route's dependencies: LiteLLM's auth, the caller's
    scope, the store, and validating the query parameters and the body;
  - ``serialization``: FastAPI validating and serializing the answer by the response model;
  - ``route_rest``: the rest inside ``handle()``: reading the body, building and sending the
    response, and the patched side's header wrapper;
- ``pool_check``: the pool's connection check (an empty query on every check-out);
- ``render``: composing the message: psycopg rendering the statements to the bytes it sends;
- ``exchange``: sending each message and waiting for its answer (the server's work inside);
- ``logged``: the server's own time for the request's messages, from its statement log
  (``serverlog``), read after each request;
- ``wire``: the exchange less the logged server time (round trips, protocol, psycopg);
- ``fetch``: psycopg reading the answer's rows;
- ``own``: the handler's own Python, the endpoint minus the four parts above (checks, scope,
  building the statements, the pool's bookkeeping, building the answer).

The messages each request sent are kept too: ``plans.py`` replays them to time the server's
share of the exchange statement by statement.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import fastapi.routing
import psycopg
from psycopg import sql

import serverlog
from measurement import interleaved_sequential
from workload import PREFIX, SIDES, send

PARTS = (
    "request", "outside", "before_route", "dependencies", "serialization", "route_rest", "own",
    "pool_check", "render", "exchange", "logged", "wire", "fetch",
)


@dataclass
class Clock:
    """One request's parts, in seconds, and the messages it sent."""

    parts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    messages: list[str] = field(default_factory=list)
    logged: list[tuple[str, float]] = field(default_factory=list)  # (message, seconds)

    def derive(self) -> None:
        database = sum(self.parts[name] for name in ("pool_check", "render", "exchange", "fetch"))
        self.parts["outside"] = self.parts["request"] - self.parts["endpoint"]
        self.parts["before_route"] = self.parts["request"] - self.parts["route"]
        self.parts["route_rest"] = self.parts["route"] - sum(
            self.parts[name] for name in ("dependencies", "endpoint", "serialization")
        )
        self.parts["own"] = self.parts["endpoint"] - database
        self.parts["wire"] = self.parts["exchange"] - self.parts["logged"]


_current: Clock | None = None  # the request being timed (the pass runs one at a time)


def _memory_routes(app):
    paths = tuple(PREFIX[side] + "/v1/memory" for side in SIDES)
    return [route for route in app.router.routes if getattr(route, "path", "").startswith(paths)]


@contextlib.contextmanager
def probes(app):
    """The clocks in place: psycopg's cursor and the memory endpoints of both sides."""
    execute, fetchall = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.fetchall

    async def timed_execute(self, query, params=None, **kwargs):
        clock = _current
        if clock is None:
            return await execute(self, query, params, **kwargs)
        start = time.perf_counter()
        data = query.as_bytes(self) if isinstance(query, sql.Composable) else query
        data = data.encode() if isinstance(data, str) else data
        rendered = time.perf_counter()
        try:
            return await execute(self, data, params, **kwargs)
        finally:
            done = time.perf_counter()
            if data:
                clock.parts["render"] += rendered - start
                clock.parts["exchange"] += done - rendered
                clock.messages.append(data.decode())
            else:
                clock.parts["pool_check"] += done - start

    async def timed_fetchall(self):
        start = time.perf_counter()
        try:
            return await fetchall(self)
        finally:
            if _current is not None:
                _current.parts["fetch"] += time.perf_counter() - start

    def timed(part: str, call):
        @functools.wraps(call)
        async def timed_call(*args, **values):
            start = time.perf_counter()
            try:
                return await call(*args, **values)
            finally:
                if _current is not None:
                    _current.parts[part] += time.perf_counter() - start

        return timed_call

    routes = _memory_routes(app)
    calls = [route.dependant.call for route in routes]
    # FastAPI's request handler calls these two by the names it imported.
    solve, serialize = fastapi.routing.solve_dependencies, fastapi.routing.serialize_response
    psycopg.AsyncCursor.execute, psycopg.AsyncCursor.fetchall = timed_execute, timed_fetchall
    fastapi.routing.solve_dependencies = timed("dependencies", solve)
    fastapi.routing.serialize_response = timed("serialization", serialize)
    for route, call in zip(routes, calls):
        route.dependant.call = timed("endpoint", call)
        route.handle = timed("route", route.handle)  # an instance attribute: the router calls it
    try:
        yield
    finally:
        psycopg.AsyncCursor.execute, psycopg.AsyncCursor.fetchall = execute, fetchall
        fastapi.routing.solve_dependencies, fastapi.routing.serialize_response = solve, serialize
        for route, call in zip(routes, calls):
            route.dependant.call = call
            del route.handle


@contextlib.contextmanager
def clocked(into: list[Clock], log: Path | None = None):
    """Time one request into a new :class:`Clock` appended to ``into``; with the server's
    ``log``, what it logged for the request's messages too."""
    global _current
    clock = _current = Clock()
    offset = log.stat().st_size if log else 0
    start = time.perf_counter()
    try:
        yield clock
    finally:
        clock.parts["request"] = time.perf_counter() - start
        _current = None
        if log:
            clock.logged = serverlog.logged_since(log, offset)
            clock.parts["logged"] = sum(seconds for _, seconds in clock.logged)
        clock.derive()
        into.append(clock)


async def attribution_pass(
    client, app, ops, n: int, batch: int, *, conninfo: str, log: Path
) -> dict[tuple[str, str], list[Clock]]:
    """``n`` clocked requests per op and side, interleaved as the main measurement is, with
    the server logging every message (of ``conninfo``'s server, into ``log``)."""
    clocks: dict[tuple[str, str], list[Clock]] = {(op, side): [] for op in ops for side in SIDES}
    with probes(app), serverlog.logging_every_message(conninfo):
        await interleaved_sequential(
            client, ops, SIDES, n, batch, timed=lambda op, side: clocked(clocks[(op, side)], log)
        )
    return clocks


async def capture(client, app, op: str, side: str, i: int, *, conninfo: str) -> list[str]:
    """The messages request ``i`` of ``op`` sent. A row it created is removed again (as the
    superuser of ``conninfo``) so that a replay of its INSERT inserts."""
    clocks: list[Clock] = []
    with probes(app), clocked(clocks):
        response = await send(client, side, op, i)
    if op == "post":
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(
                'DELETE FROM "LiteLLM_MemoryTable" WHERE key = %s', (response.json()["key"],)
            )
    return clocks[0].messages


def medians(clocks: list[Clock]) -> dict[str, float]:
    """The median of each part, in seconds (medians of parts need not add up exactly)."""
    return {name: statistics.median(clock.parts[name] for clock in clocks) for name in PARTS}


def logged_medians(clocks: list[Clock]) -> dict[str, float]:
    """The median of each message's logged server time, in seconds, by message."""
    found: dict[str, list[float]] = {}
    for clock in clocks:
        for message, seconds in clock.logged:
            found.setdefault(message, []).append(seconds)
    return {message: statistics.median(values) for message, values in found.items()}
