"""The steering plan: which steerer, at which hook point, how strong, on which tokens.

A :class:`SteeringPlan` is immutable and validated when built. Everything that steers a model
takes one: :func:`~lens_odesteer.hooks.steering` (a context manager),
:func:`~lens_odesteer.hooks.generate`, :meth:`SteeringPlan.hooks` (hook functions for
``run_with_hooks`` / ``model.hooks()``), the analysis functions and the evaluation suite.

Strength has one meaning for every method. ``strength`` is **norm-relative**: the length of the
move (the arc length of an ODE path, the step of a one-step method) as a fraction of the typical
activation norm at that hook, recorded when the steerer was fitted. ``strength=0.1`` therefore
moves an ODESteer activation as far as a CAA one. Each method's native ``T`` is still available
(``T=``); ``steerer.T_for(strength)`` and ``steerer.strength_for(T)`` convert.

Strengths are resolved into native ``T`` values in one place,
:func:`lens_odesteer.steerers.strength.resolve_T`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks.build import build_hooks
from lens_odesteer.hooks.scope import ParsedScope, PromptLayout, Scope, parse_scope
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.strength import resolve_T

if TYPE_CHECKING:
    from lens_odesteer.hooks.hook import SteeringHook
    from lens_odesteer.models.names import HookedModel

__all__ = ["Intervention", "OnMismatch", "SteeringPlan", "resolve_T"]  # resolve_T re-exported

OnMismatch = Literal["warn", "raise", "ignore"]
Strengths = float | Mapping[str, float] | None


class Intervention:
    """One steered hook point of a plan: the steerer and its resolved strength.

    Attributes:
        hook: the hook name as given (classic or canonical TransformerLens name).
        steerer: the fitted steerer.
        T: the native strength the steerer runs with.
        strength: the norm-relative strength it came from (None when given as ``T``).
    """

    __slots__ = ("T", "hook", "steerer", "strength")

    hook: str
    steerer: AbstractSteerer
    T: float
    strength: float | None

    def __init__(
        self, hook: str, steerer: AbstractSteerer, *, strength: object = None, T: object = None
    ) -> None:
        if not isinstance(hook, str) or not hook:
            raise InvalidParameterError(f"A hook name must be a non-empty string; got {hook!r}.")
        if not isinstance(steerer, AbstractSteerer):
            raise InvalidParameterError(
                f"The entry for {hook!r} must be a fitted lens_odesteer steerer (ODESteer, CAA, "
                f"...); got {type(steerer).__name__}."
            )
        steerer._check_is_fitted()
        resolved = resolve_T(steerer, strength, T)
        object.__setattr__(self, "hook", hook)
        object.__setattr__(self, "steerer", steerer)
        object.__setattr__(self, "T", resolved)
        object.__setattr__(
            self, "strength", None if strength is None else float(strength)  # type: ignore[arg-type]
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"Intervention is immutable; build a new plan instead of setting {name}."
        )

    def __repr__(self) -> str:
        how = f"strength={self.strength!r}" if self.strength is not None else f"T={self.T!r}"
        return f"Intervention({self.hook!r}, {self.steerer!r}, {how})"


class SteeringPlan:
    """An immutable steering plan: steerers at hook points, strengths, the token scope.

    Main arguments:
        steerers: ``{hook_name: steerer}``, one entry per hook point (several layers at once
            are fine). Names may be classic (``blocks.6.hook_resid_post``) or canonical bridge
            names (``blocks.6.hook_out``).
        strength: the norm-relative strength (a number, or ``{hook_name: number}``): the move
            as a fraction of the typical activation norm at the hook, the same meaning for every
            method. ``0`` leaves activations bitwise unchanged.
        T: instead of ``strength``, each method's native strength (a number or a dict); see
            the table in the README ("What strength means").
        scope: which tokens to steer: ``"last"`` (default), ``"all"``, ``"prompt"``,
            ``"generated"``, a list of token positions, or a boolean mask ``[batch, pos]``.

    Other arguments:
        compute_dtype: dtype of the steering maths (default: the steerer's, at least float32).
        record: keep the barrier before/after steering per call (``handle.records``).
        attention_mask: a fixed ``[batch, pos]`` 0/1 mask for plain forward passes whose input
            the hooks cannot see (activations fed in directly). Model inputs given as a list
            of strings or with ``attention_mask=`` are read by the hooks themselves.
        on_provenance_mismatch: a loaded steerer's recorded model/hook differs from the one it
            steers: ``"warn"`` (default), ``"raise"`` or ``"ignore"``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> caa = lo.CAA().fit(torch.randn(16, 8) + 1, torch.randn(16, 8))
        >>> plan = lo.SteeringPlan({"blocks.1.hook_resid_post": caa}, strength=0.1)
        >>> plan.scope.kind, plan.interventions[0].strength
        ('last', 0.1)
        >>> plan.replace(strength=0.0).active
        False
    """

    __slots__ = (
        "_attention_mask",
        "_source",
        "compute_dtype",
        "interventions",
        "on_provenance_mismatch",
        "record",
        "scope",
    )

    interventions: tuple[Intervention, ...]
    scope: ParsedScope
    compute_dtype: torch.dtype | None
    record: bool
    on_provenance_mismatch: OnMismatch
    _attention_mask: Tensor | None
    _source: dict[str, Any]

    def __init__(
        self,
        steerers: Mapping[str, AbstractSteerer],
        strength: Strengths = None,
        *,
        T: Strengths = None,
        scope: Scope | ParsedScope = "last",
        compute_dtype: torch.dtype | None = None,
        record: bool = False,
        attention_mask: Tensor | None = None,
        on_provenance_mismatch: OnMismatch = "warn",
    ) -> None:
        if not isinstance(steerers, Mapping) or len(steerers) == 0:
            raise InvalidParameterError(
                "`steerers` must be a non-empty dict {hook_name: steerer}; got "
                f"{_short(steerers)}."
            )
        for name, value in steerers.items():
            if isinstance(value, tuple):
                raise InvalidParameterError(
                    f"The entry for {name!r} is a tuple; give the steerer alone and its strength "
                    f"as strength={{{name!r}: ...}} (norm-relative) or T={{{name!r}: ...}} "
                    "(native)."
                )
        if strength is None and T is None:
            raise InvalidParameterError(
                "No strength given: pass `strength=` (the move as a fraction of the activation "
                "norm at the hook, e.g. 0.1) or `T=` (each method's native strength)."
            )
        if strength is not None and T is not None:
            raise InvalidParameterError(
                f"Give `strength` or `T`, not both; got strength={strength!r}, T={T!r}."
            )
        for label, given in (("strength", strength), ("T", T)):
            if isinstance(given, Mapping):
                unknown = [k for k in given if k not in steerers]
                missing = [k for k in steerers if k not in given]
                if unknown or missing:
                    raise InvalidParameterError(
                        f"`{label}` must give one value per hook of `steerers` "
                        f"({list(steerers)}); unknown: {unknown}, missing: {missing}."
                    )
        interventions = []
        for name, steerer in steerers.items():
            s = strength[name] if isinstance(strength, Mapping) else strength
            t = T[name] if isinstance(T, Mapping) else T
            interventions.append(Intervention(name, steerer, strength=s, T=t))
        if compute_dtype is not None and (
            not isinstance(compute_dtype, torch.dtype) or not compute_dtype.is_floating_point
        ):
            raise InvalidParameterError(
                f"`compute_dtype` must be a floating torch.dtype; got {compute_dtype!r}."
            )
        if on_provenance_mismatch not in ("warn", "raise", "ignore"):
            raise InvalidParameterError(
                "`on_provenance_mismatch` must be 'warn', 'raise' or 'ignore'; got "
                f"{on_provenance_mismatch!r}."
            )
        if not isinstance(record, bool):
            raise InvalidParameterError(f"`record` must be True or False; got {record!r}.")
        parsed = scope if isinstance(scope, ParsedScope) else parse_scope(scope)
        if attention_mask is not None:
            PromptLayout.from_attention_mask(attention_mask)  # validate now
            attention_mask = attention_mask.detach().clone()
        setter = object.__setattr__
        setter(self, "interventions", tuple(interventions))
        setter(self, "scope", parsed)
        setter(self, "compute_dtype", compute_dtype)
        setter(self, "record", record)
        setter(self, "on_provenance_mismatch", on_provenance_mismatch)
        setter(self, "_attention_mask", attention_mask)
        setter(
            self,
            "_source",
            {"steerers": dict(steerers), "strength": strength, "T": T, "scope": scope},
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"SteeringPlan is immutable; use plan.replace({name}=...) to get a changed copy."
        )

    # -- derived views ------------------------------------------------------------------------
    @property
    def attention_mask(self) -> Tensor | None:
        """The fixed attention mask for plain passes, if one was given."""
        return self._attention_mask

    @property
    def layout(self) -> PromptLayout | None:
        """The fixed batch layout built from ``attention_mask`` (None when not given)."""
        mask = self._attention_mask
        return None if mask is None else PromptLayout.from_attention_mask(mask)

    @property
    def active(self) -> bool:
        """True when the plan edits anything (some intervention with ``T > 0``)."""
        return any(iv.T > 0.0 for iv in self.interventions)

    @property
    def hook_names(self) -> list[str]:
        """The steered hook names, in order."""
        return [iv.hook for iv in self.interventions]

    def __iter__(self) -> Iterator[Intervention]:
        return iter(self.interventions)

    def __len__(self) -> int:
        return len(self.interventions)

    def only(self) -> Intervention:
        """The single intervention of a one-hook plan (an error for several hooks)."""
        if len(self.interventions) != 1:
            raise InvalidParameterError(
                f"This plan steers {len(self.interventions)} hook points "
                f"({self.hook_names}); this use needs a plan with exactly one."
            )
        return self.interventions[0]

    # -- changed copies -----------------------------------------------------------------------
    def replace(self, **changes: Any) -> SteeringPlan:
        """Return a new plan with some arguments changed (validated again).

        Changing ``strength`` drops a native ``T`` and the other way round.

        Example:
            >>> import torch, lens_odesteer as lo
            >>> caa = lo.CAA().fit(torch.randn(16, 8) + 1, torch.randn(16, 8))
            >>> plan = lo.SteeringPlan({"blocks.0.hook_resid_post": caa}, T=1.0)
            >>> plan.replace(scope="all").scope.kind, plan.replace(T=2.0).interventions[0].T
            ('all', 2.0)
        """
        allowed = {
            "steerers",
            "strength",
            "T",
            "scope",
            "compute_dtype",
            "record",
            "attention_mask",
            "on_provenance_mismatch",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidParameterError(
                f"Unknown plan argument(s) {unknown}; expected some of {sorted(allowed)}."
            )
        args: dict[str, Any] = {
            **self._source,
            "compute_dtype": self.compute_dtype,
            "record": self.record,
            "attention_mask": self._attention_mask,
            "on_provenance_mismatch": self.on_provenance_mismatch,
        }
        if "strength" in changes and "T" not in changes:
            args["T"] = None
        if "T" in changes and "strength" not in changes:
            args["strength"] = None
        args.update(changes)
        steerers = args.pop("steerers")
        strength = args.pop("strength")
        return SteeringPlan(steerers, strength, **args)

    # -- hooks --------------------------------------------------------------------------------
    def hooks(self, model: HookedModel) -> list[tuple[str, SteeringHook]]:
        """Validate the plan against ``model`` and return ``(hook_name, SteeringHook)`` pairs.

        The pairs fit ``model.run_with_hooks(input, fwd_hooks=pairs)`` and
        ``with model.hooks(fwd_hooks=pairs):``. Nothing is attached here.

        Example:
            >>> import torch, lens_odesteer as lo
            >>> model = lo.tiny_bridge()
            >>> caa = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
            >>> plan = lo.SteeringPlan({"blocks.1.hook_resid_post": caa}, strength=0.2)
            >>> logits = model.run_with_hooks("Hello", fwd_hooks=plan.hooks(model))
        """
        return build_hooks(model, self)

    def __repr__(self) -> str:
        items = ", ".join(repr(iv) for iv in self.interventions)
        return f"SteeringPlan([{items}], scope={self.scope.describe()})"


def as_plan(
    plan: SteeringPlan | Mapping[str, AbstractSteerer] | None,
    strength: Strengths = None,
    *,
    T: Strengths = None,
    scope: Scope | None = None,
    **options: Any,
) -> SteeringPlan | None:
    """Accept a plan, or the arguments to build one (not both); None stays None."""
    extra = {k: v for k, v in options.items() if v is not None}
    if isinstance(plan, SteeringPlan):
        pairs = (("strength", strength), ("T", T), ("scope", scope))
        given = [k for k, v in pairs if v is not None]
        given += sorted(k for k, v in extra.items() if v is not False)
        if given:
            raise InvalidParameterError(
                f"Got a SteeringPlan and also {given}; set those on the plan "
                "(plan.replace(...)) instead."
            )
        return plan
    if plan is None:
        if strength is not None or T is not None:
            raise InvalidParameterError(
                "A strength was given without steerers; pass {hook_name: steerer} or a "
                "SteeringPlan."
            )
        return None
    return SteeringPlan(plan, strength, T=T, scope="last" if scope is None else scope, **extra)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
