"""What a route's place in LiteLLM's route table costs a request.

Starlette tries an app's routes in order, and LiteLLM's proxy has hundreds. Measured here: a
trivial route (no dependency, an empty answer) first in the table against the same route
last, and the patched /v1/memory routes where the patch puts them against the place of the
stock routes they replace.
"""

from __future__ import annotations

from fastapi.routing import APIRoute

from litellm_memory_patch.installer import MEMORY_PATH
from measurement import interleaved_sequential
from workload import OPS

TRIVIAL = "/bench/placement"
PLACES = ("first", "last")
MEMORY_PLACES = ("stock position", "patched position")


async def _trivial(client, side: str, op: str, i: int):
    response = await client.get(f"{TRIVIAL}/{side}")
    if response.status_code != 200:
        raise RuntimeError(f"the {side} trivial route: {response.status_code}")
    return response


async def trivial_first_and_last(client, app, n: int, batch: int):
    """A trivial route first in the table against the same route last: samples by place."""
    async def empty() -> dict:
        return {}

    table = app.router.routes
    first, last = (APIRoute(f"{TRIVIAL}/{place}", empty, methods=["GET"]) for place in PLACES)
    table.insert(0, first)
    table.append(last)
    try:
        await interleaved_sequential(client, ("get",), PLACES, n // 5, batch, request=_trivial)
        return await interleaved_sequential(client, ("get",), PLACES, n, batch, request=_trivial)
    finally:
        table.remove(first)
        table.remove(last)


def stock_place(app):
    """Where LiteLLM's stock memory routes stand (read before the patch swaps them): the index
    of the first, and the route that follows the last."""
    table = app.router.routes
    found = [i for i, route in enumerate(table) if getattr(route, "path", "").startswith(MEMORY_PATH)]
    return found[0], (table[found[-1] + 1] if found[-1] + 1 < len(table) else None)


async def memory_routes_moved(client, app, successor, n: int, batch: int, warmup: int):
    """The patched routes at the stock routes' place against where the patch put them:
    samples by place, and each place's index in the table."""
    table = app.router.routes
    positions = {}
    patched = [route for route in table if getattr(route, "path", "").startswith(MEMORY_PATH)]
    home = table.index(patched[0])

    def place(where: str) -> str:
        for route in patched:
            table.remove(route)
        at = home if where == "patched position" else (table.index(successor) if successor else len(table))
        table[at:at] = patched
        positions[where] = at
        return "patched"

    try:
        await interleaved_sequential(client, OPS, MEMORY_PLACES, warmup, batch, place)
        return await interleaved_sequential(client, OPS, MEMORY_PLACES, n, batch, place), positions
    finally:
        place("patched position")
