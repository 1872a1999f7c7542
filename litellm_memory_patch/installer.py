"""Drop-in activation: swap the proxy's stock /v1/memory routes for the patched ones.

LiteLLM calls :func:`install_patch` (through ``litellm_memory_patch.install``) from every worker's
startup when ``LITELLM_WORKER_STARTUP_HOOKS=litellm_memory_patch:install`` is set, or
:func:`install_during_startup` runs it when config.yaml names the patch's callback
(``litellm_memory_patch.config_hook``). It replaces all
five stock routes, opens the connection pool on the running event loop, checks the database
and says in one log line whether the patch is serving. A database that is missing, unreachable
or not migrated never stops the proxy: the memory routes answer 503 until it is fixed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref

from fastapi import FastAPI
from starlette.routing import Match

from . import __version__, routes, unknowns
from .config import ConfigError, load_settings
from .store import MemoryStore

logger = logging.getLogger("litellm_memory_patch")

MEMORY_PATH = "/v1/memory"

# The stores whose pools LiteLLM's shutdown closes; weakly held, a replaced store may go.
_to_close: weakref.WeakSet = weakref.WeakSet()


def _is_memory_route(route, stock_router) -> bool:
    path = getattr(route, "path", "")
    if path == MEMORY_PATH or path.startswith(MEMORY_PATH + "/"):
        return True
    # FastAPI 0.165 includes a router as one entry that keeps the router object, not its paths:
    # LiteLLM's, or ours from an earlier install.
    return getattr(route, "original_router", None) in (stock_router, routes.router)


# Requests the patched routes answer (an empty key, a key with a slash, a numeric one), with
# the methods they serve.
_MEMORY_REQUESTS = tuple(
    (method, MEMORY_PATH + suffix)
    for suffix in ("", "/", "/k", "/1", "/k/j")
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE")
)


def _may_take_memory_request(route) -> bool:
    """Whether ``route`` matches a memory request at all, for any method (a full match would
    answer it; a partial one decides the 405 when nothing matches fully)."""
    for method, path in _MEMORY_REQUESTS:
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        if route.matches(scope)[0] is not Match.NONE:
            return True
    return False


def swap_routes(app: FastAPI) -> int:
    """Replace every stock memory route with the patched router, ahead of the others.

    Starlette tries an app's routes in order and LiteLLM's proxy has hundreds, the stock memory
    routes near the end: placed first, a memory request is matched against none of them. Only
    a route that matches a memory request too keeps its place ahead of the patched routes (in
    LiteLLM's app none does), so every other request resolves exactly as before.

    Returns how many stock entries were removed. Replacing only some would break
    ``GET /v1/memory``: its redirect to ``/v1/memory/`` would reach a stock ``{key:path}``.
    """
    from litellm.proxy.memory.memory_endpoints import router as stock_router

    table = app.router.routes
    stock = {i for i, route in enumerate(table) if _is_memory_route(route, stock_router)}
    position = min(stock, default=len(table))
    kept = [route for i, route in enumerate(table) if i not in stock]
    table[:] = kept
    app.include_router(routes.router)
    patched = table[len(kept) :]
    ahead = [i for i, route in enumerate(kept[:position]) if _may_take_memory_request(route)]
    first = ahead[-1] + 1 if ahead else 0
    table[:] = kept[:first] + patched + kept[first:]
    app.openapi_schema = None
    return len(stock)


def _close_at_shutdown(store: MemoryStore) -> None:
    # LiteLLM's lifespan has no shutdown hook for plugins, and the servers it runs under do not
    # cancel leftover tasks before the worker exits (uvicorn re-raises SIGTERM once its shutdown
    # is done), so the pool would be dropped, not closed. The lifespan calls LiteLLM's
    # proxy_shutdown_event by name at shutdown: the pools close right after it.
    from litellm.proxy import proxy_server

    _to_close.add(store)
    litellm_shutdown = proxy_server.proxy_shutdown_event
    if getattr(litellm_shutdown, "closes_memory_pools", False):
        return

    @functools.wraps(litellm_shutdown)
    async def shutdown_then_close(*args, **kwargs):
        try:
            await litellm_shutdown(*args, **kwargs)
        finally:
            for pending in list(_to_close):
                await pending.close()

    shutdown_then_close.closes_memory_pools = True
    proxy_server.proxy_shutdown_event = shutdown_then_close


def _announce_to_bare_logging() -> None:
    # The active/not-active line must reach the operator even when the host configured no
    # logging at all (Python would drop INFO records then).
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


async def install_patch(app: FastAPI | None = None) -> MemoryStore | None:
    """Swap the routes in ``app`` (LiteLLM's proxy app by default) and start the store."""
    if app is None:
        from litellm.proxy.proxy_server import app
    _announce_to_bare_logging()
    removed = swap_routes(app)
    app.state.litellm_memory_store = None
    try:
        settings = load_settings()
    except ConfigError as exc:
        logger.error(
            "litellm-memory-patch %s NOT serving: %s; /v1/memory answers 503", __version__, exc
        )
        return None
    store = MemoryStore(settings)
    await store.open()
    _close_at_shutdown(store)
    app.state.litellm_memory_store = store
    problem = await store.readiness_problem()
    if problem:
        logger.error(
            "litellm-memory-patch %s NOT serving yet: %s; /v1/memory answers 503 until then",
            __version__,
            problem,
        )
    else:
        logger.info(
            "litellm-memory-patch %s active: the stock /v1/memory routes replaced (%d route-table"
            " entries), every request confined to the caller's team by the handlers and by"
            " row-level security, and checked against the database's protection",
            __version__,
            removed,
        )
    await unknowns.warn_about_unknowns(app, None if problem else settings)
    return store


def _report_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "litellm-memory-patch %s NOT installed: %r", __version__, task.exception(),
            exc_info=task.exception(),
        )


def install_during_startup(app: FastAPI | None = None) -> None:
    """Install the patch from a worker's startup that cannot await it: LiteLLM imports the
    callbacks config.yaml names while the startup loads the config, on the worker's event loop.

    The install runs as a task on that loop, queued ahead of the server's own step from startup
    to serving, so it is done before the first request: it does not wait for anything before
    the patched routes and the store are in place. Does nothing when the patch is installed in
    this app already (by the startup hook, or by an earlier load of the config).
    """
    if app is None:
        from litellm.proxy.proxy_server import app
    if hasattr(app.state, "litellm_memory_store"):
        return
    app.state.litellm_memory_store = None  # installing: the memory routes answer 503 until set
    task = asyncio.get_running_loop().create_task(install_patch(app))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    task.add_done_callback(_report_failure)


# Tasks the event loop holds only weakly.
_pending: set[asyncio.Task] = set()
