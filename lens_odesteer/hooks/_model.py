"""Duck-typed model introspection for the hooks: hook points, widths, devices, tokens.

Works on a TL 4 ``TransformerBridge`` and on a classic ``HookedTransformer`` alike, using only
``hook_dict``, ``cfg``, ``blocks``, ``parameters()``, ``tokenizer`` and ``to_tokens``.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import torch
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.models.names import HookedModel, hook_layer, is_bridge

_RESIDUAL = re.compile(
    r"^(hook_embed|hook_pos_embed|embed\.hook_out|pos_embed\.hook_out|ln_final\.hook_in"
    r"|blocks\.\d+\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out"
    r"|hook_in|hook_out|attn\.hook_out|mlp\.hook_out|ln1\.hook_in|ln2\.hook_in))$"
)
_MLP_HIDDEN = re.compile(
    r"^blocks\.\d+\.mlp\.(hook_pre|hook_post|hook_pre_linear|out\.hook_in|gate\.hook_out"
    r"|in\.hook_out)$"
)
_MID = re.compile(r"^blocks\.\d+\.(hook_resid_mid|ln2\.hook_in)$")


def hook_dict(model: HookedModel) -> dict[str, Any]:
    """Return ``model.hook_dict`` (read once: the bridge rebuilds it on every access)."""
    points = getattr(model, "hook_dict", None)
    if not isinstance(points, dict):
        raise InvalidParameterError(
            "Expected a TransformerLens model (TransformerBridge or HookedTransformer) with a "
            f"`hook_dict`; got {type(model).__name__}."
        )
    return points


def expected_width(model: HookedModel, name: str, point: Any) -> int | None:
    """Return the activation width at a hook point when its name tells it, else None."""
    cfg = getattr(model, "cfg", None)
    names = {name, getattr(point, "name", None) or name}
    if any(_RESIDUAL.match(n) for n in names):
        width = getattr(cfg, "d_model", None)
    elif any(_MLP_HIDDEN.match(n) for n in names):
        width = getattr(cfg, "d_mlp", None)
    else:
        return None
    return width if isinstance(width, int) and not isinstance(width, bool) else None


def warn_resid_mid(model: HookedModel, name: str, point: Any) -> None:
    """Warn that editing ``hook_resid_mid`` on a bridge only changes the MLP input."""
    canonical = getattr(point, "name", None) or name
    if is_bridge(model) and (_MID.match(name) or _MID.match(canonical)):
        warnings.warn(
            f"On a TransformerBridge, {name!r} is the input of ln2 ({canonical!r}): steering it "
            "changes only the MLP's input, not the residual stream that the skip connection "
            "carries. Steer 'blocks.L.hook_attn_out' or 'blocks.L.hook_resid_post' instead.",
            UserWarning,
            stacklevel=4,
        )


def _first_param(module: Any) -> Tensor | None:
    params = getattr(module, "parameters", None)
    if params is None:
        return None
    for param in params():
        if param.is_floating_point():
            return param
    return None


def model_dtype(model: HookedModel) -> torch.dtype:
    """Return the dtype of the model's floating parameters (``cfg.dtype`` can disagree)."""
    param = _first_param(model)
    if param is not None:
        return param.dtype
    dtype = getattr(getattr(model, "cfg", None), "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def hook_device(model: HookedModel, name: str) -> torch.device:
    """Return the device of the activations at ``name``: that of its block's parameters."""
    layer = hook_layer(name)
    blocks = getattr(model, "blocks", None)
    param = None
    if layer is not None and blocks is not None and 0 <= layer < len(blocks):
        param = _first_param(blocks[layer])
    if param is None:
        param = _first_param(model)
    if param is not None:
        return param.device
    return torch.device(getattr(getattr(model, "cfg", None), "device", None) or "cpu")


def model_device(model: HookedModel) -> torch.device:
    """Return the device of the model's input embedding (where tokens must go)."""
    for attr in ("embed", "W_E"):
        param = _first_param(getattr(model, attr, None))
        if param is not None:
            return param.device
    return hook_device(model, "")


def check_fireable(model: HookedModel, point: Any, name: str, fn: Any) -> None:
    """Run the model's own pre-attach check (gated hooks such as ``hook_attn_in``)."""
    check = getattr(model, "check_hooks_to_add", None)
    if check is None:
        return
    try:
        check(point, name, fn, dir="fwd")
    except (ValueError, NotImplementedError, AssertionError) as exc:  # TL 2.x asserts
        raise InvalidParameterError(f"Cannot steer at {name!r}: {exc}") from exc


def n_ctx(model: HookedModel) -> int | None:
    """Return ``cfg.n_ctx`` when it is an int."""
    value = getattr(getattr(model, "cfg", None), "n_ctx", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def tokenizer(model: HookedModel) -> Any:
    """Return ``model.tokenizer`` or raise a clear error."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise InvalidParameterError(
            "This model has no tokenizer; generate() needs one to tokenize and decode prompts."
        )
    return tok
