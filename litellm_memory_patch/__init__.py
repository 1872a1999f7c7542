"""litellm-memory-patch: confine LiteLLM's /v1/memory store to the caller's team.

Activate it in a running proxy with ``LITELLM_WORKER_STARTUP_HOOKS=litellm_memory_patch:install``,
or from config.yaml with the callback of ``litellm_memory_patch.config_hook``, or call
``await litellm_memory_patch.install(app)`` from a custom server's startup. The database side is
``litellm-memory-patch migrate``.
"""

__version__ = "0.1.0"


async def install(app=None) -> None:
    """Replace the proxy's five /v1/memory routes with the patched ones and open the pool.

    Imported lazily: the CLI must not pay for importing LiteLLM.
    """
    from .installer import install_patch

    await install_patch(app)
