"""Latency and throughput through the app, the sides interleaved; the proxy process's memory.

Requests run in small batches, the groups (sides, or whatever ``switch`` prepares) alternating
batch by batch, so that noise on a shared machine hits every group alike.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workload import CONCURRENCY, OPS, SIDES, send


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0  # seconds spent in the group's batches (concurrent runs)
    count: int = 0

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]

    @property
    def throughput(self) -> float:
        return self.count / (self.wall or sum(self.latencies))

    def merged(self, other: "Sample") -> "Sample":
        return Sample(self.latencies + other.latencies, self.wall + other.wall, self.count + other.count)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


async def interleaved_sequential(
    client, ops, groups, n: int, batch: int, switch=None, timed=None, request=send
):
    """``n`` requests per group and op, one at a time, groups alternating every ``batch``.

    A group is a side, unless ``switch(group)`` prepares the group's batch and names the side.
    ``timed`` (a context manager factory taking op and side) wraps each request, for probes;
    ``request`` sends one (``workload.send`` unless another route is measured).
    """
    results = {(op, group): Sample() for op in ops for group in groups}
    for op in ops:
        numbers = itertools.count()
        for b in range(n // batch):
            for group in groups if b % 2 == 0 else reversed(groups):
                side = switch(group) if switch else group
                sample = results[(op, group)]
                for _ in range(batch):
                    i = next(numbers)
                    start = time.perf_counter()
                    if timed is None:
                        await request(client, side, op, i)
                    else:
                        with timed(op, side):
                            await request(client, side, op, i)
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


async def repeated(repeats: int, measure):
    """``measure()`` ``repeats`` times: each repeat's results, and all of them merged."""
    runs = [await measure() for _ in range(repeats)]
    return runs, {key: _merge(run[key] for run in runs) for key in runs[0]}


def _merge(samples) -> Sample:
    total = Sample()
    for sample in samples:
        total = total.merged(sample)
    return total


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


def measure_rss(entry: Path, patched: bool, requests: int) -> float:
    """The RSS of a fresh proxy process, started as ``entry --rss-probe``."""
    env = dict(os.environ)
    if not patched:
        env.pop("LITELLM_WORKER_STARTUP_HOOKS", None)
        env.pop("LITELLM_MEMORY_DATABASE_URL", None)
    mode = "patched" if patched else "stock"
    done = subprocess.run(
        [sys.executable, str(entry), "--rss-probe", mode, "--rss-requests", str(requests)],
        env=env, capture_output=True, text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the {mode} memory probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"]
