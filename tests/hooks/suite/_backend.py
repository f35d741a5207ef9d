"""Which TransformerLens this environment has, and what the shared hook suite runs on.

The suite in this folder is backend-agnostic: in the main ``.venv`` (TransformerLens 4) its
models are ``TransformerBridge``s, in ``.venv-tl2`` (TransformerLens 2.18) classic
``HookedTransformer``s. Tests that need one backend ask for it with :data:`bridge_only` or
:data:`tl2_only`; everything else must hold on both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from lens_odesteer.errors import InvalidParameterError
from tests.hooks._shared import SMOL_LAYER
from tests.tl2._shared import (
    HAVE_HOOKED_TRANSFORMER,
    TINY_ARCHS,
    attached_hooks,
    tiny_hooked_transformer,
)

__all__ = [
    "BACKEND",
    "IS_BRIDGE",
    "SMOL_LAYER",
    "TINY_PARAMS",
    "Capture",
    "attached_hooks",
    "bad_argument",
    "bridge_only",
    "hook_state",
    "load_smol",
    "manual_cached_greedy",
    "tiny_model",
    "tl2_only",
]

BACKEND = "tl2" if HAVE_HOOKED_TRANSFORMER else "bridge"
"""``"bridge"``: TL 4 ``TransformerBridge``; ``"tl2"``: classic TL 2.x ``HookedTransformer``."""
IS_BRIDGE = BACKEND == "bridge"
TINY_PARAMS = ["llama"] if IS_BRIDGE else list(TINY_ARCHS)
"""The tiny architectures: the bridge's random Llama; on TL 2.x a Llama and a GPT-2."""

bridge_only = pytest.mark.skipif(not IS_BRIDGE, reason="TransformerBridge (TL 4) behaviour")
tl2_only = pytest.mark.skipif(IS_BRIDGE, reason="HookedTransformer (TL 2.x) behaviour")

if not IS_BRIDGE:  # nothing may come from the hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def tiny_model(arch: str = "llama") -> Any:
    """A random-weight 2-layer model of this backend (the same weights on every call)."""
    if IS_BRIDGE:
        from lens_odesteer.models import tiny_bridge

        assert arch == "llama", arch
        return tiny_bridge()
    return tiny_hooked_transformer(arch)


def load_smol() -> Any:
    """SmolLM2-135M-Instruct as this backend's model (slow): ``load_model`` picks the backend."""
    from lens_odesteer.models import load_model

    return load_model(progress=False)


def hook_state(model: Any) -> dict[str, tuple[list[int], list[int]]]:
    """Per hook point: ids of its TL handles and keys of its torch forward hooks."""
    return {
        name: ([id(h) for h in point.fwd_hooks], list(point._forward_hooks))
        for name, point in model.hook_dict.items()
    }


class Capture:
    """A plain user hook that stores (a copy of) every activation it sees."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, acts: torch.Tensor, hook: Any) -> None:
        self.seen.append(acts.detach().clone())


@contextmanager
def bad_argument(match: str) -> Iterator[None]:
    """Expect a wrongly typed argument to be refused.

    The main ``.venv`` runs the suite under jaxtyping's runtime type checker (pyproject addopts),
    which rejects it with a ``TypeError`` before the library's own check can; ``.venv-tl2`` runs
    without it, and there the library's :class:`InvalidParameterError` must match ``match``.
    """
    with pytest.raises((InvalidParameterError, TypeError)) as info:
        yield
    if isinstance(info.value, InvalidParameterError):
        assert re.search(match, str(info.value)), str(info.value)


def manual_cached_greedy(model: Any, tokens: torch.Tensor, n_new: int) -> list[int]:
    """Greedy decoding written out by hand with the backend's KV cache (one row).

    A prefill call fills an empty cache, then each call feeds back the one new token: a
    ``transformers`` ``DynamicCache`` as ``past_key_values=`` on the bridge, a
    ``HookedTransformerKeyValueCache`` as ``past_kv_cache=`` on TL 2.x. No ``use_cache=`` flag
    is passed, so only the cache itself says that the calls continue one sequence.
    """
    if IS_BRIDGE:
        from transformers import DynamicCache

        kw: dict[str, Any] = {"past_key_values": DynamicCache()}
    else:
        from transformer_lens.past_key_value_caching import HookedTransformerKeyValueCache

        cache = HookedTransformerKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
        kw = {"past_kv_cache": cache}
    new: list[int] = []
    logits = model(tokens, **kw)
    for _ in range(n_new):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        new.append(int(nxt))
        if len(new) < n_new:
            logits = model(nxt, **kw)
    return new
