"""Hook-name helpers and introspection, on a bridge and on a duck-typed classic model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformer_lens.model_bridge import TransformerBridge

from lens_odesteer.errors import HookNameError, InvalidParameterError
from lens_odesteer.models import (
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


def classic_model(n_layers: int = 3, d_model: int = 8) -> SimpleNamespace:
    """What the helpers need from a TL 2.x/3.x HookedTransformer."""
    names = ["hook_embed", "ln_final.hook_normalized"]
    for layer in range(n_layers):
        names += [
            f"blocks.{layer}.hook_{s}"
            for s in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
        ]
    cfg = SimpleNamespace(n_layers=n_layers, d_model=d_model, model_name="classic")
    return SimpleNamespace(cfg=cfg, hook_dict={n: object() for n in names})


def test_builders_give_classic_names() -> None:
    assert resid_post(6) == "blocks.6.hook_resid_post"
    assert resid_pre(0) == "blocks.0.hook_resid_pre"
    assert attn_out(2) == "blocks.2.hook_attn_out"
    assert mlp_out(11) == "blocks.11.hook_mlp_out"


@pytest.mark.parametrize("bad", [-1, 1.0, "3", True, None])
def test_builders_reject_bad_layers(bad: object) -> None:
    with pytest.raises((InvalidParameterError, TypeError)):
        resid_post(bad)  # type: ignore[arg-type]


def test_hook_layer() -> None:
    assert hook_layer("blocks.12.attn.hook_z") == 12
    assert hook_layer("hook_embed") is None
    assert hook_layer("ln_final.hook_normalized") is None


def test_builder_names_exist_on_bridge(tiny: TransformerBridge) -> None:
    for build in (resid_pre, resid_post, attn_out, mlp_out):
        for layer in range(tiny.cfg.n_layers):
            assert validate_hook_name(tiny, build(layer)) == build(layer)
    # canonical bridge names are accepted too
    assert validate_hook_name(tiny, "blocks.1.hook_out") == "blocks.1.hook_out"


def test_introspection_on_bridge(tiny: TransformerBridge) -> None:
    assert is_bridge(tiny)
    assert model_d_model(tiny) == 64
    assert model_n_layers(tiny) == 2


def test_introspection_on_classic_model() -> None:
    model = classic_model()
    assert not is_bridge(model)
    assert model_d_model(model) == 8
    assert model_n_layers(model) == 3
    assert validate_hook_name(model, resid_post(2)) == "blocks.2.hook_resid_post"


def test_introspection_rejects_non_models() -> None:
    with pytest.raises(InvalidParameterError, match=r"cfg\.d_model"):
        model_d_model(object())
    with pytest.raises(InvalidParameterError, match="hook_dict"):
        validate_hook_name(object(), "blocks.0.hook_resid_post")


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("blocks.1.resid_post", "blocks.1.hook_resid_post"),
        ("blocks.0.hook_resid_pots", "blocks.0.hook_resid_post"),
        ("blocks.1.hook_mlpout", "blocks.1.hook_mlp_out"),
        ("hook_embedd", "hook_embed"),
    ],
)
def test_typos_suggest_the_nearest_names(
    tiny: TransformerBridge, typo: str, suggestion: str
) -> None:
    with pytest.raises(HookNameError) as info:
        validate_hook_name(tiny, typo)
    assert f"'{suggestion}'" in str(info.value)
    assert "Did you mean" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_typos_on_classic_model() -> None:
    with pytest.raises(HookNameError, match=r"blocks\.2\.hook_resid_post"):
        validate_hook_name(classic_model(), "blocks.2.hook_resid_pst")


@pytest.mark.parametrize("name", ["blocks.2.hook_resid_post", "blocks.99.hook_mlp_out"])
def test_layer_out_of_range_is_explained(tiny: TransformerBridge, name: str) -> None:
    expected = r"out of range; this model has 2 layers, numbered 0 to 1"
    with pytest.raises(HookNameError, match=expected):
        validate_hook_name(tiny, name)


def test_hopeless_names_list_the_builders(tiny: TransformerBridge) -> None:
    with pytest.raises(HookNameError, match="resid_post\\(layer\\)"):
        validate_hook_name(tiny, "zzz")


def test_non_string_names_are_rejected(tiny: TransformerBridge) -> None:
    with pytest.raises((InvalidParameterError, TypeError)):
        validate_hook_name(tiny, 3)  # type: ignore[arg-type]
