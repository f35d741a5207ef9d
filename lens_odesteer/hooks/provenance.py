"""Compare the provenance recorded with a steerer against the model it is attached to.

A steerer loaded from a file carries the facts saved with it (``steerer.provenance_``), for
example ``model_provenance(model)`` (from ``lens_odesteer.models.loading``) plus the hook
name. Steering a different model, or the same
model with different weight processing (TransformerLens's folded layer norms or compatibility
mode change the residual stream), silently gives wrong results; this check warns or refuses.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from lens_odesteer.errors import InvalidParameterError, ProvenanceError
from lens_odesteer.models.names import HookedModel, hook_layer
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["COMPARED_FIELDS", "OnMismatch", "check_provenance", "provenance_mismatches"]

OnMismatch = Literal["warn", "raise", "ignore"]
#: Provenance fields that must agree between a steerer's record and the model it steers.
COMPARED_FIELDS = (
    "model_name",
    "architecture",
    "d_model",
    "n_layers",
    "d_vocab",
    "weight_processing",
)


def provenance_mismatches(
    steerer: AbstractSteerer, model: HookedModel, hook_name: str
) -> dict[str, tuple[Any, Any]]:
    """Return ``{field: (recorded, current)}`` for every recorded field that differs."""
    recorded = getattr(steerer, "provenance_", None)
    if not isinstance(recorded, dict) or not recorded:
        return {}
    from lens_odesteer.models.loading import model_provenance  # imports transformers: lazily

    current = model_provenance(model)
    diffs: dict[str, tuple[Any, Any]] = {}
    for key in COMPARED_FIELDS:
        if key in recorded and current.get(key) is not None and recorded[key] != current[key]:
            diffs[key] = (recorded[key], current[key])
    saved_hook = recorded.get("hook_name")
    if isinstance(saved_hook, str) and hook_layer(saved_hook) != hook_layer(hook_name):
        diffs["layer"] = (hook_layer(saved_hook), hook_layer(hook_name))
    return diffs


def check_provenance(
    steerer: AbstractSteerer, model: HookedModel, hook_name: str, on_mismatch: OnMismatch = "warn"
) -> None:
    """Warn (default), raise :class:`ProvenanceError` or do nothing on a provenance mismatch."""
    if on_mismatch not in ("warn", "raise", "ignore"):
        raise InvalidParameterError(
            f"`on_provenance_mismatch` must be 'warn', 'raise' or 'ignore'; got {on_mismatch!r}."
        )
    if on_mismatch == "ignore":
        return
    diffs = provenance_mismatches(steerer, model, hook_name)
    if not diffs:
        return
    listed = "; ".join(f"{k}: fitted on {a!r}, now {b!r}" for k, a, b in _rows(diffs))
    msg = (
        f"The {type(steerer).__name__} for {hook_name!r} was fitted under different conditions "
        f"({listed}). Refit it on activations from this model and hook, or pass "
        "on_provenance_mismatch='ignore' if the difference is intended."
    )
    if on_mismatch == "raise":
        raise ProvenanceError(msg)
    warnings.warn(msg, UserWarning, stacklevel=4)


def _rows(diffs: dict[str, tuple[Any, Any]]) -> list[tuple[str, Any, Any]]:
    return [(k, a, b) for k, (a, b) in diffs.items()]
