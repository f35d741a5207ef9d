"""Contrast datasets for fitting steering methods: data classes, file loaders, built-in sets.

Nothing in this package imports ``transformers`` or ``transformer_lens``.
"""

from __future__ import annotations

from lens_odesteer.datasets.builtin import BUILTIN_DATASETS, load_builtin
from lens_odesteer.datasets.contrast import (
    DEFAULT_TEMPLATE,
    ChatTokenizer,
    ContrastDataset,
    ContrastPair,
    format_chat,
    render_template,
)
from lens_odesteer.datasets.loaders import (
    CAA_PROMPT,
    TRUTHFULQA_PROMPT,
    load_caa_ab_json,
    load_pairs,
    load_repe_facts_csv,
    load_truthfulqa_csv,
)

__all__ = [
    "BUILTIN_DATASETS",
    "CAA_PROMPT",
    "DEFAULT_TEMPLATE",
    "TRUTHFULQA_PROMPT",
    "ChatTokenizer",
    "ContrastDataset",
    "ContrastPair",
    "format_chat",
    "load_builtin",
    "load_caa_ab_json",
    "load_pairs",
    "load_repe_facts_csv",
    "load_truthfulqa_csv",
    "render_template",
]
