"""Steering TransformerLens models: one plan, a context manager, a generate function, a hook.

* :class:`SteeringPlan`: which steerer at which hook point, how strong, which tokens.
* :func:`steering`: steer inside a ``with`` block (hooks removed however it ends).
* :func:`generate`: steered generation with exact per-row positions, batched and left-padded.
* :class:`SteeringHook`: a plain TransformerLens hook function for ``run_with_hooks`` and
  ``model.hooks()``; ``plan.hooks(model)`` builds them for a whole plan.

The token scopes (``"last"``, ``"all"``, ``"prompt"``, ``"generated"``, positions, masks) are
described in :mod:`lens_odesteer.hooks.context`.
"""

from __future__ import annotations

from lens_odesteer.hooks.context import generate, steering
from lens_odesteer.hooks.handle import SteeringHandle
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.hooks.plan import Intervention, SteeringPlan, resolve_T
from lens_odesteer.hooks.scope import SCOPES, PromptLayout, Scope, parse_scope

__all__ = [
    "SCOPES",
    "Intervention",
    "PromptLayout",
    "Scope",
    "SteeringHandle",
    "SteeringHook",
    "SteeringPlan",
    "generate",
    "parse_scope",
    "resolve_T",
    "steering",
]
