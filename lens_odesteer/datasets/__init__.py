"""Contrast datasets for fitting steering methods: data classes, file loaders, built-in sets;
and the public evaluation data: its manifest, where it is looked for, and its download.

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
from lens_odesteer.datasets.fetch import check_data, fetch_data
from lens_odesteer.datasets.loaders import (
    CAA_PROMPT,
    TRUTHFULQA_PROMPT,
    load_caa_ab_json,
    load_pairs,
    load_repe_facts_csv,
    load_truthfulqa_csv,
)
from lens_odesteer.datasets.locate import find_data_dir, find_data_file
from lens_odesteer.datasets.sources import DATA_FILES, SOURCES

__all__ = [
    "BUILTIN_DATASETS",
    "CAA_PROMPT",
    "DATA_FILES",
    "DEFAULT_TEMPLATE",
    "SOURCES",
    "TRUTHFULQA_PROMPT",
    "ChatTokenizer",
    "ContrastDataset",
    "ContrastPair",
    "check_data",
    "fetch_data",
    "find_data_dir",
    "find_data_file",
    "format_chat",
    "load_builtin",
    "load_caa_ab_json",
    "load_pairs",
    "load_repe_facts_csv",
    "load_truthfulqa_csv",
    "render_template",
]
