"""What a steerer file may hold: one set of rules, checked when saving and again when loading.

``steerer.save`` refuses what :func:`~lens_odesteer.io.load_steerer` would refuse, so a save never
replaces a good file with one that cannot be read back; loading checks the same rules before any
tensor is read or any object is built, so an untrusted file cannot ask for unbounded work (a
10**8-step solver, a 10**9-wide feature map) before it is refused.

The rules cover the JSON header (its fields, a provenance that is a JSON object of finite numbers,
bounded nesting and size) and the component description: every parameter must have the type its
class's ``__init__`` annotates (``normalize: bool`` refuses ``"no"``), counts and sizes must lie in
:data:`LIMITS`, dtypes must be floating, and fitted scalars must have their documented types.
:func:`header_problem` and :func:`description_problem` return the first broken rule as a sentence
(None when all hold); the caller says whether that refuses a save or a load.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import torch

from lens_odesteer._component import JSON, _from_json, registered

__all__ = [
    "FLOAT_DTYPES",
    "FORMAT",
    "HEADER_KEYS",
    "LIMITS",
    "MAX_HEADER_BYTES",
    "TypeProblem",
    "description_problem",
    "encode_header",
    "header_problem",
]

#: The format name a steerer file's header carries.
FORMAT = "lens_odesteer.steerer"
#: The fields of the JSON header, exactly.
HEADER_KEYS = frozenset(
    {
        "format",
        "schema_version",
        "library_version",
        "class",
        "d_model",
        "dtype",
        "component",
        "provenance",
    }
)
#: Widest activation a file may describe (the probe at load allocates two rows of it).
MAX_WIDTH = 1 << 20
#: Inclusive ``(low, high)`` bounds of integer parameters, config fields and fitted scalars.
LIMITS: dict[str, tuple[int, int]] = {
    "n_components": (1, 1 << 22),
    "degree": (1, 16),
    "steps": (1, 100_000),
    "n_steps": (1, 100_000),
    "initial_steps": (1, 100_000),
    "max_steps": (1, 10_000_000),
    "n": (2, 100_000),
    "hidden": (1, 1 << 16),
    "max_iter": (1, 10_000_000),
    "value_max_iter": (1, 10_000_000),
    "max_median_samples": (1, 10_000_000),
    "n_quantiles": (1, 1_000_000),
    "seed": (0, 2**64 - 1),
    "d_model_": (1, MAX_WIDTH),
    "n_pos_": (1, 2**53),
    "n_neg_": (1, 2**53),
    "n_iter_": (0, 10_000_000),
}
#: Fitted scalars with a fixed type (others: a number, bool, string, dtype, None or a list).
_INT_SCALARS = frozenset({"d_model_", "n_pos_", "n_neg_", "n_iter_"})
_BOOL_SCALARS = frozenset({"converged_"})
_OPTIONAL_NONNEGATIVE = frozenset({"act_norm_", "speed_"})
#: Compute dtypes a steerer may record.
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: Largest JSON header (the safetensors reader refuses headers near 100 MB).
MAX_HEADER_BYTES = 50_000_000
#: Deepest nesting of the header's JSON (components, provenance).
MAX_DEPTH = 64


class TypeProblem(str):
    """A broken rule that is about a value's type (a save raises a TypeError for it)."""


def header_problem(header: object, *, d_model: object = None) -> str | None:
    """The first rule the JSON header breaks (None: it is fine).

    Checks the top-level fields only; the component description is
    :func:`description_problem`'s. ``d_model``: the steerer's width, when known.
    """
    if not isinstance(header, dict):
        return f"the header is a {type(header).__name__}, not a JSON object"
    missing, extra = HEADER_KEYS - set(header), set(header) - HEADER_KEYS
    if missing or extra:
        return (
            f"the header has missing fields {sorted(missing)} and unexpected fields "
            f"{sorted(extra)}; expected exactly {sorted(HEADER_KEYS)}"
        )
    if header["format"] != FORMAT:
        return f"the format is {header['format']!r}, not {FORMAT!r}"
    version = header["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        return f"the schema version {version!r} is not an integer"
    if not isinstance(header["class"], str):
        return f"the class name {header['class']!r} is not a string"
    width = header["d_model"]
    if not _int_in(width, 1, MAX_WIDTH):
        return f"d_model={width!r} is not an integer in [1, {MAX_WIDTH}]"
    if d_model is not None and width != d_model:
        return f"the header says d_model={width} but the steerer has d_model={d_model}"
    if header["dtype"] not in FLOAT_DTYPES:
        return f"the compute dtype {header['dtype']!r} is not one of {list(FLOAT_DTYPES)}"
    provenance = header["provenance"]
    if not isinstance(provenance, dict):
        return TypeProblem(
            f"`provenance` is a {type(provenance).__name__} ({_short(provenance)}); it must be a "
            "JSON object (a dict with string keys)"
        )
    return _json_problem(provenance, "provenance")


def _json_problem(value: object, what: str) -> str | None:
    """Whether ``value`` is plain JSON that reads back as written (finite numbers, str keys)."""
    # Each entry carries the ids of its enclosing containers: a container met again among its
    # own ancestors is a cycle (the same list used twice side by side is fine).
    stack: list[tuple[object, str, tuple[int, ...]]] = [(value, what, ())]
    while stack:
        node, where, above = stack.pop()
        if len(above) > MAX_DEPTH:
            return f"`{where}` is nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, (dict, list, tuple)):
            if id(node) in above:
                return f"`{where}` contains itself (a circular reference)"
            above = (*above, id(node))
        if isinstance(node, dict):
            for key, sub in node.items():
                if not isinstance(key, str):
                    return f"`{where}` has the key {key!r} ({type(key).__name__}); keys must be str"
                stack.append((sub, f"{where}.{key}", above))
        elif isinstance(node, (list, tuple)):
            stack.extend((sub, f"{where}[{i}]", above) for i, sub in enumerate(node))
        elif isinstance(node, float):
            if not math.isfinite(node):
                return f"`{where}` is {node}; JSON holds finite numbers only (store it as None)"
        elif node is not None and not isinstance(node, (str, int)):
            return TypeProblem(
                f"`{where}` holds a {type(node).__qualname__} ({_short(node)}), which is not "
                "JSON-serialisable: only str, int, "
                "float, bool, None, lists and dicts can be stored (convert it, e.g. "
                "`float(x)` or `x.tolist()`)"
            )
    return None


def encode_header(header: dict[str, Any]) -> str:
    """The header as JSON text (the caller checked it with :func:`header_problem`)."""
    return json.dumps(header, allow_nan=False)


def description_problem(desc: JSON) -> str | None:
    """The first rule the component description breaks (None: it is fine).

    Classes are looked up in lens_odesteer's registries (never imported from the file); an
    unknown class raises :class:`~lens_odesteer.errors.FileFormatError` as in loading. The
    structure itself (which keys, which fitted fields) is :meth:`Component._import`'s to check.
    """
    return _walk(desc, "", 0)


def _walk(desc: JSON, at: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"components are nested more than {MAX_DEPTH} levels deep at {at!r}"
    if (
        not isinstance(desc, dict)
        or set(desc) != {"class", "params", "fitted"}
        or not isinstance(desc["class"], str)
    ):
        return None  # malformed: Component._import names what is wrong
    cls = registered(desc["class"])
    hints = _init_hints(cls)
    params = desc["params"]
    if isinstance(params, dict):
        for name, raw in params.items():
            where = f"{at}{name}"
            if isinstance(raw, dict) and "class" in raw:
                problem = _walk(raw, f"{where}.", depth + 1)
            else:
                problem = _value_problem(cls.__name__, name, where, _from_json(raw), hints)
            if problem:
                return problem
    fitted = desc["fitted"]
    if not isinstance(fitted, dict):
        return None
    scalars, components = fitted.get("scalars"), fitted.get("components")
    if isinstance(scalars, dict):
        for name, raw in scalars.items():
            problem = _scalar_problem(cls.__name__, str(name), f"{at}{name}", _from_json(raw))
            if problem:
                return problem
    if isinstance(components, dict):
        for name, sub in components.items():
            problem = _walk(sub, f"{at}{name}.", depth + 1)
            if problem:
                return problem
    return None


def _value_problem(
    owner: str, name: str, where: str, value: object, hints: dict[str, Any] | None
) -> str | None:
    hint = None if hints is None else hints.get(name)
    if hint is not None and not _matches(value, hint):
        return (
            f"parameter `{where}` of {owner} is {_short(value)} ({type(value).__name__}); "
            f"expected {_hint_text(hint)}"
        )
    return _bounds_problem(owner, name, where, value)


def _bounds_problem(owner: str, name: str, where: str, value: object) -> str | None:
    if isinstance(value, torch.dtype) and not value.is_floating_point:
        return f"`{where}` of {owner} is the dtype {value}; a floating dtype is expected"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            problem = _bounds_problem(
                type(value).__name__, f.name, f"{where}.{f.name}", getattr(value, f.name)
            )
            if problem:
                return problem
        return None
    if name in LIMITS and isinstance(value, int) and not isinstance(value, bool):
        low, high = LIMITS[name]
        if not low <= value <= high:
            return f"`{where}` of {owner} is {value}, outside the accepted range [{low}, {high}]"
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _bounds_problem(owner, name, f"{where}[{i}]", item)
            if problem:
                return problem
    return None


def _scalar_problem(owner: str, name: str, where: str, value: object) -> str | None:
    found = f"the fitted `{where}` of {owner} is {_short(value)}"
    if name == "dtype_":
        floating = isinstance(value, torch.dtype) and value.is_floating_point
        return None if floating else f"{found}; a floating dtype is expected"
    if name in _INT_SCALARS:
        low, high = LIMITS[name]
        return None if _int_in(value, low, high) else f"{found}; expected an int in [{low}, {high}]"
    if name in _BOOL_SCALARS:
        return None if isinstance(value, bool) else f"{found}; expected a bool"
    if name in _OPTIONAL_NONNEGATIVE:
        if value is None or (_is_real(value) and float(value) >= 0):  # type: ignore[arg-type]
            return None
        return f"{found}; expected None or a number >= 0"
    if value is None or isinstance(value, (bool, str, int, float, torch.dtype, list)):
        return _bounds_problem(owner, name, where, value)
    return f"{found}, a {type(value).__name__}; expected a plain value"


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_HINTS: dict[type, dict[str, Any] | None] = {}


def _init_hints(cls: type) -> dict[str, Any] | None:
    """The annotated parameter types of ``cls.__init__`` (None when they cannot be resolved)."""
    if cls not in _HINTS:
        try:
            _HINTS[cls] = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
        except Exception:  # an annotation this module cannot resolve: check bounds only
            _HINTS[cls] = None
    return _HINTS[cls]


def _matches(value: object, hint: Any) -> bool:
    """Whether ``value`` has the annotated type (unions, Literal, Callable, classes)."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin is types.UnionType or getattr(origin, "_name", None) == "Union":
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is not None:
        if origin is Callable or getattr(origin, "__name__", "") == "Callable":
            return callable(value)
        if origin in (list, tuple):
            return isinstance(value, (list, tuple))
        return True  # another generic: not checked
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return _is_real(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_text(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    return text.replace("typing.", "").replace("lens_odesteer.", "")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
