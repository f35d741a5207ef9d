"""The handle of attached steering hooks: removal, liveness, records and generation."""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import torch

from lens_odesteer.errors import LensOdesteerError, SteeringConflictError
from lens_odesteer.hooks import _model
from lens_odesteer.hooks.generation import generate_with_hooks
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.models.names import HookedModel

__all__ = ["SteeringHandle"]

#: Hook points currently steered through a handle, and by which handle.
_ACTIVE: weakref.WeakKeyDictionary[Any, SteeringHandle] = weakref.WeakKeyDictionary()
_ACTIVE_LOCK = threading.Lock()


class SteeringHandle:
    """The hooks of one :func:`~lens_odesteer.hooks.steering` block, and how to undo them.

    Attributes:
        model: the model the hooks are attached to.
        hooks: ``{hook_name: SteeringHook}``.
        plan: the :class:`~lens_odesteer.hooks.SteeringPlan` being applied.
    """

    def __init__(
        self, model: HookedModel, pairs: list[tuple[str, SteeringHook]], plan: Any = None
    ) -> None:
        self.model = model
        self.plan = plan
        self.hooks: dict[str, SteeringHook] = dict(pairs)
        self._records: list[dict[str, Any]] = pairs[0][1].records if pairs else []
        self._attached: list[tuple[Any, Any]] = []  # (HookPoint, LensHandle)
        self._thread = threading.get_ident()

    def _claim(self) -> list[Any]:
        """Register this handle's hook points as steered; refuse nesting and other threads."""
        points = _model.hook_dict(self.model)
        wanted = [points[name] for name in self.hooks]
        with _ACTIVE_LOCK:
            for name, point in zip(self.hooks, wanted, strict=True):
                other = _ACTIVE.get(point)
                if other is not None and other.attached:
                    where = (
                        "an enclosing `steering(...)` block"
                        if other._thread == self._thread
                        else f"another thread ({other._thread})"
                    )
                    raise SteeringConflictError(
                        f"{name!r} is already steered by {where}. Steering one hook point twice "
                        "is refused: put both steerers' effect in one plan, or leave the outer "
                        "block first."
                    )
            for other in list(_ACTIVE.values()):
                if other.model is self.model and other.attached and other._thread != self._thread:
                    raise SteeringConflictError(
                        f"This model is being steered from another thread ({other._thread}); "
                        "its hooks would also steer this thread's forward passes. Use one model "
                        "per thread, or a lock around each `with steering(...)` block."
                    )
            for point in wanted:
                _ACTIVE[point] = self
        return wanted

    def _attach(self) -> None:
        wanted = self._claim()
        try:
            for (name, hook), point in zip(self.hooks.items(), wanted, strict=True):
                hook.owner = self._thread
                before = list(point.fwd_hooks)
                returned = point.add_hook(hook, dir="fwd")
                new = [h for h in point.fwd_hooks if not any(h is b for b in before)]
                handle = returned if any(returned is h for h in new) else None
                if handle is None and len(new) == 1:
                    handle = new[0]
                if handle is None:
                    raise LensOdesteerError(
                        f"Could not find the handle of the hook just added at {name!r}; this "
                        "TransformerLens version is not supported."
                    )
                self._attached.append((point, handle))
        except BaseException:
            self.remove()
            raise

    @property
    def attached(self) -> bool:
        """True while every hook is still on its hook point (False after :meth:`remove`, or
        after something else, such as ``model.reset_hooks()``, removed them)."""
        return bool(self._attached) and all(
            any(h is handle for h in point.fwd_hooks) for point, handle in self._attached
        )

    def check_attached(self) -> None:
        """Raise :class:`~lens_odesteer.SteeringConflictError` unless every hook is attached."""
        if self._attached and not self.attached:
            raise SteeringConflictError(
                "The steering hooks of this block were removed while it was open (for example "
                "by `model.reset_hooks()`), so the model now runs unsteered. Do not reset the "
                "model's hooks inside a `with steering(...)` block."
            )
        if not self._attached:
            raise SteeringConflictError(
                "This SteeringHandle's hooks were removed; steer inside the `with` block."
            )

    def remove(self) -> None:
        """Remove exactly the hooks this handle added (idempotent; other hooks stay)."""
        attached, self._attached = self._attached, []
        removed_elsewhere = bool(attached) and not all(
            any(h is handle for h in point.fwd_hooks) for point, handle in attached
        )
        errors: list[BaseException] = []
        for point, handle in attached:
            try:
                handle.hook.remove()
                point.fwd_hooks[:] = [h for h in point.fwd_hooks if h is not handle]
            except Exception as exc:  # keep removing the others, then report
                errors.append(exc)
        with _ACTIVE_LOCK:
            for point, _ in attached:
                if _ACTIVE.get(point) is self:
                    del _ACTIVE[point]
        for hook in self.hooks.values():
            hook.owner = None
            hook.close()
        if removed_elsewhere:
            warnings.warn(
                "Some steering hooks had been removed before the `steering` block ended (for "
                "example by `model.reset_hooks()`); forward passes after that were unsteered.",
                UserWarning,
                stacklevel=4,
            )
        if errors:
            raise errors[0]

    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per steered call when ``record=True``; see :meth:`records_frame`."""
        return self._records

    def clear_records(self) -> None:
        """Drop all records."""
        self._records.clear()

    def records_frame(self) -> Any:
        """Return the records as a long-form ``pandas.DataFrame``, one row per steered token.

        Columns: ``hook`` (name), ``call`` (forward call at that hook since the last reset),
        ``row`` (batch row), ``position`` (token position among the row's real tokens),
        ``h_before``/``h_after`` (barrier before and after steering; NaN for steerers without a
        barrier) and ``shift`` (L2 norm of the edit). Without the KV cache every pass re-steers
        the in-scope positions it recomputes, so those tokens appear once per pass.
        """
        import pandas as pd

        frames = []
        for rec in self._records:
            n = len(rec["row"])
            nan = torch.full((n,), float("nan"))
            before = rec["h_before"] if rec["h_before"] is not None else nan
            after = rec["h_after"] if rec["h_after"] is not None else nan
            frames.append(
                pd.DataFrame(
                    {
                        "hook": [rec["hook"]] * n,
                        "call": rec["call"],
                        "row": rec["row"].numpy(),
                        "position": rec["position"].numpy(),
                        "h_before": before.numpy(),
                        "h_after": after.numpy(),
                        "shift": rec["shift"].numpy(),
                    }
                )
            )
        columns = ["hook", "call", "row", "position", "h_before", "h_after", "shift"]
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)[columns]

    def generate(self, prompts: str | Sequence[str], **kwargs: Any) -> Any:
        """Generate with these hooks and exact per-row positions.

        Keyword arguments as :func:`~lens_odesteer.hooks.generate` (``max_new_tokens``,
        ``do_sample``, ``use_past_kv_cache``, ``chat``, ...), without the steering ones: the
        plan is this block's. The hooks must still be attached (inside the ``with`` block).
        """
        self.check_attached()
        return generate_with_hooks(self.model, prompts, list(self.hooks.values()), **kwargs)

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        hooks = ", ".join(f"{name!r}: {hook!r}" for name, hook in self.hooks.items())
        return f"SteeringHandle(attached={self.attached}, hooks={{{hooks}}})"
