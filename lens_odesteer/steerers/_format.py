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

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lens_odesteer._atomic import atomic_path
from lens_odesteer._version import __version__
from lens_odesteer.errors import FileFormatError

if TYPE_CHECKING:
    from lens_odesteer.steerers.base import AbstractSteerer

FORMAT = "lens_odesteer.steerer"
SCHEMA_VERSION = 2
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
    """Return the validated JSON header of a steerer file without loading its tensors.

    The header is returned as written; files of an older schema are migrated only by
    :func:`~lens_odesteer.io.load_steerer`.
    """
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
    return header


def _reject_constant(name: str) -> object:
    raise FileFormatError(f"The steerer header holds the non-JSON constant {name}; file damaged.")
