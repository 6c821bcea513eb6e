"""LiteLLM, loaded once, offline-safe, only where chat runs.

Importing litellm costs seconds and, unless told otherwise, fetches a model
price map from the network at import. :func:`litellm` sets
``LITELLM_LOCAL_MODEL_COST_MAP`` and ``LITELLM_OFFLINE_MODE`` first (so prices
come from the copy inside the wheel and nothing is fetched), imports it, and
registers the offline provider. Nothing else in the package imports litellm,
so ``import inner_universe`` and the SDK never pay for it.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType

__all__ = ["litellm"]

_lock = threading.Lock()
_module: ModuleType | None = None


def litellm() -> ModuleType:
    """The litellm module, configured for offline use, with the offline provider registered."""
    global _module
    with _lock:
        if _module is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
            import litellm as module

            module.suppress_debug_info = True
            from .offline import register

            register(module)
            _module = module
    return _module
