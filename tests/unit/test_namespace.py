"""The curated top-level namespace: few names, moved names still served with a pointer."""

from __future__ import annotations

import importlib

import pytest

import lens_odesteer as lo


def test_public_namespace_is_curated() -> None:
    assert 25 <= len(lo.__all__) <= 42
    for name in lo.__all__:
        assert getattr(lo, name) is not None, name
    # the three ways to steer and the plan they share
    for name in ("SteeringPlan", "steering", "generate", "SteeringHook"):
        assert name in lo.__all__


def test_importing_the_package_does_not_import_transformer_lens() -> None:
    code = "import sys, lens_odesteer; print('transformer_lens' in sys.modules)"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("KernelLogisticBarrier", "lens_odesteer.barriers"),
        ("InvalidParameterError", "lens_odesteer.errors"),
        ("read_header", "lens_odesteer.io"),
        ("Trajectory", "lens_odesteer.flows"),
    ],
)
def test_moved_names_warn_and_point_to_their_module(name: str, module: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"from {module} import {name}"):
        value = getattr(lo, name)
    assert value is getattr(importlib.import_module(module), name)
    assert name not in lo.__all__


@pytest.mark.parametrize("name", ["attach", "make_hooks"])
def test_removed_entry_points_say_what_replaces_them(name: str) -> None:
    with pytest.raises(AttributeError, match=r"SteeringPlan|steering"):
        getattr(lo, name)


def test_unknown_name_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lo.nope  # noqa: B018
