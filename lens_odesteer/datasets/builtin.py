"""Small contrast sets shipped with lens_odesteer (original sentences, Apache-2.0).

* ``"sentiment"``: a short neutral context (``"My weekend was"``) with a clearly positive and a
  clearly negative one-sentence continuation about the same thing, over varied topics.
* ``"facts"``: a simple, well-known true statement (positive) and a minimally edited false one
  (negative), with an empty prompt.

Both were written for this project; they are not taken from any public dataset.
"""

from __future__ import annotations

from importlib import resources

from lens_odesteer.datasets._text import json_lines, parse_json
from lens_odesteer.datasets.contrast import ContrastDataset, ContrastPair
from lens_odesteer.errors import FileFormatError, InvalidParameterError

__all__ = ["BUILTIN_DATASETS", "load_builtin"]

#: Names accepted by :func:`load_builtin`.
BUILTIN_DATASETS: tuple[str, ...] = ("sentiment", "facts")

_DESCRIPTIONS = {
    "sentiment": "neutral context + positive vs negative one-sentence continuation",
    "facts": "true statement vs minimally edited false statement (empty prompt)",
}


def load_builtin(name: str) -> ContrastDataset:
    """Load a built-in contrast set.

    Records in ``datasets/data/<name>.jsonl`` are ``{"prompt", "positive", "negative"}`` with
    no surrounding whitespace. When the prompt is non-empty the completions get one leading
    space, so ``positive_texts()`` gives ``"My weekend was" + " wonderful ..."`` (natural BPE
    spacing); :meth:`ContrastDataset.with_chat_template` strips it again for chat turns.

    Args:
        name: one of :data:`BUILTIN_DATASETS`.

    Returns:
        The dataset; ``metadata`` holds ``source`` (``"written for lens_odesteer"``),
        ``licence`` (``"Apache-2.0"``) and a ``description``.

    Raises:
        InvalidParameterError: for an unknown name.
    """
    if name not in BUILTIN_DATASETS:
        raise InvalidParameterError(
            f"Unknown built-in dataset {name!r}; choose one of {list(BUILTIN_DATASETS)}."
        )
    res = resources.files("lens_odesteer.datasets").joinpath("data").joinpath(f"{name}.jsonl")
    try:
        text = res.read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # pragma: no cover - broken install
        raise FileFormatError(
            f"Built-in data file {name}.jsonl is missing from the installed package; reinstall "
            "lens_odesteer (the package data 'datasets/data/*.jsonl' must be included)."
        ) from exc
    pairs = []
    for lineno, line in json_lines(text):
        rec = parse_json(line, f"built-in {name}.jsonl line {lineno}", "one JSON object per line")
        prompt = rec["prompt"]
        sep = " " if prompt else ""
        pairs.append(
            ContrastPair(prompt, sep + rec["positive"], sep + rec["negative"], f"{name}:{lineno}")
        )
    metadata = {
        "source": "written for lens_odesteer",
        "licence": "Apache-2.0",
        "description": _DESCRIPTIONS[name],
    }
    return ContrastDataset(name, tuple(pairs), metadata)
