"""Shared machinery for estimators: parameters, fitted state, device moves and a class registry.

Every class that learns (feature maps, barriers, steerers) follows scikit-learn's conventions:
``__init__`` only stores its arguments under the same names; ``fit`` sets attributes ending in
``_`` and returns ``self``. This base class adds what persistence needs: a JSON-able description
of the parameters, the fitted tensors and the fitted scalars, and a registry from class name to
class, so that a saved file can be rebuilt without executing anything from the file.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from lens_odesteer.errors import FileFormatError, NotFittedError

JSON = Any
ComponentT = TypeVar("ComponentT", bound="Component")

_REGISTRY: dict[str, type[Component]] = {}


def registered(name: str) -> type[Component]:
    """Return the registered class called ``name`` or raise :class:`FileFormatError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise FileFormatError(
            f"Unknown component class {name!r} in file. Known classes: {known}. "
            "The file may come from a newer lens_odesteer; upgrade to load it."
        ) from None


class Component:
    """Base of every estimator: parameter introspection, fitted state and ``to``.

    Subclasses list their fitted tensors in ``_tensor_attrs`` and their fitted JSON-able
    scalars in ``_scalar_attrs`` (names ending in ``_``). Parameters that are themselves
    components are saved and restored recursively.
    """

    _tensor_attrs: ClassVar[tuple[str, ...]] = ()
    _scalar_attrs: ClassVar[tuple[str, ...]] = ()
    _component_attrs: ClassVar[tuple[str, ...]] = ()  # fitted sub-components, e.g. ``barrier_``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_") and not inspect.isabstract(cls):
            _REGISTRY[cls.__name__] = cls

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """Return the constructor arguments as stored (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def unfitted_copy(self: ComponentT) -> ComponentT:
        """A new instance with the same parameters (sub-components copied too), not fitted."""
        params = {
            k: v.unfitted_copy() if isinstance(v, Component) else v
            for k, v in self.get_params().items()
        }
        return type(self)(**params)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, value in self.get_params().items():
            default = sig.parameters[name].default
            if default is inspect.Parameter.empty or not _same(value, default):
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- fitted state -------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` has run."""
        return (
            all(hasattr(self, a) for a in self._tensor_attrs + self._scalar_attrs)
            and bool(self._tensor_attrs + self._scalar_attrs + self._component_attrs)
            and all(hasattr(self, a) for a in self._component_attrs)
        )

    def _check_is_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call `.fit(pos_acts, neg_acts)` first."
            )

    def to(
        self: ComponentT, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ComponentT:
        """Return a copy whose fitted floating tensors live on ``device`` with ``dtype``.

        Integer tensors (hashes) keep their dtype. The original is left untouched.
        """
        new = copy.copy(self)
        for name in self._tensor_attrs:
            if hasattr(self, name):
                t: Tensor = getattr(self, name)
                setattr(
                    new,
                    name,
                    t.to(device=device, dtype=dtype if t.is_floating_point() else None),
                )
        for name in self._component_attrs:
            if hasattr(self, name):
                setattr(new, name, getattr(self, name).to(device=device, dtype=dtype))
        if dtype is not None and hasattr(self, "dtype_"):
            new.dtype_ = dtype  # type: ignore[attr-defined]
        new._on_moved()
        return new

    def _on_moved(self) -> None:
        """Hook for subclasses that cache derived tensors (called on the copy after ``to``)."""

    # -- persistence --------------------------------------------------------------------------
    def _export(self, prefix: str = "") -> tuple[dict[str, JSON], dict[str, Tensor]]:
        """Return ``(description, tensors)`` with tensor names prefixed by ``prefix``."""
        params: dict[str, JSON] = {}
        tensors: dict[str, Tensor] = {}
        for name, value in self.get_params().items():
            if isinstance(value, Component):
                sub, sub_t = value._export(f"{prefix}{name}.")
                params[name] = sub
                tensors.update(sub_t)
            else:
                params[name] = _to_json(value, name)
        fitted: dict[str, JSON] | None = None
        if self.is_fitted:
            fitted = {"scalars": {}, "components": {}, "tensors": []}
            for name in self._scalar_attrs:
                fitted["scalars"][name] = _to_json(getattr(self, name), name)
            for name in self._tensor_attrs:
                tensors[prefix + name] = getattr(self, name).detach().contiguous().cpu()
                fitted["tensors"].append(name)
            for name in self._component_attrs:
                sub, sub_t = getattr(self, name)._export(f"{prefix}{name}.")
                fitted["components"][name] = sub
                tensors.update(sub_t)
        return {"class": type(self).__name__, "params": params, "fitted": fitted}, tensors

    @staticmethod
    def _import(desc: JSON, tensors: dict[str, Tensor], prefix: str = "") -> Component:
        """Rebuild a component from ``_export``'s output; never executes code from the file."""
        if not isinstance(desc, dict) or set(desc) != {"class", "params", "fitted"}:
            got_keys = sorted(desc) if isinstance(desc, dict) else type(desc).__name__
            raise FileFormatError(
                f"Malformed component description at {prefix or 'top level'!r}: expected the keys "
                f"['class', 'fitted', 'params'], got {got_keys}."
            )
        cls = registered(desc["class"])
        params_desc = desc["params"]
        expected = set(cls._param_names())
        if not isinstance(params_desc, dict) or set(params_desc) != expected:
            got = sorted(params_desc) if isinstance(params_desc, dict) else params_desc
            raise FileFormatError(
                f"Parameters of {cls.__name__} in file do not match this version: expected "
                f"{sorted(expected)}, got {got}."
            )
        kwargs: dict[str, Any] = {}
        for name, value in params_desc.items():
            if isinstance(value, dict) and "class" in value:
                kwargs[name] = Component._import(value, tensors, f"{prefix}{name}.")
            else:
                kwargs[name] = _from_json(value)
        try:
            obj = cls(**kwargs)
        except Exception as exc:
            raise FileFormatError(f"Could not rebuild {cls.__name__} from file: {exc}") from exc
        fitted = desc["fitted"]
        if fitted is None:
            return obj
        if not isinstance(fitted, dict) or set(fitted) != {"scalars", "components", "tensors"}:
            raise FileFormatError(f"Malformed fitted state for {cls.__name__} in file.")
        if (
            set(fitted["scalars"]) != set(cls._scalar_attrs)
            or set(fitted["tensors"]) != set(cls._tensor_attrs)
            or set(fitted["components"]) != set(cls._component_attrs)
        ):
            raise FileFormatError(
                f"Fitted state of {cls.__name__} in file has fields {sorted(fitted['scalars'])} + "
                f"{sorted(fitted['tensors'])} + {sorted(fitted['components'])}; this version "
                f"expects "
                f"{sorted(cls._scalar_attrs)} + {sorted(cls._tensor_attrs)} + "
                f"{sorted(cls._component_attrs)}."
            )
        for name, value in fitted["scalars"].items():
            setattr(obj, name, _from_json(value))
        for name in fitted["tensors"]:
            key = prefix + name
            if key not in tensors:
                raise FileFormatError(f"Tensor {key!r} of {cls.__name__} is missing from the file.")
            setattr(obj, name, tensors[key])
        for name, sub in fitted["components"].items():
            setattr(obj, name, Component._import(sub, tensors, f"{prefix}{name}."))
        obj._on_moved()
        return obj


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _to_json(value: object, name: str) -> JSON:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, name) for v in value]
    raise TypeError(f"Parameter `{name}` of type {type(value).__name__} cannot be saved to JSON.")


def _from_json(value: JSON) -> object:
    if isinstance(value, dict) and set(value) == {"dtype"}:
        dt = getattr(torch, str(value["dtype"]), None)
        if not isinstance(dt, torch.dtype):
            raise FileFormatError(f"Unknown dtype {value['dtype']!r} in file.")
        return dt
    return value
