"""The handle of attached steering hooks: removal, layouts, records and generation."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import torch
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError, LensOdesteerError
from lens_odesteer.hooks import _model
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.hooks.scope import PromptLayout
from lens_odesteer.models.names import HookedModel

__all__ = ["SteeringHandle", "layout_from"]


def layout_from(lengths: object, attention_mask: Tensor | None) -> PromptLayout | None:
    """Build the layout of plain forward passes from ``lengths`` or ``attention_mask``."""
    if lengths is not None and attention_mask is not None:
        raise InvalidParameterError("Give `lengths` or `attention_mask`, not both.")
    if attention_mask is not None:
        return PromptLayout.from_attention_mask(attention_mask)
    if lengths is not None:
        return PromptLayout.from_lengths(lengths)  # type: ignore[arg-type]
    return None


class SteeringHandle:
    """The hooks of one :func:`attach`/:func:`steering` call, and how to undo them.

    Attributes:
        model: the model the hooks are attached to.
        hooks: ``{hook_name: SteeringHook}``.
    """

    def __init__(self, model: HookedModel, pairs: list[tuple[str, SteeringHook]]) -> None:
        self.model = model
        self.hooks: dict[str, SteeringHook] = dict(pairs)
        self._records: list[dict[str, Any]] = pairs[0][1].records if pairs else []
        self._attached: list[tuple[Any, Any]] = []  # (HookPoint, LensHandle)

    def _attach(self) -> None:
        points = _model.hook_dict(self.model)
        try:
            for name, hook in self.hooks.items():
                point = points[name]
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
        """True until :meth:`remove` has run."""
        return bool(self._attached)

    def remove(self) -> None:
        """Remove exactly the hooks this handle added (idempotent; other hooks stay)."""
        attached, self._attached = self._attached, []
        errors: list[BaseException] = []
        for point, handle in attached:
            try:
                handle.hook.remove()
                point.fwd_hooks[:] = [h for h in point.fwd_hooks if h is not handle]
            except Exception as exc:  # keep removing the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def reset(self) -> None:
        """Forget every hook's position state (the next call starts a new sequence)."""
        for hook in self.hooks.values():
            hook.reset()

    def set_layout(
        self,
        *,
        lengths: Sequence[int] | None = None,
        attention_mask: Tensor | None = None,
    ) -> None:
        """Tell the hooks the real tokens per row of the next forward passes (or clear it).

        Args:
            lengths: real tokens per row of right-padded input (``model.to_tokens(list)``).
            attention_mask: ``[batch, pos]`` 0/1 mask (left or right padding).
        """
        layout = layout_from(lengths, attention_mask)
        for hook in self.hooks.values():
            hook.set_layout(layout)

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
        """Generate with these hooks; keyword arguments as :func:`~lens_odesteer.hooks.generate`.

        The hooks must be attached (inside the ``with`` block).
        """
        from lens_odesteer.hooks.generation import generate_with_hooks

        if not self.attached:
            raise InvalidParameterError(
                "This SteeringHandle's hooks were removed; generate inside the `with` block."
            )
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
