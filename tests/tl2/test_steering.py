"""What only a classic ``HookedTransformer`` (TL 2.x) has: its own hook names and a real
``hook_resid_mid``.

The hook-level guarantees shared with the TL 4 bridge (hygiene, exactness, scopes, errors,
lifecycle, strengths) run on this backend from tests/hooks/suite/ (see scripts/dev.sh).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import HookNameError
from lens_odesteer.hooks import steering
from tests.tl2._shared import PROMPTS, TINY_HOOK, attached_hooks


def test_bridge_names_are_unknown_here(tiny: Any, tiny_caa: lo.CAA) -> None:
    with (
        pytest.raises(HookNameError, match=r"Unknown hook 'blocks\.0\.hook_out'"),
        steering(tiny, {"blocks.0.hook_out": tiny_caa}, T=1.0),  # a bridge-only name
    ):
        pass  # pragma: no cover
    assert attached_hooks(tiny) == {}


def test_resid_mid_is_the_real_residual_here(tiny: Any, tiny_caa: lo.CAA) -> None:
    """No bridge warning on a HookedTransformer, and the edit reaches the block output."""
    tokens = tiny.to_tokens(PROMPTS[0])
    mid = "blocks.0.hook_resid_mid"
    _, plain = tiny.run_with_cache(tokens, names_filter=[mid, TINY_HOOK])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with steering(tiny, {mid: tiny_caa}, T=3.0, scope="all"):
            _, steered = tiny.run_with_cache(tokens, names_filter=[mid, TINY_HOOK])
    shift = steered[mid] - plain[mid]
    torch.testing.assert_close(shift, (3.0 * tiny_caa.direction_).expand_as(shift))
    # resid_post = resid_mid + mlp_out: the shift is carried by the skip connection.
    moved = steered[TINY_HOOK] - plain[TINY_HOOK]
    assert (moved - shift).norm() < moved.norm()
