"""Checks shared by the public entry points: activations, labels and numeric parameters."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from lens_odesteer.errors import (
    InvalidActivationsError,
    InvalidParameterError,
    ParameterTypeError,
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
    """Return ``value`` as an int >= ``minimum`` or raise :class:`InvalidParameterError`.

    NumPy integers count as integers; bools do not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    out = int(value)
    if out < minimum:
        raise InvalidParameterError(f"`{name}` must be >= {minimum}; got {out}.")
    return out


#: Seeds ``torch.Generator.manual_seed`` accepts (an unsigned 64-bit integer).
MAX_SEED = 2**64 - 1


def check_seed(value: object, name: str = "seed") -> int:
    """Return ``value`` as a seed in ``[0, 2**64 - 1]`` (what a torch generator takes)."""
    seed = check_positive_int(value, name, minimum=0)
    if seed > MAX_SEED:
        raise InvalidParameterError(
            f"`{name}` must be an integer in [0, 2**64 - 1] (a torch generator seed); got "
            f"{seed}. Use a smaller seed, e.g. `{name} % 2**64`."
        )
    return seed


def check_finite_float(
    value: object, name: str, *, minimum: float | None = None, strict: bool = False
) -> float:
    """Return ``value`` as a finite float (optionally ``>= minimum`` / ``> minimum``).

    Any real number is accepted: Python and NumPy ints and floats, and one-element tensors.
    """
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"`{name}` must be a real number; got {value!r}.")
    try:
        out = float(value)
    except OverflowError:
        raise InvalidParameterError(
            f"`{name}` must be finite; got a number beyond the float range (|x| > 1.8e308); "
            "pass a value in range."
        ) from None
    if not math.isfinite(out):
        raise InvalidParameterError(f"`{name}` must be finite; got {out}.")
    if minimum is not None:
        if strict and out <= minimum:
            raise InvalidParameterError(f"`{name}` must be > {minimum}; got {out}.")
        if not strict and out < minimum:
            raise InvalidParameterError(f"`{name}` must be >= {minimum}; got {out}.")
    return out


def check_device(value: object, name: str = "device") -> torch.device | None:
    """Return ``value`` as a ``torch.device`` (None stays None) or raise a clear error."""
    if value is None or isinstance(value, torch.device):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ParameterTypeError(
            f"`{name}` must be a torch.device, a device string such as 'cpu' or 'cuda:0', or "
            f"None; got {type(value).__name__} {value!r}."
        )
    try:
        return torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise InvalidParameterError(
            f"`{name}`={value!r} is not a device torch knows; expected e.g. 'cpu', 'cuda', "
            "'cuda:0' or 'mps'."
        ) from None


def as_path(value: object, name: str = "path") -> Path:
    """Return ``value`` (a str or ``os.PathLike`` of str) as a :class:`~pathlib.Path`."""
    if isinstance(value, (bytes, bytearray)):
        raise ParameterTypeError(
            f"`{name}` must be a str or os.PathLike; got bytes {bytes(value)[:60]!r}. Decode it "
            "first, e.g. `path.decode()` or `os.fsdecode(path)`."
        )
    if not isinstance(value, (str, os.PathLike)):
        raise ParameterTypeError(
            f"`{name}` must be a str or os.PathLike (a file path); got {type(value).__name__} "
            f"{value!r}."
        )
    raw = os.fspath(value)
    if not isinstance(raw, str):
        raise ParameterTypeError(
            f"`{name}` must name a path as text; its os.fspath() is {type(raw).__name__}. "
            "Decode it first, e.g. `os.fsdecode(path)`."
        )
    if raw == "" or "\x00" in raw:
        raise InvalidParameterError(
            f"`{name}` must be a non-empty path without NUL characters; got {raw!r}."
        )
    return Path(raw)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` or raise listing them."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(f"Unknown {name} {value!r}. Expected one of: {listed}.")
    return value
