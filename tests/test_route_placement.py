"""The patched routes go first in LiteLLM's route table, and no other request resolves differently.

Starlette tries an app's routes in order, taking the first full match, or else the first partial
one (a path that matches with another method: its 405). For one concrete path per route of the
real app (built from the route's path template) and every method, the route that request
resolves to is the same before and after ``swap_routes``, except the memory requests, which
resolve to the patched route of the same path and methods.

LiteLLM's app is swapped already once the suite's proxy has started, so the real table is read
in a fresh process (this file, run as a script), before and after the swap.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from fastapi import FastAPI
from starlette.routing import Match

from litellm_memory_patch import installer, routes

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAMPLES = {"int": "7", "float": "7.5", "uuid": "00000000-0000-4000-8000-000000000001", "path": "p1/p2"}
MEMORY_EXTRAS = ("/v1/memory", "/v1/memory/", "/v1/memory/a/b", "/v1/memory/7")


def concrete(template: str) -> str:
    """A path the template matches: each parameter replaced by a sample of its type."""
    return re.sub(
        r"{[^}:]+(?::([^}]+))?}", lambda m: SAMPLES.get(m.group(1) or "str", "p1"), template
    )


def templates(table, prefix: str = "") -> list[str]:
    """Every route's path template, those inside mounts and included routers too."""
    found = []
    for route in table:
        if hasattr(route, "effective_route_contexts"):
            # FastAPI 0.165 includes a router as one entry; its routes carry their full paths.
            found += [context.path or context.path_format for context in route.effective_route_contexts()]
            continue
        path = prefix + getattr(route, "path", "")
        inner = getattr(route, "routes", None)
        if inner:
            found += templates(inner, path)
        found.append(path + ("/p1" if inner is not None else ""))
    return found


def resolve(table, scope: dict):
    """The route a request resolves to (descending into mounts and included routers), as
    Starlette picks it: the first full match, else the first partial one."""
    partial = None
    for route in table:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return _leaf(route, {**scope, **child})
        if match is Match.PARTIAL and partial is None:
            partial = (route, {**scope, **child})
    return _leaf(*partial) if partial else None


def _leaf(route, scope):
    if hasattr(route, "_match"):
        # FastAPI 0.165's included router makes its own pick among its routes.
        _, child, inner, context = route._match(scope)
        if context is not None:
            return context.original_route
        return route if inner is None else _leaf(inner, {**scope, **child})
    inner = getattr(route, "routes", None)
    return (resolve(inner, scope) or route) if inner else route


def describe(route) -> str:
    if route is None:
        return "no route"
    name = getattr(getattr(route, "endpoint", None), "__module__", type(route).__name__)
    return f"{name}:{getattr(route, 'path', '')}:{sorted(getattr(route, 'methods', None) or [])}"


def is_patched(route) -> bool:
    return getattr(route, "endpoint", None) in {route.endpoint for route in routes.router.routes}


def compare(app: FastAPI) -> dict:
    """Swap ``app``'s memory routes and report how every request's resolution changed."""
    before = list(app.router.routes)
    every = templates(before)
    paths = sorted({concrete(t) for t in every} | set(MEMORY_EXTRAS))
    requests = [(method, path) for path in paths for method in METHODS]

    def scope(method, path):
        return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}

    was = {request: resolve(before, scope(*request)) for request in requests}
    installer.swap_routes(app)
    after = list(app.router.routes)
    changed, memory = [], []
    for request in requests:
        old, new = was[request], resolve(after, scope(*request))
        if is_patched(new):
            # Same path template and methods as the stock route it replaces.
            same = old is not None and (old.path, old.methods) == (new.path, new.methods)
            memory.append([*request, describe(old), same])
        elif old is not new:
            changed.append([*request, describe(old), describe(new)])
    first = next(i for i, route in enumerate(after) if route in routes_of(after))
    return {"requests": len(requests), "routes": len(every), "changed": changed, "memory": memory, "first": first}


def routes_of(table) -> list:
    patched = {route.endpoint for route in routes.router.routes}
    return [
        route for route in table
        if getattr(route, "endpoint", None) in patched or getattr(route, "original_router", None) is routes.router
    ]


def test_every_request_of_litellms_app_resolves_as_before_with_the_memory_routes_first():
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["routes"] > 500 and report["requests"] > 3000, report["requests"]
    assert report["changed"] == [], report["changed"][:10]
    # GET, HEAD?, POST, PUT, DELETE of the list and key paths: all reach a patched route.
    assert report["memory"] and all(same for *_, same in report["memory"]), report["memory"]
    assert {method for method, *_ in report["memory"]} >= {"GET", "POST", "PUT", "DELETE"}
    assert report["first"] == 0


def test_a_route_that_takes_memory_requests_keeps_its_place_ahead():
    from litellm.proxy.memory.memory_endpoints import router as stock_router

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {}

    @app.get("/v1/{area}/{rest:path}")
    async def catch_all(area: str, rest: str) -> dict:
        return {}

    app.include_router(stock_router)

    @app.get("/after")
    async def after() -> dict:
        return {}

    behind = next(i for i, route in enumerate(app.router.routes) if route.path == "/v1/{area}/{rest:path}")
    report = compare(app)
    assert report["changed"] == [], report["changed"]
    # Right behind the catch-all (which keeps GET /v1/memory/...), ahead of every later route.
    assert report["first"] == behind + 1
    assert ["GET", "/v1/memory/a/b"] not in [m[:2] for m in report["memory"]]


if __name__ == "__main__":
    import litellm.proxy.proxy_server as proxy_server

    print(json.dumps(compare(proxy_server.app)))
