"""Low-dimensional views of activation space: PCA, mean-difference planes, user directions.

A :class:`Projection` keeps a centre and an orthonormal basis, so any ``d_model``-dimensional
point or trajectory maps into the view (:meth:`Projection.transform`), and any point of the view
lifts back into activation space on an affine slice through a chosen point
(:meth:`Projection.lift`). ``transform(lift(c, origin)) == c`` for every ``c`` and origin, and
``lift(transform(origin), origin) == origin``.

Example:
    >>> import torch
    >>> from lens_odesteer.analysis.projection import fit_projection
    >>> g = torch.Generator().manual_seed(0)
    >>> pos, neg = torch.randn(50, 8, generator=g) + 2, torch.randn(50, 8, generator=g)
    >>> proj = fit_projection(pos, neg, method="mean_diff")
    >>> proj.axis_labels
    ('mean difference', 'residual PC1')
    >>> proj.transform(pos).shape
    torch.Size([50, 2])
    >>> bool(proj.transform(pos)[:, 0].mean() > proj.transform(neg)[:, 0].mean())
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import (
    as_float_acts,
    check_choice,
    check_finite,
    check_positive_int,
)
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError

ProjectionMethod = Literal["pca", "mean_diff", "directions"]


@dataclass(frozen=True)
class Projection:
    """An affine view of activation space: ``coords = (a - mean) @ basis.T``.

    Attributes:
        mean: ``[d_model]`` centre of the view (the mean of the fitted activations).
        basis: ``[k, d_model]`` orthonormal rows, one per axis.
        axis_labels: one name per axis, used by the figures.
        method: how the basis was chosen (``"pca"``, ``"mean_diff"`` or ``"directions"``).
        explained_variance: the share of the fitted data's variance along each axis.
        centre_label: what the centre is, in words (level-set slices through the centre say it).
        compared: for a difference view, the labels of the multi-step and one-step methods
            whose end points span it (empty otherwise).
    """

    mean: Float[Tensor, " d_model"]
    basis: Float[Tensor, "k d_model"]
    axis_labels: tuple[str, ...]
    method: str
    explained_variance: tuple[float, ...]
    centre_label: str = "the data mean"
    compared: tuple[str, ...] = ()

    @property
    def d_model(self) -> int:
        """Width of the activation space."""
        return int(self.basis.shape[1])

    @property
    def n_components(self) -> int:
        """Number of axes of the view (2 or 3 for the figures)."""
        return int(self.basis.shape[0])

    def _check(self, acts: Tensor, name: str) -> Tensor:
        if acts.shape[-1] != self.d_model:
            raise ShapeMismatchError(
                f"`{name}` has last dimension {acts.shape[-1]}, but this projection was fitted "
                f"on d_model={self.d_model}; pass activations from the same hook point."
            )
        return acts.to(device=self.basis.device, dtype=self.basis.dtype)

    def transform(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch k"]:
        """Map points of any leading shape (e.g. a trajectory's ``ys``) into the view."""
        x = self._check(torch.as_tensor(acts), "acts")
        return (x - self.mean) @ self.basis.T

    def lift(
        self,
        coords: Float[Tensor, "*batch k"],
        origin: Float[Tensor, " d_model"] | None = None,
    ) -> Float[Tensor, "*batch d_model"]:
        """Map view coordinates back to activations on the slice through ``origin``.

        The slice is the affine plane ``origin + span(basis)``; it passes through the centre
        of the view when ``origin`` is None. Off-plane components of ``origin`` are kept, so
        the lifted points are real activations near ``origin`` rather than near the mean.
        """
        c = torch.as_tensor(coords).to(device=self.basis.device, dtype=self.basis.dtype)
        if c.shape[-1] != self.n_components:
            raise ShapeMismatchError(
                f"`coords` has last dimension {c.shape[-1]}; this projection has "
                f"{self.n_components} axes."
            )
        if origin is None:
            return self.mean + c @ self.basis
        o = self._check(torch.as_tensor(origin), "origin")
        if o.dim() != 1:
            raise ShapeMismatchError(
                f"`origin` must be one activation of shape [{self.d_model}]; got {tuple(o.shape)}."
            )
        return o + (c - self.transform(o)) @ self.basis

    def residual_norm(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """Distance of each point from the view's plane through the centre (what it hides)."""
        x = self._check(torch.as_tensor(acts), "acts") - self.mean
        return (x - (x @ self.basis.T) @ self.basis).norm(dim=-1)


def _orthonormal(vectors: Tensor, what: str) -> Tensor:
    """Gram-Schmidt (via QR) keeping the order and sign of the given directions."""
    q, r = torch.linalg.qr(vectors.T)
    diag = torch.diagonal(r)
    scale = vectors.norm(dim=1).clamp_min(torch.finfo(vectors.dtype).tiny)
    if bool((diag.abs() < 1e-8 * scale).any()):
        raise InvalidParameterError(
            f"The {what} are linearly dependent (or zero), so they do not span a "
            f"{vectors.shape[0]}-dimensional view; pass independent directions."
        )
    return (q * torch.sign(diag)).T.contiguous()


def _variance_shares(x: Tensor, basis: Tensor) -> tuple[float, ...]:
    total = float(x.pow(2).sum())
    if total == 0.0:
        return tuple(0.0 for _ in range(basis.shape[0]))
    return tuple(float((x @ b).pow(2).sum()) / total for b in basis)


def _top_components(x: Tensor, k: int) -> Tensor:
    """Top ``k`` right singular vectors of centred data, each signed to a positive mean load."""
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:k]
    # SVD signs are arbitrary; fix them so figures do not flip between runs or machines.
    signs = torch.sign(comps.sum(dim=1))
    signs[signs == 0] = 1.0
    return comps * signs[:, None]


def fit_projection(
    pos_acts: Float[Tensor, "n_pos d_model"],
    neg_acts: Float[Tensor, "n_neg d_model"] | None = None,
    *,
    method: ProjectionMethod | str = "mean_diff",
    n_components: int = 2,
    directions: Sequence[Tensor] | Tensor | None = None,
    labels: Sequence[str] | None = None,
) -> Projection:
    """Fit a 2-D or 3-D view of the activations.

    Args:
        pos_acts, neg_acts: the activations the view is fitted on (``neg_acts`` may be None for
            ``"pca"`` and ``"directions"``); the centre is their pooled mean.
        method: ``"pca"`` (top principal components of the pooled data), ``"mean_diff"`` (the
            first axis is the mean difference ``mu+ - mu-``, the others the top principal
            components of the data with that direction removed: the plane where ODESteer and
            one-step addition differ most visibly), or ``"directions"`` (the given directions,
            orthonormalised in order).
        n_components: number of axes (1 to 3; figures use 2 or 3).
        directions: ``[k, d_model]`` (or a list of ``[d_model]``) directions for
            ``method="directions"``, e.g. a probe weight and a CAA vector.
        labels: axis names (default: from the method).
    """
    check_choice(method, "projection method", ("pca", "mean_diff", "directions"))
    check_positive_int(n_components, "n_components")
    if n_components > 3:
        raise InvalidParameterError(
            f"`n_components` must be 1, 2 or 3 (a view you can draw); got {n_components}."
        )
    pos = as_float_acts(pos_acts, "pos_acts", min_rows=2)
    check_finite(pos, "pos_acts")
    if pos.dim() != 2:
        raise ShapeMismatchError(f"`pos_acts` must be [n, d_model]; got {tuple(pos.shape)}.")
    pos = pos.detach().to(torch.float64 if pos.dtype == torch.float64 else torch.float32)
    parts = [pos]
    if neg_acts is not None:
        neg = as_float_acts(neg_acts, "neg_acts", min_rows=1).detach().to(pos.dtype)
        check_finite(neg, "neg_acts")
        if neg.dim() != 2 or neg.shape[1] != pos.shape[1]:
            raise ShapeMismatchError(
                f"`neg_acts` must be [n, {pos.shape[1]}] like `pos_acts`; got {tuple(neg.shape)}."
            )
        parts.append(neg.to(pos.device))
    data = torch.cat(parts)
    mean = data.mean(0)
    centred = data - mean
    d = int(pos.shape[1])
    if n_components > d:
        raise InvalidParameterError(
            f"`n_components`={n_components} exceeds d_model={d}; use at most {d}."
        )

    if method == "pca":
        basis = _top_components(centred, n_components)
        default_labels = tuple(f"PC{i + 1}" for i in range(n_components))
    elif method == "mean_diff":
        if neg_acts is None:
            raise InvalidParameterError(
                "`method='mean_diff'` needs both `pos_acts` and `neg_acts`; pass the negative "
                "activations, or use method='pca'."
            )
        diff = parts[0].mean(0) - parts[1].mean(0)
        if float(diff.norm()) == 0.0:
            raise InvalidParameterError(
                "The positive and negative means are equal, so there is no mean-difference "
                "axis; use method='pca'."
            )
        first = diff / diff.norm()
        rest = centred - (centred @ first)[:, None] * first
        stacked = torch.cat([first[None], _top_components(rest, n_components - 1)])
        basis = _orthonormal(stacked, "mean difference and residual components")
        residual = [f"residual PC{i + 1}" for i in range(n_components - 1)]
        default_labels = ("mean difference", *residual)
    else:
        if directions is None:
            raise InvalidParameterError(
                "`method='directions'` needs `directions=` ([k, d_model] or a list of vectors)."
            )
        dirs = (
            torch.stack([torch.as_tensor(v) for v in directions])
            if not isinstance(directions, Tensor)
            else directions
        )
        dirs = dirs.detach().to(device=pos.device, dtype=pos.dtype)
        if dirs.dim() == 1:
            dirs = dirs[None]
        if dirs.dim() != 2 or dirs.shape[1] != d or dirs.shape[0] != n_components:
            raise ShapeMismatchError(
                f"`directions` must be [{n_components}, {d}] (n_components x d_model); got "
                f"{tuple(dirs.shape)}."
            )
        basis = _orthonormal(dirs, "directions")
        default_labels = tuple(f"direction {i + 1}" for i in range(n_components))

    names = tuple(labels) if labels is not None else default_labels
    if len(names) != n_components:
        raise InvalidParameterError(
            f"`labels` must name {n_components} axes; got {len(names)}: {names!r}."
        )
    return Projection(
        mean=mean,
        basis=basis,
        axis_labels=names,
        method=method,
        explained_variance=_variance_shares(centred, basis),
    )
