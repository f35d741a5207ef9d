"""``strength`` (norm-relative, one meaning for every method) against ``T`` (each method's own).

``strength=s`` moves a typical activation by about ``s`` times the typical activation norm at
the hook, whether the steerer takes one step (CAA) or follows a flow (ODESteer); ``T=`` is the
method's native strength. Exactly one of the two must be given.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks import SteeringHook, SteeringPlan, steering
from lens_odesteer.models.names import resid_post
from tests.hooks._shared import PROMPTS, TINY_HOOK

HOOK1 = resid_post(1)


def _displacement(model: Any, plan: SteeringPlan, acts: torch.Tensor) -> torch.Tensor:
    """Per row, how far the plan's hook moves each of ``acts`` (given as one batch row)."""
    ((_, hook),) = plan.replace(scope="all").hooks(model)
    moved = hook(acts[None])[0]
    return (moved - acts).norm(dim=-1)


@pytest.mark.parametrize("strength", [0.05, 0.2])
def test_the_same_strength_moves_caa_and_odesteer_about_as_far(
    tiny: Any,
    tiny_acts: tuple[torch.Tensor, torch.Tensor],
    tiny_caa: lo.CAA,
    tiny_ode: lo.ODESteer,
    strength: float,
) -> None:
    pos, neg = tiny_acts
    acts = torch.cat([pos, neg])
    moves = {}
    for name, steerer in (("caa", tiny_caa), ("ode", tiny_ode)):
        plan = SteeringPlan({TINY_HOOK: steerer}, strength=strength)
        assert pytest.approx(steerer.T_for(strength)) == plan.only().T
        assert plan.only().strength == strength
        moves[name] = float(_displacement(tiny, plan, acts).mean())
    target = strength * float(acts.norm(dim=-1).mean())  # the typical norm at this hook
    assert moves["caa"] == pytest.approx(target, rel=0.1)
    assert moves["ode"] == pytest.approx(moves["caa"], rel=0.1)


def test_strength_and_T_are_the_same_steering(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    T = tiny_ode.T_for(0.3)
    with steering(tiny, {TINY_HOOK: tiny_ode}, strength=0.3, scope="all"):
        by_strength = tiny(tokens)
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=T, scope="all"):
        assert torch.equal(tiny(tokens), by_strength)
    hook = SteeringHook(tiny, tiny_ode, 0.3, scope="all")
    assert hook.T == T and repr(hook).endswith("strength=0.3, scope='all')")
    assert torch.equal(tiny.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)]), by_strength)
    assert tiny_ode.strength_for(T) == pytest.approx(0.3)


def test_per_hook_strengths_resolve_per_steerer(tiny_caa: lo.CAA, tiny_ode: lo.ODESteer) -> None:
    plan = SteeringPlan(
        {TINY_HOOK: tiny_caa, HOOK1: tiny_ode}, strength={TINY_HOOK: 0.1, HOOK1: 0.2}
    )
    caa, ode = plan.interventions
    assert (tiny_caa.T_for(0.1), tiny_ode.T_for(0.2)) == (caa.T, ode.T)
    assert plan.replace(T=1.0).interventions[0].strength is None  # T replaces strength
    assert tiny_ode.T_for(0.1) == plan.replace(T=1.0).replace(strength=0.1).interventions[1].T


def test_T_and_strength_conflicts_and_omissions_are_clear_errors(
    tiny: Any, tiny_caa: lo.CAA, tiny_acts: tuple[torch.Tensor, torch.Tensor]
) -> None:
    steerers = {TINY_HOOK: tiny_caa}
    with pytest.raises(InvalidParameterError, match="not both"):
        SteeringPlan(steerers, strength=0.1, T=1.0)
    with pytest.raises(InvalidParameterError, match="No strength given"):
        SteeringPlan(steerers)
    with (
        pytest.raises(InvalidParameterError, match="not both"),
        steering(tiny, steerers, strength=0.1, T=1.0),
    ):
        pass  # pragma: no cover
    with pytest.raises(InvalidParameterError, match="exactly one of `strength`"):
        SteeringHook(tiny, tiny_caa)
    with pytest.raises(InvalidParameterError, match="exactly one of `strength`"):
        SteeringHook(tiny, tiny_caa, 0.1, T=1.0)
    with pytest.raises(InvalidParameterError, match=r"strength.*>= 0"):
        SteeringPlan(steerers, strength=-0.1)
    with pytest.raises(InvalidParameterError, match=r"unknown: \['blocks\.1"):
        SteeringPlan(steerers, strength={HOOK1: 0.1})
    with (
        pytest.raises(InvalidParameterError, match="Got a SteeringPlan and also"),
        steering(tiny, SteeringPlan(steerers, T=1.0), strength=0.1),
    ):
        pass  # pragma: no cover
    with pytest.raises(InvalidParameterError, match="without steerers"):
        lo.generate(tiny, PROMPTS, None, strength=0.1)
    linact = lo.LinAcT().fit(*tiny_acts)  # an interpolation: T in [0, 1]
    with pytest.raises(InvalidParameterError, match="exceeds the largest"):
        SteeringPlan({TINY_HOOK: linact}, T=2.0)
