"""The result of an integration: saved times and states (time on the leading axis) and its cost."""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Bool, Float
from torch import Tensor


@dataclass(frozen=True)
class Trajectory:
    """States of an ODE solve saved at shared times.

    Attributes:
        ts: ``[n_saved]`` save times, ``ts[0] = 0`` and ``ts[-1] = T``.
        ys: ``[n_saved, *batch, d_model]`` states; ``ys[0]`` is the input, ``ys[-1]`` the result.
        hs: ``[n_saved, *batch]`` barrier value at each saved state, or None when the method has
            no barrier or it was not requested.
        n_field_evals: number of (batched) vector-field evaluations.
        n_row_evals: number of single-row field evaluations (rows frozen by a margin cost none).
        stopped: ``[*batch]`` rows frozen because their barrier reached the margin (None
            without a margin).
        n_steps_rejected: steps rejected by the adaptive solver (0 for fixed-step solvers).
    """

    ts: Float[Tensor, " n_saved"]
    ys: Float[Tensor, "n_saved *batch d_model"]
    hs: Float[Tensor, "n_saved *batch"] | None  # noqa: F821
    n_field_evals: int
    n_row_evals: int
    stopped: Bool[Tensor, "*batch"] | None = None
    n_steps_rejected: int = 0

    @property
    def y0(self) -> Float[Tensor, "*batch d_model"]:
        """The initial states."""
        return self.ys[0]

    @property
    def y1(self) -> Float[Tensor, "*batch d_model"]:
        """The final states."""
        return self.ys[-1]

    @property
    def n_saved(self) -> int:
        """Number of saved time points."""
        return int(self.ts.shape[0])

    def displacement(self) -> Float[Tensor, "*batch"]:
        """``|y1 - y0|`` per row."""
        return (self.ys[-1] - self.ys[0]).norm(dim=-1)

    def path_length(self) -> Float[Tensor, "*batch"]:
        """Sum of ``|y_{k+1} - y_k|`` over saved states (the arc length for dense saves)."""
        if self.n_saved < 2:
            return self.ys[0].new_zeros(self.ys.shape[1:-1])
        return (self.ys[1:] - self.ys[:-1]).norm(dim=-1).sum(0)
