"""A bounded concurrent request driver for the in-process proxy, and a model of every caller's keys.

A :class:`Worker` is one caller (a team and a user) that works through its own keys one request
at a time; many workers run at once, with at most ``concurrency`` requests in flight. As only
its worker touches a key, the worker knows every state the key can be in: exactly one after a
clear answer, several after a 503 (a write the client was not told about may or may not have
landed). Every answer is checked against that model and against the caller's team, and
:func:`check_table` compares the final table with all the models.

Users are shared across teams (LiteLLM issue #27722): every worker also probes the keys of the
same user in other teams, and the rows an admin seeded in every team, which it must never see,
change or learn anything about.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg.rows import dict_row

from identity_auth import api_key
from litellm_memory_patch.store import NOT_MIGRATED, TIMED_OUT, UNAVAILABLE

ABSENT = None
ADMIN = api_key(role="proxy_admin")
# What a 503 of the memory store may say; anything else is a failure of the test.
UNAVAILABLE_DETAILS = {UNAVAILABLE, TIMED_OUT, NOT_MIGRATED}
# A request slower than this is a hang, whatever is being tested.
HANG_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    worker: str
    method: str
    path: str
    status: int
    body: object
    started: float
    elapsed: float


@contextlib.contextmanager
def serving(proxy_session, target, monkeypatch):
    """The proxy's patch pointed at ``target`` (any URL, Prisma parameters included), then closed."""
    proxy_session.close_store()
    proxy_session.install(target, monkeypatch)
    try:
        yield proxy_session.app.state.litellm_memory_store
    finally:
        proxy_session.close_store()


class Driver:
    """Sends requests to the app on its own loop, never more than ``concurrency`` at once."""

    def __init__(self, app, *, concurrency: int, allow_unavailable: bool = False) -> None:
        self._app = app
        self._limit = asyncio.Semaphore(concurrency)
        self.allow_unavailable = allow_unavailable
        self.in_flight = 0
        self.peak_in_flight = 0
        self.answers: list[Answer] = []
        self.statuses: Counter = Counter()
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def running(self):
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            self.client = client
            yield self

    async def send(self, who: str, method: str, path: str, *, key: str, **kwargs) -> Answer:
        async with self._limit:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            started = time.monotonic()
            try:
                response = await asyncio.wait_for(
                    self.client.request(
                        method, path, headers={"Authorization": f"Bearer {key}"}, **kwargs
                    ),
                    HANG_SECONDS,
                )
            except TimeoutError:
                raise AssertionError(f"{who}: {method} {path} hung for {HANG_SECONDS} s") from None
            finally:
                self.in_flight -= 1
        elapsed = time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = response.text
        answer = Answer(who, method, path, response.status_code, body, started, elapsed)
        self.answers.append(answer)
        self.statuses[answer.status] += 1
        if answer.status == 503:
            assert self.allow_unavailable, f"unexpected 503: {answer}"
            assert isinstance(body, dict) and body.get("detail") in UNAVAILABLE_DETAILS, answer
        return answer

    def count_since(self, moment: float, *, served: bool) -> int:
        return sum(
            1 for a in self.answers if a.started >= moment and (a.status != 503 or not served)
        )

    async def wait_for_answers(
        self, count: int, *, since: float, within: float, served: bool = True
    ) -> None:
        """Until ``count`` answers (``served``: other than 503) started after ``since``; fail
        after ``within`` seconds."""
        deadline = time.monotonic() + within
        while (seen := self.count_since(since, served=served)) < count:
            assert time.monotonic() < deadline, (
                f"no recovery: {seen} of {count} answers in {within} s; "
                f"statuses so far {dict(self.statuses)}"
            )
            await asyncio.sleep(0.05)


def rows_of(body) -> list[dict]:
    if isinstance(body, dict) and "memories" in body:
        return body["memories"]
    if isinstance(body, dict) and "memory_id" in body:
        return [body]
    return []


def metadata_for(value: str) -> dict:
    # The metadata repeats the value, so a row that landed only in part would show.
    return {"value": value}


@dataclass
class Seeds:
    """Rows an admin put in every team before the load: key -> (memory_id, value)."""

    rows: dict[str, tuple[str, str]] = field(default_factory=dict)

    def of_team(self, team: str) -> list[str]:
        return [key for key in self.rows if key.startswith(f"{team}/")]

    @staticmethod
    async def plant(driver: Driver, teams: list[str], per_team: int) -> "Seeds":
        seeds = Seeds()
        for team in teams:
            for number in range(per_team):
                key, value = f"{team}/seed/{number}", f"{team}|seed|{number}"
                body = {"key": key, "value": value, "metadata": metadata_for(value), "team_id": team}
                answer = await driver.send("admin", "POST", "/v1/memory", key=ADMIN, json=body)
                assert answer.status == 200, answer
                seeds.rows[key] = (answer.body["memory_id"], value)
        return seeds


class Worker:
    """One caller working on its own keys, probing other teams' keys of the same user."""

    def __init__(
        self, team: str, user: str, *, keys: int, teams: list[str], seeds: Seeds, seed: int
    ) -> None:
        self.team, self.user = team, user
        self.name = f"{team}/{user}"
        self.key = api_key(team=team, user=user)
        self.prefix = f"{team}/{user}/"
        self.possible: dict[str, set] = {f"{self.prefix}{i}": {ABSENT} for i in range(keys)}
        self.others = [other for other in teams if other != team]
        self.keys_per_worker = keys
        self.seeds = seeds
        self.rng = random.Random(seed)
        self.writes = 0
        self.operations = [
            (self.put, 25),
            (self.post, 15),
            (self.get, 20),
            (self.delete, 10),
            (self.list_own, 10),
            (self.list_team, 5),
            (self.probe_foreign, 15),
        ]

    # -- checks ------------------------------------------------------------------------

    def check_rows(self, answer: Answer) -> None:
        """Every row in any answer belongs to the caller's team and is whole."""
        for row in rows_of(answer.body):
            assert row["team_id"] == self.team, f"{self.name} got another team's row: {answer}"
            assert row["value"].startswith(f"{self.team}|"), answer
            assert row["metadata"] == metadata_for(row["value"]), f"half-written row: {answer}"

    def expect(self, answer: Answer, *allowed: int) -> int:
        self.check_rows(answer)
        assert answer.status in (*allowed, 503), f"{self.name}: {answer}"
        return answer.status

    def _new_value(self) -> str:
        self.writes += 1
        return f"{self.team}|{self.user}|{self.writes}"

    # -- operations on the worker's own keys -------------------------------------------

    def _own_key(self) -> str:
        return f"{self.prefix}{self.rng.randrange(self.keys_per_worker)}"

    async def put(self, driver: Driver) -> None:
        key, value = self._own_key(), self._new_value()
        body = {"value": value, "metadata": metadata_for(value)}
        answer = await driver.send(self.name, "PUT", f"/v1/memory/{key}", key=self.key, json=body)
        if self.expect(answer, 200) == 200:
            assert (answer.body["key"], answer.body["value"]) == (key, value), answer
            assert answer.body["user_id"] == self.user, answer
            self.possible[key] = {value}
        else:
            self.possible[key].add(value)

    async def post(self, driver: Driver) -> None:
        key, value = self._own_key(), self._new_value()
        body = {"key": key, "value": value, "metadata": metadata_for(value)}
        answer = await driver.send(self.name, "POST", "/v1/memory", key=self.key, json=body)
        status = self.expect(answer, 200, 409)
        states = self.possible[key]
        if status == 200:
            assert ABSENT in states, f"{self.name}: created a key that existed: {answer}"
            assert answer.body["value"] == value and answer.body["user_id"] == self.user, answer
            self.possible[key] = {value}
        elif status == 409:
            assert states - {ABSENT}, f"{self.name}: 409 for a key it never wrote: {answer}"
            self.possible[key] = states - {ABSENT}
        else:
            states.add(value)

    async def get(self, driver: Driver) -> None:
        key = self._own_key()
        answer = await driver.send(self.name, "GET", f"/v1/memory/{key}", key=self.key)
        status = self.expect(answer, 200, 404)
        if status != 503:
            self._observe(key, answer.body["value"] if status == 200 else ABSENT, answer)

    def _observe(self, key: str, seen: str | None, answer: Answer) -> None:
        """A read answered: the key holds ``seen`` (ABSENT: no row), which must be possible."""
        assert seen in self.possible[key], f"{self.name}: {key} cannot be {seen!r}: {answer}"
        self.possible[key] = {seen}

    async def delete(self, driver: Driver) -> None:
        key = self._own_key()
        answer = await driver.send(self.name, "DELETE", f"/v1/memory/{key}", key=self.key)
        status = self.expect(answer, 200, 404)
        if status == 200:
            assert self.possible[key] - {ABSENT}, f"{self.name}: deleted a row never written"
            self.possible[key] = {ABSENT}
        elif status == 404:
            self._observe(key, ABSENT, answer)
        else:
            self.possible[key].add(ABSENT)

    async def list_own(self, driver: Driver) -> None:
        params = {"key_prefix": self.prefix, "page_size": 500}
        answer = await driver.send(self.name, "GET", "/v1/memory", key=self.key, params=params)
        if self.expect(answer, 200) != 200:
            return
        listed = {row["key"]: row for row in answer.body["memories"]}
        assert answer.body["total"] == len(listed), answer
        assert set(listed) <= set(self.possible), f"{self.name}: foreign keys listed: {answer}"
        for key in self.possible:
            self._observe(key, listed[key]["value"] if key in listed else ABSENT, answer)

    async def list_team(self, driver: Driver) -> None:
        params = {"search": f"{self.team}/", "page_size": 20}
        answer = await driver.send(self.name, "GET", "/v1/memory", key=self.key, params=params)
        self.expect(answer, 200)

    # -- probes of other teams: always answered as if the row did not exist ----------------

    async def probe_foreign(self, driver: Driver) -> None:
        other = self.rng.choice(self.others)
        theirs = f"{other}/{self.user}/{self.rng.randrange(self.keys_per_worker)}"
        seed = self.rng.choice(self.seeds.of_team(other))
        memory_id, _ = self.seeds.rows[seed]
        probe = self.rng.randrange(7)
        if probe == 0:
            answer = await driver.send(self.name, "GET", f"/v1/memory/{theirs}", key=self.key)
            self.expect(answer, 404)
        elif probe == 1:
            answer = await driver.send(self.name, "DELETE", f"/v1/memory/{theirs}", key=self.key)
            self.expect(answer, 404)
        elif probe == 2:
            body = {"value": self._new_value()}
            answer = await driver.send(self.name, "PUT", f"/v1/memory/{seed}", key=self.key, json=body)
            self.expect(answer, 409)
        elif probe == 3:
            body = {"key": seed, "value": self._new_value()}
            answer = await driver.send(self.name, "POST", "/v1/memory", key=self.key, json=body)
            self.expect(answer, 409)
        elif probe == 4:
            answer = await driver.send(self.name, "DELETE", f"/v1/memory/{seed}", key=self.key)
            self.expect(answer, 404)
        else:
            params = {"search": memory_id} if probe == 5 else {"key_prefix": f"{other}/"}
            answer = await driver.send(self.name, "GET", "/v1/memory", key=self.key, params=params)
            if self.expect(answer, 200) == 200:
                assert answer.body == {"memories": [], "total": 0}, f"{self.name}: {answer}"

    async def run(self, driver: Driver, *, steps: int | None = None, stop: asyncio.Event | None = None):
        operations, weights = zip(*self.operations)
        done = 0
        while (steps is None or done < steps) and not (stop and stop.is_set()):
            await self.rng.choices(operations, weights)[0](driver)
            done += 1


def make_workers(teams: list[str], users: list[str], *, keys: int, seeds: Seeds) -> list[Worker]:
    return [
        Worker(team, user, keys=keys, teams=teams, seeds=seeds, seed=number)
        for number, (team, user) in enumerate((t, u) for t in teams for u in users)
    ]


async def run_workers(driver: Driver, workers: list[Worker], *alongside, **kwargs) -> None:
    """All workers at once, with ``alongside`` coroutines (a conductor that breaks things);
    the first failed check stops them all and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            for worker in workers:
                group.create_task(worker.run(driver, **kwargs))
            for coroutine in alongside:
                group.create_task(coroutine)
    except* AssertionError as failed:
        raise failed.exceptions[0] from None


def table_rows(conninfo: str, schema: str = "public") -> dict[str, dict]:
    """Every memory row by key, read as the superuser the tests connect as (no row-level security)."""
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        rows = conn.execute(
            f'SELECT key, value, metadata, team_id, user_id, memory_id, updated_at'
            f' FROM "{schema}"."LiteLLM_MemoryTable"'
        ).fetchall()
    return {row["key"]: row for row in rows}


def check_table(conninfo: str, workers: list[Worker], seeds: Seeds) -> dict[str, dict]:
    """The table holds exactly what the workers may have left, each row whole; seeds untouched."""
    rows = table_rows(conninfo)
    owners = {key: worker for worker in workers for key in worker.possible}
    strangers = set(rows) - set(owners) - set(seeds.rows)
    assert not strangers, f"rows nobody wrote (a probe created one?): {sorted(strangers)[:5]}"
    for key, (memory_id, value) in seeds.rows.items():
        row = rows.get(key)
        assert row is not None and (row["memory_id"], row["value"]) == (memory_id, value), row
        assert row["user_id"] is None, row
    for key, worker in owners.items():
        row = rows.get(key)
        if row is None:
            assert ABSENT in worker.possible[key], f"{key}: acknowledged write lost"
            continue
        assert row["value"] in worker.possible[key], f"{key}: {row} not in {worker.possible[key]}"
        assert (row["team_id"], row["user_id"]) == (worker.team, worker.user), row
        assert row["metadata"] == metadata_for(row["value"]), f"half-written row {row}"
    return rows


async def under_load(driver: Driver, conduct, *, teams: list[str], users: list[str], per_team: int, stop):
    """Plant ``per_team`` seeds, then run every worker with ``conduct()`` alongside until ``stop``
    is set; returns the workers and the seeds for the checks afterwards."""
    async with driver.running():
        seeds = await Seeds.plant(driver, teams, per_team=per_team)
        workers = make_workers(teams, users, keys=5, seeds=seeds)
        await run_workers(driver, workers, conduct(), stop=stop)
    return workers, seeds
