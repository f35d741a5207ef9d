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
from lens_odesteer.models.names import _BLOCK_RE, HookedModel, hook_layer
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = [
    "COMPARED_FIELDS",
    "OnMismatch",
    "check_provenance",
    "hook_mismatches",
    "provenance_mismatches",
]

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
    steerer: AbstractSteerer, model: HookedModel, hook_name: str | None
) -> dict[str, tuple[Any, Any]]:
    """Return ``{field: (recorded, current)}`` for every recorded field that differs.

    Compared: the model facts of :data:`COMPARED_FIELDS`, the layer (from the recorded
    ``hook_name``, else the recorded ``layer``) and the hook site (``hook_resid_post`` vs
    ``hook_attn_out``; two names of one hook point agree). ``hook_name=None`` compares the model
    facts only (the hook is not known yet).
    """
    recorded = getattr(steerer, "provenance_", None)
    if not isinstance(recorded, dict) or not recorded:
        return {}
    from lens_odesteer.models.loading import model_provenance  # imports transformers: lazily

    current = model_provenance(model)
    diffs: dict[str, tuple[Any, Any]] = {}
    for key in COMPARED_FIELDS:
        if key in recorded and current.get(key) is not None and recorded[key] != current[key]:
            diffs[key] = (recorded[key], current[key])
    if hook_name is not None:
        diffs.update(hook_mismatches(recorded, model, hook_name))
    return diffs


def hook_mismatches(
    recorded: dict[str, Any], model: HookedModel, hook_name: str
) -> dict[str, tuple[Any, Any]]:
    """Layer and hook-site differences between a provenance record and ``hook_name``."""
    diffs: dict[str, tuple[Any, Any]] = {}
    saved_hook = recorded.get("hook_name")
    saved_hook = saved_hook if isinstance(saved_hook, str) and saved_hook else None
    layer_now = hook_layer(hook_name)
    if saved_hook is not None:
        saved_layer = hook_layer(saved_hook)
    else:
        layer = recorded.get("layer")
        saved_layer = layer if isinstance(layer, int) and not isinstance(layer, bool) else None
    if saved_layer is not None and saved_layer != layer_now:
        diffs["layer"] = (saved_layer, layer_now)
    if saved_hook is not None and not _same_site(model, saved_hook, hook_name):
        diffs["hook_site"] = (_site(saved_hook), _site(hook_name))
    return diffs


def _site(name: str) -> str:
    """The hook name without its block index (``blocks.6.hook_resid_post``: ``hook_resid_post``)."""
    return _BLOCK_RE.sub("", name, count=1)


def _same_site(model: HookedModel, saved_hook: str, hook_name: str) -> bool:
    """Whether ``saved_hook`` names the same kind of hook point as ``hook_name``.

    The saved name is moved to ``hook_name``'s block; two names of one hook point (an alias and
    its canonical name) count as the same site.
    """
    if _site(saved_hook) == _site(hook_name):
        return True
    layer = hook_layer(hook_name)
    moved = saved_hook if layer is None else _BLOCK_RE.sub(f"blocks.{layer}.", saved_hook, count=1)
    points = getattr(model, "hook_dict", None) or {}
    try:
        return moved in points and hook_name in points and points[moved] is points[hook_name]
    except Exception:  # a model whose hook_dict cannot be read: compare names only
        return False


def check_provenance(
    steerer: AbstractSteerer,
    model: HookedModel,
    hook_name: str | None,
    on_mismatch: OnMismatch = "warn",
    *,
    stacklevel: int = 4,
) -> None:
    """Warn (default), raise :class:`ProvenanceError` or do nothing on a provenance mismatch.

    ``hook_name=None`` checks the model facts only (see :func:`provenance_mismatches`).
    """
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
    where = f" for {hook_name!r}" if hook_name is not None else ""
    msg = (
        f"The {type(steerer).__name__}{where} was fitted under different conditions "
        f"({listed}). Refit it on activations from this model and hook, or pass "
        "on_provenance_mismatch='ignore' if the difference is intended."
    )
    if on_mismatch == "raise":
        raise ProvenanceError(msg)
    warnings.warn(msg, UserWarning, stacklevel=stacklevel)


def _rows(diffs: dict[str, tuple[Any, Any]]) -> list[tuple[str, Any, Any]]:
    return [(k, a, b) for k, (a, b) in diffs.items()]
