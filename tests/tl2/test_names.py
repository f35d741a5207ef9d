"""Hook-name helpers and model introspection on a classic HookedTransformer."""

from __future__ import annotations

from typing import Any

import pytest

from lens_odesteer.errors import HookNameError, InvalidParameterError
from lens_odesteer.models import names
from lens_odesteer.models.names import (
    attn_out,
    hook_layer,
    is_bridge,
    mlp_out,
    model_d_model,
    model_n_layers,
    resid_post,
    resid_pre,
    validate_hook_name,
)


def test_builders_name_real_hook_points(tiny: Any) -> None:
    for layer in range(model_n_layers(tiny)):
        for build in (resid_pre, resid_post, attn_out, mlp_out):
            name = build(layer)
            assert validate_hook_name(tiny, name) == name
            assert tiny.hook_dict[name].name == name  # HT names are canonical here
            assert hook_layer(name) == layer
    assert validate_hook_name(tiny, "blocks.0.hook_resid_mid") == "blocks.0.hook_resid_mid"
    assert validate_hook_name(tiny, "hook_embed") == "hook_embed"


def test_introspection(tiny: Any) -> None:
    assert is_bridge(tiny) is False
    assert model_d_model(tiny) == 64 and model_n_layers(tiny) == 2


def test_typo_suggests_the_closest_names(tiny: Any) -> None:
    with pytest.raises(HookNameError, match=r"Did you mean 'blocks\.0\.hook_resid_post'"):
        validate_hook_name(tiny, "blocks.0.hook_resid_pots")
    with pytest.raises(HookNameError, match="layer 7 is out of range; this model has 2"):
        validate_hook_name(tiny, resid_post(7))
    with pytest.raises(InvalidParameterError, match="must be a string"):
        validate_hook_name(tiny, 3)  # type: ignore[arg-type]


def test_bridge_canonical_names_are_not_hookedtransformer_names(tiny: Any) -> None:
    """``blocks.L.hook_out`` is a TL 4 bridge name; a HookedTransformer does not have it."""
    with pytest.raises(HookNameError, match=r"Unknown hook 'blocks\.0\.hook_out'"):
        validate_hook_name(tiny, "blocks.0.hook_out")
    assert "blocks.0.hook_out" not in tiny.hook_dict


def test_names_module_has_no_tl4_import() -> None:
    """The helpers stay importable with TL 2.x: they never import TransformerLens."""
    assert "transformer_lens" not in names.__dict__
