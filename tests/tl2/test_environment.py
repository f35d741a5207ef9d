"""The .venv-tl2 environment: TransformerLens 2.x/3.x with its classic HookedTransformer.

In the main .venv (TL 4) this is the only test of tests/tl2 that is collected, and it skips.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from packaging.version import Version

from tests.tl2._shared import HAVE_HOOKED_TRANSFORMER, SKIP_REASON


def test_environment() -> None:
    if not HAVE_HOOKED_TRANSFORMER:
        pytest.skip(SKIP_REASON)
    assert Version(importlib.metadata.version("transformer-lens")).major in (2, 3)
    assert importlib.metadata.version("torch").startswith("2.13.0")
    # Our package is installed without its TL 4 dependencies, in editable mode.
    assert importlib.metadata.version("lens-odesteer")
    from lens_odesteer.models import default_gguf_path, transformer_lens_major

    assert transformer_lens_major() in (2, 3)  # so load_model() gives a HookedTransformer
    assert default_gguf_path().is_file()
