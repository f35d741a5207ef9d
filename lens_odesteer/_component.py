"""Shared machinery for estimators: parameters, fitted state, device moves and two registries.

Every class that learns (feature maps, barriers, steerers) follows scikit-learn's conventions:
``__init__`` only stores its arguments under the same names; ``fit`` sets attributes ending in
``_`` and returns ``self``; ``get_params(deep=True)`` / ``set_params(**params)`` read and write
parameters, nested ones as ``<param>__<sub_param>``. This base class adds what persistence
needs: a JSON-able description of the parameters, the fitted tensors and the fitted scalars.

A file names classes, and loading looks them up in registries that hold lens_odesteer's own
classes only: :class:`Component` subclasses defined in a ``lens_odesteer`` module (a user's
subclass, even one reusing a library name, is never registered, so it can neither replace a
library class at load time nor be written to a file), and frozen configuration dataclasses
(solvers, step controllers, stop events) marked with :func:`register_config`. Nothing from a
file is ever executed.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from lens_odesteer._validation import check_device
from lens_odesteer.errors import FileFormatError, InvalidParameterError, NotFittedError

JSON = Any
ComponentT = TypeVar("ComponentT", bound="Component")
ConfigT = TypeVar("ConfigT", bound=type)

_REGISTRY: dict[str, type[Component]] = {}
_CONFIGS: dict[str, type] = {}


def _is_library_class(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module == "lens_odesteer" or module.startswith("lens_odesteer.")


def _claim(registry: dict[str, Any], cls: type) -> None:
    """Add a library class under its name; a name is never taken over by another class."""
    existing = registry.get(cls.__name__)
    if existing is not None and (existing.__module__, existing.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise RuntimeError(
            f"Two lens_odesteer classes are named {cls.__name__!r} ({existing.__module__} and "
            f"{cls.__module__}); files name classes, so names must be unique."
        )
    registry[cls.__name__] = cls  # same class re-created (module reload): keep the newest


def registered(name: str) -> type[Component]:
    """Return the library component class called ``name`` or raise :class:`FileFormatError`."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise FileFormatError(
            f"Unknown component class {name!r} in file. Known classes: {known}. "
            "The file may come from a newer lens_odesteer; upgrade to load it."
        ) from None


def register_config(cls: ConfigT) -> ConfigT:
    """Mark a frozen dataclass of lens_odesteer as a parameter value files may name.

    Used on solvers, step-size controllers and stop events, so a steerer whose parameters hold
    them can be saved and loaded. Only the library's own classes can be registered.
    """
    if not _is_library_class(cls):
        raise TypeError(
            f"register_config is for lens_odesteer's own classes; {cls.__qualname__} is defined "
            f"in {cls.__module__!r}."
        )
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__qualname__} must be a frozen dataclass to be a config.")
    _claim(_CONFIGS, cls)
    return cls


class Component:
    """Base of every estimator: parameter introspection, fitted state and ``to``.

    Subclasses list their fitted tensors in ``_tensor_attrs`` and their fitted JSON-able
    scalars in ``_scalar_attrs`` (names ending in ``_``). Parameters that are themselves
    components are saved and restored recursively. ``_optional_fitted`` names fitted
    attributes that files written by older versions may lack; they load as None.
    """

    _tensor_attrs: ClassVar[tuple[str, ...]] = ()
    _scalar_attrs: ClassVar[tuple[str, ...]] = ()
    _component_attrs: ClassVar[tuple[str, ...]] = ()  # fitted sub-components, e.g. ``barrier_``
    _optional_fitted: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (
            not cls.__name__.startswith("_")
            and not inspect.isabstract(cls)
            and _is_library_class(cls)
        ):
            _claim(_REGISTRY, cls)

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the constructor arguments as stored (scikit-learn's ``get_params``).

        With ``deep=True`` a parameter that is itself a component also contributes its own
        parameters as ``<name>__<sub_name>`` (recursively), e.g.
        ``barrier__features__n_components``.
        """
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and isinstance(value, Component):
                out.update((f"{name}__{k}", v) for k, v in value.get_params(deep=True).items())
            out[name] = value
        return out

    def set_params(self: ComponentT, **params: Any) -> ComponentT:
        """Set parameters, nested ones as ``<name>__<sub_name>``; return ``self``.

        A nested key on a parameter that is None (a "use the default" component) first puts
        that default in place, so ``ODESteer().set_params(barrier__C=0.5)`` works.
        """
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        changed: set[str] = set()
        for key, value in params.items():
            name, delim, sub = key.partition("__")
            if name not in valid:
                raise InvalidParameterError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters "
                    f"are {valid} (nested ones as `<name>__<sub_name>`)."
                )
            if delim:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
            changed.add(name)
        for name, sub_params in nested.items():
            target = getattr(self, name)
            if target is None:
                target = self._default_component(name)
                setattr(self, name, target)
            if not isinstance(target, Component):
                raise InvalidParameterError(
                    f"Cannot set {sorted(sub_params)} on `{name}` of {type(self).__name__}: it "
                    f"is {target!r}, not a component with parameters."
                )
            target.set_params(**sub_params)
        self._params_changed(changed)
        return self

    def _default_component(self, name: str) -> Component | None:
        """The component a None-valued parameter ``name`` stands for (None if not one)."""
        return None

    def _params_changed(self, names: Iterable[str]) -> None:
        """Hook run by ``set_params`` with the top-level names it touched."""

    def unfitted_copy(self: ComponentT) -> ComponentT:
        """A new instance with the same parameters (sub-components copied too), not fitted."""
        params = {
            k: v.unfitted_copy() if isinstance(v, Component) else v
            for k, v in self.get_params(deep=False).items()
        }
        return type(self)(**params)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, value in self.get_params(deep=False).items():
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

    def _clear_fitted(self) -> None:
        """Forget every fitted attribute (the instance is unfitted afterwards)."""
        for name in self._tensor_attrs + self._scalar_attrs + self._component_attrs:
            self.__dict__.pop(name, None)

    def to(
        self: ComponentT, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ComponentT:
        """Return a copy whose fitted floating tensors live on ``device`` with ``dtype``.

        Integer tensors (hashes) keep their dtype. The original is left untouched.

        Raises:
            InvalidParameterError: a ``device`` torch does not know, a ``dtype`` that is not a
                floating torch dtype, or a dtype the component's maths cannot run in on that
                device (e.g. FFT-based feature maps in float16 on the CPU).
        """
        device = check_device(device)
        if dtype is not None and (
            not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
        ):
            raise InvalidParameterError(
                f"`dtype` must be a floating torch dtype (float32, float64, bfloat16, float16); "
                f"got {dtype!r}. {type(self).__name__} computes with real numbers; an integer "
                "dtype would truncate its fitted state."
            )
        new = copy.copy(self)
        for name in self._tensor_attrs:
            t = getattr(self, name, None)
            if isinstance(t, Tensor):
                setattr(
                    new,
                    name,
                    t.to(device=device, dtype=dtype if t.is_floating_point() else None),
                )
        for name in self._component_attrs:
            if hasattr(self, name):
                try:
                    setattr(new, name, getattr(self, name).to(device=device, dtype=dtype))
                except InvalidParameterError as exc:
                    raise InvalidParameterError(f"{type(self).__name__}: {exc}") from None
        if dtype is not None and hasattr(self, "dtype_"):
            new.dtype_ = dtype  # type: ignore[attr-defined]
        try:
            new._on_moved()
        except RuntimeError as exc:  # torch has no kernel for this dtype on this device
            where = device if device is not None else "its device"
            raise InvalidParameterError(
                f"{type(self).__name__} cannot compute in {dtype} on {where} ({exc}); keep "
                "float32 (the default: hooks steer float16/bfloat16 models in float32 and cast "
                "the result back) or use float64."
            ) from None
        return new

    def _nonfinite_fitted(self, prefix: str = "") -> str | None:
        """The name of the first fitted tensor or float holding NaN or inf (None: all finite)."""
        for name in self._tensor_attrs:
            t = getattr(self, name, None)
            if isinstance(t, Tensor) and t.is_floating_point() and not bool(t.isfinite().all()):
                return prefix + name
        for name in self._scalar_attrs:
            value = getattr(self, name, None)
            if isinstance(value, float) and not math.isfinite(value):
                return prefix + name
        for name in self._component_attrs:
            sub = getattr(self, name, None)
            found = sub._nonfinite_fitted(f"{prefix}{name}.") if sub is not None else None
            if found:
                return found
        return None

    def _on_moved(self) -> None:
        """Hook for subclasses that cache derived tensors (called on the copy after ``to``)."""

    # -- persistence --------------------------------------------------------------------------
    def _export(self, prefix: str = "") -> tuple[dict[str, JSON], dict[str, Tensor]]:
        """Return ``(description, tensors)`` with tensor names prefixed by ``prefix``."""
        cls = type(self)
        if _REGISTRY.get(cls.__name__) is not cls:
            raise TypeError(
                f"Cannot save {cls.__qualname__} (defined in {cls.__module__!r}): steerer files "
                "name lens_odesteer's own classes only, and loading never runs code from "
                "elsewhere. Save a steerer built from library classes, or keep your own class "
                "in your code and store its tensors yourself."
            )
        params: dict[str, JSON] = {}
        tensors: dict[str, Tensor] = {}
        for name, value in self.get_params(deep=False).items():
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
                value = getattr(self, name)
                if value is None and name in self._optional_fitted:
                    continue
                tensors[prefix + name] = value.detach().contiguous().cpu()
                fitted["tensors"].append(name)
            for name in self._component_attrs:
                sub, sub_t = getattr(self, name)._export(f"{prefix}{name}.")
                fitted["components"][name] = sub
                tensors.update(sub_t)
        return {"class": cls.__name__, "params": params, "fitted": fitted}, tensors

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
        optional = set(cls._optional_fitted)
        if (
            not isinstance(fitted["scalars"], dict)
            or not isinstance(fitted["tensors"], list)
            or not isinstance(fitted["components"], dict)
            or set(fitted["scalars"]) != set(cls._scalar_attrs)
            or not set(cls._tensor_attrs) - optional <= set(fitted["tensors"])
            or not set(fitted["tensors"]) <= set(cls._tensor_attrs)
            or set(fitted["components"]) != set(cls._component_attrs)
        ):
            raise FileFormatError(
                f"Fitted state of {cls.__name__} in file has fields "
                f"{_names(fitted['scalars'])} + {_names(fitted['tensors'])} + "
                f"{_names(fitted['components'])}; this version expects "
                f"{sorted(cls._scalar_attrs)} + {sorted(cls._tensor_attrs)} + "
                f"{sorted(cls._component_attrs)}."
            )
        for name, value in fitted["scalars"].items():
            setattr(obj, name, _from_json(value))
        for name in cls._tensor_attrs:
            key = prefix + name
            if name not in fitted["tensors"]:
                setattr(obj, name, None)  # optional and absent: an older file
            elif key not in tensors:
                raise FileFormatError(f"Tensor {key!r} of {cls.__name__} is missing from the file.")
            else:
                setattr(obj, name, tensors[key])
        for name, sub in fitted["components"].items():
            setattr(obj, name, Component._import(sub, tensors, f"{prefix}{name}."))
        obj._on_moved()
        return obj


def _names(value: object) -> list[str] | str:
    if isinstance(value, (dict, list)):
        return sorted(str(v) for v in value)
    return type(value).__name__


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
    cls = type(value)
    if _CONFIGS.get(cls.__name__) is cls and dataclasses.is_dataclass(value):
        fields = {f.name: _to_json(getattr(value, f.name), name) for f in dataclasses.fields(value)}
        return {"config": cls.__name__, "fields": fields}
    raise TypeError(
        f"Parameter `{name}` of type {cls.__qualname__} cannot be saved to a steerer file: "
        "only numbers, strings, dtypes and lens_odesteer's own components and config objects "
        "(solvers, AdaptiveSteps, stop events) can. Pass one of those to save this steerer."
    )


def _from_json(value: JSON) -> object:
    if isinstance(value, dict) and set(value) == {"dtype"}:
        dt = getattr(torch, str(value["dtype"]), None)
        if not isinstance(dt, torch.dtype):
            raise FileFormatError(f"Unknown dtype {value['dtype']!r} in file.")
        return dt
    if isinstance(value, dict) and set(value) == {"config", "fields"}:
        name = value["config"]
        cls = _CONFIGS.get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(value["fields"], dict):
            known = ", ".join(sorted(_CONFIGS))
            raise FileFormatError(
                f"Unknown config {name!r} in file. Known configs: {known}. The file may come "
                "from a newer lens_odesteer; upgrade to load it."
            )
        fields = {k: _from_json(v) for k, v in value["fields"].items()}
        try:
            return cls(**fields)
        except Exception as exc:
            raise FileFormatError(f"Could not rebuild config {name} from file: {exc}") from None
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value
