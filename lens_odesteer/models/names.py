"""Hook-name helpers and model introspection that work on any TransformerLens model.

Everything here is duck-typed on ``hook_dict``, ``cfg.d_model`` and ``cfg.n_layers``, so it
accepts a TL 4 ``TransformerBridge`` and a classic ``HookedTransformer`` (TL 2.x/3.x) alike,
without importing either class.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from lens_odesteer.errors import HookNameError, InvalidParameterError

__all__ = [
    "HookedModel",
    "attn_out",
    "hook_layer",
    "is_bridge",
    "mlp_out",
    "model_d_model",
    "model_n_layers",
    "resid_post",
    "resid_pre",
    "validate_hook_name",
]

HookedModel = Any
"""A TransformerLens model: a TL 4 ``TransformerBridge`` or a classic ``HookedTransformer``."""

_BLOCK_RE = re.compile(r"^blocks\.(-?\d+)\.")


def _check_layer(layer: object) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InvalidParameterError(f"`layer` must be a non-negative integer; got {layer!r}.")
    if layer < 0:
        raise InvalidParameterError(
            f"`layer` must be >= 0; got {layer}. Use `model_n_layers(model) - 1` for the last "
            "layer."
        )
    return layer


def resid_pre(layer: int) -> str:
    """Return the name of the residual stream entering block ``layer``.

    Example:
        >>> resid_pre(0)
        'blocks.0.hook_resid_pre'
    """
    return f"blocks.{_check_layer(layer)}.hook_resid_pre"


def resid_post(layer: int) -> str:
    """Return the name of the residual stream leaving block ``layer`` (the usual steering site).

    Example:
        >>> resid_post(6)
        'blocks.6.hook_resid_post'
    """
    return f"blocks.{_check_layer(layer)}.hook_resid_post"


def attn_out(layer: int) -> str:
    """Return the name of the attention output of block ``layer`` (before the skip connection).

    Example:
        >>> attn_out(3)
        'blocks.3.hook_attn_out'
    """
    return f"blocks.{_check_layer(layer)}.hook_attn_out"


def mlp_out(layer: int) -> str:
    """Return the name of the MLP output of block ``layer`` (before the skip connection).

    Example:
        >>> mlp_out(3)
        'blocks.3.hook_mlp_out'
    """
    return f"blocks.{_check_layer(layer)}.hook_mlp_out"


def hook_layer(name: str) -> int | None:
    """Return the block index in a hook name such as ``blocks.6.hook_resid_post``, else None.

    Example:
        >>> hook_layer("blocks.6.hook_resid_post"), hook_layer("hook_embed")
        (6, None)
    """
    match = _BLOCK_RE.match(name)
    return int(match.group(1)) if match else None


def is_bridge(model: HookedModel) -> bool:
    """Return True for a TL 4 ``TransformerBridge`` (or another TL bridge), False otherwise.

    The check walks the class hierarchy by name, so it never imports TransformerLens.
    """
    return any(cls.__name__ in ("TransformerBridge", "BridgeCore") for cls in type(model).__mro__)


def _cfg_int(model: HookedModel, field: str) -> int:
    cfg = getattr(model, "cfg", None)
    value = getattr(cfg, field, None)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(
            f"Expected a TransformerLens model with an integer `cfg.{field}`; got "
            f"{type(model).__name__} whose cfg.{field} is {value!r}."
        )
    return value


def model_d_model(model: HookedModel) -> int:
    """Return the residual-stream width ``cfg.d_model`` of a TransformerLens model."""
    return _cfg_int(model, "d_model")


def model_n_layers(model: HookedModel) -> int:
    """Return the number of transformer blocks ``cfg.n_layers`` of a TransformerLens model."""
    return _cfg_int(model, "n_layers")


def _hook_names(model: HookedModel) -> list[str]:
    hook_dict = getattr(model, "hook_dict", None)
    if not isinstance(hook_dict, dict):
        raise InvalidParameterError(
            f"Expected a TransformerLens model with a `hook_dict`; got {type(model).__name__}."
        )
    return list(hook_dict)


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def validate_hook_name(model: HookedModel, name: str) -> str:
    """Return ``name`` unchanged if it is a hook on ``model``, or raise a helpful error.

    Both the classic names (``blocks.6.hook_resid_post``) and, on a bridge, the canonical
    bridge names (``blocks.6.hook_out``) are accepted.

    Args:
        model: a ``TransformerBridge`` or ``HookedTransformer``.
        name: the full hook name, e.g. built with :func:`resid_post`.

    Returns:
        ``name``.

    Raises:
        HookNameError: the name does not exist. The message names the layer range when the
            block index is out of range, and otherwise suggests the closest valid names.
        InvalidParameterError: ``name`` is not a string.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> validate_hook_name(tiny_bridge(), "blocks.1.hook_resid_post")
        'blocks.1.hook_resid_post'
    """
    if not isinstance(name, str):
        raise InvalidParameterError(
            f"A hook name must be a string such as 'blocks.0.hook_resid_post'; got {name!r}."
        )
    names = _hook_names(model)
    if name in names:
        return name
    layer = hook_layer(name)
    n_layers = getattr(getattr(model, "cfg", None), "n_layers", None)
    if layer is not None and isinstance(n_layers, int) and not 0 <= layer < n_layers:
        raise HookNameError(
            f"Unknown hook {name!r}: layer {layer} is out of range; this model has {n_layers} "
            f"layers, numbered 0 to {n_layers - 1}."
        )
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = (
        f"Did you mean {_or_list([repr(c) for c in close])}?"
        if close
        else "Build names with resid_post(layer), resid_pre(layer), attn_out(layer) or "
        "mlp_out(layer), or list them with `sorted(model.hook_dict)`."
    )
    raise HookNameError(f"Unknown hook {name!r}. {hint}")
