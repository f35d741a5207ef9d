"""The searched-barrier methods of the evaluation suite (synthetic data with a known answer)."""

from __future__ import annotations

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.methods import fit_method


def _xor(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen)
    x[:, 2] += 3.0  # away from the origin, so a/|a| keeps the XOR pattern
    label = (x[:, 0] * x[:, 1]) > 0
    return x[label], x[~label]


def test_search_finds_the_curved_barrier_that_a_linear_probe_misses() -> None:
    pos, neg = _xor()
    steerer, facts = fit_method("ODESteer-searched", pos, neg)
    assert isinstance(steerer, lo.ODESteer) and steerer.is_fitted
    assert facts["family"] != "linear" and facts["n_candidates"] == 28
    assert facts["test_auc"] > 0.9 > 0.6 > facts["linear_test_auc"]  # type: ignore[operator]
    # A straight (linear) barrier bends 0% and the paper's default sketch under 1%; the curved
    # barrier the search picks on XOR data bends by several percent (4.5% on the rows held out
    # by pair, 17% on the old per-class split that mixed pairs).
    assert facts["heldout_bend_median"] > 0.02  # type: ignore[operator]
    _, bent_facts = fit_method("ODESteer-bent", pos, neg)
    assert bent_facts["min_bend_met"] is True and bent_facts["min_bend"] == 0.01
    # the refitted steerer is a usable ODESteer: it moves negatives towards h > 0
    h0 = steerer.barrier_.value(neg[:20])
    h1 = steerer.barrier_.value(steerer.steer(neg[:20], 1.0))
    assert float((h1 - h0).mean()) > 0


def test_fit_method_plain_and_bad_names() -> None:
    pos, neg = _xor(80)
    caa, facts = fit_method("CAA", pos, neg)
    assert isinstance(caa, lo.CAA) and facts == {}
    with pytest.raises(InvalidParameterError, match="nothing to fit"):
        fit_method("none", pos, neg)
    with pytest.raises(InvalidParameterError, match="Unknown method"):
        fit_method("ODESteer-serched", pos, neg)
