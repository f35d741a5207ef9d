"""Checks shared by the public entry points: activations, labels and numeric parameters."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from lens_odesteer.errors import (
    InvalidActivationsError,
    InvalidParameterError,
    ShapeMismatchError,
)


def as_float_acts(acts: object, name: str = "acts", *, min_rows: int = 0) -> Tensor:
    """Return ``acts`` as a floating tensor of rank >= 1, or raise a clear error.

    Args:
        acts: a tensor (or array-like) of shape ``[..., d_model]``.
        name: the argument name used in messages.
        min_rows: the least number of rows (product of the leading axes) accepted.
    """
    if not isinstance(acts, Tensor):
        try:
            acts = torch.as_tensor(acts)
        except Exception as exc:  # pragma: no cover - depends on the foreign object
            raise InvalidActivationsError(
                f"`{name}` must be a torch.Tensor of shape [..., d_model]; "
                f"got {type(acts).__name__}."
            ) from exc
    if not acts.is_floating_point():
        raise InvalidActivationsError(
            f"`{name}` must be a floating tensor (activations), got dtype {acts.dtype}. "
            "Convert it with `.float()` if these really are activations."
        )
    if acts.ndim < 1:
        raise InvalidActivationsError(f"`{name}` must have shape [..., d_model]; got a 0-d tensor.")
    if acts.shape[-1] == 0:
        raise InvalidActivationsError(f"`{name}` has d_model=0; expected a positive width.")
    n_rows = acts[..., 0].numel()
    if n_rows < min_rows:
        raise InvalidActivationsError(
            f"`{name}` has {n_rows} row(s) but at least {min_rows} are needed."
        )
    return acts


def check_finite(acts: Tensor, name: str = "acts") -> None:
    """Raise if ``acts`` holds NaN or infinite values, saying how many and where."""
    bad = ~torch.isfinite(acts)
    if bool(bad.any()):
        n_bad = int(bad.sum())
        rows = bad.reshape(-1, acts.shape[-1]).any(-1).nonzero().flatten()[:5].tolist()
        raise InvalidActivationsError(
            f"`{name}` contains {n_bad} non-finite value(s) (NaN or inf), e.g. in flattened "
            f"rows {rows}. Check the model dtype (half precision can overflow) or drop those rows."
        )


def check_d_model(acts: Tensor, d_model: int, name: str = "acts", *, fitted_on: str = "") -> None:
    """Raise :class:`ShapeMismatchError` when the last axis of ``acts`` is not ``d_model``."""
    if acts.shape[-1] != d_model:
        where = f" ({fitted_on})" if fitted_on else ""
        raise ShapeMismatchError(
            f"`{name}` has d_model={acts.shape[-1]} (shape {tuple(acts.shape)}) but this steerer "
            f"was fitted on d_model={d_model}{where}. Use activations from the same hook and model."
        )


def split_fit_args(
    first: object, second: object
) -> tuple[Float[Tensor, "n_pos d_model"], Float[Tensor, "n_neg d_model"]]:
    """Turn ``fit(pos_acts, neg_acts)`` or ``fit(acts, labels)`` into two 2-D float tensors.

    ``labels`` are recognised by dtype (bool or integer) or, for floats, by being one axis
    shorter than ``acts`` and holding only 0 and 1. Label 1 (True) marks the positive class.
    """
    first_t = as_float_acts(first, "pos_acts")
    labels = _maybe_labels(first_t, second)
    if labels is not None:
        acts = first_t.reshape(-1, first_t.shape[-1])
        pos, neg = acts[labels], acts[~labels]
        names = ("acts[labels == 1]", "acts[labels == 0]")
    else:
        second_t = as_float_acts(second, "neg_acts")
        if second_t.shape[-1] != first_t.shape[-1]:
            raise ShapeMismatchError(
                f"`pos_acts` has d_model={first_t.shape[-1]} but `neg_acts` has "
                f"d_model={second_t.shape[-1]}; both must come from the same hook."
            )
        pos = first_t.reshape(-1, first_t.shape[-1])
        neg = second_t.reshape(-1, second_t.shape[-1])
        names = ("pos_acts", "neg_acts")
    for t, nm in zip((pos, neg), names, strict=True):
        if t.shape[0] == 0:
            raise InvalidActivationsError(
                f"`{nm}` is empty; fitting needs at least one activation of each class."
            )
        check_finite(t, nm)
    return pos, neg


def _maybe_labels(acts: Tensor, second: object) -> Bool[Tensor, " n_samples"] | None:
    if isinstance(second, (list, tuple)):
        if len(second) == 0 or not all(isinstance(x, (bool, int)) for x in second):
            return None
        second = torch.tensor(second)
    if not isinstance(second, Tensor):
        try:
            second = torch.as_tensor(second)
        except Exception:
            return None
    is_label_dtype = second.dtype == torch.bool or not (
        second.is_floating_point() or second.is_complex()
    )
    looks_like_labels = is_label_dtype or (
        second.shape == acts.shape[:-1]
        and acts.ndim >= 2
        and bool(((second == 0) | (second == 1)).all())
    )
    if not looks_like_labels:
        return None
    if second.shape != acts.shape[:-1]:
        raise ShapeMismatchError(
            f"`labels` has shape {tuple(second.shape)} but `acts` has leading shape "
            f"{tuple(acts.shape[:-1])}; give one label per activation row."
        )
    values = torch.unique(second)
    if not bool(((values == 0) | (values == 1)).all()):
        raise InvalidParameterError(
            f"`labels` must be 0/1 (or bool) with 1 = positive; got values {values.tolist()[:10]}."
        )
    return second.reshape(-1).to(torch.bool)


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise :class:`InvalidParameterError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise InvalidParameterError(f"`{name}` must be >= {minimum}; got {value}.")
    return value


def check_finite_float(
    value: object, name: str, *, minimum: float | None = None, strict: bool = False
) -> float:
    """Return ``value`` as a finite float (optionally ``>= minimum`` / ``> minimum``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = float(value)
        else:
            raise InvalidParameterError(f"`{name}` must be a real number; got {value!r}.")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidParameterError(f"`{name}` must be finite; got {out}.")
    if minimum is not None:
        if strict and out <= minimum:
            raise InvalidParameterError(f"`{name}` must be > {minimum}; got {out}.")
        if not strict and out < minimum:
            raise InvalidParameterError(f"`{name}` must be >= {minimum}; got {out}.")
    return out


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` or raise listing them."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(f"Unknown {name} {value!r}. Expected one of: {listed}.")
    return value
