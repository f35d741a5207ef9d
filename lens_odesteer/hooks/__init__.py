"""Steering TransformerLens models: hooks, the ``steering`` context manager and ``generate``.

* :func:`steering` (context manager) / :func:`attach` (until ``handle.remove()``): validate,
  then attach one :class:`SteeringHook` per hook point; only those hooks are ever removed.
* :func:`generate`: tokenize with left padding, steer with exact per-row positions, return the
  completions.
* :class:`SteeringHook` / :func:`make_hooks`: plain TL hook functions for ``run_with_hooks``.

The token scopes (``"last"``, ``"all"``, ``"prompt"``, ``"generated"``, positions, masks) are
described in :mod:`lens_odesteer.hooks.attach`.
"""

from __future__ import annotations

from lens_odesteer.hooks.attach import SteererSpec, attach, make_hooks, steering
from lens_odesteer.hooks.generation import generate, generate_with_hooks
from lens_odesteer.hooks.handle import SteeringHandle
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.hooks.scope import SCOPES, PromptLayout, Scope, parse_scope

__all__ = [
    "SCOPES",
    "PromptLayout",
    "Scope",
    "SteererSpec",
    "SteeringHandle",
    "SteeringHook",
    "attach",
    "generate",
    "generate_with_hooks",
    "make_hooks",
    "parse_scope",
    "steering",
]
