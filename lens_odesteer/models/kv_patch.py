"""KV-cache fix for TransformerLens 4.3 bridges under transformers >= 5.24.

transformers 5.24 renamed the attention keyword ``past_key_values`` to ``cache``. TL 4.3's
``AttentionBridge._update_kv_cache`` reads only ``past_key_values``/``layer_past``, so the cache
stays empty and every cached decoding step attends only to itself ("Paris-------"). The patch
copies ``cache`` into ``past_key_values`` when only the former is given. With transformers
<= 5.23 the keyword is never ``cache``, so :func:`apply_kv_cache_patch` leaves TL untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import transformers
from packaging.version import Version

__all__ = ["apply_kv_cache_patch", "kv_cache_patch_applied", "kv_cache_patch_needed"]

_FIRST_BROKEN = Version("5.24.0")
_MARK = "_lens_odesteer_kv_patch"


def kv_cache_patch_needed() -> bool:
    """Return True when the installed transformers passes the KV cache as ``cache=``."""
    return Version(Version(transformers.__version__).base_version) >= _FIRST_BROKEN


def _attention_bridge() -> Any:
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    return AttentionBridge


def kv_cache_patch_applied() -> bool:
    """Return True if :func:`apply_kv_cache_patch` has patched ``AttentionBridge``."""
    return bool(getattr(_attention_bridge()._update_kv_cache, _MARK, False))


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _update_kv_cache(self: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
            kwargs["past_key_values"] = kwargs["cache"]
        return original(self, k, v, **kwargs)

    setattr(_update_kv_cache, _MARK, True)
    return _update_kv_cache


def apply_kv_cache_patch(*, force: bool = False) -> bool:
    """Patch ``AttentionBridge._update_kv_cache`` once, if transformers needs it.

    Idempotent: a second call does nothing. :func:`load_model` and :func:`tiny_bridge` call it,
    so only users who boot their own bridge need to call it themselves.

    Args:
        force: apply the patch even when the installed transformers does not need it (for
            tests; the patch is a no-op with transformers <= 5.23).

    Returns:
        True if the patch is in place after the call.

    Example:
        >>> _ = apply_kv_cache_patch()
        >>> apply_kv_cache_patch() == kv_cache_patch_applied()
        True
    """
    if kv_cache_patch_applied():
        return True
    if not (force or kv_cache_patch_needed()):
        return False
    bridge_cls = _attention_bridge()
    bridge_cls._update_kv_cache = _wrap(bridge_cls._update_kv_cache)
    return True
