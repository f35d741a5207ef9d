"""The methods an evaluation compares, by name, each built at its defaults.

Besides ODESteer's family and the paper's baselines, today's rivals run under the same names as
their classes: the norm-preserving rotations ``"HPR"``, ``"AngularSteering"`` and
``"SphericalSteering"``, the flow-matched ``"TruthFlow"`` and ``"MeanCentring"``.
``"none"`` is the unsteered model. ``"ODESteer-margin"`` is ODESteer with barrier early
stopping (``stop=BarrierMargin(0.0)``: a row stops once ``h >= 0``; rows already there stay).
Two methods choose their barrier on the fit activations with
:func:`~lens_odesteer.analysis.barrier_search.search_barrier` (28 candidates, 30% of the fit
groups held out, then refitted on all rows): ``"ODESteer-searched"`` takes the barrier with the
best held-out log-likelihood, ``"ODESteer-bent"`` the best one whose flow bends by at least 1% of
the displacement (median over the held-out rows), i.e. a barrier for which the ODE differs from
its linearisation, if the data supports one. Fit them (and every other method) with
:func:`fit_method`, which also returns what the search found.
:data:`ONE_STEP` lists the one-step baselines that ODESteer's headline comparison is against.

Example:
    >>> make_steerer("ODESteer-margin").stop
    BarrierMargin(margin=0.0)
    >>> make_steerer("none") is None
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence

from jaxtyping import Float
from torch import Tensor

from lens_odesteer.analysis.barrier_search import search_barrier
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.steerers import (
    CAA,
    HPR,
    ITI,
    AbstractSteerer,
    AngularSteering,
    BarrierMargin,
    LinAcT,
    MeanCentring,
    MiMiC,
    ODESteer,
    RepE,
    RFFODESteer,
    SphericalSteering,
    StepODESteer,
    TruthFlow,
    ValueSteer,
)

__all__ = [
    "ALL_METHODS",
    "MAX_T",
    "ONE_STEP",
    "SEARCHED",
    "fit_method",
    "make_steerer",
    "parse_methods",
]

#: Methods whose barrier is chosen by a search at fit time: name -> ``min_bend`` of the search.
SEARCHED: dict[str, float | None] = {"ODESteer-searched": None, "ODESteer-bent": 0.01}

_FACTORIES: dict[str, Callable[[], AbstractSteerer] | None] = {
    "none": None,
    "CAA": CAA,
    "MeanCentring": MeanCentring,
    "ITI": ITI,
    "RepE": RepE,
    "LinAcT": LinAcT,
    "MiMiC": MiMiC,
    "HPR": HPR,
    "AngularSteering": AngularSteering,
    "SphericalSteering": SphericalSteering,
    "StepODESteer": StepODESteer,
    "ODESteer": ODESteer,
    "RFFODESteer": RFFODESteer,
    "ValueSteer": ValueSteer,
    "TruthFlow": TruthFlow,
    "ODESteer-margin": lambda: ODESteer(stop=BarrierMargin(0.0)),
    "ODESteer-searched": None,
    "ODESteer-bent": None,
}

#: Every method name, in reporting order.
ALL_METHODS: tuple[str, ...] = tuple(_FACTORIES)

_BUILT = {name: f() for name, f in _FACTORIES.items() if f is not None}

#: One-step baselines (one explicit step ``a + T v(a)``, ``kind == "one_step"``), the comparison
#: set for ODESteer.
ONE_STEP: tuple[str, ...] = tuple(n for n, s in _BUILT.items() if s.kind == "one_step")

#: Largest strength a method accepts in strength searches (None: unbounded). LinAcT and MiMiC
#: interpolate from the identity (0) to their full transport map (1); AngularSteering turns by at
#: most pi. Steerers with a margin are capped at the mean residual norm by the runner.
MAX_T: dict[str, float | None] = {n: s.max_T for n, s in _BUILT.items() if s.max_T is not None}


def make_steerer(name: str) -> AbstractSteerer | None:
    """Return an unfitted steerer for ``name`` at its defaults (None for ``"none"``).

    The searched methods (:data:`SEARCHED`) have no fixed barrier before seeing data; fit them
    with :func:`fit_method`.
    """
    if name not in _FACTORIES:
        raise InvalidParameterError(
            f"Unknown method {name!r}. Expected one of: {', '.join(ALL_METHODS)}."
        )
    if name in SEARCHED:
        raise InvalidParameterError(
            f"{name!r} chooses its barrier from the data; fit it with "
            f"`fit_method({name!r}, pos_acts, neg_acts)` instead of `make_steerer`."
        )
    factory = _FACTORIES[name]
    return None if factory is None else factory()


def fit_method(
    name: str,
    pos_acts: Float[Tensor, "n_pos d_model"],
    neg_acts: Float[Tensor, "n_neg d_model"],
    *,
    seed: int = 0,
    groups: tuple[Sequence[Hashable], Sequence[Hashable]] | None = None,
) -> tuple[AbstractSteerer, dict[str, object]]:
    """Fit method ``name`` on the two classes; return the steerer and facts about the fit.

    For the searched methods the facts are the chosen barrier (``barrier``), its held-out
    AUC/log-likelihood next to the best linear probe's, and the median bend and gap of its flow
    on the held-out rows; for the others the dict is empty. The searched methods hold rows out
    by group: pass ``groups=split.row_groups()`` (one id per row of each class, e.g. the
    TruthfulQA question) so no question is both fitted and held out; the default pairs row
    ``i`` of each class. The other methods ignore ``groups``.

    Example:
        >>> import torch
        >>> gen = torch.Generator().manual_seed(0)
        >>> pos, neg = torch.randn(30, 4, generator=gen) + 1, torch.randn(30, 4, generator=gen)
        >>> steerer, facts = fit_method("CAA", pos, neg)
        >>> type(steerer).__name__, facts
        ('CAA', {})
    """
    if name not in SEARCHED:
        steerer = make_steerer(name)  # raises for unknown names
        if steerer is None:
            raise InvalidParameterError("`none` is the unsteered model; there is nothing to fit.")
        return steerer.fit(pos_acts, neg_acts), {}
    min_bend = SEARCHED[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = search_barrier(
            pos_acts,
            neg_acts,
            seed=seed,
            groups=groups,
            refit=True,
            diagnose_all=True,
            min_bend=min_bend,
        )
    frame = result.frame
    top = frame.loc[frame["best"]].iloc[0]
    linear = frame[frame["family"] == "linear"]
    lin = linear.loc[linear["test_log_likelihood"].astype(float).idxmax()]
    facts: dict[str, object] = {
        "barrier": result.best.label,
        "family": result.best.family,
        "rank": int(top["rank"]),
        "n_candidates": len(frame),
        "test_auc": float(top["test_auc"]),
        "test_log_likelihood": float(top["test_log_likelihood"]),
        "linear_barrier": str(lin["label"]),
        "linear_test_auc": float(lin["test_auc"]),
        "linear_test_log_likelihood": float(lin["test_log_likelihood"]),
        "heldout_bend_median": float(top["bend_median"]),
        "heldout_gap_median": float(top["gap_median"]),
        "min_bend": min_bend,
        "min_bend_met": None if min_bend is None else bool(top["bend_median"] >= min_bend),
        "n_fit_warnings": len(caught),
    }
    return result.steerer, facts


def parse_methods(methods: Sequence[str] | str | None) -> list[str]:
    """Validate method names (comma-separated string or list); ``"none"`` always comes first.

    Example:
        >>> parse_methods("ODESteer,CAA")
        ['none', 'ODESteer', 'CAA']
    """
    if methods is None:
        return list(ALL_METHODS)
    items = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    items = [m for m in items if m]
    if not items:
        raise InvalidParameterError("`methods` is empty; name at least one method.")
    for m in items:
        if m not in _FACTORIES:
            raise InvalidParameterError(
                f"Unknown method {m!r}. Expected one of: {', '.join(ALL_METHODS)}."
            )
    rest = [m for m in dict.fromkeys(items) if m != "none"]
    return ["none", *rest]
