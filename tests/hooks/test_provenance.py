"""A loaded steerer whose recorded provenance names another model warns or refuses at attach."""

from __future__ import annotations

import warnings

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError, ProvenanceError
from lens_odesteer.models import tiny_bridge
from lens_odesteer.models.loading import model_provenance

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def saved_for_tiny(tmp_path):
    model = tiny_bridge()
    gen = torch.Generator().manual_seed(0)
    steerer = lo.CAA().fit(torch.randn(8, 64, generator=gen) + 1, torch.randn(8, 64, generator=gen))
    provenance = {**model_provenance(model), "hook_name": HOOK}
    return model, lo.load_steerer(steerer.save(tmp_path / "caa", provenance=provenance))


def test_matching_provenance_attaches_silently(saved_for_tiny) -> None:
    model, steerer = saved_for_tiny
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with lo.steering(model, {HOOK: steerer}, T=1.0):
            model(model.to_tokens("Hi"))


def test_other_model_warns_by_default_and_raises_on_request(saved_for_tiny) -> None:
    _, steerer = saved_for_tiny
    other = tiny_bridge(seed=0, n_layers=3)
    with (
        pytest.warns(UserWarning, match=r"n_layers: fitted on 2, now 3"),
        lo.steering(other, {HOOK: steerer}, T=1.0),
    ):
        pass
    with (
        pytest.raises(ProvenanceError, match="Refit it on activations"),
        lo.steering(other, {HOOK: steerer}, T=1.0, on_provenance_mismatch="raise"),
    ):
        pass
    assert other.hook_dict[HOOK].fwd_hooks == [], "nothing stays attached after a refusal"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with lo.steering(other, {HOOK: steerer}, T=1.0, on_provenance_mismatch="ignore"):
            pass


def test_other_layer_and_weight_processing_are_reported(saved_for_tiny) -> None:
    model, steerer = saved_for_tiny
    with (
        pytest.warns(UserWarning, match=r"layer: fitted on 1, now 0"),
        lo.steering(model, {"blocks.0.hook_resid_post": steerer}, T=1.0),
    ):
        pass
    steerer.provenance_["weight_processing"] = "fold_ln"
    with (
        pytest.raises(ProvenanceError, match="weight_processing: fitted on 'fold_ln'"),
        lo.steering(model, {HOOK: steerer}, T=1.0, on_provenance_mismatch="raise"),
    ):
        pass


def test_unknown_policy_is_rejected(saved_for_tiny) -> None:
    model, steerer = saved_for_tiny
    with (
        pytest.raises((InvalidParameterError, TypeError), match="on_provenance_mismatch"),
        lo.steering(model, {HOOK: steerer}, T=1.0, on_provenance_mismatch="shout"),  # type: ignore[arg-type]
    ):
        pass
