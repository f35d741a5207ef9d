"""The steerer file format: one ``.safetensors`` file with a JSON header; writing and header checks.

The file's ``__metadata__`` holds a single JSON document under the key ``"lens_odesteer"``:
format name, schema version, library version, class, parameters and fitted state
(``component``), ``d_model``, dtype and free-form provenance (model name, hook, layer, ...).
Writes go to a temporary file renamed into place, so a crash never leaves a half-written file.
Loading (rebuilding objects, migrating older schemas) lives in :mod:`lens_odesteer.io`, above
the steerers; this module sits below them so that ``steerer.save`` needs no upward import.

Schema history: 1 (lens_odesteer 0.1.0): one class per ODESteer variant, flat parameters;
2: the composable ``ODESteer(barrier, solver=, steps=, stop=)`` and recorded
``act_norm_``/``speed_``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lens_odesteer._atomic import atomic_path
from lens_odesteer._file_rules import (
    FORMAT,
    HEADER_KEYS,
    MAX_HEADER_BYTES,
    TypeProblem,
    description_problem,
    encode_header,
    header_problem,
)
from lens_odesteer._validation import as_path
from lens_odesteer._version import __version__
from lens_odesteer.errors import FileFormatError, InvalidParameterError, ParameterTypeError

if TYPE_CHECKING:
    from lens_odesteer.steerers.base import AbstractSteerer

SCHEMA_VERSION = 2


def save_steerer(
    steerer: AbstractSteerer, path: str | Path, *, provenance: dict[str, Any] | None = None
) -> Path:
    """Write a fitted steerer to ``path`` (``.safetensors`` is appended if missing).

    Args:
        steerer: a fitted steerer built from lens_odesteer's own classes.
        path: destination file.
        provenance: JSON-able facts about where the activations came from, e.g.
            ``{"model_name": ..., "hook_name": ..., "layer": ...}``.

    Returns:
        The path written.

    Raises:
        TypeError: a parameter that cannot be written (a user's own class or callable).
        ParameterTypeError: ``path`` that is not a str or os.PathLike, or a ``provenance`` that
            is not a dict of plain JSON values (str, numbers, bools, None, lists, dicts).
        InvalidParameterError: anything :func:`~lens_odesteer.io.load_steerer` would refuse
            (non-finite numbers or tensors, circular or too deeply nested provenance,
            parameters out of the loader's bounds); nothing is written then.

    Example:
        >>> import tempfile, torch, lens_odesteer as lo
        >>> caa = lo.CAA().fit(torch.randn(8, 4), torch.randn(8, 4))
        >>> path = caa.save(tempfile.mkdtemp() + "/caa", provenance={"layer": 3})
        >>> lo.load_steerer(path).steer(torch.zeros(1, 4), 1.0).shape
        torch.Size([1, 4])
    """
    steerer._check_is_fitted()
    path = as_path(path, "path")
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if provenance is None:
        provenance = {}
    desc, tensors = steerer._export()
    header = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "library_version": __version__,
        "class": type(steerer).__name__,
        "d_model": steerer.d_model_,
        "dtype": str(steerer.dtype_).removeprefix("torch."),
        "component": desc,
        "provenance": provenance,
    }
    # The loader's own rules, so a save never replaces a good file with an unreadable one.
    problem = (
        header_problem(header, d_model=steerer.d_model_)
        or description_problem(desc)
        or tensors_problem(tensors)
    )
    if problem:
        error = ParameterTypeError if isinstance(problem, TypeProblem) else InvalidParameterError
        raise error(
            f"Cannot save {type(steerer).__name__} to {str(path)!r}: {problem}. "
            "load_steerer would refuse such a file, so nothing was written (an existing file "
            "there is unchanged)."
        )
    text = encode_header(header)
    if len(text.encode()) > MAX_HEADER_BYTES:
        raise InvalidParameterError(
            f"Cannot save {type(steerer).__name__} to {str(path)!r}: its JSON header would be "
            f"{len(text.encode()):,} bytes, above the {MAX_HEADER_BYTES:,} a steerer file may "
            "hold; store large provenance beside the file instead. Nothing was written."
        )
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"lens_odesteer": text},
        )
    return path


def tensors_problem(tensors: dict[str, Any]) -> str | None:
    """The first tensor the loader would refuse (NaN or inf values), or None."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            n_bad = int((~torch.isfinite(tensor)).sum())
            return (
                f"the tensor {name!r} holds {n_bad} NaN or inf value(s) (the fit overflowed or "
                "the state was edited); refit on finite activations"
            )
    return None


def read_header(path: str | Path) -> dict[str, Any]:
    """Return the validated JSON header of a steerer file without loading its tensors.

    The header is returned as written; files of an older schema are migrated only by
    :func:`~lens_odesteer.io.load_steerer`.
    """
    path = as_path(path, "path")
    path = _existing(path)
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
    if len(raw) > MAX_HEADER_BYTES:
        raise FileFormatError(
            f"The steerer header in {str(path)!r} is {len(raw):,} characters, above the "
            f"{MAX_HEADER_BYTES:,} a steerer file may hold; the file is damaged or not ours."
        )
    try:
        header = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"The steerer header in {str(path)!r} is not valid JSON: {exc}"
        ) from None
    except RecursionError:
        raise FileFormatError(
            f"The steerer header in {str(path)!r} is nested too deeply to be a steerer header; "
            "the file is damaged or not ours."
        ) from None
    if not isinstance(header, dict):
        raise FileFormatError(f"The steerer header in {str(path)!r} is not a JSON object.")
    missing, extra = HEADER_KEYS - set(header), set(header) - HEADER_KEYS
    if missing or extra:
        raise FileFormatError(
            f"The steerer header in {str(path)!r} has missing fields {sorted(missing)} and "
            f"unexpected fields {sorted(extra)}; expected exactly {sorted(HEADER_KEYS)}."
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
    problem = header_problem(header)
    if problem:
        raise FileFormatError(
            f"{str(path)!r} cannot be loaded: {problem}. The file is damaged or was not written "
            "by lens_odesteer; save the steerer again from a trusted copy."
        )
    return header


def _existing(path: Path) -> Path:
    """``path``, or ``path`` + ``.safetensors`` when only that exists (what ``save`` wrote)."""
    if path.is_file():
        return path
    suffixed = path.with_name(path.name + ".safetensors")
    if path.suffix != ".safetensors" and suffixed.is_file():
        return suffixed
    tried = f"{str(path)!r}" + (
        f" or {str(suffixed)!r}" if path.suffix != ".safetensors" and path.name else ""
    )
    what = "is a folder" if path.is_dir() else "does not exist"
    raise FileFormatError(
        f"No steerer file at {tried} ({str(path)!r} {what}). `steerer.save(path)` appends "
        "'.safetensors' to a path without it; pass the path that save returned."
    )


def _reject_constant(name: str) -> object:
    raise FileFormatError(f"The steerer header holds the non-JSON constant {name}; file damaged.")
