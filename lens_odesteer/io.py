"""Save and load steerers: tensors in safetensors, everything else in a JSON header.

The file is one ``.safetensors`` file whose ``__metadata__`` holds a single JSON document under
the key ``"lens_odesteer"``: format name, schema version, library version, class, parameters,
fitted scalars, ``d_model``, dtype and free-form provenance (model name, hook, layer, ...).
Loading parses JSON and raw tensors only, so it never executes code from the file; classes are
looked up in lens_odesteer's own registry. Writes go to a temporary file that is renamed into
place, so a crash never leaves a half-written steerer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lens_odesteer._atomic import atomic_path
from lens_odesteer._component import Component
from lens_odesteer._version import __version__
from lens_odesteer.errors import FileFormatError
from lens_odesteer.steerers.base import AbstractSteerer

FORMAT = "lens_odesteer.steerer"
SCHEMA_VERSION = 1
_HEADER_KEYS = {
    "format",
    "schema_version",
    "library_version",
    "class",
    "d_model",
    "dtype",
    "component",
    "provenance",
}


def save_steerer(
    steerer: AbstractSteerer, path: str | Path, *, provenance: dict[str, Any] | None = None
) -> Path:
    """Write a fitted steerer to ``path`` (``.safetensors`` is appended if missing).

    Args:
        steerer: a fitted steerer.
        path: destination file.
        provenance: JSON-able facts about where the activations came from, e.g.
            ``{"model_name": ..., "hook_name": ..., "layer": ...}``.

    Returns:
        The path written.

    Example:
        >>> import tempfile, torch, lens_odesteer as lo
        >>> caa = lo.CAA().fit(torch.randn(8, 4), torch.randn(8, 4))
        >>> path = caa.save(tempfile.mkdtemp() + "/caa", provenance={"layer": 3})
        >>> lo.load_steerer(path).steer(torch.zeros(1, 4), 1.0).shape
        torch.Size([1, 4])
    """
    steerer._check_is_fitted()
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    desc, tensors = steerer._export()
    try:
        json.dumps(provenance)
    except TypeError as exc:
        raise TypeError(f"`provenance` must be JSON-serialisable: {exc}") from exc
    header = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "library_version": __version__,
        "class": type(steerer).__name__,
        "d_model": steerer.d_model_,
        "dtype": str(steerer.dtype_).removeprefix("torch."),
        "component": desc,
        "provenance": provenance or {},
    }
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"lens_odesteer": json.dumps(header)},
        )
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """Return the validated JSON header of a steerer file without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"No steerer file at {str(path)!r} (missing or not a file).")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise FileFormatError(
            f"{str(path)!r} is not a readable safetensors file (truncated or another format): {exc}"
        ) from None
    raw = meta.get("lens_odesteer")
    if raw is None:
        raise FileFormatError(
            f"{str(path)!r} is a safetensors file but not a lens_odesteer steerer (no "
            "'lens_odesteer' header). Save steerers with `steerer.save(path)`."
        )
    try:
        header = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"The steerer header in {str(path)!r} is not valid JSON: {exc}"
        ) from None
    if not isinstance(header, dict):
        raise FileFormatError(f"The steerer header in {str(path)!r} is not a JSON object.")
    missing, extra = _HEADER_KEYS - set(header), set(header) - _HEADER_KEYS
    if missing or extra:
        raise FileFormatError(
            f"The steerer header in {str(path)!r} has missing fields {sorted(missing)} and "
            f"unexpected fields {sorted(extra)}; expected exactly {sorted(_HEADER_KEYS)}."
        )
    if header["format"] != FORMAT:
        raise FileFormatError(f"{str(path)!r} has format {header['format']!r}, not {FORMAT!r}.")
    version = header["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise FileFormatError(f"Schema version {version!r} in {str(path)!r} is not an integer.")
    if version > SCHEMA_VERSION:
        raise FileFormatError(
            f"{str(path)!r} uses steerer schema version {version}, newer than this lens_odesteer "
            f"({__version__}) understands ({SCHEMA_VERSION}); upgrade lens_odesteer "
            f"(the file was written by version {header['library_version']})."
        )
    if version < 1:
        raise FileFormatError(f"Unsupported schema version {version} in {str(path)!r}.")
    if not isinstance(header["provenance"], dict):
        raise FileFormatError(f"`provenance` in {str(path)!r} must be a JSON object.")
    return header


def load_steerer(path: str | Path, *, device: torch.device | str | None = None) -> AbstractSteerer:
    """Load a steerer saved with :func:`save_steerer` (optionally onto ``device``).

    The provenance recorded at save time is available as ``steerer.provenance_``.

    Raises:
        FileFormatError: missing, truncated, foreign or newer-schema files, or a header whose
            fields do not match this version.
    """
    header = read_header(path)
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
    _check_loaded_state(obj, path)
    obj.provenance_ = dict(header["provenance"])  # type: ignore[attr-defined]
    if device is not None:
        obj = obj.to(device=device)
    return obj


def _reject_constant(name: str) -> object:
    raise FileFormatError(f"The steerer header holds the non-JSON constant {name}; file damaged.")


def _check_loaded_state(obj: AbstractSteerer, path: str | Path) -> None:
    """Probe the loaded steerer (field, one steer, barrier) so a damaged file fails here."""
    if not obj.is_fitted:
        raise FileFormatError(f"{str(path)!r} holds an unfitted steerer.")
    try:
        if not isinstance(obj.d_model_, int) or isinstance(obj.d_model_, bool) or obj.d_model_ < 1:
            raise ValueError(f"d_model_ is {obj.d_model_!r}")
        probe = torch.ones(2, obj.d_model_, dtype=obj.dtype_)
        probe[1] = torch.linspace(-1.0, 1.0, obj.d_model_, dtype=obj.dtype_)
        out = obj._velocity(probe)
        if out.shape != probe.shape:
            raise ValueError(f"field has shape {tuple(out.shape)}")
        values = [out, obj._steer(probe, 0.5)]
        if obj.has_barrier:
            values.append(obj._barrier(probe))
        if not all(bool(torch.isfinite(v).all()) for v in values):
            raise ValueError("the field or barrier is not finite on a probe")
    except Exception as exc:
        raise FileFormatError(
            f"The tensors in {str(path)!r} do not fit together ({exc}); the file is damaged."
        ) from None
