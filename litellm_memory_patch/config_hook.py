"""Activation from LiteLLM's config.yaml, for proxies configured entirely there.

LiteLLM loads each callback that ``litellm_settings.callbacks`` names from a file next to
config.yaml, in every worker, while that worker's startup loads the config. The one-line file
``litellm_memory_patch_hook.py`` there,

    from litellm_memory_patch.config_hook import activate

named in config.yaml as ``callbacks: ["litellm_memory_patch_hook.activate"]``, imports this
module, which installs the patch in that worker's startup. ``activate`` is the callback object
LiteLLM registers; it handles no event.
"""

from litellm.integrations.custom_logger import CustomLogger

from .installer import install_during_startup


class _Activation(CustomLogger):
    """The callback LiteLLM asks for; the patch needs none of its events."""


install_during_startup()
activate = _Activation()
