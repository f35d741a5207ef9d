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

Two name forms add the baselines a reviewer asks for (:func:`method_spec` reads them):

* ``"prompt"``: no steering; the task's instruction asking for the behaviour (truthful answer,
  positive or non-toxic text, the CAA behaviour) is prepended to every scored prompt.
  ``"prompt+<method>"`` (e.g. ``"prompt+CAA"``, ``"prompt+ODESteer"``): the same instruction
  and ``<method>``'s steering, fitted on the same (uninstructed) contrast activations.
* ``"<method>@paper"`` (e.g. ``"ODESteer@paper"``, ``"CAA@paper"``): the method at the
  reference implementation's own strength, a fixed native ``T`` from :data:`PAPER_T`, instead
  of the strength chosen on validation at matched displacement.

Example:
    >>> make_steerer("ODESteer-margin").stop
    BarrierMargin(margin=0.0)
    >>> make_steerer("none") is None
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

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
    "BASELINE_METHODS",
    "MAX_T",
    "ONE_STEP",
    "PAPER_T",
    "PROMPT",
    "SEARCHED",
    "MethodSpec",
    "fit_method",
    "make_steerer",
    "method_spec",
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


#: The prompting baseline's name, and the prefix of prompting + steering (``"prompt+CAA"``).
PROMPT = "prompt"
_PAPER = "@paper"

#: The reference implementation's own strengths, in each method's native ``T``
#: (``docs/METHOD.md`` section 5, "Reference settings": the authors' README runs ODESteer at
#: ``T = 5`` with its default 10 Euler steps and CAA at multiplier ``T = 1``). Set for a
#: 4096-wide 7-8B model at layers 13-15; on other models they are simply the paper's numbers,
#: reported beside the strengths matched by displacement.
PAPER_T: dict[str, float] = {"ODESteer": 5.0, "CAA": 1.0}

#: Example names of the prompting and paper-strength baselines (not in the default run).
BASELINE_METHODS: tuple[str, ...] = (
    PROMPT,
    "prompt+CAA",
    "prompt+ODESteer",
    "CAA@paper",
    "ODESteer@paper",
)


@dataclass(frozen=True)
class MethodSpec:
    """What an evaluation method name asks for.

    Attributes:
        name: the name as given (``"prompt+ODESteer@paper"``).
        steering: the steering method fitted (``"none"`` for ``"none"`` and ``"prompt"``).
        instruction: whether the task's instruction is prepended to the scored prompts.
        paper_T: the fixed native strength (``"@paper"``), or None to choose it on validation.
    """

    name: str
    steering: str
    instruction: bool = False
    paper_T: float | None = None


def method_spec(name: str) -> MethodSpec:
    """Read a method name: a plain method, ``"prompt"``, ``"prompt+<m>"`` or ``"<m>@paper"``.

    Example:
        >>> method_spec("prompt+ODESteer@paper")
        MethodSpec(name='prompt+ODESteer@paper', steering='ODESteer', instruction=True, paper_T=5.0)
        >>> method_spec("prompt").steering
        'none'

    Raises:
        InvalidParameterError: an unknown method, ``"@paper"`` on a method without a published
            strength, or ``"prompt+none"``.
    """
    if not isinstance(name, str):
        raise InvalidParameterError(f"A method name must be a string; got {name!r}.")
    if name == PROMPT:
        return MethodSpec(name, "none", instruction=True)
    rest, instruction = name, False
    if name.startswith(PROMPT + "+"):
        rest, instruction = name[len(PROMPT) + 1 :], True
    paper = rest.endswith(_PAPER)
    base = rest[: -len(_PAPER)] if paper else rest
    if base not in _FACTORIES:
        raise InvalidParameterError(
            f"Unknown method {name!r}. Expected one of: {', '.join(ALL_METHODS)}; or "
            f"'{PROMPT}', '{PROMPT}+<method>' (instruction plus steering) or '<method>@paper' "
            f"(the paper's strength, for {', '.join(PAPER_T)})."
        )
    if base == "none" and name != "none":
        raise InvalidParameterError(
            f"{name!r} steers nothing; use 'none' (unsteered) or '{PROMPT}' (instruction only)."
        )
    if paper and base not in PAPER_T:
        raise InvalidParameterError(
            f"{name!r}: no published strength for {base!r}; '@paper' exists for "
            f"{', '.join(PAPER_T)} (docs/METHOD.md section 5)."
        )
    return MethodSpec(name, base, instruction, PAPER_T[base] if paper else None)


def make_steerer(name: str) -> AbstractSteerer | None:
    """Return an unfitted steerer for ``name`` at its defaults (None for ``"none"``).

    The searched methods (:data:`SEARCHED`) have no fixed barrier before seeing data; fit them
    with :func:`fit_method`. ``"prompt+<m>"`` and ``"<m>@paper"`` build ``<m>``'s steerer.
    """
    name = method_spec(name).steering  # raises for unknown names
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
    name = method_spec(name).steering  # raises for unknown names
    if name not in SEARCHED:
        steerer = make_steerer(name)
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

    Besides :data:`ALL_METHODS` (the default), ``"prompt"``, ``"prompt+<method>"`` and
    ``"<method>@paper"`` are accepted (:func:`method_spec`).

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
        method_spec(m)  # raises for unknown names
    rest = [m for m in dict.fromkeys(items) if m != "none"]
    return ["none", *rest]
