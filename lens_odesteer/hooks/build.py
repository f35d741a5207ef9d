"""Validate a :class:`~lens_odesteer.hooks.SteeringPlan` against a model and build its hooks.

Everything is checked before any hook exists: hook names (with suggestions for typos), aliases
of one hook point, steerer widths against the activation width at each hook, gated hook points
and the provenance a loaded steerer recorded. Each steerer is then moved once, as a copy, to its
hook's device and compute dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import _model
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.hooks.provenance import check_provenance
from lens_odesteer.models.names import HookedModel, validate_hook_name

if TYPE_CHECKING:
    from lens_odesteer.hooks.plan import SteeringPlan

__all__ = ["build_hooks"]


def build_hooks(model: HookedModel, plan: SteeringPlan) -> list[tuple[str, SteeringHook]]:
    """Return ``(hook_name, SteeringHook)`` pairs for ``plan`` on ``model`` (nothing attached)."""
    points = _model.hook_dict(model)
    n_ctx = _model.n_ctx(model)
    if n_ctx is not None and plan.scope.positions is not None:
        out = [p for p in plan.scope.positions.tolist() if not -n_ctx <= p < n_ctx]
        if out:
            raise InvalidParameterError(
                f"Token position(s) {out} in `scope` are out of range for a model with a "
                f"context of n_ctx={n_ctx} tokens (valid: {-n_ctx} .. {n_ctx - 1})."
            )
    seen: dict[int, str] = {}
    for iv in plan:
        validate_hook_name(model, iv.hook)
        point = points[iv.hook]
        if id(point) in seen:
            raise InvalidParameterError(
                f"{iv.hook!r} and {seen[id(point)]!r} are the same hook point (an alias and its "
                "canonical name); steer it once."
            )
        seen[id(point)] = iv.hook
        width = _model.expected_width(model, iv.hook, point)
        if width is not None and iv.steerer.d_model_ != width:
            raise ShapeMismatchError(
                f"The steerer for {iv.hook!r} was fitted on d_model={iv.steerer.d_model_} but the "
                f"activations there have width {width}. Fit it on activations from this hook of "
                "this model."
            )
        _model.warn_resid_mid(model, iv.hook, point)
        check_provenance(iv.steerer, model, iv.hook, plan.on_provenance_mismatch)
    records: list[dict[str, Any]] = []
    pairs = []
    for iv in plan:
        hook = SteeringHook(
            model,
            iv.steerer,
            T=iv.T,
            scope=plan.scope,
            device=_model.hook_device(model, iv.hook),
            compute_dtype=plan.compute_dtype,
            record=plan.record,
            attention_mask=plan.attention_mask,
            on_provenance_mismatch="ignore",  # checked above, before anything was built
        )
        hook.strength = iv.strength
        hook.records = records  # one list for the whole plan, in call order
        _model.check_fireable(model, points[iv.hook], iv.hook, hook)
        pairs.append((iv.hook, hook))
    return pairs
