"""Save and load steerers: tensors in safetensors, everything else in a JSON header.

The format (header fields, schema version, writing) is defined in
:mod:`lens_odesteer.steerers._format`, below the steerers, so ``steerer.save`` needs nothing
from here; this module sits above them and rebuilds objects. Loading parses JSON and raw
tensors only, so it never executes code from the file; classes are looked up in
lens_odesteer's own registries (a user's subclass can never stand in for a library class).

Files of an older schema are migrated on load. Schema 1 (lens_odesteer 0.1.0) had one class
per ODESteer variant (``ODESteer(n_components=..., solver=..., n_steps=..., margin=...,
custom_barrier=...)``, ``StepODESteer``, ``RFFODESteer``, ``RFFStepODESteer``, ``ValueSteer``)
and no recorded norms: each variant becomes the equivalent composed
:class:`~lens_odesteer.steerers.ODESteer` (same fitted barrier, same outputs bit for bit), and
``act_norm_``/``speed_`` load as None, so ``T_for`` asks for a native ``T`` or a refit.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from lens_odesteer._component import JSON, Component, _from_json, _to_json
from lens_odesteer._file_rules import LIMITS, description_problem
from lens_odesteer._validation import as_path, check_device
from lens_odesteer.barriers.builders import rff_barrier, sketch_barrier, value_barrier
from lens_odesteer.errors import FileFormatError, InvalidParameterError
from lens_odesteer.flows.control import AdaptiveSteps
from lens_odesteer.steerers._format import (
    FORMAT,
    SCHEMA_VERSION,
    _existing,
    read_header,
    save_steerer,
)
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.field import BarrierMargin
from lens_odesteer.steerers.odesteer import ODESteer

__all__ = ["FORMAT", "SCHEMA_VERSION", "load_steerer", "read_header", "save_steerer"]


def load_steerer(
    path: str | os.PathLike[str], *, device: torch.device | str | None = None
) -> AbstractSteerer:
    """Load a steerer saved with :func:`save_steerer` (optionally onto ``device``).

    The provenance recorded at save time is available as ``steerer.provenance_``. Files of
    schema 1 (lens_odesteer 0.1.0) are migrated to the composed :class:`ODESteer`.

    ``path`` may omit the ``.safetensors`` suffix that ``save`` appends.

    Raises:
        FileFormatError: missing, truncated, foreign or newer-schema files, a header whose
            fields do not match this version or lie outside the bounds a save obeys (checked
            before any tensor is read), or an old file that cannot be migrated (the message
            names the version that wrote it).
        ParameterTypeError: ``path`` that is not a str or os.PathLike.
        InvalidParameterError: a ``device`` torch does not know.
    """
    path = as_path(path, "path")
    device = check_device(device)
    header = read_header(path)
    path = _existing(path)
    if header["schema_version"] == 1:
        header = _migrate_v1(header, path)
    # Every parameter and fitted scalar is checked against the rules a save obeys before any
    # tensor is read or object built: an edited file cannot ask for unbounded work.
    try:
        problem = description_problem(header["component"])
    except RecursionError:
        problem = "the component description is nested too deeply"
    if problem:
        raise FileFormatError(
            f"{str(path)!r} cannot be loaded: {problem}. The file is damaged or was not written "
            "by lens_odesteer; save the steerer again from a trusted copy."
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"Could not read the tensors of {str(path)!r}: {exc}") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FileFormatError(
                f"Tensor {name!r} in {str(path)!r} holds NaN or inf values; the file is damaged."
            )
    try:
        obj = Component._import(header["component"], tensors)
    except FileFormatError:
        raise
    except Exception as exc:  # any other failure to rebuild means a damaged or foreign file
        raise FileFormatError(
            f"Could not rebuild the steerer in {str(path)!r} ({type(exc).__name__}: {exc}); "
            "the file is damaged or was not written by lens_odesteer."
        ) from None
    if not isinstance(obj, AbstractSteerer) or type(obj).__name__ != header["class"]:
        raise FileFormatError(
            f"{str(path)!r} describes a {type(obj).__name__}, not a steerer of class "
            f"{header['class']!r}."
        )
    dtype = getattr(obj, "dtype_", None)
    if obj.is_fitted and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise FileFormatError(
            f"{str(path)!r} records compute dtype {dtype!r}; a floating dtype is expected."
        )
    if obj.is_fitted and obj.d_model_ != header["d_model"]:
        raise FileFormatError(
            f"{str(path)!r} is inconsistent: header d_model={header['d_model']} but the steerer "
            f"has d_model={obj.d_model_}."
        )
    if obj.is_fitted and str(obj.dtype_).removeprefix("torch.") != header["dtype"]:
        raise FileFormatError(
            f"{str(path)!r} is inconsistent: header dtype {header['dtype']!r} but the steerer "
            f"computes in {obj.dtype_}."
        )
    _check_loaded_state(obj, path)
    obj.provenance_ = dict(header["provenance"])  # type: ignore[attr-defined]
    if device is not None:
        obj = obj.to(device=device)
    return obj


#: Steps the load-time probe integrates (whatever the file's solver and steps say).
_PROBE_STEPS = 2


def _probe_copy(obj: AbstractSteerer) -> AbstractSteerer:
    """A copy of ``obj`` whose steer costs a bounded number of field evaluations.

    The probe checks that the tensors fit together, not the solver: an ODESteer's solver and
    steps are validated, then the copy takes ``_PROBE_STEPS`` Euler steps.
    """
    if not isinstance(obj, ODESteer):
        return obj
    obj._flow()  # the file's solver, steps and stop, validated
    cheap = copy.copy(obj)
    cheap.solver, cheap.steps = "euler", _PROBE_STEPS
    return cheap


def _check_loaded_state(obj: AbstractSteerer, path: str | Path) -> None:
    """Probe the loaded steerer (field, one steer, barrier) so a damaged file fails here."""
    if not obj.is_fitted:
        raise FileFormatError(f"{str(path)!r} holds an unfitted steerer.")
    try:
        if not isinstance(obj.d_model_, int) or isinstance(obj.d_model_, bool) or obj.d_model_ < 1:
            raise ValueError(f"d_model_ is {obj.d_model_!r}")
        for name in ("act_norm_", "speed_"):
            value = getattr(obj, name)
            if value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0
            ):
                raise ValueError(f"{name} is {value!r}")
        probe = torch.ones(2, obj.d_model_, dtype=obj.dtype_)
        probe[1] = torch.linspace(-1.0, 1.0, obj.d_model_, dtype=obj.dtype_)
        out = obj._velocity(probe)
        if out.shape != probe.shape:
            raise ValueError(f"field has shape {tuple(out.shape)}")
        values = [out, _probe_copy(obj)._steer(probe, 0.5)]
        if obj.has_barrier:
            values.append(obj._barrier(probe))
        if not all(bool(torch.isfinite(v).all()) for v in values):
            raise ValueError("the field or barrier is not finite on a probe")
    except InvalidParameterError as exc:
        raise FileFormatError(
            f"{str(path)!r} holds a parameter this version refuses ({exc}); the file is damaged "
            "or was edited."
        ) from None
    except Exception as exc:
        raise FileFormatError(
            f"The tensors in {str(path)!r} do not fit together ({exc}); the file is damaged."
        ) from None


# -- schema 1 (lens_odesteer 0.1.0) -> schema 2 ---------------------------------------------------
_V1_FLOW_PARAMS: dict[str, tuple[str, ...]] = {
    "ODESteer": (
        "n_components", "degree", "gamma", "coef0", "C", "seed", "solver", "n_steps", "margin",
        "custom_barrier", "normalize", "min_grad_norm", "max_iter", "tol", "rtol", "atol",
    ),
    "StepODESteer": (
        "n_components", "degree", "gamma", "coef0", "C", "seed", "margin", "custom_barrier",
        "normalize", "min_grad_norm", "max_iter", "tol",
    ),
    "RFFODESteer": (
        "n_components", "bandwidth", "C", "seed", "solver", "n_steps", "margin", "normalize",
        "min_grad_norm", "max_iter", "tol", "rtol", "atol",
    ),
    "RFFStepODESteer": (
        "n_components", "bandwidth", "C", "seed", "margin", "normalize", "min_grad_norm",
        "max_iter", "tol",
    ),
    "ValueSteer": (
        "hidden", "weight_decay", "seed", "value_max_iter", "solver", "n_steps", "margin",
        "normalize", "min_grad_norm", "rtol", "atol",
    ),
}  # fmt: skip
_V1_BASELINES = ("CAA", "ITI", "RepE", "LinAcT", "MiMiC")


def _migrate_v1(header: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Rewrite a schema-1 header as the equivalent schema-2 header."""
    version = header.get("library_version")
    desc = header["component"]
    name = desc.get("class") if isinstance(desc, dict) else None
    try:
        if not isinstance(desc, dict) or set(desc) != {"class", "params", "fitted"}:
            raise ValueError("the component description is malformed")
        if name in _V1_FLOW_PARAMS:
            new_desc = {"class": "ODESteer", "params": _v1_flow_params(name, desc["params"])}
        elif name in _V1_BASELINES:
            new_desc = {"class": name, "params": desc["params"]}
        else:
            raise ValueError(f"schema 1 has no steerer class {name!r}")
        fitted = desc["fitted"]
        if fitted is not None:
            if not isinstance(fitted, dict) or not isinstance(fitted.get("scalars"), dict):
                raise ValueError("the fitted state is malformed")
            fitted = copy.deepcopy(fitted)
            fitted["scalars"].update({"act_norm_": None, "speed_": None})
        new_desc["fitted"] = fitted
    except (ValueError, TypeError, KeyError, AttributeError, FileFormatError) as exc:
        raise FileFormatError(
            f"{str(path)!r} was written by lens_odesteer {version} (steerer schema 1) and cannot "
            f"be migrated to schema {SCHEMA_VERSION}: {exc}. Refit the steerer with this version."
        ) from None
    return {**header, "schema_version": SCHEMA_VERSION, "class": new_desc["class"],
            "component": new_desc}  # fmt: skip


def _v1_flow_params(name: str, params: JSON) -> dict[str, JSON]:
    """The composed ODESteer parameters equivalent to an old flow class's parameters."""
    expected = _V1_FLOW_PARAMS[name]
    if not isinstance(params, dict) or set(params) != set(expected):
        got = sorted(params) if isinstance(params, dict) else params
        raise ValueError(f"{name} parameters {got} are not 0.1.0's {sorted(expected)}")
    p: dict[str, Any] = {
        k: v if k == "custom_barrier" else _from_json(v) for k, v in params.items()
    }
    for key, value in p.items():  # also those a custom barrier makes unused
        if key in LIMITS:
            low, high = LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{key}={value!r} is not an int in [{low}, {high}]")
    barrier: JSON
    if name in ("ODESteer", "StepODESteer") and p["custom_barrier"] is not None:
        barrier = p["custom_barrier"]  # already a component description
    elif name in ("ODESteer", "StepODESteer"):
        barrier = sketch_barrier(
            p["n_components"], p["degree"], p["gamma"], p["coef0"], p["C"], p["seed"],
            p["max_iter"], p["tol"],
        )._export()[0]  # fmt: skip
    elif name in ("RFFODESteer", "RFFStepODESteer"):
        barrier = rff_barrier(
            p["n_components"], p["bandwidth"], p["C"], p["seed"], p["max_iter"], p["tol"]
        )._export()[0]
    else:
        barrier = value_barrier(p["hidden"], p["weight_decay"], p["seed"], p["value_max_iter"])
        barrier = barrier._export()[0]
    solver, n_steps = p.get("solver", "euler"), p.get("n_steps", 1)
    steps: object = n_steps
    if solver == "dopri5":
        steps = AdaptiveSteps(rtol=p["rtol"], atol=p["atol"], initial_steps=n_steps)
    stop = None if p["margin"] is None else BarrierMargin(p["margin"])
    return {
        "barrier": barrier,
        "solver": _to_json(solver, "solver"),
        "steps": _to_json(steps, "steps"),
        "stop": _to_json(stop, "stop"),
        "normalize": _to_json(p["normalize"], "normalize"),
        "min_grad_norm": _to_json(p["min_grad_norm"], "min_grad_norm"),
    }
