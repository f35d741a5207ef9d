"""Search for a barrier that fits the data and see whether its flow bends.

ODESteer's default barrier is close to linear on our default model (the diagnostic's ``bend``,
the part of the path due to its curvature, is under 1% of the displacement), so multi-step
integration barely differs from its linearisation.
:func:`search_barrier` fits many barriers on one set of activations (one collection, many fits):
the normalised degree-2/3 TensorSketch over ``gamma``, ``C`` and sketch size, the sketch on raw
activations, random Fourier features over the bandwidth, the MLP value network, and linear probes
as the reference. It ranks them by held-out log-likelihood (or AUC) on a split by group drawn
once with a fixed seed, returns the best as a fitted :class:`~lens_odesteer.ODESteer`, and runs
:func:`~lens_odesteer.analysis.nonlinearity.field_variation` on it (and, by default, on every
candidate) to say how nonlinear it is.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._distances import median_pairwise_distance
from lens_odesteer._splits import paired_groups, split_contrast
from lens_odesteer._validation import check_choice, check_finite_float, split_fit_args
from lens_odesteer.analysis.auc import binary_auc
from lens_odesteer.analysis.nonlinearity import FieldVariation, field_variation
from lens_odesteer.barriers import (
    AbstractBarrier,
    KernelLogisticBarrier,
    LinearBarrier,
    MLPValueBarrier,
)
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.features import PolynomialSketch, RandomFourierFeatures
from lens_odesteer.steerers import ODESteer

ParamValue = float | int | bool | str
_CRITERIA = ("log_likelihood", "auc")
#: Columns of the diagnostic copied into the search frame for every candidate.
_DIAGNOSTIC_METRICS = ("mean_pairwise_cosine", "gap_median", "bend_median", "turn_deg_median")


@dataclass(frozen=True)
class BarrierCandidate:
    """One configuration: a family name, its parameters (for the table) and an unfitted barrier.

    Example:
        >>> import lens_odesteer as lo
        >>> c = BarrierCandidate("linear", {"C": 1.0}, LinearBarrier(C=1.0))
        >>> c.label
        'linear(C=1)'
    """

    family: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    barrier: AbstractBarrier = field(default_factory=KernelLogisticBarrier)

    @property
    def label(self) -> str:
        """``family(key=value, ...)``."""
        inner = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
        )
        return f"{self.family}({inner})"


def default_barrier_grid(
    train_acts: Float[Tensor, "n_samples d_model"],
    *,
    n_components: int = 8000,
    seed: int = 0,
) -> list[BarrierCandidate]:
    """The default search grid (28 candidates), scaled to ``train_acts`` where needed.

    * ``linear``: probe on ``a / |a|`` with ``C`` in {0.1, 1, 10}, and on raw ``a`` (C = 1);
    * ``sketch``: normalised degree-2 TensorSketch with ``gamma`` in {0.1, 1, 10} x ``C`` in
      {0.1, 1, 10}; degree 3 with ``gamma`` in {1, 10}; a 2000-wide sketch (gamma 1);
    * ``sketch_raw``: the degree-2 sketch of raw ``a`` with ``gamma = g / m^2`` (``m`` the median
      norm, ``g`` in {0.1, 1, 10}), the same scale as the normalised one;
    * ``rff``: Gaussian random Fourier features with bandwidth ``k * sigma0`` (``sigma0`` the
      median pairwise distance / sqrt 2, ``k`` in {0.5, 1, 2}) and ``C`` in {1, 10};
    * ``mlp``: the value network (64 tanh units) with ``weight_decay`` in {1e-3, 1e-2, 1e-1}.

    Unmarked settings are ODESteer's defaults (``coef0 = 1``, ``seed``).
    """
    acts = train_acts.reshape(-1, train_acts.shape[-1])
    m2 = float(acts.norm(dim=-1).median()) ** 2
    gen = torch.Generator().manual_seed(seed)
    sigma0 = median_pairwise_distance(acts, generator=gen) / math.sqrt(2.0)
    out = [
        BarrierCandidate("linear", {"normalize": True, "C": c}, LinearBarrier(C=c, normalize=True))
        for c in (0.1, 1.0, 10.0)
    ]
    out.append(BarrierCandidate("linear", {"normalize": False, "C": 1.0}, LinearBarrier()))

    def sketch(degree: int, gamma: float, c: float, width: int) -> BarrierCandidate:
        feats = PolynomialSketch(n_components=width, degree=degree, gamma=gamma, seed=seed)
        params = {"degree": degree, "gamma": gamma, "C": c, "n_components": width}
        return BarrierCandidate("sketch", params, KernelLogisticBarrier(feats, C=c))

    out += [sketch(2, g, c, n_components) for g in (0.1, 1.0, 10.0) for c in (0.1, 1.0, 10.0)]
    out += [sketch(3, g, 1.0, n_components) for g in (1.0, 10.0)]
    out.append(sketch(2, 1.0, 1.0, 2000))
    for g in (0.1, 1.0, 10.0):
        feats = PolynomialSketch(
            n_components=n_components, gamma=g / max(m2, 1e-12), normalize=False, seed=seed
        )
        params = {"degree": 2, "gamma": g, "C": 1.0, "n_components": n_components}
        out.append(BarrierCandidate("sketch_raw", params, KernelLogisticBarrier(feats)))
    for k in (0.5, 1.0, 2.0):
        for c in (1.0, 10.0):
            rff = RandomFourierFeatures(n_components, bandwidth=k * sigma0, seed=seed)
            params = {"bandwidth_x_median": k, "C": c, "n_components": n_components}
            out.append(BarrierCandidate("rff", params, KernelLogisticBarrier(rff, C=c)))
    out += [
        BarrierCandidate("mlp", {"weight_decay": wd}, MLPValueBarrier(weight_decay=wd, seed=seed))
        for wd in (1e-3, 1e-2, 1e-1)
    ]
    return out


@dataclass(frozen=True, eq=False)
class BarrierSearchResult:
    """Result of :func:`search_barrier`.

    Attributes:
        frame: one row per candidate: ``candidate, label, family``, its parameters,
            ``train_log_likelihood, test_log_likelihood, test_auc, test_accuracy, fit_s,
            converged, n_warnings``, the diagnostic columns (``mean_pairwise_cosine,
            gap_median, bend_median, turn_deg_median``) when computed, ``rank`` (1 = best by the
            criterion), ``eligible`` (with ``min_bend``) and ``best`` (the chosen one).
        best: the chosen candidate (the top-ranked one, or the top eligible with ``min_bend``).
        steerer: ``ODESteer(best.barrier)`` fitted on the training split (on all
            data with ``refit=True``).
        diagnostic: :func:`field_variation` of the best steerer (fitted on the training split)
            on the held-out split.
        criterion: ``"log_likelihood"`` or ``"auc"``.
    """

    frame: pd.DataFrame
    best: BarrierCandidate
    steerer: ODESteer
    diagnostic: FieldVariation
    criterion: str

    def summary(self) -> str:
        """The winner, its score next to the best linear probe's, and how much its flow bends."""
        col = "test_log_likelihood" if self.criterion == "log_likelihood" else "test_auc"
        top = self.frame.loc[self.frame["best"]].iloc[0]
        text = (
            f"Best of {len(self.frame)} barriers by held-out {self.criterion.replace('_', '-')}: "
            f"{self.best.label} (log-likelihood {top['test_log_likelihood']:.4f}, AUC "
            f"{top['test_auc']:.3f}, accuracy {top['test_accuracy']:.3f})."
        )
        linear = self.frame[self.frame["family"] == "linear"]
        if len(linear) and top["family"] != "linear":
            lin = linear.loc[linear[col].idxmax()]
            text += (
                f" Best linear probe: {lin['label']} (log-likelihood "
                f"{lin['test_log_likelihood']:.4f}, AUC {lin['test_auc']:.3f})."
            )
        return text + " " + self.diagnostic.summary()


def search_barrier(
    pos_acts: Float[Tensor, "n_pos d_model"],
    neg_acts: Float[Tensor, "n_neg d_model"],
    *,
    candidates: Sequence[BarrierCandidate] | None = None,
    criterion: str = "log_likelihood",
    test_size: float = 0.3,
    seed: int = 0,
    groups: tuple[Sequence[Hashable], Sequence[Hashable]] | None = None,
    held_out: tuple[Tensor, Tensor] | None = None,
    T: float | None = None,
    solver: str = "euler",
    n_steps: int = 10,
    diagnose_all: bool = True,
    refit: bool = False,
    min_bend: float | None = None,
) -> BarrierSearchResult:
    """Fit every candidate barrier once, rank them on held-out data, diagnose the best.

    Main arguments:
        pos_acts, neg_acts: activations ``[n, d_model]`` of the two classes.
        candidates: the grid; default :func:`default_barrier_grid` of the training rows.
        criterion: ``"log_likelihood"`` (mean held-out ``log P(label | a)``, default) or
            ``"auc"`` (of ``h``).

    Other arguments:
        test_size, seed: the held-out split, drawn once by group (no group has rows on both
            sides; see :mod:`lens_odesteer._splits`).
        groups: ``(pos_groups, neg_groups)``, one group id per row of each class (e.g. the
            question of each answer). Default: row ``i`` of ``pos_acts`` and row ``i`` of
            ``neg_acts`` form one pair, as ``ContrastDataset.positive_texts`` /
            ``negative_texts`` line up. Pass them when several rows share a source item.
        held_out: ``(test_pos, test_neg)`` to rank on your own held-out rows instead (then
            every given row is fitted).
        T: strength of the diagnostics (default as :func:`field_variation`: CAA x1's
            displacement on the held-out rows).
        solver, n_steps: the flow of the returned :class:`~lens_odesteer.ODESteer`.
        diagnose_all: run the diagnostic on every candidate (adds its columns to the frame).
        refit: refit the chosen steerer on training and held-out rows together.
        min_bend: choose the best candidate whose flow bends at least this much (median
            ``bend`` on the held-out rows, e.g. ``0.01`` for 1% of the displacement): the barrier
            for which ODE steering differs from its linearisation, if the data supports one.
            Needs ``diagnose_all``; if no candidate qualifies, warns and takes the overall best.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> gen = torch.Generator().manual_seed(0)
        >>> pos, neg = torch.randn(60, 4, generator=gen) + 1, torch.randn(60, 4, generator=gen)
        >>> grid = [BarrierCandidate("linear", {"C": 1.0}, LinearBarrier()),
        ...         BarrierCandidate("mlp", {}, MLPValueBarrier(hidden=8))]
        >>> result = search_barrier(pos, neg, candidates=grid)
        >>> list(result.frame["label"]), result.best.family in ("linear", "mlp")
        (['linear(C=1)', 'mlp()'], True)
    """
    check_choice(criterion, "criterion", _CRITERIA)
    if min_bend is not None:
        min_bend = check_finite_float(min_bend, "min_bend", minimum=0.0)
        if not diagnose_all:
            raise InvalidParameterError(
                "`min_bend` needs the diagnostic of every candidate; pass `diagnose_all=True`."
            )
    pos, neg = split_fit_args(pos_acts, neg_acts)
    if held_out is None:
        pos_groups, neg_groups = _check_groups(groups, pos.shape[0], neg.shape[0])
        rows = split_contrast(pos_groups, neg_groups, test_size, seed)
        train_pos, test_pos = pos[rows.pos_fit], pos[rows.pos_test]
        train_neg, test_neg = neg[rows.neg_fit], neg[rows.neg_test]
    else:
        if groups is not None:
            raise InvalidParameterError(
                "Give `groups` (to split the rows here) or `held_out` (your own test rows), "
                "not both."
            )
        train_pos, train_neg = pos, neg
        test_pos, test_neg = split_fit_args(*held_out)
        if test_pos.shape[-1] != pos.shape[-1]:
            raise ShapeMismatchError(
                f"`held_out` has d_model={test_pos.shape[-1]} but `pos_acts` has "
                f"d_model={pos.shape[-1]}; use activations from the same hook."
            )
    grid = (
        list(candidates)
        if candidates is not None
        else default_barrier_grid(torch.cat([train_pos, train_neg]), seed=seed)
    )
    if not grid:
        raise InvalidParameterError("`candidates` is empty; give at least one BarrierCandidate.")
    test_acts = torch.cat([test_pos, test_neg])
    test_labels = torch.arange(test_acts.shape[0], device=test_acts.device) < test_pos.shape[0]
    train_acts = torch.cat([train_pos, train_neg])
    train_labels = torch.arange(train_acts.shape[0], device=train_acts.device) < train_pos.shape[0]

    records, steerers = [], []
    for i, cand in enumerate(grid):
        steerer = ODESteer(cand.barrier, solver=solver, steps=n_steps)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            steerer.fit(train_pos, train_neg)
        record: dict[str, object] = {"candidate": i, "label": cand.label, "family": cand.family}
        record.update(cand.params)
        barrier = steerer.barrier_
        test_logit = barrier.logit(test_acts.to(steerer.dtype_))
        record.update(
            train_log_likelihood=_log_likelihood(
                barrier.logit(train_acts.to(steerer.dtype_)), train_labels
            ),
            test_log_likelihood=_log_likelihood(test_logit, test_labels),
            test_auc=binary_auc(test_logit, test_labels),
            test_accuracy=float(
                ((barrier.value(test_acts.to(steerer.dtype_)) >= 0) == test_labels).double().mean()
            ),
            fit_s=time.perf_counter() - start,
            converged=bool(getattr(barrier, "converged_", True)),
            n_warnings=len(caught),
        )
        if diagnose_all:
            diag = field_variation(steerer, test_acts, labels=test_labels, T=T).to_frame()
            values = dict(zip(diag["metric"], diag["value"], strict=True))
            record.update({k: values[k] for k in _DIAGNOSTIC_METRICS})
        records.append(record)
        steerers.append(steerer)

    frame = pd.DataFrame(records)
    col = "test_log_likelihood" if criterion == "log_likelihood" else "test_auc"
    score = frame[col].astype(float).fillna(-math.inf)
    frame["rank"] = score.rank(ascending=False, method="first").astype(int)
    best_i = int(frame.index[frame["rank"] == 1][0])
    if min_bend is not None:
        eligible = frame["bend_median"].astype(float) >= min_bend
        frame["eligible"] = eligible
        if bool(eligible.any()):
            best_i = int(score[eligible].idxmax())
        else:
            top = frame.loc[frame["bend_median"].astype(float).idxmax()]
            warnings.warn(
                f"No candidate bends by at least min_bend={min_bend:g} (largest median bend "
                f"{top['bend_median']:.4g}, {top['label']}); returning the overall best.",
                UserWarning,
                stacklevel=2,
            )
    frame["best"] = frame.index == best_i
    best = grid[best_i]
    diagnostic = field_variation(steerers[best_i], test_acts, labels=test_labels, T=T)
    steerer = steerers[best_i]
    if refit:
        steerer = ODESteer(best.barrier, solver=solver, steps=n_steps).fit(
            torch.cat([train_pos, test_pos]), torch.cat([train_neg, test_neg])
        )
    return BarrierSearchResult(frame, best, steerer, diagnostic, criterion)


def _check_groups(
    groups: tuple[Sequence[Hashable], Sequence[Hashable]] | None, n_pos: int, n_neg: int
) -> tuple[Sequence[Hashable], Sequence[Hashable]]:
    if groups is None:
        return paired_groups(n_pos, n_neg)
    if len(groups) != 2:
        raise InvalidParameterError(
            f"`groups` must be a pair (pos_groups, neg_groups); got {len(groups)} entries."
        )
    pos_groups, neg_groups = groups
    if len(pos_groups) != n_pos or len(neg_groups) != n_neg:
        raise ShapeMismatchError(
            f"`groups` has {len(pos_groups)} positive and {len(neg_groups)} negative ids but "
            f"there are {n_pos} positive and {n_neg} negative rows; give one id per row."
        )
    return pos_groups, neg_groups


def _log_likelihood(logit: Tensor, labels: Tensor) -> float:
    signs = labels.to(logit.dtype) * 2 - 1
    return float(-F.softplus(-signs * logit).double().mean())
